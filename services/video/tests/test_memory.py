"""Memory sessions on disk, relevance (FOV overlap, features), token shares and retention."""

from __future__ import annotations

import math
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from gantry.core.errors import NotFound
from gantry.video.memory import (
    Camera,
    MemoryStore,
    fov_overlap,
    pick_frames,
    token_shares,
)
from gantry.video.videos import VideoMeta, VideoStore

K = torch.tensor([[32.0, 0, 16], [0, 32.0, 16], [0, 0, 1]])


def yaw(degrees: float, x: float = 0.0) -> torch.Tensor:
    """Camera-to-world: a camera at (x, 0, 0) turned `degrees` about the vertical axis."""
    a = math.radians(degrees)
    c2w = torch.eye(4)
    c2w[:3, :3] = torch.tensor(
        [[math.cos(a), 0, math.sin(a)], [0, 1, 0], [-math.sin(a), 0, math.cos(a)]]
    )
    c2w[0, 3] = x
    return c2w


def camera(*poses: torch.Tensor) -> Camera:
    return Camera(torch.stack(poses), K)


def test_fov_overlap_follows_the_view() -> None:
    front = camera(yaw(0))
    assert fov_overlap(front, front) == pytest.approx(1.0)
    assert fov_overlap(front, camera(yaw(180))) == 0.0
    half = fov_overlap(front, camera(yaw(25)))
    assert 0.1 < half < 0.9
    assert fov_overlap(front, camera(yaw(10))) > half  # closer view, more overlap
    # An entry whose trajectory sweeps past the view sees it in one of its frames.
    assert fov_overlap(front, camera(yaw(180), yaw(0))) == pytest.approx(1.0)


def test_token_shares_follow_relevance() -> None:
    # 100 tokens, 10 per latent frame: 10 frames split 3:1 over two entries.
    assert token_shares([0.75, 0.25], 100, 10, [20, 20]) == [8, 2]
    # Entry 0 has only 3 frames: the rest goes to the next most relevant.
    assert token_shares([0.75, 0.25], 100, 10, [3, 20]) == [3, 7]
    assert token_shares([0.5, 0.5], 5, 10, [4, 4]) == [0, 0]  # budget below one frame
    lat = torch.arange(10.0).view(1, 10, 1, 1)
    assert pick_frames(lat, 3).flatten().tolist() == [0.0, 4.0, 9.0]  # evenly spaced, ends kept


def add(
    store: MemoryStore, session: str, video: Path, feature: list[float], cam: Camera | None = None
) -> str:
    info = store.add(
        session,
        video_file=video,
        video_id="v",
        prompt="p",
        frames=np.zeros((5, 32, 32, 3), np.uint8),
        latents=torch.zeros(4, 2, 4, 4),
        feature=torch.tensor(feature),
        camera=cam,
        thumbnail_png=b"png",
    )
    return info.id


def test_sessions_entries_retrieval_and_eviction(tmp_path: Path) -> None:
    store = MemoryStore(tmp_path, max_sessions=2, max_entries=10)
    video = tmp_path / "v.mp4"
    video.write_bytes(b"mp4")
    session = store.create("s", "feature", 2, 64, max_entries=3)
    features: list[list[float]] = [[1, 0], [0.8, 0.6], [0, 1], [-1, 0]]
    ids = [add(store, session.id, video, f) for f in features]
    listed = [e.id for e in store.entry_infos(session.id)]
    assert listed == ids[::-1][:3]  # newest first; the oldest evicted beyond max_entries=3
    found = store.retrieve(
        session.id,
        retrieval="feature",
        top_k=2,
        min_relevance=0.0,
        feature=torch.tensor([1.0, 0.0]),
        camera=None,
    )
    assert [r.entry.info.id for r in found] == [ids[1], ids[2]]
    assert found[0].relevance == pytest.approx(0.9) and found[1].relevance == pytest.approx(0.5)
    strict = store.retrieve(
        session.id,
        retrieval="feature",
        top_k=3,
        min_relevance=0.6,
        feature=torch.tensor([1.0, 0.0]),
        camera=None,
    )
    assert [r.entry.info.id for r in strict] == [ids[1]]
    store.delete_entry(session.id, ids[1])
    with pytest.raises(NotFound, match="entry_id"):
        store.delete_entry(session.id, ids[1])
    store.create("t", "fov", 1, 1, 0)
    with pytest.raises(Exception, match="at most 2"):
        store.create("u", "fov", 1, 1, 0)
    store.delete(session.id)
    with pytest.raises(NotFound, match="session_id"):
        store.get(session.id)
    with pytest.raises(NotFound):
        store.get("../etc")


def test_fov_retrieval_ranks_by_overlap(tmp_path: Path) -> None:
    store = MemoryStore(tmp_path, max_sessions=2, max_entries=10)
    video = tmp_path / "v.mp4"
    video.write_bytes(b"mp4")
    session = store.create("s", "fov", 3, 64, 0)
    near = add(store, session.id, video, [1, 0], camera(yaw(10)))
    far = add(store, session.id, video, [1, 0], camera(yaw(40)))
    add(store, session.id, video, [1, 0], camera(yaw(180)))
    found = store.retrieve(
        session.id,
        retrieval="fov",
        top_k=3,
        min_relevance=0.0,
        feature=torch.tensor([1.0, 0.0]),
        camera=camera(yaw(0)),
    )
    assert [r.entry.info.id for r in found] == [near, far]  # the opposite view scores 0


def test_videos_expire_after_retention(tmp_path: Path) -> None:
    store = VideoStore(tmp_path, retention_s=60)
    with store.staging() as staged:
        (staged / "video.mp4").write_bytes(b"x")
        video_id = store.commit(staged, VideoMeta("video/mp4", 1, 8.0, 1, 2, 2, "upload", 0.0))
    path, meta = store.use(video_id, field="video_id")
    assert path.read_bytes() == b"x" and meta.expire_time > time.time() + 50
    assert store.sweep(now=time.time() + 30) == 0
    assert store.sweep(now=time.time() + 120) == 1
    with pytest.raises(NotFound, match="video_id"):
        store.use(video_id, field="video_id")
    assert not any(store.tmp.iterdir())
