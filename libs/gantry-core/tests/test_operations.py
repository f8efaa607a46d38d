"""Long-running operations through the google.longrunning.Operations API."""

from __future__ import annotations

import asyncio
from typing import Any

import grpc
import pytest
from google.longrunning import operations_pb2_grpc
from google.longrunning import operations_proto_pb2 as ops
from google.protobuf import duration_pb2, wrappers_pb2

from gantry.core import errors
from gantry.core.operations import OperationStore
from gantry.core.testing.probe import probe_method


def _start(
    channel: grpc.aio.Channel,
) -> grpc.aio.UnaryUnaryMultiCallable[wrappers_pb2.StringValue, ops.Operation]:
    return channel.unary_unary(
        "/gantry.testing.v1.ProbeService/StartJob",
        request_serializer=wrappers_pb2.StringValue.SerializeToString,
        response_deserializer=ops.Operation.FromString,
    )


def _stub(channel: grpc.aio.Channel) -> Any:
    return operations_pb2_grpc.OperationsStub(channel)  # type: ignore[no-untyped-call]


def _unpack_string(op: ops.Operation) -> str:
    value = wrappers_pb2.StringValue()
    assert op.response.Unpack(value)
    return value.value


async def test_job_runs_and_wait_returns_its_response(channel: grpc.aio.Channel) -> None:
    op = await _start(channel)(wrappers_pb2.StringValue(value="0.2"))
    assert not op.done and op.name.startswith("probe/operations/")
    stub = _stub(channel)
    meta = wrappers_pb2.StringValue()
    polled = await stub.GetOperation(ops.GetOperationRequest(name=op.name))
    assert polled.metadata.Unpack(meta) and meta.value in ("queued", "running")
    done = await stub.WaitOperation(
        ops.WaitOperationRequest(name=op.name, timeout=duration_pb2.Duration(seconds=5))
    )
    assert done.done and _unpack_string(done) == "done after 0.2"


async def test_failed_job_reports_error_in_operation(channel: grpc.aio.Channel) -> None:
    op = await _start(channel)(wrappers_pb2.StringValue(value="-1"))
    stub = _stub(channel)
    done = await stub.WaitOperation(ops.WaitOperationRequest(name=op.name))
    assert done.done and done.HasField("error")
    assert done.error.code == grpc.StatusCode.FAILED_PRECONDITION.value[0]
    assert isinstance(errors.error_from_status(done.error), errors.FailedPrecondition)


async def test_error_before_start_is_the_rpc_status(channel: grpc.aio.Channel) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await _start(channel)(wrappers_pb2.StringValue(value="1e9"))
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT


async def test_cancel_marks_operation_cancelled(channel: grpc.aio.Channel) -> None:
    op = await _start(channel)(wrappers_pb2.StringValue(value="30"))
    stub = _stub(channel)
    await stub.CancelOperation(ops.CancelOperationRequest(name=op.name))
    done = await stub.WaitOperation(
        ops.WaitOperationRequest(name=op.name, timeout=duration_pb2.Duration(seconds=5))
    )
    assert done.done and done.error.code == grpc.StatusCode.CANCELLED.value[0]


async def test_wait_times_out_with_operation_not_done(channel: grpc.aio.Channel) -> None:
    op = await _start(channel)(wrappers_pb2.StringValue(value="30"))
    stub = _stub(channel)
    state = await stub.WaitOperation(
        ops.WaitOperationRequest(name=op.name, timeout=duration_pb2.Duration(nanos=100_000_000))
    )
    assert not state.done


async def test_unknown_operation_is_not_found(channel: grpc.aio.Channel) -> None:
    stub = _stub(channel)
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await stub.GetOperation(ops.GetOperationRequest(name="probe/operations/nope"))
    assert info.value.code() == grpc.StatusCode.NOT_FOUND


async def test_list_filters_and_pages(channel: grpc.aio.Channel) -> None:
    names = [(await _start(channel)(wrappers_pb2.StringValue(value="0"))).name for _ in range(5)]
    running = await _start(channel)(wrappers_pb2.StringValue(value="30"))
    stub = _stub(channel)
    for name in names:
        await stub.WaitOperation(ops.WaitOperationRequest(name=name))
    page1 = await stub.ListOperations(ops.ListOperationsRequest(filter="done=true", page_size=3))
    page2 = await stub.ListOperations(
        ops.ListOperationsRequest(filter="done=true", page_size=3, page_token=page1.next_page_token)
    )
    assert [o.name for o in page1.operations] + [o.name for o in page2.operations] == names
    assert page2.next_page_token == ""
    pending = await stub.ListOperations(ops.ListOperationsRequest(filter="done=false"))
    assert [o.name for o in pending.operations] == [running.name]
    for bad in (
        ops.ListOperationsRequest(filter="colour=red"),
        ops.ListOperationsRequest(page_token="garbage"),
        ops.ListOperationsRequest(page_size=-1),
    ):
        with pytest.raises(grpc.aio.AioRpcError) as info:
            await stub.ListOperations(bad)
        assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT


async def test_store_evicts_oldest_finished() -> None:
    store = OperationStore(prefix="t", max_finished=2)

    async def job(handle: object) -> wrappers_pb2.StringValue:
        return wrappers_pb2.StringValue(value="x")

    names = []
    for _ in range(4):
        names.append(store.start(job).name)
        await asyncio.sleep(0.01)
    store.start(job)
    ops_left, _ = store.list()
    assert names[0] not in {o.name for o in ops_left}
    await store.close()


async def test_echo_still_works_while_job_runs(channel: grpc.aio.Channel) -> None:
    await _start(channel)(wrappers_pb2.StringValue(value="5"))
    reply = await probe_method(channel, "Echo")(wrappers_pb2.StringValue(value="a"))
    assert reply.value == "a"
