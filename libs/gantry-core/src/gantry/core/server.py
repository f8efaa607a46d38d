"""`serve()`: the one way every Gantry service starts, runs and stops.

A service is a `Service` subclass: it adds its servicers to the server, loads its
models in `start()` (health turns SERVING only after that), and releases them in
`stop()`. `serve()` provides the rest: the grpc.aio server with message-size limits,
connection ageing and back-pressure, the runtime interceptor (auth, metrics, logs,
errors), health, reflection, the Operations API, `/metrics`, and a graceful drain on
SIGTERM.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import logging
import signal
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, ClassVar, Generic, Protocol, TypeVar

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_health.v1._async import HealthServicer
from grpc_reflection.v1alpha import reflection

from gantry.core.auth import BearerAuth
from gantry.core.inference import InferenceModel, add_inference_service
from gantry.core.interceptor import CallGate, RuntimeInterceptor
from gantry.core.logs import configure_logging
from gantry.core.metrics import CollectorRegistry, MetricsEndpoint, ServerMetrics
from gantry.core.operations import OperationStore, add_operations_service
from gantry.core.settings import ServiceSettings
from gantry.core.storage import write_atomically
from gantry.core.telemetry import configure_tracing, shutdown_tracing

log = logging.getLogger("gantry.server")

HEALTH_SERVICE = "grpc.health.v1.Health"
SettingsT = TypeVar("SettingsT", bound=ServiceSettings)
R = TypeVar("R")


class _Health(HealthServicer):  # type: ignore[misc]
    """grpcio's asyncio health servicer, plus `List` (its base raises NotImplementedError)."""

    async def List(
        self, request: health_pb2.HealthListRequest, context: Any
    ) -> health_pb2.HealthListResponse:
        reply = health_pb2.HealthListResponse()
        for name, status in dict(self._server_status).items():
            reply.statuses[name].status = status
        return reply


class Runtime(Protocol):
    """What a servicer needs from the process it runs in, and nothing more.

    Servicers take this (plus their own typed collaborators) instead of the whole
    `Service`, so each one's dependencies are visible in its constructor and checked by
    mypy; `Service` satisfies it.
    """

    @property
    def draining(self) -> asyncio.Event: ...

    async def run_blocking(self, fn: Callable[..., R], *args: Any) -> R: ...


class Service(ABC, Generic[SettingsT]):
    """One Gantry service. Subclasses set `name` and `settings_type`."""

    name: ClassVar[str]
    settings_type: ClassVar[type[ServiceSettings]]

    def __init__(self, settings: SettingsT) -> None:
        self.settings = settings
        self.operations = OperationStore(prefix=f"{self.name}/operations")
        # Ready after start(), draining from SIGTERM: new calls are refused with
        # UNAVAILABLE + RetryInfo outside that window. Long calls watch `draining` to
        # checkpoint or finish early instead of being cut at the grace period.
        self.gate = CallGate()
        # What `/metrics` serves: the runtime's series, plus any the service registers
        # here (gantry.core.metrics).
        self.registry = CollectorRegistry()
        self._executor = ThreadPoolExecutor(
            max_workers=settings.executor_workers, thread_name_prefix=f"{self.name}-work"
        )

    @abstractmethod
    def add_to_server(self, server: grpc.aio.Server) -> Sequence[str]:
        """Register servicers; return their full service names (for health and reflection)."""

    def inference_models(self) -> Sequence[InferenceModel]:
        """Models to offer over KServe's Open Inference Protocol (gantry.core.inference) on
        the same port; none by default, and then no `inference.GRPCInferenceService`."""
        return ()

    @classmethod
    @abstractmethod
    def demo_call(cls, channel: grpc.Channel) -> str:
        """Make one real call to a running instance; summarise the answer in a line.

        `gantry smoke` and `gantry status --probe` use it to show the service is live.
        """

    async def start(self) -> None:
        """Load models/backends. Health reports SERVING only after this returns."""

    async def stop(self) -> None:
        """Release what `start()` acquired, after in-flight calls have drained."""

    async def drain(self) -> None:
        """On SIGTERM, before calls are refused: wind down state that outlives one call
        (envfarm's sessions). Health is NOT_SERVING already; calls are still served."""

    @property
    def draining(self) -> asyncio.Event:
        return self.gate.draining

    async def run_blocking(self, fn: Callable[..., R], *args: Any) -> R:
        """Run model/tensor work on the service's executor, never on the event loop."""
        # In the caller's context: its RPC span (trace) and request id follow the work.
        context = contextvars.copy_context()
        return await asyncio.get_running_loop().run_in_executor(
            self._executor, context.run, fn, *args
        )

    def close_executor(self) -> None:
        self._executor.shutdown(wait=True, cancel_futures=True)


LONG_CALL_GRACE_MS = 6 * 3600 * 1000


def server_options(settings: ServiceSettings) -> list[tuple[str, Any]]:
    options: list[tuple[str, Any]] = [
        ("grpc.max_send_message_length", settings.max_message_bytes),
        ("grpc.max_receive_message_length", settings.max_message_bytes),
        ("grpc.so_reuseport", 0),
        # Clients ping every 30 s during long calls (client.py); accept that instead of
        # answering GOAWAY "too_many_pings" after the default 5-minute minimum.
        ("grpc.http2.min_recv_ping_interval_without_data_ms", 20_000),
        # A busy server may see client pings slightly early; never GOAWAY a long call
        # with "too_many_pings" for that (seen cutting hour-long episode calls).
        ("grpc.http2.max_ping_strikes", 0),
    ]
    if settings.max_connection_idle_s is not None:
        options.append(("grpc.max_connection_idle_ms", int(settings.max_connection_idle_s * 1000)))
    if settings.max_connection_age_s is not None:
        options += [
            ("grpc.max_connection_age_ms", int(settings.max_connection_age_s * 1000)),
            # Aged connections stop taking new calls, but calls in flight (an hour of
            # episodes, a training run's metrics stream) are not cut off.
            ("grpc.max_connection_age_grace_ms", LONG_CALL_GRACE_MS),
        ]
    return options


class RunningServer:
    """A started server: its port, health switch and orderly shutdown."""

    def __init__(
        self,
        service: Service[Any],
        server: grpc.aio.Server,
        port: int,
        health: _Health,
        service_names: Sequence[str],
        metrics: ServerMetrics,
        endpoint: MetricsEndpoint | None,
    ) -> None:
        self.service = service
        self.server = server
        self.port = port
        self.health = health
        self.service_names = list(service_names)
        self.metrics = metrics
        self.metrics_endpoint = endpoint
        self._stopped = False

    async def set_serving(self, serving: bool) -> None:
        status = (
            health_pb2.HealthCheckResponse.SERVING
            if serving
            else health_pb2.HealthCheckResponse.NOT_SERVING
        )
        for name in ["", *self.service_names]:
            await self.health.set(name, status)
        self.metrics.ready.set(1 if serving else 0)

    async def stop(self, grace_s: float | None = None) -> None:
        """Drain: NOT_SERVING first (load balancers stop routing), then stop with grace."""
        if self._stopped:
            return
        self._stopped = True
        grace = self.service.settings.grace_period_s if grace_s is None else grace_s
        await self.set_serving(False)
        if grace_s is None:  # a real shutdown, not a test's teardown
            await self.service.drain()
        log.info("draining for up to %.1fs", grace)
        self.service.gate.draining.set()
        await self.server.stop(grace)
        await self.service.operations.close()
        await self.service.stop()
        self.service.close_executor()
        if self.metrics_endpoint is not None:
            self.metrics_endpoint.close()
        log.info("stopped")


async def start_server(service: Service[Any]) -> RunningServer:
    """Build, bind and start the server, then load the service; return once SERVING."""
    settings = service.settings
    token = settings.resolved_token()
    auth = BearerAuth(token) if token is not None else None
    if auth is None:
        log.warning("authentication is DISABLED (auth_disabled=true): local development only")
    metrics = ServerMetrics(service.registry)
    server = grpc.aio.server(
        interceptors=[RuntimeInterceptor(metrics, auth, service.gate)],
        options=server_options(settings),
        maximum_concurrent_rpcs=settings.max_concurrent_rpcs,
    )
    names = list(service.add_to_server(server))
    if models := service.inference_models():
        names.append(add_inference_service(server, models, service.gate))
    names.append(add_operations_service(server, service.operations))
    health = _Health()
    health_pb2_grpc.add_HealthServicer_to_server(health, server)
    reflection.enable_server_reflection([*names, HEALTH_SERVICE, reflection.SERVICE_NAME], server)
    address = f"{settings.host}:{settings.port}"
    credentials = settings.server_credentials()
    port = (
        server.add_secure_port(address, credentials)
        if credentials is not None
        else server.add_insecure_port(address)
    )
    if port == 0:
        raise OSError(f"could not bind {settings.host}:{settings.port}")
    endpoint = (
        MetricsEndpoint(metrics, settings.host, settings.metrics_port)
        if settings.metrics_port
        else None
    )
    running = RunningServer(service, server, port, health, names, metrics, endpoint)
    await running.set_serving(False)
    await server.start()
    log.info(
        "listening on %s:%d (metrics on %s)",
        settings.host,
        port,
        endpoint.port if endpoint else "off",
        extra={"port": port},
    )
    try:
        await service.start()
    except BaseException:
        await running.stop(grace_s=0)
        raise
    service.gate.ready.set()
    await running.set_serving(True)
    if settings.port_file is not None:
        write_atomically(settings.port_file, f"{port}\n")
    log.info("%s is SERVING", service.name)
    return running


async def serve_async(service: Service[Any]) -> None:
    """Serve until SIGTERM/SIGINT, then drain and return."""
    running = await start_server(service)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    try:
        await stop.wait()
        log.info("shutdown signal received")
    finally:
        for sig in (signal.SIGTERM, signal.SIGINT):
            with contextlib.suppress(Exception):
                loop.remove_signal_handler(sig)
        await running.stop()


def serve(service_type: type[Service[Any]], settings: ServiceSettings | None = None) -> None:
    """Entry point used by `gantry serve <name>` and `python -m gantry.<name>`."""
    settings = settings or service_type.settings_type()
    configure_logging(service_type.name, level=settings.log_level, json_format=settings.log_json)
    tracing = configure_tracing(service_type.name, endpoint=settings.otlp_endpoint)
    try:
        asyncio.run(serve_async(service_type(settings)))
    finally:
        shutdown_tracing(tracing)  # after the drain: the last calls' spans are exported
