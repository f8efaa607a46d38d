"""Default ports, in one place: services, `gantry up`, clients and the chart agree on them."""

from __future__ import annotations

import socket

# Stable gRPC ports, in the order the services appear in the architecture.
DEFAULT_PORTS = {
    "rollout": 50051,
    "trainer": 50052,
    "envfarm": 50053,
    "pruner": 50054,
    "verifier": 50055,
    "retrieval": 50056,
    "video": 50057,
    "vla": 50058,
}
METRICS_PORT = 9090  # Prometheus /metrics, in its own port beside gRPC


def default_target(service: str, host: str = "127.0.0.1") -> str:
    return f"{host}:{DEFAULT_PORTS[service]}"


def free_port(host: str = "127.0.0.1") -> int:
    """A port nothing listens on right now (the OS picks it; another process may take it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])
