"""One real video server per test module, on the tiny random Wan, data under tmp."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from gantry.core.testing.threaded import serve_in_thread
from gantry.video.media import encode_mp4
from gantry.video.service import VideoService
from gantry.video.settings import VideoSettings

TOKEN = "video-test-token"


def make_settings(data_dir: Path, **overrides: object) -> VideoSettings:
    values: dict[str, object] = {
        "host": "127.0.0.1",
        "port": 0,
        "metrics_port": 0,
        "auth_token": TOKEN,
        "log_json": False,
        "data_dir": data_dir,
        "default_steps": 2,
        "max_frames": 17,
        "max_width": 64,
        "max_height": 64,
        "max_video_bytes": 2_000_000,
        "max_prompt_bytes": 200,
    }
    values.update(overrides)
    return VideoSettings(**values)  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("video-data")


@pytest.fixture(scope="module")
def target(data_dir: Path) -> Iterator[str]:
    # Loading diffusers and the pipeline takes a while on a busy machine.
    with serve_in_thread(VideoService(make_settings(data_dir)), startup_timeout_s=300) as running:
        yield f"127.0.0.1:{running.port}"


def scene(count: int = 5, size: int = 32, shift: int = 0) -> np.ndarray:
    """A coloured square sliding over a gradient."""
    frames = np.zeros((count, size, size, 3), np.uint8)
    frames[..., 2] = np.linspace(40, 200, size, dtype=np.uint8)[None, None, :]
    for t in range(count):
        x = (shift + 3 * t) % (size - 8)
        frames[t, 8:16, x : x + 8] = (230, 40, 40)
    return frames


@pytest.fixture(scope="module")
def mp4_bytes(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    path = tmp_path_factory.mktemp("mp4") / "scene.mp4"
    encode_mp4(scene(7), 8.0, path)
    return path.read_bytes()
