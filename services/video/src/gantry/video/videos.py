"""Uploaded and generated videos on disk, with retention.

Layout under the data dir: `videos/<id>/video.mp4` plus `meta.json` (the header and the
expiry). A video appears only complete: it is written in a staging folder under `tmp/`
and renamed into place, so a failed upload or generation leaves nothing behind. Every use
(download, generation input) pushes the expiry back by the retention period; `sweep()`
deletes what expired.
"""

from __future__ import annotations

import json
import shutil
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path

from gantry.core.errors import NotFound, echo
from gantry.core.limits import check_id
from gantry.core.storage import write_atomically

VIDEO_FILE = "video.mp4"
META_FILE = "meta.json"


@dataclass
class VideoMeta:
    mime_type: str
    size_bytes: int
    fps: float
    frame_count: int
    width: int
    height: int
    kind: str  # "upload" or "result"
    expire_time: float


class VideoStore:
    def __init__(self, data_dir: Path, retention_s: float) -> None:
        self.root = data_dir / "videos"
        self.tmp = data_dir / "tmp"
        self.retention_s = retention_s
        self.root.mkdir(parents=True, exist_ok=True)
        self.tmp.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()

    @contextmanager
    def staging(self) -> Iterator[Path]:
        """A fresh scratch folder, removed on exit unless `commit` moved it away."""
        folder = Path(tempfile.mkdtemp(prefix="stage-", dir=self.tmp))
        try:
            yield folder
        finally:
            shutil.rmtree(folder, ignore_errors=True)

    def commit(self, staged: Path, meta: VideoMeta) -> str:
        """Move a staged folder holding `video.mp4` into place; return the new id."""
        video_id = uuid.uuid4().hex
        meta.expire_time = time.time() + self.retention_s
        write_atomically(staged / META_FILE, json.dumps(asdict(meta)))
        staged.rename(self.root / video_id)
        return video_id

    def _folder(self, video_id: str, field: str) -> Path:
        check_id(video_id, field=field)
        if not video_id.isalnum():
            raise self._missing(video_id, field)
        folder = self.root / video_id
        if not (folder / META_FILE).is_file():
            raise self._missing(video_id, field)
        return folder

    @staticmethod
    def _missing(video_id: str, field: str) -> NotFound:
        return NotFound(
            f"{field}: video {echo(video_id)} does not exist (or expired)",
            resource_type="video",
            resource_name=video_id,
        )

    def use(self, video_id: str, *, field: str) -> tuple[Path, VideoMeta]:
        """The video's file and metadata; pushes its expiry back."""
        with self._lock:
            folder = self._folder(video_id, field)
            meta = VideoMeta(**json.loads((folder / META_FILE).read_text()))
            if meta.expire_time < time.time():
                raise self._missing(video_id, field)
            meta.expire_time = time.time() + self.retention_s
            write_atomically(folder / META_FILE, json.dumps(asdict(meta)))
            return folder / VIDEO_FILE, meta

    def sweep(self, now: float | None = None) -> int:
        """Delete expired videos (and stale staging folders); return how many went."""
        now = time.time() if now is None else now
        removed = 0
        with self._lock:
            for folder in self.root.iterdir():
                try:
                    meta = json.loads((folder / META_FILE).read_text())
                except (OSError, ValueError):
                    continue
                if float(meta.get("expire_time", 0)) < now:
                    shutil.rmtree(folder, ignore_errors=True)
                    removed += 1
        for stale in self.tmp.iterdir():
            if stale.stat().st_mtime < now - 24 * 3600:
                shutil.rmtree(stale, ignore_errors=True)
        return removed
