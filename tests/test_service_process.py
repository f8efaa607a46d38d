"""A real service process, called the way users call it: stubs, reflection, grpcurl-style."""

from __future__ import annotations

import signal
from collections.abc import Iterator

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from gantry.core import errors, preload
from gantry.core.client import sync_channel
from gantry.core.reflect import ReflectionClient
from gantry.core.testing.process import spawn_service
from gantry.proto.envfarm.v1 import envfarm_pb2, envfarm_pb2_grpc

TOKEN = "integration-token"


@pytest.fixture(scope="module")
def envfarm_process() -> Iterator[tuple[preload.Child, str]]:
    with spawn_service("gantry.envfarm", "envfarm", token=TOKEN) as service:
        yield service.process, service.target


def test_health_reports_serving_without_a_token(
    envfarm_process: tuple[preload.Child, str],
) -> None:
    _, target = envfarm_process
    with grpc.insecure_channel(target) as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        for service in ("", "gantry.envfarm.v1.EnvFarmService"):
            reply = stub.Check(health_pb2.HealthCheckRequest(service=service), timeout=5)
            assert reply.status == health_pb2.HealthCheckResponse.SERVING


def test_reflection_lists_and_describes_services(
    envfarm_process: tuple[preload.Child, str],
) -> None:
    _, target = envfarm_process
    with sync_channel(target, token=TOKEN) as channel:
        client = ReflectionClient(channel)
        services = client.services()
        assert "gantry.envfarm.v1.EnvFarmService" in services
        assert "google.longrunning.Operations" in services
        assert "grpc.health.v1.Health" in services
        methods = {m.name for m in client.service("gantry.envfarm.v1.EnvFarmService").methods}
        assert {"CreateSession", "Step", "StepBatch", "Solve", "CloseSession"} <= methods
        (reply,) = client.call(
            client.find_method("ListEnvironments"), '{"pageSize": 1, "idPrefix": "visgym/"}'
        )
        assert '"visgym/' in reply


def test_stub_call_with_and_without_token(
    envfarm_process: tuple[preload.Child, str],
) -> None:
    _, target = envfarm_process
    with sync_channel(target, token=TOKEN) as channel:
        stub = envfarm_pb2_grpc.EnvFarmServiceStub(channel)
        created = stub.CreateSession(envfarm_pb2.CreateSessionRequest(env_id="visgym/maze_2d"))
        assert created.observation.image.data[:4] == b"\x89PNG"
        with pytest.raises(grpc.RpcError) as info:
            stub.CreateSession(envfarm_pb2.CreateSessionRequest(env_id="visgym/unknown"))
        assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        error = errors.from_rpc_error(info.value)
        assert isinstance(error, errors.InvalidArgument) and error.violations[0].field == "env_id"
    with sync_channel(target, token=None, retry=None) as anonymous:
        with pytest.raises(grpc.RpcError) as info:
            envfarm_pb2_grpc.EnvFarmServiceStub(anonymous).ListEnvironments(
                envfarm_pb2.ListEnvironmentsRequest()
            )
        assert info.value.code() == grpc.StatusCode.UNAUTHENTICATED


def test_sigterm_stops_cleanly(envfarm_process: tuple[preload.Child, str]) -> None:
    proc, _ = envfarm_process
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=30) == 0
