"""The video service: Wan video-to-video with SALAD attention and Memory-V2V over gRPC."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import ClassVar

import grpc
import numpy as np

from gantry.core.server import Service
from gantry.core.settings import ServiceSettings
from gantry.proto.common.v1 import media_pb2
from gantry.proto.video.v1 import video_pb2, video_pb2_grpc
from gantry.video.engine import WanEngine, pick_device, pick_dtype
from gantry.video.memory import MemoryStore
from gantry.video.settings import VideoSettings
from gantry.video.videos import VideoStore

log = logging.getLogger("gantry.video")
SERVICE_NAME = video_pb2.DESCRIPTOR.services_by_name["VideoService"].full_name
TINY_MODEL_ID = "wan2.1-tiny-random"


def load_engine(settings: VideoSettings) -> WanEngine:
    """Build and load the configured engine (blocking: reads weights)."""
    device = pick_device(settings.device)
    dtype = pick_dtype(settings.dtype, device)
    if settings.model_path:
        path = Path(settings.model_path)
        model_id = settings.model_id or path.name
        tiny = False
    else:
        from gantry.models.tiny.wan import tiny_wan_dir

        path, model_id, tiny = tiny_wan_dir(), settings.model_id or TINY_MODEL_ID, True
    engine = WanEngine(path, model_id=model_id, tiny=tiny, device=device, dtype=dtype)
    engine.load(settings.salad_weights)
    return engine


def demo_frames(count: int = 5, size: int = 32) -> np.ndarray:
    """A small moving gradient: a valid input for any Wan model."""
    t = np.arange(count)[:, None, None]
    y, x = np.mgrid[0:size, 0:size]
    red = (x[None] * 8 + t * 20) % 256
    green = (y[None] * 8) % 256 + 0 * t
    blue = np.full((count, size, size), 128)
    return np.stack([red, green, blue], axis=-1).astype(np.uint8)


class VideoService(Service[VideoSettings]):
    name: ClassVar[str] = "video"
    settings_type: ClassVar[type[ServiceSettings]] = VideoSettings

    def __init__(self, settings: VideoSettings) -> None:
        super().__init__(settings)
        self.engine: WanEngine | None = None
        self.videos = VideoStore(settings.data_dir, settings.retention_s)
        self.memory = MemoryStore(
            settings.data_dir,
            max_sessions=settings.max_sessions,
            max_entries=settings.max_session_entries,
        )
        self._sweeper: asyncio.Task[None] | None = None

    def loaded_engine(self) -> WanEngine:
        if self.engine is None:
            raise RuntimeError("the engine is used before start() loaded it")
        return self.engine

    def add_to_server(self, server: grpc.aio.Server) -> Sequence[str]:
        from gantry.video.servicer import VideoServicer

        servicer = VideoServicer(
            self, self.loaded_engine, self.operations, self.settings, self.videos, self.memory
        )
        video_pb2_grpc.add_VideoServiceServicer_to_server(servicer, server)
        return [SERVICE_NAME]

    async def start(self) -> None:
        self.engine = await self.run_blocking(load_engine, self.settings)
        self._sweeper = asyncio.get_running_loop().create_task(self._sweep_forever())
        log.info("video ready: %s on %s", self.engine.model_id, self.engine.device)

    async def _sweep_forever(self) -> None:
        while True:
            removed = await self.run_blocking(self.videos.sweep)
            if removed:
                log.info("retention: removed %d expired videos", removed)
            await asyncio.sleep(self.settings.sweep_interval_s)

    async def stop(self) -> None:
        if self._sweeper is not None:
            self._sweeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._sweeper
        self.engine = None

    @classmethod
    def demo_call(cls, channel: grpc.Channel) -> str:
        from google.longrunning import operations_proto_pb2 as operations_pb2
        from google.longrunning.operations_pb2_grpc import OperationsStub

        from gantry.core.codecs import video_from_frames

        stub = video_pb2_grpc.VideoServiceStub(channel)
        caps = stub.GetCapabilities(video_pb2.GetCapabilitiesRequest())
        video: media_pb2.Video = video_from_frames(demo_frames(), fps=8.0)
        op = stub.GenerateVideo(
            video_pb2.GenerateVideoRequest(
                input=video_pb2.VideoInput(video=video),
                prompt="a red cube turning",
                num_inference_steps=2,
                seed=0,
            )
        )
        done = OperationsStub(channel).WaitOperation(  # type: ignore[no-untyped-call]
            operations_pb2.WaitOperationRequest(name=op.name, timeout={"seconds": 120})
        )
        if not done.done or done.HasField("error"):
            return f"GenerateVideo {op.name} did not finish: {done.error.message or 'timeout'}"
        reply = video_pb2.GenerateVideoResponse()
        done.response.Unpack(reply)
        return (
            f"{caps.models[0].id}: {reply.video.frame_count} frames "
            f"{reply.video.width}x{reply.video.height} in "
            f"{reply.generation_time.ToTimedelta().total_seconds():.1f}s (video {reply.video_id})"
        )
