"""An HF encoder loaded by path (no sentence-transformers files) and cross-encoder re-ranking."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import grpc
import numpy as np
import pytest
from sentence_transformers import CrossEncoder

from gantry.core.client import sync_channel
from gantry.core.testing.threaded import serve_in_thread
from gantry.proto.retrieval.v1 import retrieval_pb2 as pb
from gantry.proto.retrieval.v1 import retrieval_pb2_grpc
from gantry.retrieval.service import RetrievalService
from gantry.retrieval.servicer import RERANK_HEADER
from gantry.retrieval.settings import EncoderSpec, RetrievalSettings

from .tiny_models import build_tiny_cross_encoder, tiny_encoder

TEXTS = [
    "the quick brown fox jumps over the lazy dog",
    "a model is trained on tokens",
    "the dog sleeps in the sun",
    "tokens flow through the model layers",
    "a fox hunts at night",
    "training data for the model",
]


@pytest.fixture(scope="module")
def cross_encoder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_cross_encoder(tmp_path_factory.mktemp("cross"))


@pytest.fixture(scope="module")
def stub(cross_encoder: Path) -> Iterator[retrieval_pb2_grpc.RetrievalServiceStub]:
    settings = RetrievalSettings(
        host="127.0.0.1",
        port=0,
        metrics_port=0,
        auth_disabled=True,
        log_json=False,
        qdrant_path=":memory:",
        encoders=[EncoderSpec(id="tiny", path=str(tiny_encoder()), query_prefix="query: ")],
        default_encoder_id="tiny",
        device="cpu",
        reranker_path=str(cross_encoder),
        rerank_candidates=6,
    )
    with (
        serve_in_thread(RetrievalService(settings)) as running,
        sync_channel(f"127.0.0.1:{running.port}") as channel,
    ):
        yield retrieval_pb2_grpc.RetrievalServiceStub(channel)


def test_hf_encoder_loads_by_path(stub: retrieval_pb2_grpc.RetrievalServiceStub) -> None:
    (encoder,) = [e for e in stub.ListEncoders(pb.ListEncodersRequest()).encoders if e.id == "tiny"]
    assert encoder.dimension == 64 and encoder.query_prefix == "query: "
    reply = stub.Embed(pb.EmbedRequest(texts=["a fox"], normalize=True))
    assert reply.embeddings.shape == [1, 64] and reply.encoder_id == "tiny"
    # The query prefix changes the input, so the vector.
    query = stub.Embed(pb.EmbedRequest(texts=["a fox"], input_type=pb.INPUT_TYPE_QUERY))
    assert query.embeddings.data != reply.embeddings.data


def test_cross_encoder_reorders_candidates(
    stub: retrieval_pb2_grpc.RetrievalServiceStub, cross_encoder: Path
) -> None:
    stub.CreateCollection(pb.CreateCollectionRequest(name="rr"))
    points = [pb.Point(id=f"d{i}", text=t) for i, t in enumerate(TEXTS)]
    stub.Upsert(pb.UpsertRequest(collection="rr", points=points, wait=True))
    query = "fox and dog"
    request = pb.SearchRequest(collection="rr", text=query, top_k=3)
    plain = stub.Search(request, metadata=((RERANK_HEADER, "false"),))
    reranked = stub.Search(request)
    # The tiny cross-encoder's own scores over all six candidates define the expected order;
    # near-ties may swap (batching and padding move scores by ~1e-6), so compare by score.
    model = CrossEncoder(str(cross_encoder), device="cpu", local_files_only=True)
    scores = np.asarray(model.predict([(query, t) for t in TEXTS]), dtype=np.float32)
    by_id = {f"d{i}": float(s) for i, s in enumerate(scores)}
    got = [(r.id, r.score) for r in reranked.results]
    assert len(got) == 3
    for doc_id, score in got:
        assert score == pytest.approx(by_id[doc_id], abs=1e-4), doc_id
    assert [s for _, s in got] == sorted((s for _, s in got), reverse=True)
    assert [s for _, s in got] == pytest.approx(sorted(by_id.values(), reverse=True)[:3], abs=1e-4)
    assert [r.id for r in plain.results] != [i for i, _ in got] or [
        r.score for r in plain.results
    ] != [s for _, s in got]


def test_rerank_header_without_reranker_is_rejected(tmp_path: Path) -> None:
    settings = RetrievalSettings(
        host="127.0.0.1",
        port=0,
        metrics_port=0,
        auth_disabled=True,
        log_json=False,
        qdrant_path=":memory:",
        encoders=[EncoderSpec(id="tiny", path=str(tiny_encoder()))],
        default_encoder_id="tiny",
        device="cpu",
    )
    with (
        serve_in_thread(RetrievalService(settings)) as running,
        sync_channel(f"127.0.0.1:{running.port}") as channel,
    ):
        stub = retrieval_pb2_grpc.RetrievalServiceStub(channel)
        stub.CreateCollection(pb.CreateCollectionRequest(name="plain"))
        with pytest.raises(grpc.RpcError) as info:
            stub.Search(
                pb.SearchRequest(collection="plain", text="x"), metadata=((RERANK_HEADER, "true"),)
            )
        assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
