"""Spans through OpenTelemetry: long stages, and one span per RPC on each side of a call.

Without a configured provider the OpenTelemetry API is a no-op, so all of this costs
nothing; `gantry.core.telemetry` installs the SDK and its exporter when tracing is
configured.

    with stage("trainer.step", run_id=run_id, step=step):
        ...

RPC spans follow the OpenTelemetry RPC conventions (`rpc.system`, `rpc.service`,
`rpc.method`, `rpc.grpc.status_code`). The W3C trace context (`traceparent`,
`tracestate`) travels in gRPC metadata: the client interceptors inject it, the server
interceptor extracts it, so a call chain across services is one trace.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from functools import lru_cache
from typing import Any

import grpc
from opentelemetry import context as otel_context
from opentelemetry import propagate, trace

TRACER_NAME = "gantry"

AttributeValue = str | bool | int | float
Metadata = Sequence[tuple[str, str | bytes]]


_tracer: trace.Tracer | None = None


def tracer() -> trace.Tracer:
    """Gantry's tracer, made once: before a provider is installed it is the API's proxy,
    which follows the provider from then on."""
    global _tracer
    if _tracer is None:
        _tracer = trace.get_tracer(TRACER_NAME)
    return _tracer


@contextmanager
def stage(name: str, **attributes: AttributeValue) -> Iterator[trace.Span]:
    """A span around one long stage, a child of the current RPC's span when there is one."""
    with tracer().start_as_current_span(name, attributes=attributes) as span:
        yield span


def rpc_attributes(method: str) -> dict[str, AttributeValue]:
    """The RPC attributes of `/package.Service/Method`."""
    return dict(_rpc_attributes(method))


@lru_cache(maxsize=1024)  # a process calls and serves a bounded set of methods
def _rpc_attributes(method: str) -> tuple[tuple[str, AttributeValue], ...]:
    service, _, name = method.lstrip("/").partition("/")
    return (("rpc.system", "grpc"), ("rpc.service", service), ("rpc.method", name))


def extract(metadata: Metadata | None) -> otel_context.Context:
    """The caller's trace context from incoming metadata (empty if it sent none)."""
    carrier = {k.lower(): v for k, v in metadata or () if isinstance(v, str)}
    return propagate.extract(carrier)


def inject(metadata: Metadata | None, span: trace.Span) -> list[tuple[str, str | bytes]]:
    """`metadata` plus the trace context that makes `span` the callee's parent."""
    carrier: dict[str, str] = {}
    propagate.inject(carrier, context=trace.set_span_in_context(span))
    merged = list(metadata or ())
    present = {k.lower() for k, _ in merged}
    merged += [(k, v) for k, v in carrier.items() if k not in present]
    return merged


def start_rpc_span(
    method: str,
    kind: trace.SpanKind,
    *,
    parent: otel_context.Context | None = None,
    start_time_ns: int | None = None,
    attributes: dict[str, AttributeValue] | None = None,
) -> trace.Span:
    """A span named by the full method (`package.Service/Method`), not yet current."""
    return tracer().start_span(
        method.lstrip("/"),
        context=parent,
        kind=kind,
        attributes={**dict(_rpc_attributes(method)), **(attributes or {})},
        start_time=start_time_ns,
    )


def end_rpc_span(
    span: trace.Span,
    code: grpc.StatusCode,
    *,
    message: str = "",
    reason: str = "",
    end_time_ns: int | None = None,
) -> None:
    """Record the call's outcome (status ERROR for any code but OK) and end the span."""
    span.set_attribute("rpc.grpc.status_code", code.value[0])
    if code != grpc.StatusCode.OK:
        span.set_attribute("error.type", code.name)
        if reason:
            span.set_attribute("gantry.error.reason", reason)
        span.set_status(trace.Status(trace.StatusCode.ERROR, message or code.name))
    span.end(end_time=end_time_ns)


class Attached:
    """A span made current in this context until `detach()` (idempotent).

    Unlike a `with` block this can span the yields of an async generator: `detach`
    only restores the previous context when it runs in the context it attached in
    (a generator finalised elsewhere has nothing to restore).
    """

    def __init__(self, span: trace.Span) -> None:
        self.span = span
        self._context = trace.set_span_in_context(span)
        self._token: Any = otel_context.attach(self._context)

    def detach(self) -> None:
        if self._token is not None and otel_context.get_current() is self._context:
            otel_context.detach(self._token)
        self._token = None
