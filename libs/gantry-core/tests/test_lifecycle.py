"""Health transitions, SIGTERM drain, and metrics, on in-process and real servers."""

from __future__ import annotations

import asyncio
import contextlib
import signal
import threading
import time
import urllib.request
from collections.abc import Iterator

import grpc
import pytest
from google.protobuf import wrappers_pb2
from grpc_health.v1 import health_pb2, health_pb2_grpc

from gantry.core import preload
from gantry.core.client import aio_channel, sync_channel
from gantry.core.ports import free_port
from gantry.core.server import RunningServer, start_server
from gantry.core.testing.probe import TEST_TOKEN as TOKEN
from gantry.core.testing.probe import ProbeService, ProbeSettings, probe_method
from gantry.core.testing.process import spawn_service

SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING


async def _health(target: str) -> int:
    async with grpc.aio.insecure_channel(target) as ch:
        reply = await health_pb2_grpc.HealthStub(ch).Check(
            health_pb2.HealthCheckRequest(), timeout=1
        )
    return int(reply.status)


async def test_health_serving_only_after_start_then_not_serving_on_stop() -> None:
    port = free_port()
    settings = ProbeSettings(
        host="127.0.0.1", port=port, metrics_port=0, auth_token=TOKEN, start_delay_s=0.5
    )
    service = ProbeService(settings)
    starting = asyncio.create_task(start_server(service))
    target = f"127.0.0.1:{port}"
    seen: list[int] = []
    while not starting.done():
        with contextlib.suppress(grpc.aio.AioRpcError):  # not bound yet
            seen.append(await _health(target))
        await asyncio.sleep(0.05)
    running = await starting
    assert NOT_SERVING in seen, "health must not report SERVING while the service loads"
    assert SERVING not in seen
    assert service.started
    assert await _health(target) == SERVING
    await running.set_serving(False)
    assert await _health(target) == NOT_SERVING
    await running.stop(grace_s=0)
    assert service.stopped


async def test_drain_lets_in_flight_calls_finish(probe: RunningServer) -> None:
    async with aio_channel(f"127.0.0.1:{probe.port}", token=TOKEN) as ch:
        slow = asyncio.ensure_future(
            probe_method(ch, "Sleep")(wrappers_pb2.StringValue(value="0.5"))
        )
        await asyncio.sleep(0.1)
        await probe.stop(grace_s=5)
        reply = await slow
    assert reply.value == "slept 0.5"


async def test_metrics_count_calls_by_method_and_code(probe: RunningServer) -> None:
    async with aio_channel(f"127.0.0.1:{probe.port}", token=TOKEN) as ch:
        for _ in range(3):
            await probe_method(ch, "Echo")(wrappers_pb2.StringValue(value="x"))
        with pytest.raises(grpc.aio.AioRpcError):
            await probe_method(ch, "Fail")(wrappers_pb2.StringValue(value="invalid"))
    registry = probe.metrics.registry
    labels = {"service": "gantry.testing.v1.ProbeService", "method": "Echo", "code": "OK"}
    assert registry.get_sample_value("gantry_grpc_requests_total", labels) == 3
    labels = {**labels, "method": "Fail", "code": "INVALID_ARGUMENT"}
    assert registry.get_sample_value("gantry_grpc_requests_total", labels) == 1
    count = registry.get_sample_value(
        "gantry_grpc_request_seconds_count",
        {"service": "gantry.testing.v1.ProbeService", "method": "Echo"},
    )
    assert count == 3
    in_flight = registry.get_sample_value(
        "gantry_grpc_in_flight", {"service": "gantry.testing.v1.ProbeService", "method": "Echo"}
    )
    assert in_flight == 0
    assert registry.get_sample_value("gantry_service_ready") == 1


async def test_in_flight_gauge_counts_running_calls(probe: RunningServer) -> None:
    labels = {"service": "gantry.testing.v1.ProbeService", "method": "Sleep"}
    async with aio_channel(f"127.0.0.1:{probe.port}", token=TOKEN) as ch:
        call = asyncio.ensure_future(
            probe_method(ch, "Sleep")(wrappers_pb2.StringValue(value="0.3"))
        )
        await asyncio.sleep(0.1)
        assert probe.metrics.registry.get_sample_value("gantry_grpc_in_flight", labels) == 1
        await call
    assert probe.metrics.registry.get_sample_value("gantry_grpc_in_flight", labels) == 0


async def test_client_retries_unavailable(channel: grpc.aio.Channel) -> None:
    reply = await probe_method(channel, "Flaky")(wrappers_pb2.StringValue(value="3"))
    assert reply.value == "ok after 3"


async def test_client_without_retries_sees_unavailable(probe: RunningServer) -> None:
    async with aio_channel(f"127.0.0.1:{probe.port}", token=TOKEN, retry=None) as ch:
        with pytest.raises(grpc.aio.AioRpcError) as info:
            await probe_method(ch, "Flaky")(wrappers_pb2.StringValue(value="3"))
    assert info.value.code() == grpc.StatusCode.UNAVAILABLE


async def test_client_default_deadline(probe: RunningServer) -> None:
    async with aio_channel(f"127.0.0.1:{probe.port}", token=TOKEN, default_timeout_s=0.2) as ch:
        with pytest.raises(grpc.aio.AioRpcError) as info:
            await probe_method(ch, "Sleep")(wrappers_pb2.StringValue(value="2"))
    assert info.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED


async def test_message_size_limit_is_enforced() -> None:
    settings = ProbeSettings(
        host="127.0.0.1", port=0, metrics_port=0, auth_token=TOKEN, max_message_bytes=4 * 2**20
    )
    running = await start_server(ProbeService(settings))
    try:
        async with aio_channel(f"127.0.0.1:{running.port}", token=TOKEN) as ch:
            big = wrappers_pb2.StringValue(value="x" * (5 * 2**20))
            with pytest.raises(grpc.aio.AioRpcError) as info:
                await probe_method(ch, "Echo")(big)
        assert info.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    finally:
        await running.stop(grace_s=0)


@pytest.fixture
def probe_process() -> Iterator[tuple[preload.Child, int, int]]:
    metrics_port = free_port()
    env = {"GANTRY_PROBE_METRICS_PORT": str(metrics_port), "GANTRY_PROBE_GRACE_PERIOD_S": "10"}
    with spawn_service("gantry.core.testing.probe", "probe", token=TOKEN, env=env) as service:
        port = int(service.target.rsplit(":", 1)[1])
        yield service.process, port, metrics_port


def test_sigterm_drains_in_flight_call_then_exits_zero(
    probe_process: tuple[preload.Child, int, int],
) -> None:
    proc, port, _ = probe_process
    with sync_channel(f"127.0.0.1:{port}", token=TOKEN, retry=None) as ch:
        sleep = ch.unary_unary(
            "/gantry.testing.v1.ProbeService/Sleep",
            request_serializer=wrappers_pb2.StringValue.SerializeToString,
            response_deserializer=wrappers_pb2.StringValue.FromString,
        )
        future = sleep.future(wrappers_pb2.StringValue(value="1.0"))
        time.sleep(0.3)
        proc.send_signal(signal.SIGTERM)
        assert future.result(timeout=10).value == "slept 1.0"
        with pytest.raises(grpc.RpcError):  # new calls are refused while draining/stopped
            sleep(wrappers_pb2.StringValue(value="0"), timeout=2)
    assert proc.wait(timeout=15) == 0


def test_metrics_endpoint_serves_prometheus_text(
    probe_process: tuple[preload.Child, int, int],
) -> None:
    _, port, metrics_port = probe_process
    with sync_channel(f"127.0.0.1:{port}", token=TOKEN) as ch:
        echo = ch.unary_unary(
            "/gantry.testing.v1.ProbeService/Echo",
            request_serializer=wrappers_pb2.StringValue.SerializeToString,
            response_deserializer=wrappers_pb2.StringValue.FromString,
        )
        assert echo(wrappers_pb2.StringValue(value="hi")).value == "hi"
    with urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}/metrics", timeout=5) as resp:
        body = resp.read().decode()
    assert 'gantry_grpc_requests_total{code="OK",method="Echo"' in body
    assert "gantry_service_ready 1.0" in body


def test_a_quiet_stream_fails_when_its_server_dies(
    probe_process: tuple[preload.Child, int, int],
) -> None:
    """A server-streaming call that has had no message yet, on a channel with the default
    retry policy, must end with UNAVAILABLE when the server process is killed: gRPC keeps
    an uncommitted call pending forever otherwise (seen as a training loop hung on a dead
    trainer's StreamRunMetrics)."""
    proc, port, _ = probe_process
    with sync_channel(f"127.0.0.1:{port}", token=TOKEN, default_timeout_s=None) as ch:
        quiet = ch.unary_stream(
            "/gantry.testing.v1.ProbeService/QuietStream",
            request_serializer=wrappers_pb2.StringValue.SerializeToString,
            response_deserializer=wrappers_pb2.StringValue.FromString,
        )
        stream = quiet(wrappers_pb2.StringValue(value="600"))
        outcome: list[grpc.StatusCode] = []

        def drain() -> None:
            try:
                for _ in stream:
                    pass
            except grpc.RpcError as exc:
                outcome.append(exc.code())

        reader = threading.Thread(target=drain, daemon=True)
        reader.start()
        time.sleep(0.5)  # the call is open on the server
        proc.kill()
        proc.wait(timeout=10)
        reader.join(timeout=15)
        stream.cancel()
    assert outcome == [grpc.StatusCode.UNAVAILABLE]
