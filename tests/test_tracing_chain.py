"""One trace across processes: this test -> relay service -> probe service, each a real
process exporting its spans over OTLP/gRPC to a collector run here, with JSON logs that
carry the same trace id. Covers both ways services dial peers: an aio channel on the event
loop (rollout -> envfarm) and a blocking channel on the executor (trainer -> rollout)."""

from __future__ import annotations

import itertools
import json
import signal
import threading
from collections.abc import Iterator
from concurrent import futures
from contextlib import ExitStack, contextmanager
from typing import Any

import grpc
import pytest
from google.protobuf import wrappers_pb2
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from gantry.core.client import sync_channel
from gantry.core.testing.probe import PROBE_SERVICE
from gantry.core.testing.probe import TEST_TOKEN as TOKEN
from gantry.core.testing.process import ServiceProcess, spawn_service
from gantry.core.testing.relay import RELAY_SERVICE, relay_method
from gantry.core.testing.spans import memory_spans
from gantry.core.tracing import stage

SERVER, CLIENT = 2, 3  # OTLP Span.SpanKind values


class _Collector(trace_service_pb2_grpc.TraceServiceServicer):
    """An OTLP trace receiver: keeps (service.name, span) for every exported span."""

    def __init__(self) -> None:
        self.spans: list[tuple[str, Any]] = []
        self.lock = threading.Lock()

    def Export(self, request: Any, context: Any) -> Any:
        with self.lock:
            for resource_spans in request.resource_spans:
                attributes = {
                    a.key: a.value.string_value for a in resource_spans.resource.attributes
                }
                for scope in resource_spans.scope_spans:
                    self.spans += [(attributes["service.name"], s) for s in scope.spans]
        return trace_service_pb2.ExportTraceServiceResponse()


@contextmanager
def collector() -> Iterator[tuple[_Collector, str]]:
    receiver = _Collector()
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
    trace_service_pb2_grpc.add_TraceServiceServicer_to_server(receiver, server)  # type: ignore[no-untyped-call]
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    try:
        yield receiver, f"http://127.0.0.1:{port}"
    finally:
        server.stop(0)


def _stop(process: ServiceProcess) -> None:
    """SIGTERM: drain, then flush the spans still queued."""
    process.process.send_signal(signal.SIGTERM)
    assert process.process.wait(timeout=30) == 0, process.log.read_text()


def _one(spans: list[tuple[str, Any]], service: str, name: str, kind: int) -> Any:
    found = [s for svc, s in spans if svc == service and s.name == name and s.kind == kind]
    assert len(found) == 1, [(svc, s.name, s.kind) for svc, s in spans]
    return found[0]


def _json_lines(process: ServiceProcess) -> list[dict[str, Any]]:
    lines = process.log.read_text().splitlines()
    return [json.loads(line) for line in lines if line.startswith("{")]


@pytest.mark.slow
@pytest.mark.timeout(120)
@pytest.mark.parametrize("method", ["Forward", "ForwardBlocking"])
def test_a_call_chain_across_processes_is_one_trace(method: str) -> None:
    local: InMemorySpanExporter = memory_spans()
    with collector() as (received, endpoint), ExitStack() as stack:
        otel = {"OTEL_EXPORTER_OTLP_ENDPOINT": endpoint, "OTEL_BSP_SCHEDULE_DELAY": "100"}
        probe = stack.enter_context(
            spawn_service("gantry.core.testing.probe", "probe", token=TOKEN, env=otel)
        )
        relay = stack.enter_context(
            spawn_service(
                "gantry.core.testing.relay",
                "relay",
                token=TOKEN,
                env={**otel, "GANTRY_RELAY_PROBE_TARGET": probe.target},
            )
        )
        with stage("test.caller") as caller, sync_channel(relay.target, token=TOKEN) as channel:
            reply = relay_method(channel, method)(wrappers_pb2.StringValue(value="hello"))
        assert reply.value == "relayed hello"
        _stop(relay)
        _stop(probe)
        relay_log, probe_log = _json_lines(relay), _json_lines(probe)

    trace_id = caller.get_span_context().trace_id
    (client,) = [s for s in local.get_finished_spans() if s.kind == SpanKind.CLIENT]
    assert client.name == f"{RELAY_SERVICE}/{method}"
    assert client.context.trace_id == trace_id

    spans = received.spans
    relay_server = _one(spans, "gantry-relay", f"{RELAY_SERVICE}/{method}", SERVER)
    forward = next(s for svc, s in spans if svc == "gantry-relay" and s.name.startswith("relay."))
    relay_client = _one(spans, "gantry-relay", f"{PROBE_SERVICE}/Echo", CLIENT)
    probe_server = _one(spans, "gantry-probe", f"{PROBE_SERVICE}/Echo", SERVER)
    chain = [relay_server, forward, relay_client, probe_server]
    assert {int.from_bytes(s.trace_id, "big") for s in chain} == {trace_id}
    assert relay_server.parent_span_id == client.context.span_id.to_bytes(8, "big")
    for parent, child in itertools.pairwise(chain):
        assert child.parent_span_id == parent.span_id, (parent.name, child.name)

    # Each process's log lines about this call carry the trace id.
    hex_id = f"{trace_id:032x}"
    relay_rpc = [e for e in relay_log if e.get("method") == f"/{RELAY_SERVICE}/{method}"]
    probe_rpc = [e for e in probe_log if e.get("method") == f"/{PROBE_SERVICE}/Echo"]
    assert [e["trace_id"] for e in relay_rpc + probe_rpc] == [hex_id, hex_id]
    assert probe_rpc[0]["span_id"] == probe_server.span_id.hex()
