"""Graceful long calls on SIGTERM (issue 13, defect 8).

`RunningServer.stop()` is what the SIGTERM handler runs: it sets `service.draining`,
then waits up to the grace period for calls in flight. GenerateStream, StreamEpisodes
and RunEpisodes must stop taking new work, deliver what finished and end with
UNAVAILABLE + RetryInfo well before the grace period cuts them.
"""

from __future__ import annotations

import asyncio
import threading
import time
from pathlib import Path
from typing import Any

import grpc

from gantry.core import errors
from gantry.core.client import sync_channel
from gantry.proto.common.v1 import episode_pb2, sampling_pb2
from gantry.proto.rollout.v1 import rollout_pb2, rollout_pb2_grpc
from gantry.rollout.service import RolloutService
from gantry.rollout.settings import RolloutSettings

from .helpers import TOKEN, common_settings, serve_with_loop

GRACE_S = 30.0


class _Call(threading.Thread):
    """Runs one call on its own thread, recording messages, the final error and when."""

    def __init__(self, fn: Any) -> None:
        super().__init__(daemon=True)
        self.fn = fn
        self.messages: list[Any] = []
        self.error: errors.GantryError | None = None
        self.ended = 0.0

    def run(self) -> None:
        try:
            for message in self.fn():
                self.messages.append(message)
        except grpc.RpcError as exc:
            self.error = errors.from_rpc_error(exc)
        self.ended = time.monotonic()


def test_long_calls_end_with_unavailable_and_retry_info_on_sigterm(
    tmp_path: Path, envfarm_target: str
) -> None:
    settings = RolloutSettings(
        **common_settings(tmp_path), envfarm_target=envfarm_target, torch_threads=1
    )
    service = RolloutService(settings)
    # No client-side retries: the test looks at the status the server sends (a real
    # client would retry the UNAVAILABLE on another replica).
    with (
        serve_with_loop(service) as (running, loop),
        sync_channel(f"127.0.0.1:{running.port}", token=TOKEN, retry=None) as channel,
    ):
        stub = rollout_pb2_grpc.RolloutServiceStub(channel)
        text = episode_pb2.EpisodeSettings(observation_mode=episode_pb2.OBSERVATION_MODE_TEXT)
        quick = rollout_pb2.EpisodeSpec(
            env_id="visgym/maze_2d",
            seeds=[0, 1, 2],
            settings=text,
            max_turns=1,
            concurrency=2,
            sampling=sampling_pb2.SamplingParams(max_tokens=4),
        )
        slow = rollout_pb2.EpisodeSpec(
            env_id="visgym/maze_2d",
            seeds=list(range(40)),
            settings=text,
            max_turns=50,
            sampling=sampling_pb2.SamplingParams(max_tokens=64),
        )
        stream = rollout_pb2.GenerateStreamRequest(
            input=rollout_pb2.GenerationInput(
                prompts=[rollout_pb2.Prompt(text=f"story {i}") for i in range(4)],
                sampling=sampling_pb2.SamplingParams(max_tokens=2000, n=4),
            )
        )
        calls = {
            "GenerateStream": _Call(lambda: stub.GenerateStream(stream)),
            "StreamEpisodes": _Call(
                lambda: stub.StreamEpisodes(
                    rollout_pb2.StreamEpisodesRequest(spec=quick, continuous=True)
                )
            ),
            "RunEpisodes": _Call(
                lambda: [stub.RunEpisodes(rollout_pb2.RunEpisodesRequest(spec=slow))]
            ),
        }
        for call in calls.values():
            call.start()
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and not (
            calls["GenerateStream"].messages and calls["StreamEpisodes"].messages
        ):
            time.sleep(0.05)
        assert calls["GenerateStream"].messages and calls["StreamEpisodes"].messages
        sigterm = time.monotonic()
        stopped = asyncio.run_coroutine_threadsafe(running.stop(grace_s=GRACE_S), loop)
        for call in calls.values():
            call.join(timeout=GRACE_S)
        stopped.result(timeout=GRACE_S)
        drained_in = time.monotonic() - sigterm
    for name, call in calls.items():
        assert isinstance(call.error, errors.Unavailable), (name, call.error)
        assert call.error.reason == "DRAINING", (name, call.error)
        assert call.error.retry_after_s == settings.drain_retry_after_s, name
        assert call.ended - sigterm < 10, f"{name} was cut at the grace period"
    # What finished before the drain was delivered, then the status.
    assert all(m.HasField("trajectory") for m in calls["StreamEpisodes"].messages)
    assert drained_in < GRACE_S / 2, f"the server took {drained_in:.1f}s to drain"
    assert service.generator is not None
