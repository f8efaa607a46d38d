"""RPC spans on a real probe server: names, attributes, status, parent links, auth, logs;
and when tracing turns on (`gantry.core.telemetry`)."""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
import logging
from collections.abc import AsyncIterator, Iterator
from typing import Any

import grpc
import pytest
from google.protobuf import wrappers_pb2
from grpc_health.v1 import health_pb2, health_pb2_grpc
from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

from gantry.core.client import aio_channel, sync_channel
from gantry.core.logs import JsonFormatter
from gantry.core.server import RunningServer
from gantry.core.telemetry import TracingConfigError, chosen_exporters, configure_tracing
from gantry.core.testing.probe import PROBE_SERVICE, ProbeService, ProbeSettings, probe_method
from gantry.core.testing.probe import TEST_TOKEN as TOKEN
from gantry.core.testing.spans import memory_spans
from gantry.core.testing.threaded import serve_in_thread
from gantry.core.tracing import stage

ECHO = f"{PROBE_SERVICE}/Echo"


@pytest.fixture
def spans() -> InMemorySpanExporter:
    return memory_spans()


def _value(text: str) -> wrappers_pb2.StringValue:
    return wrappers_pb2.StringValue(value=text)


async def _finished(spans: InMemorySpanExporter, count: int) -> tuple[ReadableSpan, ...]:
    """The finished spans once there are `count` (aio client spans end just after the call)."""
    for _ in range(200):
        found = spans.get_finished_spans()
        if len(found) >= count:
            return found
        await asyncio.sleep(0.01)
    raise AssertionError(f"expected {count} spans, got {[s.name for s in found]}")


async def _until_error(call: AsyncIterator[wrappers_pb2.StringValue]) -> AsyncIterator[Any]:
    with contextlib.suppress(grpc.aio.AioRpcError):
        async for item in call:
            yield item


def _parent_id(span: ReadableSpan) -> int | None:
    return span.parent.span_id if span.parent is not None else None


async def test_a_call_is_a_server_span_under_the_callers_client_span(
    spans: InMemorySpanExporter, channel: grpc.aio.Channel
) -> None:
    with stage("test.caller") as caller:
        reply = await probe_method(channel, "Echo")(_value("hi"))
    assert reply.value == "hi"
    found = await _finished(spans, 3)
    server = next(s for s in found if s.name == ECHO and s.kind == SpanKind.SERVER)
    client = next(s for s in found if s.name == ECHO and s.kind == SpanKind.CLIENT)
    trace_id = caller.get_span_context().trace_id
    assert {s.context.trace_id for s in found} == {trace_id}
    assert _parent_id(client) == caller.get_span_context().span_id
    assert _parent_id(server) == client.context.span_id
    assert server.parent is not None and server.parent.is_remote
    assert dict(server.attributes or {}) | {"gantry.request_id": ""} == {
        "rpc.system": "grpc",
        "rpc.service": PROBE_SERVICE,
        "rpc.method": "Echo",
        "rpc.grpc.status_code": 0,
        "gantry.request_id": "",
    }
    assert server.status.status_code == StatusCode.UNSET
    assert client.attributes is not None and client.attributes["rpc.grpc.status_code"] == 0


@pytest.mark.parametrize(
    ("kind", "code", "reason"),
    [
        ("invalid", grpc.StatusCode.INVALID_ARGUMENT, "INVALID_ARGUMENT"),
        ("not_found", grpc.StatusCode.NOT_FOUND, "NOT_FOUND"),
        ("crash", grpc.StatusCode.INTERNAL, "INTERNAL"),
    ],
)
async def test_failures_mark_both_spans_as_errors(
    spans: InMemorySpanExporter,
    channel: grpc.aio.Channel,
    kind: str,
    code: grpc.StatusCode,
    reason: str,
) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await probe_method(channel, "Fail")(_value(kind))
    assert raised.value.code() == code
    found = await _finished(spans, 2)
    server = next(s for s in found if s.kind == SpanKind.SERVER)
    client = next(s for s in found if s.kind == SpanKind.CLIENT)
    for span in (server, client):
        assert span.status.status_code == StatusCode.ERROR
        assert span.attributes is not None
        assert span.attributes["rpc.grpc.status_code"] == code.value[0]
        assert span.attributes["error.type"] == code.name
    assert server.attributes is not None and server.attributes["gantry.error.reason"] == reason
    assert "secret internal detail" not in (server.status.description or "")


@pytest.mark.parametrize(
    ("count", "code"), [(2, grpc.StatusCode.OK), (3, grpc.StatusCode.FAILED_PRECONDITION)]
)
async def test_server_streams_end_their_span_with_the_stream_status(
    spans: InMemorySpanExporter, channel: grpc.aio.Channel, count: int, code: grpc.StatusCode
) -> None:
    call = probe_method(channel, "Count", stream=True)(_value(str(count)))
    items = [item.value async for item in _until_error(call)]
    assert items == [str(i) for i in range(count)]
    assert await call.code() == code
    found = await _finished(spans, 2)
    server = next(s for s in found if s.kind == SpanKind.SERVER)
    client = next(s for s in found if s.kind == SpanKind.CLIENT)
    assert server.name == client.name == f"{PROBE_SERVICE}/Count"
    assert _parent_id(server) == client.context.span_id
    assert server.attributes is not None and client.attributes is not None
    assert server.attributes["rpc.grpc.status_code"] == code.value[0]
    assert client.attributes["rpc.grpc.status_code"] == code.value[0]


async def test_a_plain_grpc_caller_with_traceparent_is_the_parent(
    spans: InMemorySpanExporter, probe: RunningServer
) -> None:
    trace_hex, span_hex = "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7"
    metadata = (
        ("authorization", f"Bearer {TOKEN}"),
        ("traceparent", f"00-{trace_hex}-{span_hex}-01"),
    )
    async with grpc.aio.insecure_channel(f"127.0.0.1:{probe.port}") as ch:
        await probe_method(ch, "Echo")(_value("x"), metadata=metadata)
    (server,) = await _finished(spans, 1)
    assert server.kind == SpanKind.SERVER
    assert server.context.trace_id == int(trace_hex, 16)
    assert _parent_id(server) == int(span_hex, 16)


async def test_unauthenticated_calls_are_traced_as_roots_without_the_token(
    spans: InMemorySpanExporter, probe: RunningServer
) -> None:
    forged = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
    metadata = (("authorization", "Bearer wrong-token-xyz"), ("traceparent", forged))
    async with grpc.aio.insecure_channel(f"127.0.0.1:{probe.port}") as ch:
        with pytest.raises(grpc.aio.AioRpcError) as raised:
            await probe_method(ch, "Echo")(_value("x"), metadata=metadata)
    assert raised.value.code() == grpc.StatusCode.UNAUTHENTICATED
    (server,) = await _finished(spans, 1)
    assert server.parent is None  # a refused caller does not join (or name) a trace
    assert server.context.trace_id != int(forged.split("-")[1], 16)
    assert server.status.status_code == StatusCode.ERROR
    assert server.attributes is not None
    assert server.attributes["rpc.grpc.status_code"] == grpc.StatusCode.UNAUTHENTICATED.value[0]
    recorded = json.dumps(
        [dict(server.attributes), server.status.description, [e.attributes for e in server.events]],
        default=str,
    )
    assert "wrong-token-xyz" not in recorded and TOKEN not in recorded


async def test_health_checks_are_not_traced(
    spans: InMemorySpanExporter, probe: RunningServer
) -> None:
    async with grpc.aio.insecure_channel(f"127.0.0.1:{probe.port}") as ch:
        for _ in range(3):
            await health_pb2_grpc.HealthStub(ch).Check(health_pb2.HealthCheckRequest())
    await asyncio.sleep(0.05)
    assert spans.get_finished_spans() == ()


def test_sync_channels_inject_the_context_too(spans: InMemorySpanExporter) -> None:
    settings = ProbeSettings(host="127.0.0.1", port=0, metrics_port=0, auth_token=TOKEN)
    with (
        serve_in_thread(ProbeService(settings)) as probe,
        stage("test.sync") as caller,
        sync_channel(f"127.0.0.1:{probe.port}", token=TOKEN) as ch,
    ):
        echo = ch.unary_unary(
            f"/{ECHO}",
            request_serializer=wrappers_pb2.StringValue.SerializeToString,
            response_deserializer=wrappers_pb2.StringValue.FromString,
        )
        assert echo(_value("s")).value == "s"
        count = ch.unary_stream(
            f"/{PROBE_SERVICE}/Count",
            request_serializer=wrappers_pb2.StringValue.SerializeToString,
            response_deserializer=wrappers_pb2.StringValue.FromString,
        )
        assert [m.value for m in count(_value("2"))] == ["0", "1"]
    found = spans.get_finished_spans()
    clients = [s for s in found if s.kind == SpanKind.CLIENT]
    servers = [s for s in found if s.kind == SpanKind.SERVER]
    assert sorted(s.name for s in clients) == sorted(s.name for s in servers)
    assert len(clients) == 2
    assert {s.context.trace_id for s in found} == {caller.get_span_context().trace_id}
    client_ids = {s.context.span_id for s in clients}
    assert {_parent_id(s) for s in servers} == client_ids
    assert all(s.attributes and s.attributes["rpc.grpc.status_code"] == 0 for s in clients)


@pytest.fixture
def json_lines() -> Iterator[io.StringIO]:
    sink = io.StringIO()
    handler = logging.StreamHandler(sink)
    handler.setFormatter(JsonFormatter("probe"))
    logger = logging.getLogger("gantry.rpc")
    logger.addHandler(handler)
    previous = logger.level
    logger.setLevel(logging.INFO)
    yield sink
    logger.removeHandler(handler)
    logger.setLevel(previous)


async def test_rpc_log_lines_carry_the_trace_and_span_ids(
    spans: InMemorySpanExporter, channel: grpc.aio.Channel, json_lines: io.StringIO
) -> None:
    await probe_method(channel, "Echo")(_value("log me"))
    found = await _finished(spans, 2)
    server = next(s for s in found if s.kind == SpanKind.SERVER)
    lines = [json.loads(line) for line in json_lines.getvalue().splitlines()]
    rpc = [entry for entry in lines if entry.get("method") == f"/{ECHO}"]
    assert len(rpc) == 1
    assert rpc[0]["trace_id"] == f"{server.context.trace_id:032x}"
    assert rpc[0]["span_id"] == f"{server.context.span_id:016x}"
    logging.getLogger("gantry.rpc").info("outside any call")
    assert "trace_id" not in json.loads(json_lines.getvalue().splitlines()[-1])


async def test_run_blocking_work_runs_under_the_callers_span(spans: InMemorySpanExporter) -> None:
    settings = ProbeSettings(port=0, metrics_port=0, auth_token=TOKEN)
    service = ProbeService(settings)
    try:
        with stage("test.outer") as outer:
            inner = await service.run_blocking(trace.get_current_span)
        assert inner.get_span_context() == outer.get_span_context()
    finally:
        service.close_executor()


# ---- when tracing turns on -----------------------------------------------------------


@pytest.mark.parametrize(
    ("endpoint", "environ", "expected"),
    [
        (None, {}, []),
        ("http://collector:4317", {}, ["otlp"]),
        (None, {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4317"}, ["otlp"]),
        (None, {"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://c:4317"}, ["otlp"]),
        (None, {"OTEL_TRACES_EXPORTER": "console"}, ["console"]),
        (None, {"OTEL_TRACES_EXPORTER": "otlp, console"}, ["otlp", "console"]),
        ("http://collector:4317", {"OTEL_TRACES_EXPORTER": "none"}, []),
    ],
)
def test_tracing_is_off_unless_configured(
    endpoint: str | None, environ: dict[str, str], expected: list[str]
) -> None:
    assert chosen_exporters(endpoint, environ) == expected


def test_an_unknown_exporter_is_a_clear_error() -> None:
    with pytest.raises(
        TracingConfigError, match="OTEL_TRACES_EXPORTER: unsupported exporter 'zipkin'"
    ):
        configure_tracing("probe", environ={"OTEL_TRACES_EXPORTER": "zipkin"})
    assert configure_tracing("probe", environ={}) is None


async def test_aio_channel_spans_do_not_leak_between_calls(
    spans: InMemorySpanExporter, probe: RunningServer
) -> None:
    async with aio_channel(f"127.0.0.1:{probe.port}", token=TOKEN) as ch:
        await probe_method(ch, "Echo")(_value("a"))
        await probe_method(ch, "Echo")(_value("b"))
    found = await _finished(spans, 4)
    # No span current in the test: each call is its own trace.
    assert len({s.context.trace_id for s in found}) == 2
