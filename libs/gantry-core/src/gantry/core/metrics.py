"""Prometheus metrics: the runtime's per-RPC series, HTTP fronts' series, the endpoint.

Every server process has one registry (`Service.registry`), served by `/metrics`: the
runtime registers `ServerMetrics` on it, and a service adds its own series there by
passing `registry=` to the metric types re-exported here (so services depend on the
runtime for metrics, not on prometheus_client directly). Label values must come from a
small fixed set (methods, codes, env ids, routes), never from client ids or seeds.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from wsgiref.simple_server import WSGIServer

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server

__all__ = [
    "CollectorRegistry",
    "Counter",
    "Gauge",
    "Histogram",
    "HttpMetrics",
    "MetricsEndpoint",
    "ServerMetrics",
]

_LATENCY_BUCKETS = (
    0.0005,
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1,
    2.5,
    5,
    10,
    30,
    60,
    300,
)


@dataclass
class ServerMetrics:
    """One registry per server process, so tests and embedded servers never collide."""

    registry: CollectorRegistry = field(default_factory=CollectorRegistry)

    def __post_init__(self) -> None:
        self.requests = Counter(
            "gantry_grpc_requests",
            "Completed RPCs by method and status code",
            ["service", "method", "code"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "gantry_grpc_request_seconds",
            "RPC latency by method, from handler start to the last message",
            ["service", "method"],
            buckets=_LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.in_flight = Gauge(
            "gantry_grpc_in_flight",
            "RPCs being handled now",
            ["service", "method"],
            registry=self.registry,
        )
        self.ready = Gauge(
            "gantry_service_ready",
            "1 once models/backends are loaded and health reports SERVING",
            registry=self.registry,
        )


class HttpMetrics:
    """Requests and latency of an HTTP front (e.g. rollout's OpenAI-compatible API).

    `route` is the route's template (`/v1/models/{model}`), never the raw path, so
    unknown paths share one value and the series stay bounded.
    """

    def __init__(self, registry: CollectorRegistry) -> None:
        self.requests = Counter(
            "gantry_http_requests",
            "Completed HTTP requests by route template and status code",
            ["route", "code"],
            registry=registry,
        )
        self.latency = Histogram(
            "gantry_http_request_seconds",
            "HTTP request latency by route template, until the last byte of the response",
            ["route"],
            buckets=_LATENCY_BUCKETS,
            registry=registry,
        )

    def observe(self, route: str, code: int, seconds: float) -> None:
        self.requests.labels(route, str(code)).inc()
        self.latency.labels(route).observe(seconds)


class MetricsEndpoint:
    """The HTTP `/metrics` endpoint, stoppable so shutdown leaves no thread behind."""

    def __init__(self, metrics: ServerMetrics, host: str, port: int) -> None:
        self._server: WSGIServer
        self._thread: threading.Thread
        self._server, self._thread = start_http_server(port, addr=host, registry=metrics.registry)

    @property
    def port(self) -> int:
        return int(self._server.server_port)

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)
