"""One retrieval server (real MiniLM, in-memory Qdrant) shared by the service tests."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest

from gantry.core.client import sync_channel
from gantry.core.testing.threaded import serve_in_thread
from gantry.proto.retrieval.v1 import retrieval_pb2_grpc
from gantry.retrieval.service import RetrievalService
from gantry.retrieval.settings import RetrievalSettings

TOKEN = "retrieval-test-token"


@pytest.fixture(scope="session")
def datasets_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The shared server's datasets root (EvaluateEncoder dataset_uri resolves inside it)."""
    return tmp_path_factory.mktemp("datasets")


@pytest.fixture(scope="session")
def target(tmp_path_factory: pytest.TempPathFactory, datasets_root: Path) -> Iterator[str]:
    settings = RetrievalSettings(
        host="127.0.0.1",
        port=0,
        metrics_port=0,
        auth_token=TOKEN,
        log_json=False,
        qdrant_path=":memory:",
        data_dir=tmp_path_factory.mktemp("retrieval-data"),
        datasets_root=datasets_root,
        chunk_words=40,
        chunk_overlap_words=8,
    )
    with serve_in_thread(RetrievalService(settings)) as running:
        yield f"127.0.0.1:{running.port}"


@pytest.fixture(scope="session")
def channel(target: str) -> Iterator[grpc.Channel]:
    with sync_channel(target, token=TOKEN) as opened:
        yield opened


@pytest.fixture
def stub(channel: grpc.Channel) -> retrieval_pb2_grpc.RetrievalServiceStub:
    return retrieval_pb2_grpc.RetrievalServiceStub(channel)
