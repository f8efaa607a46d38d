"""Client helpers: large upserts as a pipeline of bounded Upsert calls.

The contract has no client-streaming Upsert; a large batch goes as consecutive calls of
at most `batch_size` points, with up to `in_flight` calls outstanding, so the server
embeds one batch while the next is on the wire.
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
