"""The retrieval service through a real gRPC server, the generated stubs and real MiniLM.

Behaviour tests run on both embedded engines (Qdrant Edge and qdrant-client, whose code
path is the one server mode uses), so the two keep one behaviour.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from typing import Any, cast

import grpc
import numpy as np
import pytest
from google.longrunning import operations_pb2_grpc
from google.longrunning import operations_proto_pb2 as operations_pb2
from google.protobuf import struct_pb2

from gantry.core import errors
from gantry.core.codecs import tensor_from_numpy, tensor_to_numpy
from gantry.proto.retrieval.v1 import retrieval_pb2 as pb
from gantry.proto.retrieval.v1 import retrieval_pb2_grpc
from gantry.retrieval.client import upsert_batched
from gantry.retrieval.keyword_set import keyword_set
from gantry.retrieval.ranking_metrics import ndcg_at, recall_at

from .conftest import BACKENDS

Stub = retrieval_pb2_grpc.RetrievalServiceStub


@pytest.fixture(params=BACKENDS)
def stub(request: pytest.FixtureRequest, channels: Callable[[str], grpc.Channel]) -> Stub:
    """A server on each embedded engine."""
    return Stub(channels(request.param))


@pytest.fixture
def default_stub(channel: grpc.Channel) -> Stub:
    """The default server, for RPCs that never reach the store."""
    return Stub(channel)


DOCS = {
    "cats": "Cats are small domesticated felines that purr and chase mice.",
    "rust": "Rust is a systems programming language focused on memory safety.",
    "paris": "Paris is the capital of France, known for the Eiffel Tower.",
    "bread": "Sourdough bread rises with wild yeast and lactic acid bacteria.",
}


def _error(fn: Any, request: Any) -> errors.GantryError:
    with pytest.raises(grpc.RpcError) as info:
        fn(request)
    return errors.from_rpc_error(info.value)


def _field(error: errors.GantryError) -> str:
    assert isinstance(error, errors.InvalidArgument), repr(error)
    return error.violations[0].field


def _payload(**values: Any) -> struct_pb2.Struct:
    out = struct_pb2.Struct()
    out.update(values)
    return out


def _collection(stub: Stub, *, sparse: bool = False, **kwargs: Any) -> str:
    name = f"t-{uuid.uuid4().hex[:10]}"
    stub.CreateCollection(pb.CreateCollectionRequest(name=name, sparse_enabled=sparse, **kwargs))
    return name


def _fill(stub: Stub, name: str) -> None:
    points = [
        pb.Point(id=k, text=v, payload=_payload(topic=k, year=2000 + i, public=i % 2 == 0))
        for i, (k, v) in enumerate(DOCS.items())
    ]
    reply = stub.Upsert(pb.UpsertRequest(collection=name, points=points, wait=True))
    assert reply.upserted_count == len(DOCS)


def _ids(reply: pb.SearchResponse) -> list[str]:
    return [r.id for r in reply.results]


def test_collection_lifecycle_and_pagination(stub: Stub) -> None:
    names = sorted(_collection(stub) for _ in range(3))
    got = stub.GetCollection(pb.GetCollectionRequest(name=names[0])).collection
    assert (got.encoder_id, got.vector_size, got.distance) == ("minilm", 384, pb.DISTANCE_COSINE)
    assert not got.sparse_enabled and got.points_count == 0 and got.create_time.seconds > 0
    seen: list[str] = []
    token = ""
    while True:
        page = stub.ListCollections(pb.ListCollectionsRequest(page_size=2, page_token=token))
        assert len(page.collections) <= 2
        seen += [c.name for c in page.collections]
        token = page.next_page_token
        if not token:
            break
    assert seen == sorted(seen) and set(names) <= set(seen)
    error = _error(stub.CreateCollection, pb.CreateCollectionRequest(name=names[0]))
    assert isinstance(error, errors.AlreadyExists)
    stub.DeleteCollection(pb.DeleteCollectionRequest(name=names[0]))
    error = _error(stub.GetCollection, pb.GetCollectionRequest(name=names[0]))
    assert isinstance(error, errors.NotFound) and error.resource_name == names[0]
    assert _field(_error(stub.ListCollections, pb.ListCollectionsRequest(page_token="bogus"))) == (
        "page_token"
    )


def test_dense_search_ranks_by_meaning_and_filters_payload(stub: Stub) -> None:
    name = _collection(stub)
    _fill(stub, name)
    reply = stub.Search(
        pb.SearchRequest(collection=name, text="a pet that meows", top_k=2, with_payload=True)
    )
    assert _ids(reply)[0] == "cats" and len(reply.results) == 2
    assert reply.results[0].score > reply.results[1].score
    assert reply.results[0].payload["text"] == DOCS["cats"]
    assert reply.results[0].payload["year"] == 2000
    assert reply.took.ToNanoseconds() > 0
    # Payload filters: keyword match, integer range, boolean, must_not.
    only_rust = pb.Filter(must=[pb.Condition(key="topic", match=pb.MatchValue(keyword="rust"))])
    reply = stub.Search(pb.SearchRequest(collection=name, text="a pet", filter=only_rust))
    assert _ids(reply) == ["rust"]
    recent = pb.Filter(must=[pb.Condition(key="year", range=pb.Range(gte=2002))])
    reply = stub.Search(pb.SearchRequest(collection=name, text="anything", filter=recent))
    assert set(_ids(reply)) == {"paris", "bread"}
    public = pb.Filter(
        must=[pb.Condition(key="public", match=pb.MatchValue(boolean=True))],
        must_not=[pb.Condition(key="year", match=pb.MatchValue(integer=2000))],
    )
    reply = stub.Search(pb.SearchRequest(collection=name, text="anything", filter=public))
    assert _ids(reply) == ["paris"]
    either = pb.Filter(
        should=[
            pb.Condition(key="topic", match=pb.MatchValue(keyword="cats")),
            pb.Condition(key="topic", match=pb.MatchValue(keyword="bread")),
        ]
    )
    reply = stub.Search(pb.SearchRequest(collection=name, text="food", filter=either))
    assert _ids(reply) == ["bread", "cats"]
    # Score threshold drops weak hits.
    reply = stub.Search(
        pb.SearchRequest(collection=name, text="a pet that meows", score_threshold=0.3)
    )
    assert _ids(reply) == ["cats"]


def test_vector_query_and_returned_vectors_match_embed(stub: Stub) -> None:
    name = _collection(stub)
    _fill(stub, name)
    embedded = stub.Embed(
        pb.EmbedRequest(
            texts=["French capital city"], normalize=True, input_type=pb.INPUT_TYPE_QUERY
        )
    )
    query = tensor_to_numpy(embedded.embeddings)[0]
    reply = stub.Search(
        pb.SearchRequest(
            collection=name, vector=tensor_from_numpy(query), top_k=1, with_vectors=True
        )
    )
    assert _ids(reply) == ["paris"]
    stored = tensor_to_numpy(reply.results[0].vector)
    assert stored.shape == (384,)
    assert reply.results[0].score == pytest.approx(float(stored @ query), abs=1e-4)


def test_upsert_is_idempotent_by_id_and_chunks_long_documents(stub: Stub) -> None:
    name = _collection(stub, sparse=True)
    _fill(stub, name)
    # 100 words, chunked by 40 with 8 overlap (conftest settings) -> 3 chunks.
    long_text = " ".join(["filler"] * 90 + ["zebra-crossing-XJ9"] + ["filler"] * 9)
    stub.Upsert(
        pb.UpsertRequest(collection=name, points=[pb.Point(id="long", text=long_text)], wait=True)
    )
    info = stub.GetCollection(pb.GetCollectionRequest(name=name)).collection
    assert info.points_count == len(DOCS) + 1  # documents, not chunks
    reply = stub.Search(
        pb.SearchRequest(
            collection=name,
            text="zebra-crossing-XJ9",
            mode=pb.SEARCH_MODE_SPARSE,
            with_payload=True,
        )
    )
    assert _ids(reply) == ["long"]  # one hit per document, its best chunk
    assert "zebra-crossing-XJ9" in str(reply.results[0].payload["text"])
    assert reply.results[0].payload["_chunk_count"] == 3
    # Re-upserting the same id with a short text replaces all three chunks.
    stub.Upsert(
        pb.UpsertRequest(collection=name, points=[pb.Point(id="long", text="now short")], wait=True)
    )
    reply = stub.Search(
        pb.SearchRequest(collection=name, text="zebra-crossing-XJ9", mode=pb.SEARCH_MODE_SPARSE)
    )
    assert _ids(reply) == []
    again = stub.Search(
        pb.SearchRequest(
            collection=name, text="now short", mode=pb.SEARCH_MODE_SPARSE, with_payload=True
        )
    )
    assert _ids(again)[0] == "long" and again.results[0].payload["_chunk_count"] == 1
    assert stub.GetCollection(pb.GetCollectionRequest(name=name)).collection.points_count == 5


def test_delete_by_ids_and_by_filter(stub: Stub) -> None:
    name = _collection(stub)
    _fill(stub, name)
    reply = stub.Delete(
        pb.DeleteRequest(collection=name, ids=pb.PointIds(ids=["cats", "nope"]), wait=True)
    )
    assert reply.deleted_count == 1
    old = pb.Filter(must=[pb.Condition(key="year", range=pb.Range(lt=2002))])
    assert stub.Delete(pb.DeleteRequest(collection=name, filter=old, wait=True)).deleted_count == 1
    left = stub.Search(pb.SearchRequest(collection=name, text="anything"))
    assert set(_ids(left)) == {"paris", "bread"}
    assert _field(_error(stub.Delete, pb.DeleteRequest(collection=name))) == "ids"
    empty = pb.DeleteRequest(collection=name, filter=pb.Filter())
    assert _field(_error(stub.Delete, empty)) == "filter"


def test_hybrid_beats_dense_on_keyword_heavy_set(stub: Stub) -> None:
    data = keyword_set()
    name = _collection(stub, sparse=True)
    points = (pb.Point(id=d.id, text=d.text) for d in data.documents)
    assert upsert_batched(stub, name, points, batch_size=16) == len(data.documents)
    scores: dict[str, tuple[float, float]] = {}
    for mode in (pb.SEARCH_MODE_DENSE, pb.SEARCH_MODE_SPARSE, pb.SEARCH_MODE_HYBRID):
        ndcg = recall = 0.0
        for qid, text in data.queries.items():
            ranking = _ids(stub.Search(pb.SearchRequest(collection=name, text=text, mode=mode)))
            ndcg += ndcg_at(ranking, data.qrels[qid], 10)
            recall += recall_at(ranking, data.qrels[qid], 1)
        scores[pb.SearchMode.Name(mode)] = (ndcg / len(data.queries), recall / len(data.queries))
    print(f"keyword set nDCG@10 / recall@1: {scores}")
    dense, hybrid = scores["SEARCH_MODE_DENSE"], scores["SEARCH_MODE_HYBRID"]
    assert hybrid[0] > dense[0] + 0.1 and hybrid[0] > 0.95
    assert hybrid[1] > dense[1]
    # DBSF fusion also works and finds the identifier.
    q = next(iter(data.queries))
    reply = stub.Search(
        pb.SearchRequest(
            collection=name, text=data.queries[q], mode=pb.SEARCH_MODE_HYBRID, fusion=pb.FUSION_DBSF
        )
    )
    assert _ids(reply)[0] in data.qrels[q]


def test_precomputed_vectors_and_sparse_vectors(stub: Stub) -> None:
    name = _collection(stub, sparse=True, distance=pb.DISTANCE_EUCLID)
    rng = np.random.default_rng(0)
    vectors = rng.standard_normal((3, 384)).astype(np.float32)
    points = [
        pb.Point(
            id=f"v{i}",
            vector=tensor_from_numpy(vectors[i]),
            sparse_vector=pb.SparseVector(indices=[i, 100], values=[1.0, 0.5]),
        )
        for i in range(3)
    ]
    stub.Upsert(pb.UpsertRequest(collection=name, points=points, wait=True))
    reply = stub.Search(pb.SearchRequest(collection=name, vector=tensor_from_numpy(vectors[2])))
    assert _ids(reply)[0] == "v2"
    # Euclid distances come back negated: higher is better, the exact match scores ~0.
    assert reply.results[0].score == pytest.approx(0.0, abs=1e-3)
    assert all(r.score < -1 for r in reply.results[1:])


def test_validation_errors_name_the_field(stub: Stub) -> None:
    name = _collection(stub)
    _fill(stub, name)
    # Unknown collection: NOT_FOUND, for every RPC that takes one.
    for call, request in (
        (stub.Search, pb.SearchRequest(collection="missing", text="x")),
        (stub.Upsert, pb.UpsertRequest(collection="missing", points=[pb.Point(id="a", text="b")])),
        (stub.Delete, pb.DeleteRequest(collection="missing", ids=pb.PointIds(ids=["a"]))),
        (stub.DeleteCollection, pb.DeleteCollectionRequest(name="missing")),
    ):
        assert isinstance(_error(call, request), errors.NotFound)
    cases: list[tuple[Any, Any, str]] = [
        (stub.Search, pb.SearchRequest(collection=name, text="   "), "text"),
        (stub.Search, pb.SearchRequest(collection=name), "text"),
        (stub.Search, pb.SearchRequest(collection="", text="x"), "collection"),
        (
            stub.Search,
            pb.SearchRequest(collection=name, vector=tensor_from_numpy(np.zeros(12, np.float32))),
            "vector",
        ),
        (
            stub.Search,
            pb.SearchRequest(collection=name, text="x", mode=pb.SEARCH_MODE_HYBRID),
            "mode",
        ),
        (stub.Search, pb.SearchRequest(collection=name, text="x", top_k=5000), "top_k"),
        (
            stub.Search,
            pb.SearchRequest(
                collection=name,
                text="x",
                filter=pb.Filter(must=[pb.Condition(match=pb.MatchValue(keyword="a"))]),
            ),
            "filter.must[0].key",
        ),
        (stub.Upsert, pb.UpsertRequest(collection=name), "points"),
        (
            stub.Upsert,
            pb.UpsertRequest(
                collection=name,
                points=[pb.Point(id="a", vector=tensor_from_numpy(np.zeros(3, np.float32)))],
            ),
            "points[0].vector",
        ),
        (
            stub.Upsert,
            pb.UpsertRequest(collection=name, points=[pb.Point(id="a")]),
            "points[0].text",
        ),
        (
            stub.Upsert,
            pb.UpsertRequest(collection=name, points=[pb.Point(text="a")]),
            "points[0].id",
        ),
        (
            stub.Upsert,
            pb.UpsertRequest(
                collection=name, points=[pb.Point(id="a", text="a"), pb.Point(id="a", text="b")]
            ),
            "points[1].id",
        ),
        (
            stub.Upsert,
            pb.UpsertRequest(
                collection=name,
                points=[pb.Point(id="a", text="a", payload=_payload(_chunk_index=1))],
            ),
            "points[0].payload",
        ),
        (
            stub.Upsert,
            pb.UpsertRequest(
                collection=name,
                points=[pb.Point(id="a", text="a", sparse_vector=pb.SparseVector(indices=[1]))],
            ),
            "points[0].sparse_vector",
        ),
        (
            stub.Search,
            pb.SearchRequest(collection=name, text="x", params=pb.SearchParams(hnsw_ef=0)),
            "params.hnsw_ef",
        ),
        (
            stub.Search,
            pb.SearchRequest(
                collection=name,
                text="x",
                params=pb.SearchParams(
                    quantization=pb.QuantizationSearchParams(oversampling=float("nan"))
                ),
            ),
            "params.quantization.oversampling",
        ),
        (
            stub.CreateCollection,
            pb.CreateCollectionRequest(name="q", quantization=cast(Any, 7)),
            "quantization",
        ),
        (stub.CreateCollection, pb.CreateCollectionRequest(name="Bad Name!"), "name"),
        (stub.Embed, pb.EmbedRequest(), "texts"),
    ]
    for call, request, field in cases:
        assert _field(_error(call, request)) == field, (request, field)
    unknown = _error(stub.CreateCollection, pb.CreateCollectionRequest(name="x", encoder_id="nope"))
    assert isinstance(unknown, errors.NotFound) and unknown.resource_name == "nope"


def test_search_params_and_collection_counts(stub: Stub) -> None:
    name = _collection(stub, quantization=pb.QUANTIZATION_SCALAR_INT8)
    _fill(stub, name)
    long_text = " ".join(["filler"] * 100)  # 3 chunks (40 words, overlap 8)
    stub.Upsert(pb.UpsertRequest(collection=name, points=[pb.Point(id="long", text=long_text)]))
    got = stub.GetCollection(pb.GetCollectionRequest(name=name)).collection
    assert got.quantization == pb.QUANTIZATION_SCALAR_INT8
    assert (got.points_count, got.chunks_count) == (len(DOCS) + 1, len(DOCS) + 3)
    assert 0 <= got.indexed_vectors_count <= got.chunks_count and not got.indexing
    query = pb.SearchRequest(collection=name, text="a pet that meows", top_k=4)
    base = stub.Search(query)
    variants = [
        pb.SearchParams(exact=True),
        pb.SearchParams(hnsw_ef=4),
        pb.SearchParams(quantization=pb.QuantizationSearchParams(rescore=True, oversampling=2.0)),
        pb.SearchParams(quantization=pb.QuantizationSearchParams(ignore=True)),
    ]
    for params in variants:
        query.params.CopyFrom(params)
        reply = stub.Search(query)
        assert _ids(reply) == _ids(base), params
        assert [r.score for r in reply.results] == pytest.approx(
            [r.score for r in base.results], abs=1e-4
        )


def test_embed_and_list_encoders(default_stub: Stub) -> None:
    stub = default_stub
    reply = stub.Embed(
        pb.EmbedRequest(texts=["hello world", "a longer second text"], normalize=True)
    )
    vectors = tensor_to_numpy(reply.embeddings)
    assert vectors.shape == (2, 384) and reply.encoder_id == "minilm"
    assert np.linalg.norm(vectors, axis=1) == pytest.approx([1.0, 1.0], abs=1e-5)
    assert reply.total_tokens == 4 + 6  # [CLS] hello world [SEP] + [CLS] a longer second text [SEP]
    # The max-length guard truncates instead of failing.
    long = stub.Embed(pb.EmbedRequest(texts=["word " * 2000]))
    assert long.total_tokens == 256
    encoders = stub.ListEncoders(pb.ListEncodersRequest()).encoders
    assert [(e.id, e.kind) for e in encoders] == [
        ("bm25", pb.ENCODER_KIND_SPARSE),
        ("minilm", pb.ENCODER_KIND_DENSE),
    ]
    assert encoders[1].dimension == 384 and encoders[1].max_seq_length == 256
    first = stub.ListEncoders(pb.ListEncodersRequest(page_size=1))
    second = stub.ListEncoders(
        pb.ListEncodersRequest(page_size=1, page_token=first.next_page_token)
    )
    assert [e.id for e in (*first.encoders, *second.encoders)] == ["bm25", "minilm"]
    assert not second.next_page_token
    unknown = _error(stub.Embed, pb.EmbedRequest(texts=["x"], encoder_id="nope"))
    assert isinstance(unknown, errors.NotFound) and unknown.resource_name == "nope"


def test_page_tokens_belong_to_their_list(default_stub: Stub) -> None:
    stub = default_stub
    """A token replayed on another List RPC is INVALID_ARGUMENT, not a page of that list."""
    for _ in range(2):
        _collection(stub)
    collections = stub.ListCollections(pb.ListCollectionsRequest(page_size=1))
    encoders = stub.ListEncoders(pb.ListEncodersRequest(page_size=1))
    assert collections.next_page_token and encoders.next_page_token
    crossed = [
        (stub.ListEncoders, pb.ListEncodersRequest(page_token=collections.next_page_token)),
        (stub.ListCollections, pb.ListCollectionsRequest(page_token=encoders.next_page_token)),
    ]
    for call, request in crossed:
        assert _field(_error(call, request)) == "page_token"
    assert _field(_error(stub.ListCollections, pb.ListCollectionsRequest(page_size=-1))) == (
        "page_size"
    )


def test_evaluate_encoder_operation(default_stub: Stub, channel: grpc.Channel) -> None:
    stub = default_stub
    data = keyword_set(errors=8, parts=4)
    inline = pb.InlineEvalSet(
        documents=[pb.EvalDocument(id=d.id, text=d.text) for d in data.documents],
        queries=[pb.EvalQuery(id=q, text=t) for q, t in data.queries.items()],
        qrels=[
            pb.Qrel(query_id=q, document_id=d, relevance=g)
            for q, judged in data.qrels.items()
            for d, g in judged.items()
        ],
    )
    operation = stub.EvaluateEncoder(
        pb.EvaluateEncoderRequest(encoder_id="minilm", inline=inline, recall_at=[1, 10])
    )
    assert operation.name.startswith("retrieval/operations/")
    operations = operations_pb2_grpc.OperationsStub(channel)  # type: ignore[no-untyped-call]
    deadline = time.monotonic() + 60
    while not operation.done and time.monotonic() < deadline:
        operation = operations.WaitOperation(
            operations_pb2.WaitOperationRequest(name=operation.name), timeout=30
        )
    assert operation.done and not operation.HasField("error")
    result = pb.EvaluateEncoderResponse()
    operation.response.Unpack(result)
    assert result.queries_count == 12 and result.documents_count == 12
    assert 0.0 < result.ndcg[10] <= 1.0 and set(result.recall) == {1, 10}
    assert result.recall[1] <= result.recall[10] <= 1.0
    meta = pb.EvaluateEncoderMetadata()
    operation.metadata.Unpack(meta)
    assert meta.progress == pytest.approx(1.0) and meta.documents_encoded == 12
    bad = pb.EvaluateEncoderRequest(encoder_id="minilm", dataset_uri="no/such/dir")
    assert isinstance(_error(stub.EvaluateEncoder, bad), errors.NotFound)
    missing = pb.EvaluateEncoderRequest(encoder_id="nope", dataset_uri="/x")
    assert isinstance(_error(stub.EvaluateEncoder, missing), errors.NotFound)
