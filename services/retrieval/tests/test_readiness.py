"""Before `start()` has loaded the encoders and opened Qdrant, calls are UNAVAILABLE."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import grpc
import pytest

from gantry.core import errors
from gantry.core.client import aio_channel
from gantry.core.ports import free_port
from gantry.core.server import start_server
from gantry.proto.retrieval.v1 import retrieval_pb2 as pb
from gantry.proto.retrieval.v1 import retrieval_pb2_grpc
from gantry.retrieval.service import RetrievalService
from gantry.retrieval.settings import EncoderSpec, RetrievalSettings

from .tiny_models import tiny_encoder

TOKEN = "retrieval-readiness-token"


async def test_calls_while_the_models_load_are_unavailable(tmp_path: Path) -> None:
    """The core call gate answers, with NOT_READY: no INTERNAL, no FAILED_PRECONDITION."""
    loading = asyncio.Event()

    class SlowLoad(RetrievalService):
        async def start(self) -> None:
            await loading.wait()
            await super().start()

    port = free_port()
    settings = RetrievalSettings(
        host="127.0.0.1",
        port=port,
        metrics_port=0,
        auth_token=TOKEN,
        log_json=False,
        qdrant_path=":memory:",
        data_dir=tmp_path,
        encoders=[EncoderSpec(id="tiny", path=str(tiny_encoder()))],
        default_encoder_id="tiny",
        device="cpu",
    )
    starting = asyncio.ensure_future(start_server(SlowLoad(settings)))
    async with aio_channel(f"127.0.0.1:{port}", token=TOKEN, retry=None) as channel:
        stub = retrieval_pb2_grpc.RetrievalServiceStub(channel)
        calls: list[tuple[Any, Any]] = [
            (stub.Embed, pb.EmbedRequest(texts=["hello"])),
            (stub.ListCollections, pb.ListCollectionsRequest()),
            (stub.ListEncoders, pb.ListEncodersRequest()),
            (stub.Search, pb.SearchRequest(collection="kb", text="hello")),
        ]
        for call, request in calls:
            with pytest.raises(grpc.aio.AioRpcError) as info:
                await call(request, timeout=10, wait_for_ready=True)
            assert info.value.code() == grpc.StatusCode.UNAVAILABLE, info.value
            assert errors.from_rpc_error(info.value).reason == "NOT_READY"
        loading.set()
        running = await asyncio.wait_for(starting, 60)
        try:
            reply = await stub.Embed(pb.EmbedRequest(texts=["hello"]), timeout=30)
            assert reply.encoder_id == "tiny"
        finally:
            await running.stop(grace_s=0)
