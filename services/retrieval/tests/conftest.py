"""Retrieval servers (real MiniLM, nothing kept on disk) shared by the service tests.

`target`/`stub` talk to the default embedded engine (Qdrant Edge); `stub_on(backend)`
starts one server per embedded engine on first use, so behaviour tests can run on both
(`test_service.py` parametrises over BACKENDS: one behaviour for Edge and qdrant-client).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import ExitStack
from pathlib import Path

import grpc
import pytest

from gantry.core.client import sync_channel
from gantry.core.testing.threaded import serve_in_thread
from gantry.proto.retrieval.v1 import retrieval_pb2_grpc
from gantry.retrieval.service import RetrievalService
from gantry.retrieval.settings import RetrievalSettings

TOKEN = "retrieval-test-token"
BACKENDS = ("edge", "local")  # Qdrant Edge; qdrant-client (the code path of server mode)
Stub = retrieval_pb2_grpc.RetrievalServiceStub


@pytest.fixture(scope="session")
def datasets_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The shared servers' datasets root (EvaluateEncoder dataset_uri resolves inside it)."""
    return tmp_path_factory.mktemp("datasets")


@pytest.fixture(scope="session")
def channels(
    tmp_path_factory: pytest.TempPathFactory, datasets_root: Path
) -> Iterator[Callable[[str], grpc.Channel]]:
    """A channel to the server of an embedded backend, started on first use."""
    opened: dict[str, grpc.Channel] = {}
    with ExitStack() as stack:

        def channel_for(backend: str) -> grpc.Channel:
            if backend not in opened:
                settings = RetrievalSettings(
                    host="127.0.0.1",
                    port=0,
                    metrics_port=0,
                    auth_token=TOKEN,
                    log_json=False,
                    qdrant_embedded=backend,  # type: ignore[arg-type]
                    qdrant_path=":memory:",
                    data_dir=tmp_path_factory.mktemp(f"retrieval-{backend}"),
                    datasets_root=datasets_root,
                    chunk_words=40,
                    chunk_overlap_words=8,
                )
                # MiniLM loads slowly on loaded CI cores.
                service = RetrievalService(settings)
                running = stack.enter_context(serve_in_thread(service, startup_timeout_s=240))
                target = f"127.0.0.1:{running.port}"
                opened[backend] = stack.enter_context(sync_channel(target, token=TOKEN))
            return opened[backend]

        yield channel_for


@pytest.fixture(scope="session")
def channel(channels: Callable[[str], grpc.Channel]) -> grpc.Channel:
    return channels("edge")


@pytest.fixture
def stub(channel: grpc.Channel) -> Stub:
    return Stub(channel)
