"""UpsertStream: large upserts as one client stream of batches."""

from __future__ import annotations

import uuid

import grpc
import pytest

from gantry.proto.retrieval.v1 import retrieval_pb2 as pb
from gantry.proto.retrieval.v1 import retrieval_pb2_grpc
from gantry.retrieval.client import upsert_streamed

Stub = retrieval_pb2_grpc.RetrievalServiceStub


def _collection(stub: Stub, prefix: str) -> str:
    name = f"{prefix}-{uuid.uuid4().hex[:8]}"
    stub.CreateCollection(pb.CreateCollectionRequest(name=name, sparse_enabled=True))
    return name


def _points(n: int, start: int = 0) -> list[pb.Point]:
    return [
        pb.Point(id=f"doc-{i}", text=f"document number {i} about part PN-{i:04d}")
        for i in range(start, start + n)
    ]


def _count(stub: Stub, name: str) -> int:
    return int(stub.GetCollection(pb.GetCollectionRequest(name=name)).collection.points_count)


def test_stream_writes_every_batch_and_totals_them(stub: Stub) -> None:
    name = _collection(stub, "stream-ok")
    reply = upsert_streamed(stub, name, iter(_points(45)), batch_size=10)
    assert (reply.upserted_count, reply.batch_count) == (45, 5)
    assert _count(stub, name) == 45
    hit = stub.Search(
        pb.SearchRequest(collection=name, text="PN-0037", mode=pb.SEARCH_MODE_SPARSE, top_k=1)
    )
    assert [r.id for r in hit.results] == ["doc-37"]
    # Idempotent by id: streaming the same points again leaves 45 documents.
    upsert_streamed(stub, name, _points(45), batch_size=20)
    assert _count(stub, name) == 45


def test_bad_batch_names_itself_and_keeps_the_earlier_ones(stub: Stub) -> None:
    name = _collection(stub, "stream-bad")
    bad = [pb.Point(id="dup", text="a"), pb.Point(id="dup", text="b")]
    messages = [
        pb.UpsertStreamRequest(collection=name, points=_points(10), wait=True),
        pb.UpsertStreamRequest(points=bad, wait=True),
        pb.UpsertStreamRequest(points=_points(10, start=10), wait=True),
    ]
    with pytest.raises(grpc.RpcError) as error:
        stub.UpsertStream(iter(messages))
    assert error.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "batch 1 (after 10 points written)" in str(error.value.details())
    assert "points[1].id" in str(error.value.details())
    assert _count(stub, name) == 10  # batch 0 stays written; nothing after the bad one


MIXED = "{collection}"  # replaced by a fresh collection's name


@pytest.mark.parametrize(
    ("messages", "code", "text"),
    [
        ([], grpc.StatusCode.INVALID_ARGUMENT, "collection"),
        (
            [pb.UpsertStreamRequest(collection="no-such", points=_points(1))],
            grpc.StatusCode.NOT_FOUND,
            "no-such",
        ),
        (
            [
                pb.UpsertStreamRequest(collection=MIXED, points=_points(1)),
                pb.UpsertStreamRequest(collection="other", points=_points(1, 1)),
            ],
            grpc.StatusCode.INVALID_ARGUMENT,
            "'other'",
        ),
        ([pb.UpsertStreamRequest(collection=MIXED)], grpc.StatusCode.INVALID_ARGUMENT, "points"),
    ],
)
def test_malformed_streams_get_clear_errors(
    stub: Stub, messages: list[pb.UpsertStreamRequest], code: grpc.StatusCode, text: str
) -> None:
    name = _collection(stub, "stream-mixed")
    sent = []
    for message in messages:
        copy = pb.UpsertStreamRequest()
        copy.CopyFrom(message)
        if copy.collection == MIXED:
            copy.collection = name
        sent.append(copy)
    with pytest.raises(grpc.RpcError) as error:
        stub.UpsertStream(iter(sent))
    assert error.value.code() == code
    assert text in str(error.value.details())
