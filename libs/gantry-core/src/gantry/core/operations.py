"""Long-running operations (AIP-151) kept in process.

A service method that starts a long job calls `OperationStore.start(job, metadata=...)`
and returns the `Operation` at once; the job runs as an asyncio task, reports progress
through its `OperationHandle`, and its result or error lands in the operation. Each
server also serves `google.longrunning.Operations` over the same store, so clients poll
`GetOperation`, block on `WaitOperation` or `CancelOperation`.

The store lives in process memory: operations do not survive a restart. Jobs whose
results must persist (training runs) write checkpoints themselves.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import grpc
from google.longrunning import operations_pb2_grpc
from google.longrunning import operations_proto_pb2 as operations_pb2
from google.protobuf import empty_pb2
from google.protobuf.message import Message

from gantry.core import paging
from gantry.core.errors import Cancelled, InvalidArgument, NotFound, status_from_exception
from gantry.core.paging import Page, decode_token

log = logging.getLogger("gantry.operations")

OPERATIONS_SERVICE = "google.longrunning.Operations"


class OperationHandle:
    """What a running job sees: its name, a progress channel and its cancellation."""

    def __init__(self, record: _Record) -> None:
        self._record = record

    @property
    def name(self) -> str:
        return str(self._record.operation.name)

    def set_metadata(self, metadata: Message) -> None:
        """Publish progress; clients see it on their next GetOperation."""
        self._record.operation.metadata.Pack(metadata)
        self._record.changed()


Job = Callable[[OperationHandle], Awaitable[Message]]


@dataclass
class _Record:
    operation: operations_pb2.Operation
    task: asyncio.Task[None] | None = None
    version: asyncio.Condition = field(default_factory=asyncio.Condition)

    def changed(self) -> None:
        async def notify() -> None:
            async with self.version:
                self.version.notify_all()

        with contextlib.suppress(RuntimeError):  # no running loop: nobody waits
            asyncio.get_running_loop().create_task(notify())


class OperationStore:
    def __init__(self, prefix: str = "operations", max_finished: int = 1000) -> None:
        self.prefix = prefix
        self.max_finished = max_finished
        self._records: OrderedDict[str, _Record] = OrderedDict()

    def start(self, job: Job, *, metadata: Message | None = None) -> operations_pb2.Operation:
        """Schedule `job` on the running loop and return its (not yet done) operation."""
        name = f"{self.prefix}/{uuid.uuid4().hex}"
        operation = operations_pb2.Operation(name=name, done=False)
        if metadata is not None:
            operation.metadata.Pack(metadata)
        record = _Record(operation)
        self._records[name] = record
        record.task = asyncio.get_running_loop().create_task(self._run(record, job), name=name)
        self._evict()
        return self._copy(record)

    async def _run(self, record: _Record, job: Job) -> None:
        op = record.operation
        try:
            result = await job(OperationHandle(record))
            op.response.Pack(result)
        except asyncio.CancelledError:
            op.error.CopyFrom(Cancelled("the operation was cancelled").to_status())
        except Exception as exc:
            log.exception("operation %s failed", op.name)
            op.error.CopyFrom(status_from_exception(exc))
        op.done = True
        record.changed()

    def _evict(self) -> None:
        finished = [n for n, r in self._records.items() if r.operation.done]
        for name in finished[: max(0, len(finished) - self.max_finished)]:
            del self._records[name]

    def _record(self, name: str) -> _Record:
        record = self._records.get(name)
        if record is None:
            raise NotFound(
                f"operation {name!r} not found", resource_type="operation", resource_name=name
            )
        return record

    @staticmethod
    def _copy(record: _Record) -> operations_pb2.Operation:
        snapshot = operations_pb2.Operation()
        snapshot.CopyFrom(record.operation)
        return snapshot

    def get(self, name: str) -> operations_pb2.Operation:
        return self._copy(self._record(name))

    def list(
        self, *, filter_: str = "", page_size: int = 0, page_token: str = ""
    ) -> tuple[list[operations_pb2.Operation], str]:
        """Supports the filters `done=true` and `done=false` (or none)."""
        wanted: bool | None = None
        if filter_.strip():
            key, _, value = filter_.replace(" ", "").partition("=")
            if key != "done" or value not in ("true", "false"):
                raise InvalidArgument.for_field(
                    "filter", "supported filters are 'done=true' and 'done=false'"
                )
            wanted = value == "true"
        page = Page(
            decode_token(page_token, filter_),
            paging.page_size(page_size, default=100, maximum=1000),
            filter_,
        )
        records = [
            r for r in self._records.values() if wanted is None or r.operation.done == wanted
        ]
        return [self._copy(r) for r in records[page.start : page.stop]], page.next_token(
            len(records)
        )

    async def wait(self, name: str, timeout_s: float | None) -> operations_pb2.Operation:
        """Block until done or timeout; return the operation's state either way."""
        record = self._record(name)

        async def until_done() -> None:
            async with record.version:
                await record.version.wait_for(lambda: record.operation.done)

        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(until_done(), timeout_s)
        return self._copy(record)

    def cancel(self, name: str) -> None:
        record = self._record(name)
        if record.task is not None and not record.task.done():
            record.task.cancel()

    def delete(self, name: str) -> None:
        record = self._record(name)
        if record.task is not None and not record.task.done():
            record.task.cancel()
        del self._records[name]

    async def close(self) -> None:
        """Cancel every running job (server shutdown)."""
        tasks = [r.task for r in self._records.values() if r.task and not r.task.done()]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


class OperationsServicer(operations_pb2_grpc.OperationsServicer):  # type: ignore[misc]
    """`google.longrunning.Operations` over an `OperationStore`."""

    def __init__(self, store: OperationStore) -> None:
        self.store = store

    async def GetOperation(
        self, request: operations_pb2.GetOperationRequest, context: Any
    ) -> operations_pb2.Operation:
        return self.store.get(request.name)

    async def ListOperations(
        self, request: operations_pb2.ListOperationsRequest, context: Any
    ) -> operations_pb2.ListOperationsResponse:
        ops, token = self.store.list(
            filter_=request.filter, page_size=request.page_size, page_token=request.page_token
        )
        return operations_pb2.ListOperationsResponse(operations=ops, next_page_token=token)

    async def DeleteOperation(
        self, request: operations_pb2.DeleteOperationRequest, context: Any
    ) -> empty_pb2.Empty:
        self.store.delete(request.name)
        return empty_pb2.Empty()

    async def CancelOperation(
        self, request: operations_pb2.CancelOperationRequest, context: Any
    ) -> empty_pb2.Empty:
        self.store.cancel(request.name)
        return empty_pb2.Empty()

    async def WaitOperation(
        self,
        request: operations_pb2.WaitOperationRequest,
        context: grpc.aio.ServicerContext[Any, Any],
    ) -> operations_pb2.Operation:
        timeout: float | None = None
        if request.HasField("timeout"):
            timeout = request.timeout.ToNanoseconds() / 1e9
            if timeout < 0:
                raise InvalidArgument.for_field("timeout", "must not be negative")
        remaining = context.time_remaining()
        if remaining is not None:
            # Answer just before the caller's deadline rather than letting it expire.
            budget = max(0.0, remaining - 0.05)
            timeout = budget if timeout is None else min(timeout, budget)
        return await self.store.wait(request.name, timeout)


def add_operations_service(server: grpc.aio.Server, store: OperationStore) -> str:
    servicer = OperationsServicer(store)
    operations_pb2_grpc.add_OperationsServicer_to_server(servicer, server)  # type: ignore[no-untyped-call]
    return OPERATIONS_SERVICE
