"""envfarm's session series, read through the real `/metrics` endpoint of a real server."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from typing import Any

import grpc
import pytest

from gantry.core.client import sync_channel
from gantry.core.metrics import CollectorRegistry
from gantry.core.ports import free_port
from gantry.core.server import RunningServer
from gantry.core.testing.scrape import read_registry, scrape
from gantry.core.testing.threaded import serve_in_thread
from gantry.envfarm.envs import make
from gantry.envfarm.service import EnvFarmService
from gantry.envfarm.sessions import SessionManager, SessionMetrics
from gantry.envfarm.settings import EnvFarmSettings
from gantry.proto.envfarm.v1 import envfarm_pb2, envfarm_pb2_grpc

TOKEN = "envfarm-metrics-token"
MAZE, COLOR = "maze_2d", "colorization"  # label values: the registry's ids
LIVE, OPENED = "gantry_envfarm_sessions", "gantry_envfarm_sessions_opened_total"
CLOSED, STEPS = "gantry_envfarm_sessions_closed_total", "gantry_envfarm_steps_total"


def _settings(**overrides: Any) -> EnvFarmSettings:
    base: dict[str, Any] = {
        "host": "127.0.0.1",
        "port": 0,
        "metrics_port": free_port(),
        "auth_token": TOKEN,
        "log_json": False,
    }
    return EnvFarmSettings(**{**base, **overrides})


@pytest.fixture
def served() -> Iterator[tuple[RunningServer, envfarm_pb2_grpc.EnvFarmServiceStub]]:
    with (
        serve_in_thread(EnvFarmService(_settings())) as running,
        sync_channel(f"127.0.0.1:{running.port}", token=TOKEN, retry=None) as channel,
    ):
        yield running, envfarm_pb2_grpc.EnvFarmServiceStub(channel)


def _open(stub: envfarm_pb2_grpc.EnvFarmServiceStub, env_id: str) -> str:
    request = envfarm_pb2.CreateSessionRequest(env_id=f"visgym/{env_id}", seed=1)
    return str(stub.CreateSession(request).session.id)


def test_sessions_gauge_counters_and_steps_follow_the_calls(
    served: tuple[RunningServer, envfarm_pb2_grpc.EnvFarmServiceStub],
) -> None:
    running, stub = served
    before = scrape(running)
    assert before.total(LIVE) == 0 and before.total(OPENED) == 0

    mazes = [_open(stub, MAZE) for _ in range(3)]
    color = _open(stub, COLOR)
    after_open = scrape(running)
    assert after_open.value(LIVE, env_id=MAZE) == 3
    assert after_open.value(LIVE, env_id=COLOR) == 1
    assert after_open.value(OPENED, env_id=MAZE) == 3
    assert after_open.total(OPENED) == 4

    for _ in range(2):  # invalid actions are still steps (feedback, step index + 1)
        stub.Step(envfarm_pb2.StepRequest(session_id=mazes[0], action="wait"))
    batch = [envfarm_pb2.StepBatchItem(session_id=s, action="wait") for s in (mazes[1], color)]
    batch.append(envfarm_pb2.StepBatchItem(session_id="f" * 32, action="wait"))  # not found
    stub.StepBatch(envfarm_pb2.StepBatchRequest(items=batch))
    with pytest.raises(grpc.RpcError):  # a refused step is not counted
        stub.Step(envfarm_pb2.StepRequest(session_id=mazes[0], action="x" * 100_000))
    stepped = scrape(running)
    assert stepped.value(STEPS, env_id=MAZE) == 3
    assert stepped.value(STEPS, env_id=COLOR) == 1

    stub.CloseSession(envfarm_pb2.CloseSessionRequest(session_id=mazes[2]))
    closed = scrape(running)
    assert closed.value(LIVE, env_id=MAZE) == 2
    assert closed.value(CLOSED, reason="client") == 1
    assert closed.total(CLOSED) == 1
    assert closed.total(OPENED) == 4, "counters never go down"
    # Bounded labels: environment ids and reasons only, never session ids.
    for labels in closed.labels(LIVE) + closed.labels(STEPS) + closed.labels(OPENED):
        assert set(labels) == {"env_id"} and labels["env_id"] in {MAZE, COLOR}
    assert all(set(labels) == {"reason"} for labels in closed.labels(CLOSED))
    assert mazes[0] not in closed.text


def test_reaped_sessions_are_counted_by_reason() -> None:
    service = EnvFarmService(_settings(session_idle_timeout_s=0.3, reap_interval_s=0.1))
    with (
        serve_in_thread(service) as running,
        sync_channel(f"127.0.0.1:{running.port}", token=TOKEN, retry=None) as channel,
    ):
        stub = envfarm_pb2_grpc.EnvFarmServiceStub(channel)
        for _ in range(2):
            _open(stub, MAZE)
        assert scrape(running).value(LIVE, env_id=MAZE) == 2
        deadline = time.monotonic() + 5
        now = scrape(running)
        while now.value(LIVE, env_id=MAZE) and time.monotonic() < deadline:
            time.sleep(0.1)
            now = scrape(running)
        assert now.value(LIVE, env_id=MAZE) == 0
        assert now.value(CLOSED, reason="idle_timeout") == 2
        assert now.value(OPENED, env_id=MAZE) == 2


def test_lifetime_and_shutdown_reasons() -> None:
    registry = CollectorRegistry()
    manager = SessionManager(
        max_sessions=4, idle_timeout_s=60, lifetime_s=60, metrics=SessionMetrics(registry)
    )
    old = manager.add(MAZE, make(MAZE, "easy"), 0, None, None)
    manager.add(MAZE, make(MAZE, "easy"), 1, None, None)
    old.started -= 61  # past the hard lifetime, though not idle
    assert manager.reap() == [old.id]
    asyncio.run(manager.stop())
    read = read_registry(registry)
    assert read.value(CLOSED, reason="lifetime_exceeded") == 1
    assert read.value(CLOSED, reason="server_stopping") == 1
    assert read.value(LIVE, env_id=MAZE) == 0
