"""Trace export: the OpenTelemetry SDK behind `gantry.core.tracing`, off unless configured.

Tracing turns on when an OTLP endpoint is given (the `otlp_endpoint` setting, or the
standard `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` / `OTEL_EXPORTER_OTLP_ENDPOINT`) or
`OTEL_TRACES_EXPORTER` names an exporter (`otlp`, `console`); `OTEL_TRACES_EXPORTER=none`
turns it off whatever else is set. Spans leave in batches over OTLP/gRPC; the service
is `gantry-<service>` unless `OTEL_SERVICE_NAME` says otherwise. The other standard
variables (`OTEL_EXPORTER_OTLP_HEADERS`, `..._INSECURE`, `OTEL_TRACES_SAMPLER`,
`OTEL_BSP_*`, `OTEL_RESOURCE_ATTRIBUTES`) are read by the SDK itself.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping

from opentelemetry import trace
from opentelemetry.sdk.resources import SERVICE_NAME, Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import (
    BatchSpanProcessor,
    ConsoleSpanExporter,
    SpanExporter,
)

log = logging.getLogger("gantry.telemetry")

EXPORTERS = ("otlp", "console")
_ENDPOINT_VARS = ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "OTEL_EXPORTER_OTLP_ENDPOINT")


class TracingConfigError(ValueError):
    """Tracing is configured in a way this process cannot honour."""


def chosen_exporters(endpoint: str | None, environ: Mapping[str, str]) -> list[str]:
    """The exporters to install: [] when tracing is off."""
    named = [e.strip().lower() for e in environ.get("OTEL_TRACES_EXPORTER", "").split(",")]
    named = [e for e in named if e]
    if "none" in named:
        return []
    unknown = [e for e in named if e not in EXPORTERS]
    if unknown:
        raise TracingConfigError(
            f"OTEL_TRACES_EXPORTER: unsupported exporter {unknown[0]!r} "
            f"(use {', '.join(EXPORTERS)} or none)"
        )
    if named:
        return named
    if endpoint or any(environ.get(var) for var in _ENDPOINT_VARS):
        return ["otlp"]
    return []


def _otlp_exporter(endpoint: str | None) -> SpanExporter:
    try:
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
    except ImportError as exc:  # a trimmed install without the exporter
        raise TracingConfigError(
            "tracing is configured to export over OTLP but the exporter is not installed: "
            "pip install 'opentelemetry-exporter-otlp-proto-grpc>=1.45,<2'"
        ) from exc
    # None lets the exporter read the OTEL_EXPORTER_OTLP_* variables itself.
    exporter: SpanExporter = OTLPSpanExporter(endpoint=endpoint)
    return exporter


def configure_tracing(
    service: str,
    *,
    endpoint: str | None = None,
    environ: Mapping[str, str] | None = None,
) -> TracerProvider | None:
    """Install the process's TracerProvider if tracing is configured; None when it is off.

    Call once, at process start; `shutdown_tracing` flushes what is still queued.
    """
    environ = os.environ if environ is None else environ
    exporters = chosen_exporters(endpoint, environ)
    if not exporters:
        return None
    name = environ.get("OTEL_SERVICE_NAME") or f"gantry-{service}"
    provider = TracerProvider(resource=Resource.create({SERVICE_NAME: name}))
    for kind in exporters:
        exporter = _otlp_exporter(endpoint) if kind == "otlp" else ConsoleSpanExporter()
        provider.add_span_processor(BatchSpanProcessor(exporter))
    trace.set_tracer_provider(provider)
    target = endpoint or next((environ[v] for v in _ENDPOINT_VARS if environ.get(v)), "")
    log.info("tracing on: %s as %s %s", ", ".join(exporters), name, target)
    return provider


def shutdown_tracing(provider: TracerProvider | None, timeout_s: float = 10.0) -> None:
    """Export the spans still queued, then stop the exporters (no-op when tracing is off)."""
    if provider is None:
        return
    if not provider.force_flush(int(timeout_s * 1000)):
        log.warning("tracing: some spans were not exported within %.0fs", timeout_s)
    provider.shutdown()
