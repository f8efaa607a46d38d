"""Memory-V2V sessions on disk: every stored edit result, and retrieval by relevance.

Layout under the data dir: `memory/<session>/session.json` and
`memory/<session>/entries/<entry>/` holding `video.mp4`, `tensors.safetensors` (the
result's VAE latents [C, F, h, w], its pooled feature vector and, when known, its camera)
and `entry.json`. Entries appear only complete (staged, then renamed).

Retrieval scores every entry in [0, 1]: the camera field-of-view overlap when the request
and the entry both carry cameras (novel-view synthesis), the cosine similarity of pooled
features otherwise (long-video editing). `token_shares` splits the token budget across the
retrieved entries in proportion to relevance (dynamic tokenisation).
"""

from __future__ import annotations

import json
import math
import shutil
import tempfile
import threading
import time
import uuid
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import torch
from numpy.typing import NDArray

from gantry.core.errors import FailedPrecondition, NotFound, ResourceExhausted, echo
from gantry.core.limits import check_id
from gantry.core.storage import write_atomically

Retrieval = Literal["fov", "feature"]
SESSION_FILE = "session.json"
ENTRY_FILE = "entry.json"
TENSORS_FILE = "tensors.safetensors"
VIDEO_FILE = "video.mp4"
THUMB_FILE = "thumb.png"


@dataclass
class Camera:
    """Per-frame camera-to-world [T, 4, 4] and pinhole intrinsics [3, 3] or [T, 3, 3]."""

    extrinsics: torch.Tensor
    intrinsics: torch.Tensor


@dataclass
class SessionInfo:
    id: str
    display_name: str
    retrieval: str  # "fov" or "feature"
    top_k: int
    token_budget: int
    max_entries: int
    create_time: float
    update_time: float


@dataclass
class EntryInfo:
    id: str
    session_id: str
    video_id: str
    prompt: str
    frame_count: int
    width: int
    height: int
    create_time: float


@dataclass
class Entry:
    info: EntryInfo
    folder: Path
    latents: torch.Tensor  # [C, F, h, w]
    feature: torch.Tensor  # [D]
    camera: Camera | None


@dataclass(frozen=True)
class Retrieved:
    entry: Entry
    relevance: float


# ---- relevance ------------------------------------------------------------------------------


def frustum_points(
    camera: Camera, *, grid: int = 6, depths: tuple[float, ...] = (1, 2, 4)
) -> torch.Tensor:
    """World points seen by the camera: a pixel grid at a few depths, for every frame."""
    ext = camera.extrinsics.double()
    intr = camera.intrinsics.double()
    intr = intr.expand(ext.shape[0], 3, 3) if intr.dim() == 2 else intr
    points = []
    for c2w, k in zip(ext, intr, strict=True):
        w, h = float(k[0, 2]) * 2, float(k[1, 2]) * 2
        us = torch.linspace(0.05, 0.95, grid, dtype=torch.float64) * w
        vs = torch.linspace(0.05, 0.95, grid, dtype=torch.float64) * h
        u, v = torch.meshgrid(us, vs, indexing="xy")
        rays = torch.stack(
            [(u - k[0, 2]) / k[0, 0], (v - k[1, 2]) / k[1, 1], torch.ones_like(u)], -1
        )
        for depth in depths:
            cam = rays.reshape(-1, 3) * depth
            points.append(cam @ c2w[:3, :3].T + c2w[:3, 3])
    return torch.cat(points)


def visible(points: torch.Tensor, camera: Camera, far: float = 8.0) -> torch.Tensor:
    """[P] bool: the point projects inside the image of one of the frames, at depth (0, far].

    The far plane keeps two cameras that face each other from afar from counting as
    overlapping; it is twice the deepest sample `frustum_points` takes.
    """
    ext = camera.extrinsics.double()
    intr = camera.intrinsics.double()
    intr = intr.expand(ext.shape[0], 3, 3) if intr.dim() == 2 else intr
    seen = torch.zeros(points.shape[0], dtype=torch.bool)
    for c2w, k in zip(ext, intr, strict=True):
        w2c = torch.linalg.inv(c2w)
        cam = points @ w2c[:3, :3].T + w2c[:3, 3]
        z = cam[:, 2]
        u = k[0, 0] * cam[:, 0] / z.clamp(min=1e-9) + k[0, 2]
        v = k[1, 1] * cam[:, 1] / z.clamp(min=1e-9) + k[1, 2]
        in_depth = (z > 1e-6) & (z <= far)
        inside = in_depth & (u >= 0) & (u <= 2 * k[0, 2]) & (v >= 0) & (v <= 2 * k[1, 2])
        seen |= inside
    return seen


def fov_overlap(query: Camera, entry: Camera) -> float:
    """Fraction of what the query camera sees that the entry's camera saw too, in [0, 1]."""
    return float(visible(frustum_points(query), entry).double().mean())


def feature_similarity(a: torch.Tensor, b: torch.Tensor) -> float:
    """Cosine similarity mapped to [0, 1]."""
    cos = torch.nn.functional.cosine_similarity(a.double()[None], b.double()[None])
    return float((cos.clamp(-1, 1) + 1) / 2)


def token_shares(
    relevances: list[float], budget: int, tokens_per_frame: int, frames: list[int]
) -> list[int]:
    """Latent frames per retrieved entry: the budget split by relevance (dynamic tokenisation).

    Entry i gets about `budget * r_i / sum(r)` tokens, in whole latent frames (each costs
    `tokens_per_frame`), at most its own frame count; leftover whole frames go to the most
    relevant entries first.
    """
    total = sum(relevances)
    if total <= 0 or budget < tokens_per_frame:
        return [0] * len(relevances)
    capacity = budget // tokens_per_frame
    shares = [
        min(f, math.floor(capacity * r / total)) for r, f in zip(relevances, frames, strict=True)
    ]
    spare = capacity - sum(shares)
    for i in sorted(range(len(shares)), key=lambda j: -relevances[j]):
        extra = min(spare, frames[i] - shares[i])
        shares[i] += extra
        spare -= extra
    return shares


def pick_frames(latents: torch.Tensor, count: int) -> torch.Tensor:
    """`count` latent frames evenly spaced over the entry ([C, F, h, w] -> [C, count, h, w])."""
    f = latents.shape[1]
    index = torch.linspace(0, f - 1, count).round().long() if count > 1 else torch.tensor([f - 1])
    return latents[:, index]


# ---- the store ------------------------------------------------------------------------------


class MemoryStore:
    def __init__(self, data_dir: Path, *, max_sessions: int, max_entries: int) -> None:
        self.root = data_dir / "memory"
        self.tmp = data_dir / "tmp"
        self.root.mkdir(parents=True, exist_ok=True)
        self.tmp.mkdir(parents=True, exist_ok=True)
        self.max_sessions = max_sessions
        self.max_entries = max_entries
        self._lock = threading.RLock()

    # sessions

    def create(
        self,
        display_name: str,
        retrieval: Retrieval,
        top_k: int,
        token_budget: int,
        max_entries: int,
    ) -> SessionInfo:
        with self._lock:
            if sum(1 for _ in self.root.iterdir()) >= self.max_sessions:
                raise ResourceExhausted(
                    f"the server keeps at most {self.max_sessions} memory sessions; delete one"
                )
            now = time.time()
            info = SessionInfo(
                id=uuid.uuid4().hex,
                display_name=display_name,
                retrieval=retrieval,
                top_k=top_k,
                token_budget=token_budget,
                max_entries=min(max_entries or self.max_entries, self.max_entries),
                create_time=now,
                update_time=now,
            )
            folder = self.root / info.id
            (folder / "entries").mkdir(parents=True)
            write_atomically(folder / SESSION_FILE, json.dumps(asdict(info)))
            return info

    def _session_folder(self, session_id: str, field: str) -> Path:
        check_id(session_id, field=field)
        folder = self.root / session_id
        if not session_id.isalnum() or not (folder / SESSION_FILE).is_file():
            raise NotFound(
                f"{field}: memory session {echo(session_id)} does not exist",
                resource_type="memory_session",
                resource_name=session_id,
            )
        return folder

    def get(self, session_id: str, *, field: str = "session_id") -> SessionInfo:
        with self._lock:
            folder = self._session_folder(session_id, field)
            return SessionInfo(**json.loads((folder / SESSION_FILE).read_text()))

    def delete(self, session_id: str, *, field: str = "session_id") -> None:
        with self._lock:
            folder = self._session_folder(session_id, field)
            # Rename first: the session vanishes at once even if removal takes a while.
            doomed = Path(tempfile.mkdtemp(prefix="del-", dir=self.tmp))
            folder.rename(doomed / "session")
        shutil.rmtree(doomed, ignore_errors=True)

    def entry_infos(self, session_id: str, *, field: str = "session_id") -> list[EntryInfo]:
        """Newest first."""
        with self._lock:
            folder = self._session_folder(session_id, field)
            infos = []
            for entry in (folder / "entries").iterdir():
                try:
                    infos.append(EntryInfo(**json.loads((entry / ENTRY_FILE).read_text())))
                except (OSError, ValueError, TypeError):
                    continue
            return sorted(infos, key=lambda e: (-e.create_time, e.id))

    def delete_entry(self, session_id: str, entry_id: str) -> None:
        with self._lock:
            folder = self._session_folder(session_id, "session_id")
            check_id(entry_id, field="entry_id")
            entry = folder / "entries" / entry_id
            if not entry_id.isalnum() or not (entry / ENTRY_FILE).is_file():
                raise NotFound(
                    f"entry_id: entry {echo(entry_id)} is not in session {session_id}",
                    resource_type="memory_entry",
                    resource_name=entry_id,
                )
            shutil.rmtree(entry)

    # entries

    def load_entry(self, folder: Path) -> Entry:
        from safetensors.torch import load_file

        info = EntryInfo(**json.loads((folder / ENTRY_FILE).read_text()))
        tensors = load_file(str(folder / TENSORS_FILE))
        camera = None
        if "camera_extrinsics" in tensors:
            camera = Camera(tensors["camera_extrinsics"], tensors["camera_intrinsics"])
        return Entry(info, folder, tensors["latents"], tensors["feature"], camera)

    def entries(self, session_id: str) -> list[Entry]:
        with self._lock:
            folder = self._session_folder(session_id, "memory.session_id")
            return [
                self.load_entry(folder / "entries" / e.id) for e in self.entry_infos(session_id)
            ]

    def add(
        self,
        session_id: str,
        *,
        video_file: Path,
        video_id: str,
        prompt: str,
        frames: NDArray[np.uint8],
        latents: torch.Tensor,
        feature: torch.Tensor,
        camera: Camera | None,
        thumbnail_png: bytes,
    ) -> EntryInfo:
        """Store a result; evict the oldest entries beyond the session's maximum."""
        from safetensors.torch import save_file

        with self._lock:
            session = self.get(session_id, field="memory.session_id")
            folder = self.root / session_id
            info = EntryInfo(
                id=uuid.uuid4().hex,
                session_id=session_id,
                video_id=video_id,
                prompt=prompt,
                frame_count=int(frames.shape[0]),
                width=int(frames.shape[2]),
                height=int(frames.shape[1]),
                create_time=time.time(),
            )
            staged = Path(tempfile.mkdtemp(prefix="entry-", dir=self.tmp))
            try:
                shutil.copyfile(video_file, staged / VIDEO_FILE)
                tensors = {
                    "latents": latents.float().contiguous(),
                    "feature": feature.float().contiguous(),
                }
                if camera is not None:
                    tensors["camera_extrinsics"] = camera.extrinsics.float().contiguous()
                    tensors["camera_intrinsics"] = camera.intrinsics.float().contiguous()
                save_file(tensors, str(staged / TENSORS_FILE))
                (staged / THUMB_FILE).write_bytes(thumbnail_png)
                write_atomically(staged / ENTRY_FILE, json.dumps(asdict(info)))
                staged.rename(folder / "entries" / info.id)
            except BaseException:
                shutil.rmtree(staged, ignore_errors=True)
                raise
            session.update_time = info.create_time
            write_atomically(folder / SESSION_FILE, json.dumps(asdict(session)))
            if session.max_entries:
                for old in self.entry_infos(session_id)[session.max_entries :]:
                    shutil.rmtree(folder / "entries" / old.id, ignore_errors=True)
            return info

    def retrieve(
        self,
        session_id: str,
        *,
        retrieval: Retrieval,
        top_k: int,
        min_relevance: float,
        feature: torch.Tensor,
        camera: Camera | None,
    ) -> list[Retrieved]:
        """The `top_k` most relevant entries at or above `min_relevance`, best first."""
        if retrieval == "fov" and camera is None:
            raise FailedPrecondition(
                "camera: FOV-overlap retrieval needs the request's camera parameters",
                reason="CAMERA_REQUIRED",
            )
        scored = []
        for entry in self.entries(session_id):
            if retrieval == "fov" and entry.camera is not None and camera is not None:
                score = fov_overlap(camera, entry.camera)
            else:
                score = feature_similarity(feature, entry.feature)
            if score >= min_relevance and score > 0:
                scored.append(Retrieved(entry, score))
        scored.sort(key=lambda r: (-r.relevance, -r.entry.info.create_time))
        return scored[:top_k]
