"""Typed errors leave the server as the right status code with google.rpc details."""

from __future__ import annotations

import grpc
import pytest
from google.protobuf import wrappers_pb2
from google.rpc import error_details_pb2
from grpc_status import rpc_status

from gantry.core import errors
from gantry.core.testing.probe import probe_method


async def _fail(channel: grpc.aio.Channel, kind: str) -> grpc.aio.AioRpcError:
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await probe_method(channel, "Fail")(wrappers_pb2.StringValue(value=kind))
    return info.value


async def test_invalid_argument_names_the_field(channel: grpc.aio.Channel) -> None:
    error = await _fail(channel, "invalid")
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert (error.details() or "").startswith("value:")
    status = rpc_status.from_call(error)
    assert status is not None
    bad = error_details_pb2.BadRequest()
    assert any(d.Unpack(bad) for d in status.details if d.Is(bad.DESCRIPTOR))
    assert [v.field for v in bad.field_violations] == ["value"]
    typed = errors.from_rpc_error(error)
    assert isinstance(typed, errors.InvalidArgument)
    assert typed.violations[0].field == "value"
    assert typed.reason == "INVALID_ARGUMENT"


async def test_not_found_carries_resource_info(channel: grpc.aio.Channel) -> None:
    typed = errors.from_rpc_error(await _fail(channel, "not_found"))
    assert isinstance(typed, errors.NotFound)
    assert (typed.resource_type, typed.resource_name) == ("thing", "x")


async def test_resource_exhausted_carries_retry_info(channel: grpc.aio.Channel) -> None:
    typed = errors.from_rpc_error(await _fail(channel, "exhausted"))
    assert isinstance(typed, errors.ResourceExhausted)
    assert typed.retry_after_s == pytest.approx(1.5)


async def test_unexpected_exception_is_internal_without_leaking(channel: grpc.aio.Channel) -> None:
    error = await _fail(channel, "crash")
    assert error.code() == grpc.StatusCode.INTERNAL
    assert "secret" not in (error.details() or "")
    typed = errors.from_rpc_error(error)
    assert typed.metadata["request_id"] in (error.details() or "")


async def test_stream_error_after_items(channel: grpc.aio.Channel) -> None:
    call = probe_method(channel, "Count", stream=True)(wrappers_pb2.StringValue(value="3"))
    received = []

    async def drain() -> None:
        async for item in call:
            received.append(item.value)

    with pytest.raises(grpc.aio.AioRpcError) as info:
        await drain()
    assert received == ["0", "1", "2"]
    assert info.value.code() == grpc.StatusCode.FAILED_PRECONDITION


def test_every_error_class_round_trips_through_status() -> None:
    cases: list[errors.GantryError] = [
        errors.InvalidArgument.for_field("a.b", "bad"),
        errors.NotFound("gone", resource_type="session", resource_name="s1"),
        errors.AlreadyExists("dup", resource_type="collection", resource_name="c"),
        errors.FailedPrecondition("not ready"),
        errors.OutOfRange("past the end"),
        errors.ResourceExhausted("full", retry_after_s=2.0),
        errors.Unavailable("later", retry_after_s=0.5),
        errors.Aborted("conflict"),
        errors.Unauthenticated("who"),
        errors.PermissionDenied("no"),
        errors.DeadlineExceeded("slow"),
        errors.Cancelled("stop"),
        errors.Unimplemented("todo"),
        errors.Internal("bug"),
    ]
    for original in cases:
        rebuilt = errors.error_from_status(original.to_status())
        assert type(rebuilt) is type(original)
        assert rebuilt.code == original.code
        assert rebuilt.message == original.message
        assert rebuilt.reason == original.reason
    codes = {type(c).code for c in cases}
    assert grpc.StatusCode.INTERNAL in codes and len(codes) == len(cases)


def test_status_from_plain_exception_is_internal() -> None:
    status = errors.status_from_exception(ValueError("boom"))
    assert status.code == grpc.StatusCode.INTERNAL.value[0]
    assert "boom" in status.message
