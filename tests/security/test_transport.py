"""Malformed messages at the transport: bytes that do not parse, nesting past the limit,
missing tokens, huge echoed ids. None of them may answer INTERNAL or UNKNOWN."""

from __future__ import annotations

from typing import Any

import grpc
import pytest
from grpc_status import rpc_status

from gantry.core.client import sync_channel
from gantry.proto.envfarm.v1 import envfarm_pb2, envfarm_pb2_grpc

GARBAGE = b"\xff\xff\xff\xff\x0f\x12\x99garbage"


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        byte, n = n & 0x7F, n >> 7
        out.append(byte | (0x80 if n else 0))
        if not n:
            return bytes(out)


def _field(number: int, payload: bytes) -> bytes:
    """One length-delimited field (wire type 2)."""
    return _varint(number << 3 | 2) + _varint(len(payload)) + payload


def nested_struct_bytes(levels: int) -> bytes:
    """A google.protobuf.Struct nested `levels` deep, encoded by hand (no recursion limit)."""
    struct = b""
    for _ in range(levels):
        value = _field(5, struct)  # Value.struct_value
        entry = _field(1, b"k") + _field(2, value)  # map entry {key, value}
        struct = _field(1, entry)  # Struct.fields
    return struct


def _raw_call(
    target: str, method: str, payload: bytes, token: str | None, *, streaming: bool = False
) -> grpc.RpcError:
    metadata: tuple[tuple[str, str | bytes], ...] = (
        (("authorization", f"Bearer {token}"),) if token else ()
    )
    call: Any
    with grpc.insecure_channel(target) as channel:
        try:
            if streaming:
                call = channel.stream_unary(method)
                call(iter([payload]), metadata=metadata, timeout=10)
            else:
                call = channel.unary_unary(method)
                call(payload, metadata=metadata, timeout=10)
        except grpc.RpcError as err:
            return err
    raise AssertionError(f"{method} accepted a malformed message")


def test_garbage_bytes_are_invalid_argument_or_unauthenticated(stack: Any) -> None:
    envfarm = stack.target("envfarm")
    method = "/gantry.envfarm.v1.EnvFarmService/CreateSession"
    assert _raw_call(envfarm, method, GARBAGE, stack.token).code() == (
        grpc.StatusCode.INVALID_ARGUMENT
    )
    assert _raw_call(envfarm, method, GARBAGE, None).code() == grpc.StatusCode.UNAUTHENTICATED
    assert _raw_call(envfarm, method, GARBAGE, "wrong").code() == grpc.StatusCode.UNAUTHENTICATED


@pytest.mark.parametrize("levels", [99, 150, 400])
def test_nesting_past_the_parser_limit_is_invalid_argument(stack: Any, levels: int) -> None:
    retrieval = stack.target("retrieval")
    point = _field(1, b"p1") + _field(5, nested_struct_bytes(levels))
    request = _field(1, b"no-such-collection") + _field(2, point)
    unary = _raw_call(
        retrieval, "/gantry.retrieval.v1.RetrievalService/Upsert", request, stack.token
    )
    streamed = _raw_call(
        retrieval,
        "/gantry.retrieval.v1.RetrievalService/UpsertStream",
        request,
        stack.token,
        streaming=True,
    )
    for err in (unary, streamed):
        assert err.code() in {
            grpc.StatusCode.INVALID_ARGUMENT,
            grpc.StatusCode.NOT_FOUND,
        }, err.details()


def test_a_10_mb_id_is_not_found_with_a_short_error(stack: Any) -> None:
    envfarm = stack.target("envfarm")
    huge = "s" * (10 * 1024 * 1024)
    with sync_channel(envfarm, token=stack.token) as channel:
        stub = envfarm_pb2_grpc.EnvFarmServiceStub(channel)
        with pytest.raises(grpc.RpcError) as caught:
            stub.GetSession(envfarm_pb2.GetSessionRequest(session_id=huge), timeout=30)
    err = caught.value
    assert err.code() in {grpc.StatusCode.NOT_FOUND, grpc.StatusCode.INVALID_ARGUMENT}
    assert len(err.details() or "") < 2048
    status = rpc_status.from_call(err)
    assert status is not None
    assert status.ByteSize() < 4096


def test_a_message_over_the_size_limit_is_refused_and_the_server_lives(stack: Any) -> None:
    envfarm = stack.service("envfarm")
    payload = _field(1, b"x" * (65 * 1024 * 1024))
    options = [("grpc.max_send_message_length", 80 * 1024 * 1024)]
    with grpc.insecure_channel(envfarm.target, options=options) as channel:
        call: Any = channel.unary_unary("/gantry.envfarm.v1.EnvFarmService/GetSession")
        with pytest.raises(grpc.RpcError) as caught:
            call(payload, timeout=30)
    assert caught.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert envfarm.process.poll() is None
