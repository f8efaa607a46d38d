"""The envfarm service through its real gRPC server and the generated stubs."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from typing import Any

import grpc
import numpy as np
import pytest

from gantry.core import errors
from gantry.core.client import sync_channel
from gantry.core.codecs import image_to_array
from gantry.core.testing.threaded import serve_in_thread
from gantry.envfarm.client import RemoteEnv, RemoteVectorEnv
from gantry.envfarm.envs import env_ids, make
from gantry.envfarm.service import EnvFarmService
from gantry.envfarm.settings import EnvFarmSettings
from gantry.proto.common.v1 import chat_pb2, episode_pb2
from gantry.proto.envfarm.v1 import envfarm_pb2, envfarm_pb2_grpc

TOKEN = "envfarm-test-token"


def _settings(**overrides: Any) -> EnvFarmSettings:
    base: dict[str, Any] = {
        "host": "127.0.0.1",
        "port": 0,
        "metrics_port": 0,
        "auth_token": TOKEN,
        "log_json": False,
    }
    return EnvFarmSettings(**{**base, **overrides})


@pytest.fixture(scope="module")
def server() -> Iterator[tuple[EnvFarmService, str]]:
    service = EnvFarmService(_settings(max_sessions=700))
    with serve_in_thread(service) as running:
        yield service, f"127.0.0.1:{running.port}"


@pytest.fixture
def channel(server: tuple[EnvFarmService, str]) -> Iterator[grpc.Channel]:
    with sync_channel(server[1], token=TOKEN) as ch:
        yield ch


@pytest.fixture
def stub(channel: grpc.Channel) -> envfarm_pb2_grpc.EnvFarmServiceStub:
    return envfarm_pb2_grpc.EnvFarmServiceStub(channel)


def _code(fn: Any, request: Any) -> tuple[grpc.StatusCode, errors.GantryError]:
    with pytest.raises(grpc.RpcError) as info:
        fn(request)
    return info.value.code(), errors.from_rpc_error(info.value)


def test_list_environments_describes_every_env_and_pages(
    stub: envfarm_pb2_grpc.EnvFarmServiceStub,
) -> None:
    visual = envfarm_pb2.ENVIRONMENT_KIND_VISUAL  # terminal tasks are listed too (test_terminal)
    listed = stub.ListEnvironments(envfarm_pb2.ListEnvironmentsRequest(kind=visual))
    assert [e.id for e in listed.environments] == [f"visgym/{i}" for i in env_ids()]
    maze = next(e for e in listed.environments if e.id == "visgym/maze_2d")
    assert "('move'" in maze.action_grammar and maze.solver_strategies[0] == "bfs"
    assert [d.max_steps for d in maze.difficulties] == [20, 30]
    first = stub.ListEnvironments(envfarm_pb2.ListEnvironmentsRequest(kind=visual, page_size=1))
    assert len(first.environments) == 1
    if len(listed.environments) > 1:
        rest = stub.ListEnvironments(
            envfarm_pb2.ListEnvironmentsRequest(kind=visual, page_token=first.next_page_token)
        )
        assert [e.id for e in first.environments] + [e.id for e in rest.environments] == [
            e.id for e in listed.environments
        ]
    code, error = _code(stub.ListEnvironments, envfarm_pb2.ListEnvironmentsRequest(page_token="x"))
    assert code == grpc.StatusCode.INVALID_ARGUMENT and "page_token" in error.message


def test_list_environments_token_is_bound_to_its_filter(
    stub: envfarm_pb2_grpc.EnvFarmServiceStub,
) -> None:
    request = envfarm_pb2.ListEnvironmentsRequest
    mazes = [e.id for e in stub.ListEnvironments(request(id_prefix="visgym/maze")).environments]
    first = stub.ListEnvironments(request(id_prefix="visgym/maze", page_size=1))
    assert len(mazes) > 1 and first.next_page_token
    rest = stub.ListEnvironments(request(id_prefix="visgym/maze", page_token=first.next_page_token))
    assert [e.id for e in first.environments] + [e.id for e in rest.environments] == mazes
    for other in (
        request(id_prefix="visgym/", page_token=first.next_page_token),
        request(
            id_prefix="visgym/maze",
            kind=envfarm_pb2.ENVIRONMENT_KIND_VISUAL,
            page_token=first.next_page_token,
        ),
    ):
        code, error = _code(stub.ListEnvironments, other)
        assert code == grpc.StatusCode.INVALID_ARGUMENT, code
        assert isinstance(error, errors.InvalidArgument)
        assert [v.field for v in error.violations] == ["page_token"]


@pytest.mark.parametrize(
    ("request_", "field"),
    [
        (envfarm_pb2.CreateSessionRequest(env_id="visgym/nope"), "env_id"),
        (envfarm_pb2.CreateSessionRequest(), "env_id"),
        (envfarm_pb2.CreateSessionRequest(env_id="visgym/maze_2d", difficulty=7), "difficulty"),  # type: ignore[arg-type]
        (
            envfarm_pb2.CreateSessionRequest(
                env_id="visgym/maze_2d", settings=episode_pb2.EpisodeSettings(history_window=-1)
            ),
            "settings.history_window",
        ),
        (
            envfarm_pb2.CreateSessionRequest(
                env_id="visgym/maze_2d", settings=episode_pb2.EpisodeSettings(max_steps=0)
            ),
            "settings.max_steps",
        ),
        (
            envfarm_pb2.CreateSessionRequest(env_id="visgym/maze_2d", initial_state_json="{oops"),
            "initial_state_json",
        ),
        (
            envfarm_pb2.CreateSessionRequest(
                env_id="visgym/maze_2d", initial_state_json='{"a": 1}'
            ),
            "initial_state_json",
        ),
    ],
)
def test_malformed_create_session_names_the_field(
    stub: envfarm_pb2_grpc.EnvFarmServiceStub,
    request_: envfarm_pb2.CreateSessionRequest,
    field: str,
) -> None:
    code, error = _code(stub.CreateSession, request_)
    assert code == grpc.StatusCode.INVALID_ARGUMENT
    assert isinstance(error, errors.InvalidArgument)
    assert error.violations[0].field == field


def test_wrong_session_is_not_found(stub: envfarm_pb2_grpc.EnvFarmServiceStub) -> None:
    code, _ = _code(stub.Step, envfarm_pb2.StepRequest(session_id="missing", action="stop"))
    assert code == grpc.StatusCode.NOT_FOUND
    code, error = _code(stub.Step, envfarm_pb2.StepRequest(action="stop"))
    assert code == grpc.StatusCode.INVALID_ARGUMENT and "session_id" in error.message


def test_client_plays_maze_hard_to_reward_one_with_solve(channel: grpc.Channel) -> None:
    settings = episode_pb2.EpisodeSettings(
        observation_mode=episode_pb2.OBSERVATION_MODE_IMAGE_AND_TEXT, goal_image=True
    )
    with RemoteEnv(channel, "visgym/maze_2d", "hard", settings=settings, seed=11) as env:
        obs, _ = env.reset(seed=11)
        assert obs["image"].shape == (336, 336, 3) and "#" in obs["text"]
        plan = env.solve()
        reward, terminated = 0.0, False
        for action in plan:
            obs, reward, terminated, truncated, _ = env.step(action)
            assert not truncated
        assert terminated and reward == 1.0 and plan[-1] == "stop"
        # The goal image is the solver's final state: the agent on the goal.
        local = make("maze_2d", "hard")
        local.reset(seed=11)
        for action in plan[:-1]:
            local.step(action)
        assert env.goal_image is not None
        assert np.array_equal(env.goal_image, local.render_image())
        with pytest.raises(errors.FailedPrecondition):
            env.step("stop")  # the episode is over


def test_bad_action_is_feedback_and_counts(channel: grpc.Channel) -> None:
    with RemoteEnv(channel, "maze_2d", "easy", seed=2) as env:
        _, reward, terminated, _, info = env.step("__import__('os').system('id')")
        assert (reward, terminated, info["valid_action"], info["step"]) == (0.0, False, False, 1)
        assert info["env_feedback"].startswith("Invalid action")
        assert env.session.step_index == 0  # the local copy is from creation
        session = env.stub.GetSession(envfarm_pb2.GetSessionRequest(session_id=env.session_id))
        assert session.session.step_index == 1


def test_exported_state_replays_exactly(channel: grpc.Channel) -> None:
    with RemoteEnv(channel, "visgym/maze_2d", "easy", seed=5) as a:
        state = a.initial_state()
        first, _ = a.reset(seed=5)
    with RemoteEnv(channel, "visgym/maze_2d", "easy") as b:
        replay, _ = b.reset(options={"state": state})
        assert np.array_equal(first["image"], replay["image"])
    local = make("maze_2d", "easy")
    local.reset(seed=5)
    assert local.initial_state() == state


def test_step_batch_mixes_results_and_per_item_errors(
    channel: grpc.Channel, stub: envfarm_pb2_grpc.EnvFarmServiceStub
) -> None:
    with RemoteEnv(channel, "maze_2d", seed=1) as env:
        reply = stub.StepBatch(
            envfarm_pb2.StepBatchRequest(
                items=[
                    envfarm_pb2.StepBatchItem(session_id=env.session_id, action="('move', 'up')"),
                    envfarm_pb2.StepBatchItem(session_id="gone", action="stop"),
                ]
            )
        )
        assert reply.results[0].HasField("result")
        assert reply.results[1].error.code == grpc.StatusCode.NOT_FOUND.value[0]
        duplicate = envfarm_pb2.StepBatchRequest(
            items=[envfarm_pb2.StepBatchItem(session_id=env.session_id, action="stop")] * 2
        )
        code, error = _code(stub.StepBatch, duplicate)
        assert code == grpc.StatusCode.INVALID_ARGUMENT and "items[1].session_id" in error.message
    code, _ = _code(stub.StepBatch, envfarm_pb2.StepBatchRequest())
    assert code == grpc.StatusCode.INVALID_ARGUMENT


def test_solve_validates_strategy_and_detours(channel: grpc.Channel) -> None:
    with RemoteEnv(channel, "maze_2d", seed=3) as env:
        with pytest.raises(errors.InvalidArgument, match="strategy"):
            env.solve(strategy="teleport")
        with pytest.raises(errors.InvalidArgument, match="detour_count"):
            env.solve(detours=-1)
        longer = env.solve(strategy="right_hand", detours=2)
        assert longer[-1] == "stop" and len(longer) >= len(env.solve())


def test_export_demonstrations_streams_chat_conversations(
    stub: envfarm_pb2_grpc.EnvFarmServiceStub,
) -> None:
    request = envfarm_pb2.ExportDemonstrationsRequest(
        env_id="visgym/maze_2d",
        difficulty=episode_pb2.DIFFICULTY_EASY,
        seeds=[0, 1],
        settings=episode_pb2.EpisodeSettings(text_feedback=True),
    )
    demos = list(stub.ExportDemonstrations(request))
    assert [d.seed for d in demos] == [0, 1]
    for demo in demos:
        messages = demo.conversation.messages
        assert demo.final_reward == 1.0
        assert messages[0].role == chat_pb2.ROLE_SYSTEM
        assert (
            messages[-1].role == chat_pb2.ROLE_ASSISTANT and messages[-1].content[0].text == "stop"
        )
        user = messages[1]
        assert image_to_array(user.content[-1].image).shape == (336, 336, 3)
    bad = envfarm_pb2.ExportDemonstrationsRequest(
        env_id="visgym/maze_2d", seeds=[1], strategies=["x"]
    )
    with pytest.raises(grpc.RpcError) as info:
        list(stub.ExportDemonstrations(bad))
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "strategies[0]" in (info.value.details() or "")


def test_session_cap_and_idle_reaping() -> None:
    service = EnvFarmService(
        _settings(max_sessions=2, session_idle_timeout_s=0.4, reap_interval_s=0.1)
    )
    with (
        serve_in_thread(service) as running,
        sync_channel(f"127.0.0.1:{running.port}", token=TOKEN, retry=None) as ch,
    ):
        stub = envfarm_pb2_grpc.EnvFarmServiceStub(ch)
        make_one = envfarm_pb2.CreateSessionRequest(env_id="visgym/maze_2d")
        first = stub.CreateSession(make_one).session.id
        stub.CreateSession(make_one)
        code, error = _code(stub.CreateSession, make_one)
        assert code == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert isinstance(error, errors.ResourceExhausted) and error.retry_after_s is not None
        deadline = time.monotonic() + 5
        while len(service.sessions) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert len(service.sessions) == 0, "idle sessions were not reaped"
        code, _ = _code(stub.GetSession, envfarm_pb2.GetSessionRequest(session_id=first))
        assert code == grpc.StatusCode.NOT_FOUND
        stub.CreateSession(make_one)  # capacity is back


_KILLED_CLIENT = """
import sys, time
from gantry.core.client import sync_channel
from gantry.envfarm.client import RemoteEnv
channel = sync_channel(sys.argv[1], token=sys.argv[2])
envs = [RemoteEnv(channel, "visgym/maze_2d") for _ in range(3)]
print("ready", flush=True)
time.sleep(600)
"""


@pytest.mark.slow
def test_killed_clients_sessions_are_reaped() -> None:
    service = EnvFarmService(_settings(session_idle_timeout_s=1.0, reap_interval_s=0.2))
    with serve_in_thread(service) as running:
        proc = subprocess.Popen(
            [sys.executable, "-c", _KILLED_CLIENT, f"127.0.0.1:{running.port}", TOKEN],
            stdout=subprocess.PIPE,
            text=True,
        )
        try:
            assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
            assert len(service.sessions) == 3
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)
            deadline = time.monotonic() + 10
            while len(service.sessions) and time.monotonic() < deadline:
                time.sleep(0.1)
            assert len(service.sessions) == 0
        finally:
            if proc.poll() is None:
                proc.kill()


@pytest.mark.slow
def test_500_concurrent_sessions_complete(channel: grpc.Channel) -> None:
    text = episode_pb2.EpisodeSettings(observation_mode=episode_pb2.OBSERVATION_MODE_TEXT)
    with RemoteVectorEnv(channel, "visgym/maze_2d", 500, "easy", settings=text) as vec:
        vec.reset(seeds=list(range(500)))
        plans = [env.solve() for env in vec.envs]
        finished = np.zeros(500, dtype=bool)
        rewards = np.zeros(500, dtype=np.float32)
        for t in range(max(len(p) for p in plans)):
            actions = [p[t] if t < len(p) else "('move', 'up')" for p in plans]
            _, reward, terminated, _, _ = vec.step(actions)
            newly = terminated & ~finished
            rewards[newly] = reward[newly]
            finished |= terminated
        assert finished.all() and (rewards == 1.0).all()


def test_session_json_state_is_plain_data(channel: grpc.Channel) -> None:
    with RemoteEnv(channel, "maze_2d", seed=9) as env:
        state = env.initial_state()
    assert json.loads(json.dumps(state)) == state
