from __future__ import annotations

from collections.abc import AsyncIterator

import grpc
import pytest

from gantry.core.client import aio_channel
from gantry.core.server import RunningServer, start_server
from gantry.core.testing.probe import TEST_TOKEN as TOKEN
from gantry.core.testing.probe import ProbeService, ProbeSettings


@pytest.fixture
async def probe() -> AsyncIterator[RunningServer]:
    settings = ProbeSettings(
        host="127.0.0.1", port=0, metrics_port=0, auth_token=TOKEN, log_json=False
    )
    running = await start_server(ProbeService(settings))
    yield running
    await running.stop(grace_s=0)


@pytest.fixture
async def channel(probe: RunningServer) -> AsyncIterator[grpc.aio.Channel]:
    async with aio_channel(f"127.0.0.1:{probe.port}", token=TOKEN) as ch:
        yield ch
