"""Limits checked on arrival (issue 13, items 5-8): every oversized, negative, non-finite
or too deeply nested field is INVALID_ARGUMENT naming it, never INTERNAL, UNKNOWN or a
RESOURCE_EXHAUSTED caused by echoing the value; collections and running evaluations are
capped (RESOURCE_EXHAUSTED).

A server with a tiny encoder and small limits keeps the requests small; one test sends
10 MB values to the shared MiniLM server with its default limits.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Iterator
from typing import Any, cast

import grpc
import pytest
from google.longrunning import operations_pb2_grpc
from google.longrunning import operations_proto_pb2 as operations_pb2
from google.protobuf import struct_pb2

from gantry.core import errors
from gantry.core.client import sync_channel
from gantry.core.testing.fuzz import deep_struct
from gantry.core.testing.threaded import serve_in_thread
from gantry.proto.retrieval.v1 import retrieval_pb2 as pb
from gantry.proto.retrieval.v1 import retrieval_pb2_grpc
from gantry.retrieval import servicer as servicer_module
from gantry.retrieval.encoder_eval import EvalResult
from gantry.retrieval.service import RetrievalService
from gantry.retrieval.settings import EncoderSpec, RetrievalSettings

from .tiny_models import tiny_encoder

Stub = retrieval_pb2_grpc.RetrievalServiceStub
BIG = "x" * 10_000_000


@pytest.fixture(scope="module")
def small(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Stub, grpc.Channel]]:
    settings = RetrievalSettings(
        host="127.0.0.1",
        port=0,
        metrics_port=0,
        auth_disabled=True,
        log_json=False,
        qdrant_path=":memory:",
        data_dir=tmp_path_factory.mktemp("limits"),
        encoders=[EncoderSpec(id="tiny", path=str(tiny_encoder()))],
        default_encoder_id="tiny",
        device="cpu",
        max_batch_texts=4,
        max_text_bytes=100,
        max_request_text_bytes=250,
        max_query_bytes=50,
        max_id_bytes=16,
        max_payload_bytes=200,
        max_sparse_terms=4,
        max_top_k=5,
        max_prefetch_limit=20,
        max_filter_conditions=3,
        max_collections=2,
        max_page_size=2,
        max_eval_documents=3,
        max_eval_queries=2,
        max_running_evaluations=1,
    )
    with (
        serve_in_thread(RetrievalService(settings)) as running,
        sync_channel(f"127.0.0.1:{running.port}") as channel,
    ):
        stub = retrieval_pb2_grpc.RetrievalServiceStub(channel)
        stub.CreateCollection(pb.CreateCollectionRequest(name="kb", sparse_enabled=True))
        yield stub, channel


def _error(call: Any, request: Any) -> errors.GantryError:
    with pytest.raises(grpc.RpcError) as info:
        call(request)
    return errors.from_rpc_error(info.value)


def _invalid(call: Any, request: Any) -> str:
    """The field an INVALID_ARGUMENT names."""
    error = _error(call, request)
    assert isinstance(error, errors.InvalidArgument), repr(error)
    return error.violations[0].field


def _struct(**values: Any) -> struct_pb2.Struct:
    out = struct_pb2.Struct()
    out.update(values)
    return out


def _point(**fields: Any) -> pb.Point:
    fields.setdefault("id", "p")
    fields.setdefault("text", "hello")
    return pb.Point(**fields)


def test_max_collections(small: tuple[Stub, grpc.Channel]) -> None:
    stub, _ = small
    stub.CreateCollection(pb.CreateCollectionRequest(name="second"))
    full = _error(stub.CreateCollection, pb.CreateCollectionRequest(name="third"))
    assert isinstance(full, errors.ResourceExhausted)
    assert "max_collections" in full.message and full.reason == "TOO_MANY_COLLECTIONS"
    # An existing name is still ALREADY_EXISTS, and deleting one makes room.
    assert isinstance(
        _error(stub.CreateCollection, pb.CreateCollectionRequest(name="second")),
        errors.AlreadyExists,
    )
    stub.DeleteCollection(pb.DeleteCollectionRequest(name="second"))
    stub.CreateCollection(pb.CreateCollectionRequest(name="third"))
    stub.DeleteCollection(pb.DeleteCollectionRequest(name="third"))


def test_upsert_limits_name_the_field(small: tuple[Stub, grpc.Channel]) -> None:
    stub, _ = small

    def upsert(*points: pb.Point) -> pb.UpsertRequest:
        return pb.UpsertRequest(collection="kb", points=points)

    sparse = pb.SparseVector(indices=[1, 2, 3, 4, 5], values=[1.0] * 5)
    cases: list[tuple[pb.UpsertRequest, str]] = [
        (upsert(*(_point(id=str(i)) for i in range(5))), "points"),
        (upsert(*(_point(id=str(i), text="é" * 50) for i in range(3))), "points"),
        (upsert(_point(id="i" * 17)), "points[0].id"),
        (upsert(_point(id="a\nb")), "points[0].id"),
        (upsert(_point(text="é" * 51)), "points[0].text"),  # 51 characters, 102 bytes
        (upsert(_point(payload=_struct(v="x" * 300))), "points[0].payload"),
        (upsert(_point(payload=_struct(v=math.nan))), "points[0].payload.v"),
        (upsert(_point(payload=_struct(v=[1.0, math.inf]))), "points[0].payload.v[1]"),
        (upsert(_point(payload=deep_struct(17))), "points[0].payload" + ".k" * 17),
        (upsert(_point(sparse_vector=sparse)), "points[0].sparse_vector.indices"),
    ]
    for request, field in cases:
        assert _invalid(stub.Upsert, request) == field, field
    too_long = pb.UpsertStreamRequest(collection="kb", points=[_point(id="i" * 17)])
    assert _invalid(stub.UpsertStream, iter([too_long])) == "points[0].id"


def test_search_limits_name_the_field(small: tuple[Stub, grpc.Channel]) -> None:
    stub, _ = small

    def search(**fields: Any) -> pb.SearchRequest:
        fields.setdefault("text", "hello")
        return pb.SearchRequest(collection="kb", **fields)

    def match(key: str = "k", keyword: str = "v") -> pb.Condition:
        return pb.Condition(key=key, match=pb.MatchValue(keyword=keyword))

    nested = pb.Filter(must=[pb.Condition(filter=pb.Filter(must=[match(), match(), match()]))])
    cases: list[tuple[pb.SearchRequest, str]] = [
        (search(text="q" * 51), "text"),
        (search(top_k=6), "top_k"),
        (search(top_k=-1), "top_k"),
        (search(mode=pb.SEARCH_MODE_HYBRID, prefetch_limit=21), "prefetch_limit"),
        (search(mode=pb.SEARCH_MODE_HYBRID, prefetch_limit=-5), "prefetch_limit"),
        (search(mode=99), "mode"),
        (search(fusion=-1), "fusion"),
        (search(score_threshold=math.nan), "score_threshold"),
        (search(filter=pb.Filter(must=[match()] * 4)), "filter"),
        (search(filter=nested), "filter.must[0].filter"),
        (search(filter=pb.Filter(must=[match(key="k" * 300)])), "filter.must[0].key"),
        (
            search(filter=pb.Filter(should=[match(keyword="v" * 5000)])),
            "filter.should[0].match.keyword",
        ),
        (
            search(filter=pb.Filter(must=[pb.Condition(key="n", range=pb.Range(gt=math.nan))])),
            "filter.must[0].range.gt",
        ),
        (
            search(filter=pb.Filter(must=[pb.Condition(key="n", range=pb.Range(lte=-math.inf))])),
            "filter.must[0].range.lte",
        ),
    ]
    for request, field in cases:
        assert _invalid(stub.Search, request) == field, field
    # Within the limits the same shapes work.
    stub.Search(search(top_k=5, mode=pb.SEARCH_MODE_HYBRID, prefetch_limit=20))
    stub.Search(search(filter=pb.Filter(must=[match()] * 3)))


def test_other_rpcs_check_sizes_on_arrival(small: tuple[Stub, grpc.Channel]) -> None:
    stub, _ = small
    cases: list[tuple[Any, Any, str]] = [
        (stub.Delete, pb.DeleteRequest(collection="kb", ids=pb.PointIds(ids=["a"] * 5)), "ids.ids"),
        (
            stub.Delete,
            pb.DeleteRequest(collection="kb", ids=pb.PointIds(ids=["i" * 17])),
            "ids.ids[0]",
        ),
        (
            stub.Delete,
            pb.DeleteRequest(collection="kb", filter=pb.Filter(must_not=[pb.Condition()] * 4)),
            "filter",
        ),
        (stub.Embed, pb.EmbedRequest(texts=["t"] * 5), "texts"),
        (stub.Embed, pb.EmbedRequest(texts=["t" * 90] * 3), "texts"),
        (stub.Embed, pb.EmbedRequest(texts=["ok", "t" * 101]), "texts[1]"),
        (stub.Embed, pb.EmbedRequest(texts=["ok"], input_type=cast(Any, 7)), "input_type"),
        (stub.Embed, pb.EmbedRequest(texts=["ok"], encoder_id="e" * 65), "encoder_id"),
        (stub.GetCollection, pb.GetCollectionRequest(name="Not A Name"), "name"),
        (stub.GetCollection, pb.GetCollectionRequest(name="n" * 65), "name"),
        (
            stub.CreateCollection,
            pb.CreateCollectionRequest(name="ok", distance=cast(Any, 42)),
            "distance",
        ),
        (stub.ListCollections, pb.ListCollectionsRequest(page_size=-1), "page_size"),
        (stub.ListEncoders, pb.ListEncodersRequest(page_size=-1), "page_size"),
        (stub.ListCollections, pb.ListCollectionsRequest(page_token="t" * 10_000), "page_token"),
    ]
    for call, request, field in cases:
        assert _invalid(call, request) == field, (request, field)
    # page_size beyond max_page_size (2) is lowered to it, per AIP-158.
    page = stub.ListEncoders(pb.ListEncodersRequest(page_size=2**31 - 1))
    assert len(page.encoders) == 2


def test_evaluation_limits(small: tuple[Stub, grpc.Channel]) -> None:
    stub, _ = small
    docs = [pb.EvalDocument(id=f"d{i}", text="text") for i in range(4)]
    queries = [pb.EvalQuery(id="q", text="query")]
    qrels = [pb.Qrel(query_id="q", document_id="d0", relevance=1)]

    def evaluate(**fields: Any) -> pb.EvaluateEncoderRequest:
        fields.setdefault(
            "inline", pb.InlineEvalSet(documents=docs[:2], queries=queries, qrels=qrels)
        )
        return pb.EvaluateEncoderRequest(encoder_id="tiny", **fields)

    cases: list[tuple[pb.EvaluateEncoderRequest, str]] = [
        (evaluate(ndcg_at=[0]), "ndcg_at[0]"),
        (evaluate(recall_at=[1, 6]), "recall_at[1]"),
        (evaluate(recall_at=list(range(1, 18))), "recall_at"),
        (evaluate(batch_size=2**31 - 1), "batch_size"),
        (evaluate(batch_size=-1), "batch_size"),
        (evaluate(max_queries=-1), "max_queries"),
        (evaluate(inline=pb.InlineEvalSet(documents=docs, queries=queries)), "inline.documents"),
        (
            evaluate(inline=pb.InlineEvalSet(documents=docs[:1], queries=queries * 3)),
            "inline.queries",
        ),
        (
            evaluate(inline=pb.InlineEvalSet(documents=[pb.EvalDocument(id="i" * 17)])),
            "inline.documents[0].id",
        ),
        (
            evaluate(
                inline=pb.InlineEvalSet(
                    documents=docs[:1], queries=[pb.EvalQuery(id="q", text="q" * 101)]
                )
            ),
            "inline.queries[0].text",
        ),
        (evaluate(inline=pb.InlineEvalSet(documents=docs[:1], queries=queries)), "inline"),
    ]
    for request, field in cases:
        assert _invalid(stub.EvaluateEncoder, request) == field, field


def test_running_evaluations_are_capped_and_cancel_stops_the_work(
    small: tuple[Stub, grpc.Channel], monkeypatch: pytest.MonkeyPatch
) -> None:
    stub, channel = small
    release = threading.Event()
    stopped = threading.Event()

    def slow_evaluate(*args: Any, progress: Any, **kwargs: Any) -> EvalResult:
        try:
            while not release.wait(0.02):
                progress(0, 2, 0, 1)  # raises once the operation is cancelled
        except BaseException:
            stopped.set()
            raise
        return EvalResult("tiny", {10: 1.0}, {1: 1.0}, 1.0, 1, 2, 0.0)

    monkeypatch.setattr(servicer_module, "evaluate", slow_evaluate)
    request = pb.EvaluateEncoderRequest(
        encoder_id="tiny",
        inline=pb.InlineEvalSet(
            documents=[pb.EvalDocument(id="d", text="t"), pb.EvalDocument(id="e", text="u")],
            queries=[pb.EvalQuery(id="q", text="t")],
            qrels=[pb.Qrel(query_id="q", document_id="d", relevance=1)],
        ),
    )
    first = stub.EvaluateEncoder(request)
    busy = _error(stub.EvaluateEncoder, request)
    assert isinstance(busy, errors.ResourceExhausted) and busy.retry_after_s
    operations = operations_pb2_grpc.OperationsStub(channel)  # type: ignore[no-untyped-call]
    operations.CancelOperation(operations_pb2.CancelOperationRequest(name=first.name))
    assert stopped.wait(10), "the evaluation thread kept running after CancelOperation"
    second = stub.EvaluateEncoder(request)  # the slot is free again
    release.set()
    deadline = time.monotonic() + 30
    while not second.done and time.monotonic() < deadline:
        second = operations.WaitOperation(
            operations_pb2.WaitOperationRequest(name=second.name), timeout=10
        )
    assert second.done and not second.HasField("error")


def test_ten_megabyte_values_are_refused_not_echoed(stub: Stub) -> None:
    """The shared server with default limits: 10 MB ids, names and texts are
    INVALID_ARGUMENT (or NOT_FOUND) with short details, never RESOURCE_EXHAUSTED."""
    calls: list[tuple[Any, Any]] = [
        (stub.GetCollection, pb.GetCollectionRequest(name=BIG)),
        (stub.DeleteCollection, pb.DeleteCollectionRequest(name=BIG)),
        (stub.CreateCollection, pb.CreateCollectionRequest(name=BIG)),
        (stub.CreateCollection, pb.CreateCollectionRequest(name="ok", encoder_id=BIG)),
        (stub.Search, pb.SearchRequest(collection=BIG, text="x")),
        (stub.Search, pb.SearchRequest(collection="missing", text=BIG)),
        (stub.Upsert, pb.UpsertRequest(collection=BIG, points=[pb.Point(id="a", text="b")])),
        (stub.Delete, pb.DeleteRequest(collection=BIG, ids=pb.PointIds(ids=["a"]))),
        (stub.Embed, pb.EmbedRequest(texts=["x"], encoder_id=BIG)),
        (stub.Embed, pb.EmbedRequest(texts=[BIG])),
        (stub.EvaluateEncoder, pb.EvaluateEncoderRequest(encoder_id=BIG, dataset_uri="x")),
        (stub.EvaluateEncoder, pb.EvaluateEncoderRequest(dataset_uri=BIG)),
        (stub.EvaluateEncoder, pb.EvaluateEncoderRequest(dataset_uri="x", split=BIG)),
        (stub.ListCollections, pb.ListCollectionsRequest(page_token=BIG)),
    ]
    name = "ten-mb"
    stub.CreateCollection(pb.CreateCollectionRequest(name=name))
    calls += [
        (stub.Upsert, pb.UpsertRequest(collection=name, points=[pb.Point(id=BIG, text="b")])),
        (stub.Upsert, pb.UpsertRequest(collection=name, points=[pb.Point(id="a", text=BIG)])),
        (stub.Delete, pb.DeleteRequest(collection=name, ids=pb.PointIds(ids=[BIG]))),
    ]
    for call, request in calls:
        with pytest.raises(grpc.RpcError) as info:
            call(request)
        code = info.value.code()
        assert code in (grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.NOT_FOUND), (
            code,
            str(request)[:200],
        )
        assert len(info.value.details() or "") <= 1024
    stub.DeleteCollection(pb.DeleteCollectionRequest(name=name))
