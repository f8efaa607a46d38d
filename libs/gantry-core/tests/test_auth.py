"""Bearer-token auth: refused without a valid token, health stays public."""

from __future__ import annotations

import grpc
import pytest
from google.protobuf import wrappers_pb2
from grpc_health.v1 import health_pb2, health_pb2_grpc
from pydantic import ValidationError

from gantry.core.client import aio_channel
from gantry.core.server import RunningServer, start_server
from gantry.core.testing.probe import TEST_TOKEN as TOKEN
from gantry.core.testing.probe import ProbeService, ProbeSettings, probe_method

PING = wrappers_pb2.StringValue(value="ping")


@pytest.mark.parametrize("token", [None, "wrong-token", ""])
async def test_call_without_valid_token_is_unauthenticated(
    probe: RunningServer, token: str | None
) -> None:
    async with aio_channel(f"127.0.0.1:{probe.port}", token=token, retry=None) as ch:
        with pytest.raises(grpc.aio.AioRpcError) as info:
            await probe_method(ch, "Echo")(PING)
    assert info.value.code() == grpc.StatusCode.UNAUTHENTICATED


async def test_malformed_authorization_header(probe: RunningServer) -> None:
    async with grpc.aio.insecure_channel(f"127.0.0.1:{probe.port}") as ch:
        with pytest.raises(grpc.aio.AioRpcError) as info:
            await probe_method(ch, "Echo")(PING, metadata=(("authorization", f"Basic {TOKEN}"),))
    assert info.value.code() == grpc.StatusCode.UNAUTHENTICATED
    assert "Bearer" in (info.value.details() or "")


async def test_valid_token_is_accepted(channel: grpc.aio.Channel) -> None:
    reply = await probe_method(channel, "Echo")(PING)
    assert reply.value == "ping"


async def test_health_is_public(probe: RunningServer) -> None:
    async with grpc.aio.insecure_channel(f"127.0.0.1:{probe.port}") as ch:
        reply = await health_pb2_grpc.HealthStub(ch).Check(health_pb2.HealthCheckRequest())
    assert reply.status == health_pb2.HealthCheckResponse.SERVING


async def test_reflection_requires_the_token(probe: RunningServer) -> None:
    from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

    async with grpc.aio.insecure_channel(f"127.0.0.1:{probe.port}") as ch:
        stub = reflection_pb2_grpc.ServerReflectionStub(ch)
        call = stub.ServerReflectionInfo(
            iter([reflection_pb2.ServerReflectionRequest(list_services="")])
        )
        with pytest.raises(grpc.aio.AioRpcError) as info:
            async for _ in call:
                pass
    assert info.value.code() == grpc.StatusCode.UNAUTHENTICATED


async def test_auth_disabled_accepts_anonymous_calls() -> None:
    settings = ProbeSettings(host="127.0.0.1", port=0, metrics_port=0, auth_disabled=True)
    running = await start_server(ProbeService(settings))
    try:
        async with aio_channel(f"127.0.0.1:{running.port}") as ch:
            assert (await probe_method(ch, "Echo")(PING)).value == "ping"
    finally:
        await running.stop(grace_s=0)


def test_settings_refuse_to_start_without_auth_config(monkeypatch: pytest.MonkeyPatch) -> None:
    for var in ("AUTH_TOKEN", "AUTH_TOKEN_FILE", "AUTH_DISABLED"):
        monkeypatch.delenv(f"GANTRY_PROBE_{var}", raising=False)
    with pytest.raises(ValidationError, match="GANTRY_PROBE_AUTH_TOKEN"):
        ProbeSettings()


def test_token_file_is_read(tmp_path: object, monkeypatch: pytest.MonkeyPatch) -> None:
    from pathlib import Path

    secret = Path(str(tmp_path)) / "token"
    secret.write_text("from-a-secret\n")
    monkeypatch.setenv("GANTRY_PROBE_AUTH_TOKEN_FILE", str(secret))
    assert ProbeSettings().resolved_token() == "from-a-secret"
