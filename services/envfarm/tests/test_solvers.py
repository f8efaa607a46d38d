"""Every solver's plan, executed from 50 seeds per difficulty, earns reward 1.0.

Other strategies and detours, under the step limit: test_plan_limits.py."""

from __future__ import annotations

import pytest

from gantry.envfarm.envs import env_ids, make, solver_for
from gantry.envfarm.envs.base import DIFFICULTIES, run_plan

SEEDS = range(50)


@pytest.mark.slow  # 34 sweeps over 50 seeds each (the MuJoCo envs in physics)
@pytest.mark.parametrize("difficulty", DIFFICULTIES)
@pytest.mark.parametrize("env_id", env_ids())
def test_default_strategy_solves_every_seed(env_id: str, difficulty: str) -> None:
    solver = solver_for(env_id)
    failures = []
    for seed in SEEDS:
        env = make(env_id, difficulty)
        env.reset(seed=seed)
        plan = solver.solve(env)
        assert plan[-1] == "stop"
        if run_plan(env, plan) != 1.0:
            failures.append(seed)
    assert not failures, f"{env_id}/{difficulty}: solver failed on seeds {failures}"


@pytest.mark.parametrize("env_id", env_ids())
def test_seed_determines_state_and_state_round_trips(env_id: str) -> None:
    a, b = make(env_id, "easy"), make(env_id, "easy")
    a.reset(seed=7)
    b.reset(seed=7)
    assert a.initial_state() == b.initial_state()
    assert (a.render_image() == b.render_image()).all()
    c = make(env_id, "easy")
    c.reset(options={"state": a.initial_state()})
    assert c.export_state() == a.export_state()
    assert c.render_text() == a.render_text()
    different = [make(env_id, "easy") for _ in range(5)]
    states = set()
    for seed, env in enumerate(different):
        env.reset(seed=seed)
        states.add(str(env.initial_state()))
    assert len(states) > 1


@pytest.mark.parametrize("env_id", env_ids())
def test_observation_contract(env_id: str) -> None:
    for difficulty in DIFFICULTIES:
        env = make(env_id, difficulty)
        obs, info = env.reset(seed=1)
        assert obs["image"].dtype.name == "uint8" and obs["image"].shape[2] == 3
        assert max(obs["image"].shape[:2]) == 336
        assert env.observation_space.contains(obs)
        assert isinstance(obs["text"], str) and obs["text"]
        assert info["env_feedback"] == ""


@pytest.mark.parametrize("env_id", env_ids())
def test_bad_actions_are_feedback_and_count_as_steps(env_id: str) -> None:
    env = make(env_id, "easy")
    env.reset(seed=3)
    for bad in ("", "__import__('os')", "('fly', 1)", "((((1))))", "x" * 600, "('stop'"):
        _, reward, terminated, _truncated, info = env.step(bad)
        assert reward == 0.0 and not terminated
        assert info["valid_action"] is False
        assert info["env_feedback"].startswith("Invalid action")
    assert env.steps == 6


@pytest.mark.parametrize("env_id", env_ids())
def test_premature_stop_and_step_limit(env_id: str) -> None:
    env = make(env_id, "easy")
    env.reset(seed=5)
    _, reward, terminated, _, info = env.step("stop")
    assert terminated and reward == 0.0 and "before the goal" in info["env_feedback"]
    env.reset(seed=5)
    truncated = False
    for _ in range(env.max_steps):
        _, reward, terminated, truncated, info = env.step("('nonsense',)")
    assert truncated and not terminated and "Step limit" in info["env_feedback"]
