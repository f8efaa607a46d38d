"""Finished spans in memory, for tests that check what a call chain traced.

The OpenTelemetry API lets a process install its TracerProvider once, so every test
shares one SDK provider; `memory_spans()` returns its in-memory exporter, emptied.
"""

from __future__ import annotations

from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

_exporter: InMemorySpanExporter | None = None


def memory_spans() -> InMemorySpanExporter:
    """The process's in-memory span exporter (installed on first use), cleared."""
    global _exporter
    if _exporter is None:
        provider = trace.get_tracer_provider()
        if not isinstance(provider, TracerProvider):
            provider = TracerProvider()
            trace.set_tracer_provider(provider)
        _exporter = InMemorySpanExporter()
        provider.add_span_processor(SimpleSpanProcessor(_exporter))
    _exporter.clear()
    return _exporter


def named(spans: tuple[ReadableSpan, ...] | list[ReadableSpan], name: str) -> ReadableSpan:
    """The one span called `name` (AssertionError naming what there is otherwise)."""
    found = [s for s in spans if s.name == name]
    if len(found) != 1:
        raise AssertionError(f"{len(found)} spans named {name!r} among {[s.name for s in spans]}")
    return found[0]
