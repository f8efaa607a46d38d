"""Spans for long stages (an episode, a train step, a publish), through OpenTelemetry.

Without a configured exporter the OpenTelemetry API is a no-op, so calling `stage` costs
nothing; `gantry.core` wires the SDK and the OTLP exporter when an endpoint is configured.

    with stage("trainer.step", run_id=run_id, step=step):
        ...
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from opentelemetry import trace

TRACER_NAME = "gantry"

AttributeValue = str | bool | int | float


@contextmanager
def stage(name: str, **attributes: AttributeValue) -> Iterator[trace.Span]:
    """A span around one long stage, a child of the current RPC's span when there is one."""
    with trace.get_tracer(TRACER_NAME).start_as_current_span(name, attributes=attributes) as span:
        yield span
