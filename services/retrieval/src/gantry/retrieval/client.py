"""Client helpers for large upserts.

`upsert_streamed` sends any number of points over one UpsertStream call, `batch_size` per
message (the server writes each batch as it arrives). `upsert_batched` sends them as
consecutive unary Upsert calls with up to `in_flight` outstanding, for callers that want
per-batch retries.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from itertools import islice
from typing import Any

from gantry.proto.retrieval.v1 import retrieval_pb2, retrieval_pb2_grpc


def _batches(
    points: Iterable[retrieval_pb2.Point], size: int
) -> Iterator[list[retrieval_pb2.Point]]:
    it = iter(points)
    while batch := list(islice(it, size)):
        yield batch


def upsert_batched(
    stub: retrieval_pb2_grpc.RetrievalServiceStub,
    collection: str,
    points: Iterable[retrieval_pb2.Point],
    *,
    batch_size: int = 256,
    in_flight: int = 2,
    wait: bool = True,
    timeout_s: float | None = 600.0,
) -> int:
    """Upsert any number of points (a generator is fine); return how many were written."""
    if batch_size < 1 or in_flight < 1:
        raise ValueError("batch_size and in_flight must be >= 1")
    pending: list[Any] = []  # grpc call futures
    written = 0
    for batch in _batches(points, batch_size):
        request = retrieval_pb2.UpsertRequest(collection=collection, points=batch, wait=wait)
        pending.append(stub.Upsert.future(request, timeout=timeout_s))
        if len(pending) >= in_flight:
            written += pending.pop(0).result().upserted_count
    for future in pending:
        written += future.result().upserted_count
    return written


def upsert_streamed(
    stub: retrieval_pb2_grpc.RetrievalServiceStub,
    collection: str,
    points: Iterable[retrieval_pb2.Point],
    *,
    batch_size: int = 256,
    wait: bool = True,
    timeout_s: float | None = 3600.0,
) -> retrieval_pb2.UpsertStreamResponse:
    """Upsert any number of points (a generator is fine) over one client stream."""
    if batch_size < 1:
        raise ValueError("batch_size must be >= 1")
    messages = (
        retrieval_pb2.UpsertStreamRequest(collection=collection, points=batch, wait=wait)
        for batch in _batches(points, batch_size)
    )
    response: retrieval_pb2.UpsertStreamResponse = stub.UpsertStream(messages, timeout=timeout_s)
    return response
