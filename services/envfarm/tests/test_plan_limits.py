"""Every plan a solver hands out fits the level's step limit and reaches the goal.

Solve and ExportDemonstrations must never give out a "demonstration" that ends by
truncation before `stop`: for every environment, level, strategy and detour count, a
plan either replays to reward 1.0 within the limit (with its `stop`) or is refused with
`PlanTooLong`. Seeds start at 900000 so they are not the ones the scenes were tuned on.
"""

from __future__ import annotations

from collections.abc import Iterator

import grpc
import pytest

from gantry.core import errors
from gantry.core.client import sync_channel
from gantry.core.testing.threaded import serve_in_thread
from gantry.envfarm import demonstrations
from gantry.envfarm.demonstrations import demonstrate, demonstration_or_none
from gantry.envfarm.envs import env_ids, make, solver_for
from gantry.envfarm.envs.base import (
    DIFFICULTIES,
    MAX_STEPS,
    Difficulty,
    PlanTooLong,
    VisGymEnv,
    run_plan,
)
from gantry.envfarm.envs.maze_2d import Maze2D, Maze2DSolver, _cut_excursions, _right_hand
from gantry.envfarm.service import EnvFarmService
from gantry.envfarm.settings import EnvFarmSettings
from gantry.proto.common.v1 import episode_pb2
from gantry.proto.envfarm.v1 import envfarm_pb2, envfarm_pb2_grpc

TOKEN = "plan-limits-token"

SEEDS = range(900_000, 900_030)
DETOURS = (1, 2, 5)  # each seed takes one of these, so every count sees 10 seeds
# The MuJoCo envs replay every plan in physics (~0.5 CPU-s a plan): fewer seeds keep the
# suite within its budget; their plans are short and fixed-shape (a few moves, then stop).
PHYSICS_SEEDS = range(900_000, 900_010)


@pytest.mark.slow
@pytest.mark.timeout(900)  # the MuJoCo envs replay ~300 plans in physics (~20 s of CPU)
@pytest.mark.parametrize("difficulty", DIFFICULTIES)
@pytest.mark.parametrize("env_id", env_ids())
def test_every_plan_fits_the_step_limit_and_reaches_the_goal(
    env_id: str, difficulty: Difficulty
) -> None:
    solver = solver_for(env_id)
    failures: list[tuple[int, str, int]] = []
    refused: list[tuple[int, int]] = []
    asked = taken = 0
    seeds = PHYSICS_SEEDS if env_id.startswith("fetch_") else SEEDS
    for seed in seeds:
        env = make(env_id, difficulty)
        env.reset(seed=seed)
        for strategy in solver.strategies:
            for detours in (0, DETOURS[seed % len(DETOURS)]):
                try:
                    plan = solver.make_plan(env, strategy, detours=detours, seed=seed)
                except PlanTooLong as exc:
                    refused.append((exc.length, exc.limit))
                    continue
                assert plan.actions[-1] == "stop" and 0 <= plan.detours <= detours
                assert len(plan.actions) <= env.max_steps == MAX_STEPS[difficulty]
                asked, taken = asked + detours, taken + plan.detours
                if run_plan(env.clone(), plan.actions) != 1.0:
                    failures.append((seed, strategy, detours))
    assert not failures, f"{env_id}/{difficulty}: plans that fail when replayed: {failures[:10]}"
    assert all(length > limit == MAX_STEPS[difficulty] for length, limit in refused)
    # Refusals are the exception, and most detours asked for fit.
    assert len(refused) <= len(seeds) // 10, f"{env_id}: {len(refused)} plans refused"
    assert taken >= asked // 2, f"{env_id}: only {taken} of {asked} detours fit"


def test_right_hand_walks_are_cut_to_the_limit_not_truncated() -> None:
    solver = solver_for("maze_2d")
    shortened = 0
    for seed in SEEDS:
        env = make("maze_2d", "hard")
        env.reset(seed=seed)
        assert isinstance(env, Maze2D)
        walk = _right_hand(env)
        plan = solver.solve(env, "right_hand")
        assert len(plan) <= env.max_steps and run_plan(env.clone(), plan) == 1.0
        if len(walk) - 1 > env.max_steps - 1:
            shortened += 1
            # Cut, not replaced: the plan is the wall-follower's walk with parts left out.
            full = iter(solver.plan_within(env, "right_hand", 10**6))
            assert all(move in full for move in plan[:-1])
    assert shortened > 0  # the hard mazes do produce walks longer than the limit


def test_cutting_excursions_keeps_a_walk_that_fits_and_reaches_the_end() -> None:
    walk = [(0, 0), (0, 1), (0, 2), (0, 1), (1, 1), (2, 1), (1, 1), (1, 2), (1, 3)]
    assert _cut_excursions(walk, 100) == walk
    # 8 moves, 6 allowed: the shortest excursion that frees 2 moves goes.
    assert _cut_excursions(walk, 6) == [(0, 0), (0, 1), (1, 1), (2, 1), (1, 1), (1, 2), (1, 3)]
    assert _cut_excursions(walk, 4) == [(0, 0), (0, 1), (1, 1), (1, 2), (1, 3)]


def test_detours_are_capped_to_leave_room_for_the_plan() -> None:
    solver = solver_for("maze_2d")
    env = make("maze_2d", "easy")
    env.reset(seed=900_001)
    plan = solver.make_plan(env, "bfs", detours=100, seed=1)
    assert plan.detours < 100 and len(plan.actions) <= env.max_steps
    assert run_plan(env.clone(), plan.actions) == 1.0
    assert (
        plan.actions[: plan.detours]
        == solver.make_plan(env, "bfs", detours=plan.detours, seed=1).actions[: plan.detours]
    )


def test_a_plan_longer_than_the_steps_left_is_refused_with_the_numbers() -> None:
    solver = solver_for("maze_2d")
    env = make("maze_2d", "hard")
    env.reset(seed=900_002)
    needed = len(solver.solve(env, "bfs"))
    for _ in range(env.max_steps - needed + 1):
        env.step("('move', 'nowhere')")  # invalid actions still count as steps
    with pytest.raises(PlanTooLong, match=rf"'bfs' needs {needed} actions .* leaves {needed - 1}"):
        solver.make_plan(env, "bfs")


class _WanderingSolver(Maze2DSolver):
    """maze_2d's solver, but every strategy wanders 40 moves before solving: refused."""

    def plan(self, env: VisGymEnv, strategy: str) -> list[str]:
        return ["('move', 'nowhere')"] * 40 + super().plan_within(env, "bfs", 1 << 30)

    def plan_within(self, env: VisGymEnv, strategy: str, max_moves: int) -> list[str]:
        return self.plan(env, strategy)


def test_demonstrations_replay_under_the_real_limit_and_failures_only_on_request(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    demo = demonstrate("maze_2d", "hard", 900_003, strategy="right_hand", detours=3)
    assert demo.succeeded and len(demo.turns) <= MAX_STEPS["hard"]
    assert demo.turns[-1].action == "stop" and demo.detours == 3
    monkeypatch.setattr(demonstrations, "solver_for", lambda _: _WanderingSolver())
    assert demonstration_or_none("maze_2d", "easy", 5) is None
    with pytest.raises(PlanTooLong):
        demonstrate("maze_2d", "easy", 5)
    kept = demonstration_or_none("maze_2d", "easy", 5, include_failures=True)
    assert kept is not None and not kept.succeeded
    assert len(kept.turns) == MAX_STEPS["easy"] and kept.turns[-1].action != "stop"


@pytest.fixture(scope="module")
def stub() -> Iterator[envfarm_pb2_grpc.EnvFarmServiceStub]:
    settings = EnvFarmSettings(
        host="127.0.0.1", port=0, metrics_port=0, auth_token=TOKEN, log_json=False
    )
    with (
        serve_in_thread(EnvFarmService(settings)) as running,
        sync_channel(f"127.0.0.1:{running.port}", token=TOKEN) as channel,
    ):
        yield envfarm_pb2_grpc.EnvFarmServiceStub(channel)


def _session(stub: envfarm_pb2_grpc.EnvFarmServiceStub, seed: int) -> str:
    reply = stub.CreateSession(
        envfarm_pb2.CreateSessionRequest(
            env_id="visgym/maze_2d", difficulty=episode_pb2.DIFFICULTY_HARD, seed=seed
        )
    )
    return str(reply.session.id)


def test_solve_caps_detours_and_refuses_a_plan_past_the_steps_left(
    stub: envfarm_pb2_grpc.EnvFarmServiceStub,
) -> None:
    session_id = _session(stub, 900_004)
    reply = stub.Solve(
        envfarm_pb2.SolveRequest(session_id=session_id, strategy="right_hand", detour_count=100)
    )
    assert len(reply.actions) <= MAX_STEPS["hard"] and reply.actions[-1] == "stop"
    assert 0 < reply.detour_count < 100
    needed = len(stub.Solve(envfarm_pb2.SolveRequest(session_id=session_id)).actions)
    for _ in range(MAX_STEPS["hard"] - needed + 1):
        stub.Step(envfarm_pb2.StepRequest(session_id=session_id, action="('move', 'nowhere')"))
    with pytest.raises(grpc.RpcError) as caught:
        stub.Solve(envfarm_pb2.SolveRequest(session_id=session_id, strategy="bfs"))
    assert caught.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    error = errors.from_rpc_error(caught.value)
    assert error.reason == "PLAN_TOO_LONG"
    assert (
        f"'bfs' needs {needed} actions" in error.message and f"leaves {needed - 1}" in error.message
    )
    assert error.metadata == {
        "strategy": "bfs",
        "plan_length": str(needed),
        "step_limit": str(needed - 1),
    }


def test_export_demonstrations_streams_only_successes_unless_asked(
    stub: envfarm_pb2_grpc.EnvFarmServiceStub, monkeypatch: pytest.MonkeyPatch
) -> None:
    request = envfarm_pb2.ExportDemonstrationsRequest(
        env_id="visgym/maze_2d",
        difficulty=episode_pb2.DIFFICULTY_HARD,
        seeds=[900_010, 900_011],
        strategies=["right_hand"],
        detour_count=2,
    )
    replies = list(stub.ExportDemonstrations(request))
    assert [r.seed for r in replies] == [900_010, 900_011]
    assert all(r.final_reward == 1.0 and r.detour_count == 2 for r in replies)
    # The server runs in this process: give maze_2d a strategy the limit refuses.
    monkeypatch.setattr(demonstrations, "solver_for", lambda _: _WanderingSolver())
    assert list(stub.ExportDemonstrations(request)) == []
    request.include_failures = True
    failed = list(stub.ExportDemonstrations(request))
    assert [r.final_reward for r in failed] == [0.0, 0.0]
    assert len(failed[0].conversation.messages) == 1 + 2 * MAX_STEPS["hard"]
