"""The VideoService RPCs.

GenerateVideo checks every field and decodes the input before it creates an operation, so
a bad request fails the call (AIP-151). The job then waits for a generation slot (stage
QUEUED), retrieves memory, denoises (step k of N in the metadata) and encodes the result
into the video store. Cancelling the operation sets an event the sampler checks after
every step: the thread stops there, and the job's staging folder goes away with it.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import secrets
import threading
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO, cast

import numpy as np
import torch
from google.protobuf import duration_pb2, timestamp_pb2

from gantry.core import codecs
from gantry.core.errors import InvalidArgument, NotFound, ResourceExhausted, echo
from gantry.core.limits import check_bytes, check_id
from gantry.core.operations import OperationHandle, OperationStore
from gantry.core.paging import Page
from gantry.core.server import Runtime
from gantry.core.storage import StorageRoot
from gantry.proto.common.v1 import chunk_pb2, media_pb2
from gantry.proto.video.v1 import video_pb2, video_pb2_grpc
from gantry.video import checks
from gantry.video.engine import (
    FRAME_MULTIPLE,
    FRAME_REMAINDER,
    GenerationCancelled,
    GenerationOutput,
    GenerationPlan,
    WanEngine,
    denoising_steps,
)
from gantry.video.media import (
    MP4,
    OUTPUT_MIME_TYPES,
    DecodeLimits,
    Probe,
    decode_bytes,
    decode_file,
    encode_mp4,
)
from gantry.video.memory import (
    Camera,
    EntryInfo,
    MemoryStore,
    Retrieved,
    SessionInfo,
    pick_frames,
    token_shares,
)
from gantry.video.settings import VideoSettings
from gantry.video.videos import VIDEO_FILE, VideoMeta, VideoStore

CHUNK = 1024 * 1024
MAX_CHUNK = 4 * CHUNK
MIN_CHUNK = 1024
_RETRIEVAL = {
    video_pb2.MEMORY_RETRIEVAL_FOV_OVERLAP: "fov",
    video_pb2.MEMORY_RETRIEVAL_FEATURE_SIMILARITY: "feature",
}
_RETRIEVAL_PB = {v: k for k, v in _RETRIEVAL.items()}


def _timestamp(seconds: float) -> timestamp_pb2.Timestamp:
    stamp = timestamp_pb2.Timestamp()
    stamp.FromNanoseconds(int(seconds * 1e9))
    return stamp


def _duration(seconds: float) -> duration_pb2.Duration:
    value = duration_pb2.Duration()
    value.FromNanoseconds(int(seconds * 1e9))
    return value


def _mime_of(head: bytes) -> str:
    if head[4:8] == b"ftyp":
        return MP4
    if head[:4] == b"\x1a\x45\xdf\xa3":
        return "video/webm"
    return "video/x-msvideo"


def _open_binary(path: Path) -> BinaryIO:
    return open(path, "rb")


def _png(frame: np.ndarray[Any, Any]) -> bytes:
    return bytes(codecs.image_from_array(frame).data)


@dataclass
class _Request:
    """A checked GenerateVideo request, ready for the job."""

    plan: GenerationPlan
    fps: float
    inline: bool
    memory: video_pb2.MemorySettings | None
    session: SessionInfo | None
    camera: Camera | None
    store_result: bool


class VideoServicer(video_pb2_grpc.VideoServiceServicer):  # type: ignore[misc]
    def __init__(
        self,
        runtime: Runtime,
        engine: Callable[[], WanEngine],
        operations: OperationStore,
        settings: VideoSettings,
        videos: VideoStore,
        memory: MemoryStore,
    ) -> None:
        self.runtime = runtime
        self.engine = engine
        self.operations = operations
        self.settings = settings
        self.videos = videos
        self.memory = memory
        self.inputs = StorageRoot("videos", settings.input_root)
        self.limits = DecodeLimits(settings.max_frames, settings.max_width, settings.max_height)
        self._slots = asyncio.Semaphore(settings.max_concurrent_generations)
        self._running: set[str] = set()  # generation operations not done yet

    # ---- capabilities -------------------------------------------------------------------

    def _bounds(self) -> checks.Bounds:
        s = self.settings
        return checks.Bounds(
            max_frames=s.max_frames,
            max_width=s.max_width,
            max_height=s.max_height,
            size_multiple=self.engine().size_multiple,
            max_prompt_bytes=s.max_prompt_bytes,
            max_steps=s.max_steps,
            max_top_k=s.max_top_k,
            max_token_budget=s.max_token_budget,
        )

    async def GetCapabilities(
        self, request: video_pb2.GetCapabilitiesRequest, context: Any
    ) -> video_pb2.GetCapabilitiesResponse:
        engine, s = self.engine(), self.settings
        return video_pb2.GetCapabilitiesResponse(
            models=[
                video_pb2.VideoModel(
                    id=engine.model_id,
                    is_default=True,
                    salad_weights=engine.salad_loaded,
                    tiny=engine.tiny,
                )
            ],
            frame_multiple=FRAME_MULTIPLE,
            frame_remainder=FRAME_REMAINDER,
            size_multiple=engine.size_multiple,
            max_frames=s.max_frames,
            max_width=s.max_width,
            max_height=s.max_height,
            max_video_bytes=s.max_video_bytes,
            max_prompt_bytes=s.max_prompt_bytes,
            default_steps=s.default_steps,
            max_steps=s.max_steps,
            output_mime_types=list(OUTPUT_MIME_TYPES),
            attention_modes=[
                video_pb2.ATTENTION_MODE_DENSE,
                video_pb2.ATTENTION_MODE_SPARSE,
                video_pb2.ATTENTION_MODE_SALAD,
            ],
            max_memory_token_budget=s.max_token_budget,
            retention=_duration(s.retention_s),
        )

    # ---- upload / download --------------------------------------------------------------

    async def UploadVideo(
        self, request_iterator: AsyncIterator[video_pb2.UploadVideoRequest], context: Any
    ) -> video_pb2.UploadVideoResponse:
        limit = self.settings.max_video_bytes
        with self.videos.staging() as staged:
            target = staged / VIDEO_FILE
            header: video_pb2.VideoHeader | None = None
            received = 0
            digest = hashlib.sha256()
            last: chunk_pb2.Chunk | None = None
            head = b""
            # A local staging file: appending a chunk (<= the message size) to the page
            # cache takes far less than a network round trip, so it stays on the loop.
            with open(target, "wb") as fh:  # noqa: ASYNC230
                async for message in request_iterator:
                    kind = message.WhichOneof("payload")
                    if header is None:
                        if kind != "header":
                            raise InvalidArgument.for_field(
                                "header", "the first message must be the header"
                            )
                        header = message.header
                        if header.size_bytes < 0 or header.size_bytes > limit:
                            raise InvalidArgument.for_field(
                                "header.size_bytes",
                                f"must be in [0, {limit}] (got {header.size_bytes})",
                            )
                        if header.mime_type:
                            check_bytes(header.mime_type, field="header.mime_type", limit=128)
                        continue
                    if kind != "chunk":
                        raise InvalidArgument.for_field("header", "is sent once, first")
                    if last is not None and last.last:
                        raise InvalidArgument.for_field(
                            "chunk.last", "chunks came after the last one"
                        )
                    chunk = message.chunk
                    if chunk.offset != received:
                        raise InvalidArgument.for_field(
                            "chunk.offset", f"expected {received}, got {chunk.offset}"
                        )
                    received += len(chunk.data)
                    if received > limit or (header.size_bytes and received > header.size_bytes):
                        raise InvalidArgument.for_field(
                            "chunk", f"the upload exceeds {header.size_bytes or limit} bytes"
                        )
                    digest.update(chunk.data)
                    if len(head) < 16:
                        head += chunk.data[: 16 - len(head)]
                    fh.write(chunk.data)
                    last = chunk
            if header is None:
                raise InvalidArgument.for_field("header", "the stream was empty")
            if last is None or not last.last:
                raise InvalidArgument.for_field(
                    "chunk.last", "the stream ended before the last chunk"
                )
            if header.size_bytes and received != header.size_bytes:
                raise InvalidArgument.for_field(
                    "header.size_bytes", f"announced {header.size_bytes} bytes, received {received}"
                )
            if last.sha256 and last.sha256.lower() != digest.hexdigest():
                raise InvalidArgument.for_field("chunk.sha256", "does not match the received bytes")
            probe = await self.runtime.run_blocking(decode_file, target, self.limits, "chunk.data")
            meta = VideoMeta(
                mime_type=_mime_of(head),
                size_bytes=received,
                fps=probe.fps,
                frame_count=probe.frame_count,
                width=probe.width,
                height=probe.height,
                kind="upload",
                expire_time=0.0,
            )
            video_id = self.videos.commit(staged, meta)
        return video_pb2.UploadVideoResponse(
            video_id=video_id, header=self._header(meta), expire_time=_timestamp(meta.expire_time)
        )

    @staticmethod
    def _header(meta: VideoMeta) -> video_pb2.VideoHeader:
        return video_pb2.VideoHeader(
            mime_type=meta.mime_type,
            size_bytes=meta.size_bytes,
            fps=meta.fps,
            frame_count=meta.frame_count,
            width=meta.width,
            height=meta.height,
        )

    async def DownloadVideo(
        self, request: video_pb2.DownloadVideoRequest, context: Any
    ) -> AsyncIterator[video_pb2.DownloadVideoResponse]:
        size = request.chunk_size or CHUNK
        if not MIN_CHUNK <= size <= MAX_CHUNK:
            raise InvalidArgument.for_field(
                "chunk_size", f"must be 0 or in [{MIN_CHUNK}, {MAX_CHUNK}]"
            )
        path, meta = self.videos.use(request.video_id, field="video_id")
        # Read chunk by chunk on the executor: a large result never sits in memory whole.
        handle = await self.runtime.run_blocking(_open_binary, path)
        try:
            total = meta.size_bytes
            digest = hashlib.sha256()
            offset = 0
            while True:
                data = await self.runtime.run_blocking(handle.read, size)
                digest.update(data)
                final = offset + len(data) >= total or not data
                chunk = chunk_pb2.Chunk(
                    data=data,
                    offset=offset,
                    total_size=total,
                    last=final,
                    sha256=digest.hexdigest() if final else "",
                )
                reply = video_pb2.DownloadVideoResponse(chunk=chunk)
                if offset == 0:
                    reply.header.CopyFrom(self._header(meta))
                yield reply
                offset += len(data)
                if final:
                    break
        finally:
            handle.close()

    # ---- generation ---------------------------------------------------------------------

    async def GenerateVideo(self, request: video_pb2.GenerateVideoRequest, context: Any) -> Any:
        engine = self.engine()
        checks.check_request(request, self._bounds())
        if request.model and request.model != engine.model_id:
            raise NotFound(
                f"model: {echo(request.model)} is not served here "
                f"(GetCapabilities lists {engine.model_id!r})",
                resource_type="model",
                resource_name=request.model[:64],
            )
        attention = checks.attention_settings(
            request, self.settings.default_attention, self.settings.default_sparsity
        )
        camera = checks.camera_from_proto(request.camera, field="camera")
        session = None
        if request.HasField("memory"):
            check_id(request.memory.session_id, field="memory.session_id")
            session = self.memory.get(request.memory.session_id, field="memory.session_id")
            retrieval = _RETRIEVAL.get(request.memory.retrieval) or session.retrieval
            if retrieval == "fov" and camera is None:
                raise InvalidArgument.for_field(
                    "camera.extrinsics", "FOV-overlap retrieval needs the request's camera"
                )
            attention.merge_keep = 0.5 if request.memory.adaptive_token_merging else 1.0
        steps = request.num_inference_steps or self.settings.default_steps
        strength = request.strength or self.settings.default_strength
        if denoising_steps(steps, strength) < 1:
            raise InvalidArgument.for_field(
                "strength",
                "strength x num_inference_steps must give at least one step "
                f"({strength} x {steps})",
            )
        if (
            self._in_flight()
            >= self.settings.max_concurrent_generations + self.settings.max_queued_generations
        ):
            raise ResourceExhausted("too many generations queued; retry later", retry_after_s=10.0)
        probe = await self._decode_input(request.input)
        frames = checks.resolve_frames(request.num_frames, probe.frame_count)
        multiple = engine.size_multiple
        width = checks.resolve_size(request.width, probe.width, multiple, "width")
        height = checks.resolve_size(request.height, probe.height, multiple, "height")
        seed = request.seed if request.HasField("seed") else secrets.randbits(63)
        plan = GenerationPlan(
            frames=probe.frames[:frames],
            width=width,
            height=height,
            prompt=request.prompt,
            negative_prompt=request.negative_prompt,
            steps=steps,
            guidance_scale=request.guidance_scale or self.settings.default_guidance_scale,
            strength=strength,
            seed=seed,
            attention=attention,
        )
        job = _Request(
            plan=plan,
            fps=request.fps or probe.fps,
            inline=request.inline_result,
            memory=request.memory if request.HasField("memory") else None,
            session=session,
            camera=camera,
            store_result=request.HasField("memory") and request.memory.store_result,
        )
        started = time.time()
        total = denoising_steps(steps, strength)

        async def run(handle: OperationHandle) -> video_pb2.GenerateVideoResponse:
            return await self._generate(handle, job, started, total)

        metadata = self._metadata(video_pb2.GENERATION_STAGE_QUEUED, 0, total, started)
        operation = self.operations.start(run, metadata=metadata)
        self._running.add(operation.name)
        return operation

    def _in_flight(self) -> int:
        """Generations queued or running (operations cancelled before they ran count too)."""
        for name in list(self._running):
            try:
                done = self.operations.get(name).done
            except NotFound:
                done = True
            if done:
                self._running.discard(name)
        return len(self._running)

    async def _decode_input(self, source: video_pb2.VideoInput) -> Probe:
        kind = source.WhichOneof("source")
        if kind == "video":
            video = source.video
            if video.WhichOneof("content") == "frames":
                frames = codecs.video_to_frames(video, field="input.video")
                count, height, width = frames.shape[:3]
                if (
                    count > self.limits.max_frames
                    or width > self.limits.max_width
                    or height > self.limits.max_height
                ):
                    raise InvalidArgument.for_field(
                        "input.video.frames",
                        f"is {count}x{width}x{height}; the limits are "
                        f"{self.limits.max_frames} frames of "
                        f"{self.limits.max_width}x{self.limits.max_height}",
                    )
                return Probe(np.ascontiguousarray(frames), video.fps or 16.0)
            if not video.data:
                raise InvalidArgument.for_field("input.video.data", "is empty")
            check_bytes(video.data, field="input.video.data", limit=self.settings.max_video_bytes)
            return await self.runtime.run_blocking(
                lambda: decode_bytes(
                    video.data, self.limits, field="input.video.data", scratch=self.videos.tmp
                )
            )
        if kind == "video_id":
            path, _ = self.videos.use(source.video_id, field="input.video_id")
            return await self.runtime.run_blocking(decode_file, path, self.limits, "input.video_id")
        path = self.inputs.resolve(source.uri, field="input.uri", must_exist=True)
        if not path.is_file():
            raise InvalidArgument.for_field("input.uri", "must name a file")
        if path.stat().st_size > self.settings.max_video_bytes:
            raise InvalidArgument.for_field(
                "input.uri", f"is larger than {self.settings.max_video_bytes} bytes"
            )
        return await self.runtime.run_blocking(decode_file, path, self.limits, "input.uri")

    @staticmethod
    def _metadata(
        value: int, step: int, total: int, started: float
    ) -> video_pb2.GenerateVideoMetadata:
        stage = cast(video_pb2.GenerationStage, value)
        progress = {
            video_pb2.GENERATION_STAGE_QUEUED: 0.0,
            video_pb2.GENERATION_STAGE_ENCODING_INPUT: 0.02,
            video_pb2.GENERATION_STAGE_RETRIEVING_MEMORY: 0.05,
            video_pb2.GENERATION_STAGE_DENOISING: 0.1 + 0.8 * step / max(total, 1),
            video_pb2.GENERATION_STAGE_DECODING: 0.9,
            video_pb2.GENERATION_STAGE_DONE: 1.0,
        }[stage]
        return video_pb2.GenerateVideoMetadata(
            stage=stage,
            step=step,
            total_steps=total,
            progress=progress,
            start_time=_timestamp(started),
        )

    async def _generate(
        self, handle: OperationHandle, job: _Request, started: float, total: int
    ) -> video_pb2.GenerateVideoResponse:
        loop = asyncio.get_running_loop()

        def publish(stage: int, step: int = 0) -> None:
            metadata = self._metadata(stage, step, total, started)
            with contextlib.suppress(RuntimeError):  # the loop closed: nobody is listening
                loop.call_soon_threadsafe(handle.set_metadata, metadata)

        async with self._slots:
            cancelled = threading.Event()
            work = asyncio.ensure_future(
                self.runtime.run_blocking(self._work, job, publish, cancelled)
            )
            try:
                reply = await asyncio.shield(work)
            except asyncio.CancelledError:
                # Stop the sampler at its next step and wait for the thread to let go.
                cancelled.set()
                with contextlib.suppress(GenerationCancelled):
                    await work
                raise
        handle.set_metadata(self._metadata(video_pb2.GENERATION_STAGE_DONE, total, total, started))
        return reply

    def _work(
        self, job: _Request, publish: Callable[[int, int], None], cancelled: threading.Event
    ) -> video_pb2.GenerateVideoResponse:
        engine = self.engine()
        plan = job.plan
        publish(video_pb2.GENERATION_STAGE_ENCODING_INPUT, 0)
        retrieved: list[tuple[Retrieved, int]] = []
        if job.memory is not None and job.session is not None:
            publish(video_pb2.GENERATION_STAGE_RETRIEVING_MEMORY, 0)
            retrieved = self._retrieve(engine, job)
        publish(video_pb2.GENERATION_STAGE_DENOISING, 0)
        output = engine.generate(
            plan, lambda k, n: publish(video_pb2.GENERATION_STAGE_DENOISING, k), cancelled
        )
        publish(video_pb2.GENERATION_STAGE_DECODING, denoising_steps(plan.steps, plan.strength))
        return self._store(engine, job, output, retrieved)

    def _retrieve(self, engine: WanEngine, job: _Request) -> list[tuple[Retrieved, int]]:
        memory, session, plan = job.memory, job.session, job.plan
        assert memory is not None and session is not None
        retrieval = _RETRIEVAL.get(memory.retrieval) or session.retrieval
        feature = engine.feature(engine.encode(plan.frames, plan.width, plan.height))
        found = self.memory.retrieve(
            session.id,
            retrieval="fov" if retrieval == "fov" else "feature",
            top_k=memory.top_k or session.top_k,
            min_relevance=memory.min_relevance,
            feature=feature,
            camera=job.camera,
        )
        if not found:
            return []
        budget = memory.token_budget or session.token_budget or self.settings.default_token_budget
        per_frame = engine.tokens_per_latent_frame(plan.width, plan.height)
        shares = token_shares(
            [r.relevance for r in found],
            budget,
            per_frame,
            [int(r.entry.latents.shape[1]) for r in found],
        )
        used = [(r, n) for r, n in zip(found, shares, strict=True) if n > 0]
        if used:
            context = [
                pick_frames(engine._fit_context(r.entry.latents, plan.width, plan.height), n)
                for r, n in used
            ]
            # Least relevant first: the most relevant memory sits next to the video.
            plan.context = torch.cat(context[::-1], dim=1)
        return [(r, n * per_frame) for r, n in used]

    def _store(
        self,
        engine: WanEngine,
        job: _Request,
        output: GenerationOutput,
        retrieved: list[tuple[Retrieved, int]],
    ) -> video_pb2.GenerateVideoResponse:
        plan = job.plan
        with self.videos.staging() as staged:
            encode_mp4(output.frames, job.fps, staged / VIDEO_FILE)
            size = (staged / VIDEO_FILE).stat().st_size
            data = (staged / VIDEO_FILE).read_bytes() if job.inline else b""
            count, height, width = output.frames.shape[:3]
            meta = VideoMeta(MP4, size, job.fps, count, width, height, "result", 0.0)
            video_id = self.videos.commit(staged, meta)
        stored = ""
        if job.store_result and job.session is not None:
            path, _ = self.videos.use(video_id, field="video_id")
            entry: EntryInfo = self.memory.add(
                job.session.id,
                video_file=path,
                video_id=video_id,
                prompt=plan.prompt,
                frames=output.frames,
                latents=output.latents,
                feature=engine.feature(output.latents),
                camera=job.camera,
                thumbnail_png=_png(output.frames[len(output.frames) // 2]),
            )
            stored = entry.id
        video = media_pb2.Video(
            mime_type=MP4, fps=job.fps, frame_count=count, width=width, height=height
        )
        if data:
            video.data = data
        return video_pb2.GenerateVideoResponse(
            video_id=video_id,
            video=video,
            seed=plan.seed,
            memory_entry_ids=[r.entry.info.id for r, _ in retrieved],
            stored_entry_id=stored,
            generation_time=_duration(output.denoise_s),
            retrieved=[
                video_pb2.RetrievedMemory(entry_id=r.entry.info.id, relevance=r.relevance, tokens=n)
                for r, n in retrieved
            ],
            memory_tokens=output.merge_after // output.merge_calls
            if output.merge_calls
            else sum(n for _, n in retrieved),
            memory_tokens_before_merge=sum(n for _, n in retrieved),
        )

    # ---- memory sessions ----------------------------------------------------------------

    def _session_pb(self, info: SessionInfo) -> video_pb2.MemorySession:
        return video_pb2.MemorySession(
            id=info.id,
            display_name=info.display_name,
            retrieval=_RETRIEVAL_PB[info.retrieval],
            top_k=info.top_k,
            token_budget=info.token_budget,
            max_entries=info.max_entries,
            entry_count=len(self.memory.entry_infos(info.id)),
            create_time=_timestamp(info.create_time),
            update_time=_timestamp(info.update_time),
        )

    async def CreateMemorySession(
        self, request: video_pb2.CreateMemorySessionRequest, context: Any
    ) -> video_pb2.CreateMemorySessionResponse:
        check_bytes(request.display_name, field="display_name", limit=256)
        if request.retrieval not in video_pb2.MemoryRetrieval.values():
            raise InvalidArgument.for_field("retrieval", f"unknown value {request.retrieval}")
        if not 0 <= request.top_k <= self.settings.max_top_k:
            raise InvalidArgument.for_field("top_k", f"must be in [0, {self.settings.max_top_k}]")
        if not 0 <= request.token_budget <= self.settings.max_token_budget:
            raise InvalidArgument.for_field(
                "token_budget", f"must be in [0, {self.settings.max_token_budget}]"
            )
        if not 0 <= request.max_entries <= self.settings.max_session_entries:
            raise InvalidArgument.for_field(
                "max_entries", f"must be in [0, {self.settings.max_session_entries}]"
            )
        info = self.memory.create(
            request.display_name,
            "fov" if request.retrieval == video_pb2.MEMORY_RETRIEVAL_FOV_OVERLAP else "feature",
            request.top_k or 3,
            request.token_budget or self.settings.default_token_budget,
            request.max_entries,
        )
        return video_pb2.CreateMemorySessionResponse(session=self._session_pb(info))

    async def GetMemorySession(
        self, request: video_pb2.GetMemorySessionRequest, context: Any
    ) -> video_pb2.GetMemorySessionResponse:
        return video_pb2.GetMemorySessionResponse(
            session=self._session_pb(self.memory.get(request.session_id))
        )

    async def ListMemoryEntries(
        self, request: video_pb2.ListMemoryEntriesRequest, context: Any
    ) -> video_pb2.ListMemoryEntriesResponse:
        page = Page.from_request(request, default_size=50, max_size=500, scope=request.session_id)
        return await self.runtime.run_blocking(self._list_entries, request.session_id, page)

    def _list_entries(self, session_id: str, page: Page) -> video_pb2.ListMemoryEntriesResponse:
        """One page of entries with thumbnails and cameras (file reads: on the executor)."""
        infos = self.memory.entry_infos(session_id)
        folder = self.memory.root / session_id / "entries"
        entries = []
        for info in infos[page.start : page.stop]:
            entry = video_pb2.MemoryEntry(
                id=info.id,
                session_id=info.session_id,
                video_id=info.video_id,
                prompt=info.prompt,
                frame_count=info.frame_count,
                create_time=_timestamp(info.create_time),
            )
            thumb = folder / info.id / "thumb.png"
            if thumb.is_file():
                entry.thumbnail.CopyFrom(
                    media_pb2.Image(
                        data=thumb.read_bytes(),
                        mime_type="image/png",
                        width=info.width,
                        height=info.height,
                    )
                )
            loaded = self.memory.load_entry(folder / info.id)
            if loaded.camera is not None:
                entry.camera.extrinsics.CopyFrom(codecs.tensor_from_torch(loaded.camera.extrinsics))
                entry.camera.intrinsics.CopyFrom(codecs.tensor_from_torch(loaded.camera.intrinsics))
            entries.append(entry)
        return video_pb2.ListMemoryEntriesResponse(
            entries=entries, next_page_token=page.next_token(len(infos))
        )

    async def DeleteMemorySession(
        self, request: video_pb2.DeleteMemorySessionRequest, context: Any
    ) -> video_pb2.DeleteMemorySessionResponse:
        self.memory.delete(request.session_id)
        return video_pb2.DeleteMemorySessionResponse()

    async def DeleteMemoryEntry(
        self, request: video_pb2.DeleteMemoryEntryRequest, context: Any
    ) -> video_pb2.DeleteMemoryEntryResponse:
        self.memory.delete_entry(request.session_id, request.entry_id)
        return video_pb2.DeleteMemoryEntryResponse()
