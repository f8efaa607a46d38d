"""StepBatch's few-executor-calls path (gantry.envfarm.batch), driven in-process through
the real servicer: per-item outcomes, sessions busy with another call, cancellation and
unexpected errors never leave a session locked or stepped after the call ends."""

from __future__ import annotations

import asyncio
import platform
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

import grpc
import numpy as np
import pytest

from gantry.core.codecs import tensor_to_numpy
from gantry.envfarm.envs.registry import make
from gantry.envfarm.heap import keep_large_buffers
from gantry.envfarm.servicer import EnvFarmLimits, EnvFarmServicer
from gantry.envfarm.sessions import Session, SessionManager
from gantry.proto.common.v1 import episode_pb2
from gantry.proto.envfarm.v1 import envfarm_pb2 as pb

R = TypeVar("R")
MAZE = "maze_2d"
RIGHT = "('move', 'right')"


class Runtime:
    """The two things a servicer needs from the server runtime."""

    def __init__(self, pool: ThreadPoolExecutor) -> None:
        self.draining = asyncio.Event()
        self.pool = pool

    async def run_blocking(self, fn: Callable[..., R], *args: Any) -> R:
        return await asyncio.get_running_loop().run_in_executor(self.pool, fn, *args)


def farm(pool: ThreadPoolExecutor, workers: int = 2) -> EnvFarmServicer:
    sessions = SessionManager(max_sessions=64, idle_timeout_s=60, lifetime_s=600)
    limits = EnvFarmLimits(
        max_page_size=100,
        max_batch_items=64,
        max_state_json_bytes=1 << 16,
        max_demonstrations=10,
        batch_concurrency=workers,
        max_message_bytes=64 << 20,
    )
    return EnvFarmServicer(Runtime(pool), sessions, limits)


def open_maze(servicer: EnvFarmServicer, seed: int) -> Session:
    env = make(MAZE, "easy")
    env.reset(seed=seed)
    return servicer.sessions.add(MAZE, env, seed, episode_pb2.EpisodeSettings(), None)


def batch(sessions: list[Session], actions: list[str] | None = None) -> pb.StepBatchRequest:
    actions = actions or [RIGHT] * len(sessions)
    return pb.StepBatchRequest(
        items=[
            pb.StepBatchItem(session_id=s.id, action=a)
            for s, a in zip(sessions, actions, strict=True)
        ],
        observation_encoding=pb.OBSERVATION_ENCODING_RAW,
    )


def slow(session: Session, seconds: float) -> None:
    """Make this session's environment take `seconds` per step."""
    step = session.env.step

    def slow_step(action: str) -> Any:
        time.sleep(seconds)
        return step(action)

    session.env.step = slow_step  # type: ignore[method-assign]


def test_items_match_local_steps_and_fail_one_by_one() -> None:
    async def main() -> None:
        with ThreadPoolExecutor(2) as pool:
            servicer = farm(pool)
            live = [open_maze(servicer, seed) for seed in range(5)]
            over = open_maze(servicer, 9)
            over.env.step("('stop',)")  # the episode is over
            request = batch([*live, over])
            request.items.add(session_id="f" * 32, action=RIGHT)  # not found
            request.items[1].action = "x" * 70000  # too long
            reply = await servicer.StepBatch(request, None)
            codes = [r.error.code for r in reply.results]
            ok = grpc.StatusCode.OK.value[0]
            bad, over_, gone = (
                grpc.StatusCode.INVALID_ARGUMENT.value[0],
                grpc.StatusCode.FAILED_PRECONDITION.value[0],
                grpc.StatusCode.NOT_FOUND.value[0],
            )
            assert codes == [ok, bad, ok, ok, ok, over_, gone]
            assert "items[1].action" in reply.results[1].error.message
            assert [r.session_id for r in reply.results] == [i.session_id for i in request.items]
            for i in (0, 2, 3, 4):
                local = make(MAZE, "easy")
                local.reset(seed=i)
                obs, reward, *_ = local.step(RIGHT)
                result = reply.results[i].result
                np.testing.assert_array_equal(
                    tensor_to_numpy(result.observation_pixels), obs["image"]
                )
                assert result.reward == reward and live[i].total_reward == reward
                assert live[i].env.steps == 1 and result.step_index == 1
                assert not result.HasField("info")  # no extra info: no empty Struct
            assert live[1].env.steps == 0
            assert not any(s.lock.locked() for s in [*live, over])

    asyncio.run(main())


def test_a_busy_session_waits_without_holding_up_the_others() -> None:
    async def main() -> None:
        with ThreadPoolExecutor(2) as pool:
            servicer = farm(pool)
            busy, free = open_maze(servicer, 0), open_maze(servicer, 1)
            await busy.lock.acquire()  # another call is stepping it
            call = asyncio.ensure_future(servicer.StepBatch(batch([busy, free]), None))
            for _ in range(200):
                if free.env.steps:
                    break
                await asyncio.sleep(0.01)
            assert free.env.steps == 1 and not free.lock.locked()
            assert busy.env.steps == 0 and not call.done()
            busy.lock.release()
            reply = await asyncio.wait_for(call, 10)
            assert all(r.HasField("result") for r in reply.results)
            assert busy.env.steps == 1

    asyncio.run(main())


def test_a_cancelled_batch_stops_and_unlocks_every_session() -> None:
    async def main() -> None:
        with ThreadPoolExecutor(2) as pool:
            servicer = farm(pool)
            sessions = [open_maze(servicer, seed) for seed in range(30)]
            for session in sessions:
                slow(session, 0.02)
            call = asyncio.ensure_future(servicer.StepBatch(batch(sessions), None))
            await asyncio.sleep(0.1)
            call.cancel()
            with pytest.raises(asyncio.CancelledError):
                await call
            steps = [s.env.steps for s in sessions]
            assert 0 < sum(steps) < len(sessions)  # cancelled midway
            assert not any(s.lock.locked() for s in sessions)
            await asyncio.sleep(0.1)
            assert [s.env.steps for s in sessions] == steps  # nothing stepped after the end

    asyncio.run(main())


def test_an_unexpected_error_fails_the_call_and_unlocks_every_session() -> None:
    async def main() -> None:
        with ThreadPoolExecutor(2) as pool:
            servicer = farm(pool)
            sessions = [open_maze(servicer, seed) for seed in range(6)]

            def broken(action: str) -> Any:
                raise RuntimeError("renderer crashed")

            sessions[2].env.step = broken  # type: ignore[method-assign]
            with pytest.raises(RuntimeError, match="renderer crashed"):
                await servicer.StepBatch(batch(sessions), None)
            assert not any(s.lock.locked() for s in sessions)
            assert [s.env.steps for s in sessions] == [1, 1, 0, 1, 1, 1]

    asyncio.run(main())


def test_large_buffers_are_kept_where_malloc_is_glibc() -> None:
    assert not keep_large_buffers(0)  # 0 leaves malloc as it is
    assert keep_large_buffers(64 << 20) == (platform.libc_ver()[0] == "glibc")
