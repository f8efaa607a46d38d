"""The video service through a real gRPC server, the generated stubs and the tiny Wan."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest
from google.longrunning import operations_pb2_grpc
from google.longrunning import operations_proto_pb2 as operations_pb2

from gantry.core import errors
from gantry.core.client import sync_channel
from gantry.core.codecs import video_from_frames
from gantry.proto.common.v1 import chunk_pb2
from gantry.proto.video.v1 import video_pb2, video_pb2_grpc
from gantry.video.media import DecodeLimits, decode_bytes

from .conftest import TOKEN, scene

Stubs = tuple[video_pb2_grpc.VideoServiceStub, Any]


@pytest.fixture
def stubs(target: str) -> Iterator[Stubs]:
    with sync_channel(target, token=TOKEN) as channel:
        yield (
            video_pb2_grpc.VideoServiceStub(channel),
            operations_pb2_grpc.OperationsStub(channel),  # type: ignore[no-untyped-call]
        )


def upload(
    stub: video_pb2_grpc.VideoServiceStub, data: bytes, chunk: int = 4096
) -> video_pb2.UploadVideoResponse:
    def messages() -> Iterator[video_pb2.UploadVideoRequest]:
        yield video_pb2.UploadVideoRequest(
            header=video_pb2.VideoHeader(mime_type="video/mp4", size_bytes=len(data))
        )
        for offset in range(0, len(data), chunk):
            yield video_pb2.UploadVideoRequest(
                chunk=chunk_pb2.Chunk(
                    data=data[offset : offset + chunk],
                    offset=offset,
                    last=offset + chunk >= len(data),
                )
            )

    reply: video_pb2.UploadVideoResponse = stub.UploadVideo(messages(), timeout=60)
    return reply


def download(
    stub: video_pb2_grpc.VideoServiceStub, video_id: str
) -> tuple[video_pb2.VideoHeader, bytes]:
    parts = list(
        stub.DownloadVideo(video_pb2.DownloadVideoRequest(video_id=video_id, chunk_size=1024))
    )
    assert parts[-1].chunk.last and all(not p.chunk.last for p in parts[:-1])
    return parts[0].header, b"".join(p.chunk.data for p in parts)


def error_of(fn: Any, request: Any) -> errors.GantryError:
    with pytest.raises(grpc.RpcError) as info:
        fn(request, timeout=60)
    return errors.from_rpc_error(info.value)


def wait(ops: Any, name: str) -> operations_pb2.Operation:
    op: operations_pb2.Operation = ops.WaitOperation(
        operations_pb2.WaitOperationRequest(name=name, timeout={"seconds": 120}), timeout=130
    )
    assert op.done
    return op


def result(op: operations_pb2.Operation) -> video_pb2.GenerateVideoResponse:
    assert not op.HasField("error"), op.error.message
    reply = video_pb2.GenerateVideoResponse()
    op.response.Unpack(reply)
    return reply


def files_under(folder: Path) -> set[Path]:
    return {p for p in folder.rglob("*") if p.is_file()}


def test_capabilities_state_the_rules(stubs: Stubs) -> None:
    caps = stubs[0].GetCapabilities(video_pb2.GetCapabilitiesRequest())
    assert (caps.frame_multiple, caps.frame_remainder, caps.size_multiple) == (4, 1, 16)
    assert caps.models[0].is_default and caps.models[0].tiny
    assert caps.max_frames == 17 and caps.default_steps == 2
    assert list(caps.output_mime_types) == ["video/mp4"]
    assert video_pb2.ATTENTION_MODE_SALAD in caps.attention_modes


def test_upload_download_round_trip(stubs: Stubs, mp4_bytes: bytes) -> None:
    stub = stubs[0]
    reply = upload(stub, mp4_bytes)
    assert (reply.header.frame_count, reply.header.width, reply.header.height) == (7, 32, 32)
    assert reply.header.size_bytes == len(mp4_bytes)
    header, data = download(stub, reply.video_id)
    assert data == mp4_bytes and header.frame_count == 7


def test_bad_uploads_name_the_field_and_leave_nothing(
    stubs: Stubs, data_dir: Path, mp4_bytes: bytes
) -> None:
    stub = stubs[0]
    before = files_under(data_dir)
    with pytest.raises(grpc.RpcError) as info:
        upload(stub, b"\x00\x00\x00\x18ftypisom" + b"garbage" * 100)
    err = errors.from_rpc_error(info.value)
    assert err.code == grpc.StatusCode.INVALID_ARGUMENT and "video" in str(err)
    with pytest.raises(grpc.RpcError) as info:
        upload(stub, b"plain text, not a video at all")
    assert "not a video" in str(errors.from_rpc_error(info.value))

    def gap() -> Iterator[video_pb2.UploadVideoRequest]:
        yield video_pb2.UploadVideoRequest(header=video_pb2.VideoHeader(size_bytes=len(mp4_bytes)))
        yield video_pb2.UploadVideoRequest(chunk=chunk_pb2.Chunk(data=mp4_bytes[:100], offset=0))
        yield video_pb2.UploadVideoRequest(
            chunk=chunk_pb2.Chunk(data=mp4_bytes[200:], offset=200, last=True)
        )

    with pytest.raises(grpc.RpcError) as info:
        stub.UploadVideo(gap(), timeout=30)
    err = errors.from_rpc_error(info.value)
    assert err.code == grpc.StatusCode.INVALID_ARGUMENT and "chunk.offset" in str(err)
    big = video_pb2.VideoHeader(size_bytes=10**9)
    with pytest.raises(grpc.RpcError) as info:
        stub.UploadVideo(iter([video_pb2.UploadVideoRequest(header=big)]), timeout=30)
    assert "header.size_bytes" in str(errors.from_rpc_error(info.value))
    assert files_under(data_dir) == before


def test_generate_reports_progress_and_stores_the_result(stubs: Stubs, mp4_bytes: bytes) -> None:
    stub, ops = stubs
    video_id = upload(stub, mp4_bytes).video_id
    # 7 frames in, num_frames=0: rounded down to 4k+1 = 5.
    op = stub.GenerateVideo(
        video_pb2.GenerateVideoRequest(
            input=video_pb2.VideoInput(video_id=video_id),
            prompt="a red square",
            seed=7,
            num_inference_steps=3,
            strength=1.0,
            inline_result=True,
        )
    )
    assert op.name.startswith("video/operations/")
    done = wait(ops, op.name)
    meta = video_pb2.GenerateVideoMetadata()
    done.metadata.Unpack(meta)
    assert (meta.stage, meta.step, meta.total_steps) == (video_pb2.GENERATION_STAGE_DONE, 3, 3)
    reply = result(done)
    assert reply.seed == 7 and reply.video.frame_count == 5
    assert (reply.video.width, reply.video.height) == (32, 32)
    header, data = download(stub, reply.video_id)
    assert data == reply.video.data and header.frame_count == 5
    frames = decode_bytes(data, DecodeLimits(20, 64, 64), field="x", scratch=Path("/tmp")).frames
    assert frames.shape == (5, 32, 32, 3)
    # The same seed and input give the same video (deterministic sampler on CPU).
    again = result(
        wait(
            ops,
            stub.GenerateVideo(
                video_pb2.GenerateVideoRequest(
                    input=video_pb2.VideoInput(video_id=video_id),
                    prompt="a red square",
                    seed=7,
                    num_inference_steps=3,
                    strength=1.0,
                    inline_result=True,
                )
            ).name,
        )
    )
    assert again.video.data == reply.video.data


def test_inline_frames_and_salad_mode(stubs: Stubs) -> None:
    stub, ops = stubs
    request = video_pb2.GenerateVideoRequest(
        input=video_pb2.VideoInput(video=video_from_frames(scene(5), fps=8.0)),
        prompt="salad",
        seed=1,
        attention=video_pb2.AttentionSettings(
            mode=video_pb2.ATTENTION_MODE_SALAD,
            sparsity=0.5,
            block_size=16,
            window=video_pb2.AttentionWindow(frames=1, height=2, width=2),
        ),
    )
    reply = result(wait(ops, stub.GenerateVideo(request).name))
    assert reply.video.frame_count == 5 and reply.generation_time.ToNanoseconds() > 0


@pytest.mark.parametrize(
    ("change", "code", "field"),
    [
        ({"num_frames": 8}, grpc.StatusCode.INVALID_ARGUMENT, "num_frames"),
        ({"num_frames": 9}, grpc.StatusCode.INVALID_ARGUMENT, "num_frames"),  # input has 5
        ({"width": 40}, grpc.StatusCode.INVALID_ARGUMENT, "width"),
        ({"prompt": "x" * 201}, grpc.StatusCode.INVALID_ARGUMENT, "prompt"),
        ({"num_inference_steps": 1, "strength": 0.5}, grpc.StatusCode.INVALID_ARGUMENT, "strength"),
        ({"model": "wan-14b"}, grpc.StatusCode.NOT_FOUND, "model"),
        ({"output_mime_type": "video/avi"}, grpc.StatusCode.INVALID_ARGUMENT, "output_mime_type"),
        (
            {"memory": video_pb2.MemorySettings(session_id="nope")},
            grpc.StatusCode.NOT_FOUND,
            "memory.session_id",
        ),
        (
            {"input": video_pb2.VideoInput(video_id="deadbeef")},
            grpc.StatusCode.NOT_FOUND,
            "input.video_id",
        ),
        (
            {"input": video_pb2.VideoInput(uri="/etc/passwd")},
            grpc.StatusCode.PERMISSION_DENIED,
            "input.uri",
        ),
        (
            {"attention": video_pb2.AttentionSettings(sparsity=1.5)},
            grpc.StatusCode.INVALID_ARGUMENT,
            "attention.sparsity",
        ),
    ],
)
def test_bad_requests_fail_the_call(
    stubs: Stubs, change: dict[str, Any], code: grpc.StatusCode, field: str
) -> None:
    stub, ops = stubs
    before = ops.ListOperations(operations_pb2.ListOperationsRequest()).operations
    request = video_pb2.GenerateVideoRequest(
        input=video_pb2.VideoInput(video=video_from_frames(scene(5), fps=8.0)), prompt="p"
    )
    for key, value in change.items():
        if isinstance(
            value, (video_pb2.MemorySettings, video_pb2.VideoInput, video_pb2.AttentionSettings)
        ):
            getattr(request, key).CopyFrom(value)
        else:
            setattr(request, key, value)
    err = error_of(stub.GenerateVideo, request)
    assert err.code == code and field in str(err)
    # AIP-151: no operation was created for a bad request.
    assert len(ops.ListOperations(operations_pb2.ListOperationsRequest()).operations) == len(before)


def test_cancel_stops_the_sampler(stubs: Stubs, data_dir: Path) -> None:
    stub, ops = stubs
    results = {p.name for p in (data_dir / "videos").iterdir()}
    op = stub.GenerateVideo(
        video_pb2.GenerateVideoRequest(
            input=video_pb2.VideoInput(video=video_from_frames(scene(5), fps=8.0)),
            prompt="long",
            num_inference_steps=100,
            strength=1.0,
            seed=3,
        )
    )
    meta = video_pb2.GenerateVideoMetadata()
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        ops.GetOperation(operations_pb2.GetOperationRequest(name=op.name)).metadata.Unpack(meta)
        if meta.step >= 1:
            break
        time.sleep(0.05)
    assert meta.stage == video_pb2.GENERATION_STAGE_DENOISING and meta.total_steps == 100
    ops.CancelOperation(operations_pb2.CancelOperationRequest(name=op.name))
    done = wait(ops, op.name)
    assert done.error.code == grpc.StatusCode.CANCELLED.value[0]
    done.metadata.Unpack(meta)
    assert meta.step < 100  # stopped well before the end
    assert {p.name for p in (data_dir / "videos").iterdir()} == results  # no partial result
    # The sampler is free again: the next generation runs.
    quick = video_pb2.GenerateVideoRequest(
        input=video_pb2.VideoInput(video=video_from_frames(scene(5), fps=8.0)),
        prompt="after",
        seed=1,
    )
    assert result(wait(ops, stub.GenerateVideo(quick).name)).video.frame_count == 5


def test_memory_session_conditions_later_edits(stubs: Stubs) -> None:
    stub, ops = stubs
    session = stub.CreateMemorySession(
        video_pb2.CreateMemorySessionRequest(
            display_name="turns", retrieval=video_pb2.MEMORY_RETRIEVAL_FEATURE_SIMILARITY, top_k=2
        )
    ).session
    assert session.entry_count == 0 and session.top_k == 2

    def edit(shift: int, **memory: Any) -> video_pb2.GenerateVideoResponse:
        request = video_pb2.GenerateVideoRequest(
            input=video_pb2.VideoInput(video=video_from_frames(scene(5, shift=shift), fps=8.0)),
            prompt=f"turn {shift}",
            seed=shift,
            memory=video_pb2.MemorySettings(session_id=session.id, store_result=True, **memory),
        )
        return result(wait(ops, stub.GenerateVideo(request).name))

    first = edit(0)
    assert first.stored_entry_id and not first.retrieved  # nothing to remember yet
    second = edit(3, token_budget=8)  # 32x32: 4 tokens per latent frame -> 2 frames
    assert [r.entry_id for r in second.retrieved] == [first.stored_entry_id]
    assert 0 < second.retrieved[0].relevance <= 1 and second.retrieved[0].tokens == 8
    assert second.memory_tokens_before_merge == 8 and second.memory_tokens == 8
    merged = edit(6, token_budget=16, adaptive_token_merging=True)
    assert merged.memory_tokens_before_merge == 16
    assert 0 < merged.memory_tokens < merged.memory_tokens_before_merge
    assert (
        stub.GetMemorySession(
            video_pb2.GetMemorySessionRequest(session_id=session.id)
        ).session.entry_count
        == 3
    )

    page = stub.ListMemoryEntries(
        video_pb2.ListMemoryEntriesRequest(session_id=session.id, page_size=2)
    )
    assert [e.id for e in page.entries] == [merged.stored_entry_id, second.stored_entry_id]
    assert page.entries[0].thumbnail.data.startswith(b"\x89PNG") and page.next_page_token
    rest = stub.ListMemoryEntries(
        video_pb2.ListMemoryEntriesRequest(
            session_id=session.id, page_size=2, page_token=page.next_page_token
        )
    )
    assert [e.id for e in rest.entries] == [first.stored_entry_id] and not rest.next_page_token

    stub.DeleteMemoryEntry(
        video_pb2.DeleteMemoryEntryRequest(session_id=session.id, entry_id=first.stored_entry_id)
    )
    stub.DeleteMemorySession(video_pb2.DeleteMemorySessionRequest(session_id=session.id))
    err = error_of(stub.GetMemorySession, video_pb2.GetMemorySessionRequest(session_id=session.id))
    assert err.code == grpc.StatusCode.NOT_FOUND and "session_id" in str(err)


def test_fov_retrieval_needs_a_camera(stubs: Stubs) -> None:
    stub = stubs[0]
    session = stub.CreateMemorySession(
        video_pb2.CreateMemorySessionRequest(retrieval=video_pb2.MEMORY_RETRIEVAL_FOV_OVERLAP)
    ).session
    request = video_pb2.GenerateVideoRequest(
        input=video_pb2.VideoInput(video=video_from_frames(scene(5), fps=8.0)),
        memory=video_pb2.MemorySettings(session_id=session.id),
    )
    err = error_of(stub.GenerateVideo, request)
    assert err.code == grpc.StatusCode.INVALID_ARGUMENT and "camera" in str(err)
