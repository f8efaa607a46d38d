"""fetch_reach: Cartesian moves in the simulator, workspace limits, tolerances, state, image.

Every seed's plan earning reward 1.0 (100 seeds per difficulty, every strategy with
detours) is checked for all environments in test_solvers.py; test_registry.py makes sure
fetch_reach is among them.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from gantry.envfarm.envs import make, solver_for
from gantry.envfarm.envs.base import run_plan
from gantry.envfarm.envs.fetch_reach import FetchReach


def fresh(difficulty: str = "easy", seed: int = 0) -> FetchReach:
    env = make("fetch_reach", difficulty)
    assert isinstance(env, FetchReach)
    env.reset(seed=seed)
    return env


def place(env: FetchReach, gripper: list[float], target: list[float]) -> None:
    env.reset(options={"state": {"gripper": gripper, "gripper_closed": True, "target": target}})


def red_pixels(image: np.ndarray) -> int:
    r, g, b = (image[..., k].astype(np.int32) for k in range(3))
    return int(((r > 150) & (g < 90) & (b < 90)).sum())


def test_move_displaces_the_grip_point_by_the_delta() -> None:
    env = fresh()
    place(env, [0.0, 0.0, 0.2], [0.2, 0.1, 0.1])
    _, _, _, info = env.transition("('move', 0.5, -0.3, 1)")
    assert info["valid_action"] is True
    np.testing.assert_allclose(env.sim.grip(), [0.05, -0.03, 0.3], atol=2e-3)
    assert info["env_feedback"] == "Moved the gripper to (5, -3, 30) cm."
    env.transition("('move', [-0.5, 0.3, -1])")  # the list spelling
    np.testing.assert_allclose(env.sim.grip(), [0.0, 0.0, 0.2], atol=2e-3)


def test_moves_are_clipped_to_the_workspace() -> None:
    env = fresh()
    place(env, [0.2, 0.0, 0.05], [0.0, 0.0, 0.2])
    _, _, _, info = env.transition("('move', 1, 0, -1)")
    assert "clipped at the edge of the workspace" in info["env_feedback"]
    # x stops at 25 cm, z at 2.5 cm (fingertips just above the table).
    np.testing.assert_allclose(env.sim.grip(), [0.25, 0.0, 0.025], atol=2e-3)


@pytest.mark.parametrize(
    ("action", "message"),
    [
        ("('move', 1.5, 0, 0)", "dx must be between -1.0 and 1.0"),
        ("('move', 0, 0)", "usage: ('move', dx, dy, dz)"),
        ("('move', 0, 'up', 0)", "dy must be a number"),
        ("('gripper', 'open')", "unknown action 'gripper'"),
        ("('move', 0, 0, 0) + 1", "unexpected"),
    ],
)
def test_invalid_actions_explain_themselves(action: str, message: str) -> None:
    env = fresh()
    before = env.export_state()
    reward, terminated, _, info = env.transition(action)
    assert info["valid_action"] is False and message in info["env_feedback"]
    assert reward == 0.0 and not terminated
    assert env.export_state() == before


def test_tolerance_and_reward_only_on_a_correct_stop() -> None:
    for difficulty, reached in (("easy", True), ("hard", False)):
        env = fresh(difficulty)
        place(env, [0.0, 0.0, 0.2], [0.04, 0.0, 0.2])  # 4 cm away
        assert env.goal_reached() is reached
        reward, terminated, _, info = env.transition("stop")
        assert terminated and reward == (1.0 if reached else 0.0), difficulty
    env = fresh("hard")
    place(env, [0.0, 0.0, 0.2], [0.04, 0.0, 0.2])
    _, _, _, info = env.transition("('move', 0.2, 0, 0)")
    assert info["env_feedback"].endswith("The target is reached.")
    assert env.transition("stop")[0] == 1.0


def test_start_and_target_sampling_per_level() -> None:
    for seed in range(40):
        easy = fresh("easy", seed)
        start, target = np.array(easy.initial_state()["gripper"]), easy.target
        assert np.all(np.abs(target - start) <= 0.15 + 1e-9)
        assert np.linalg.norm(target - start) >= 0.08
        assert not easy.goal_reached()
        hard = fresh("hard", seed)
        assert np.linalg.norm(hard.target - np.array(hard.initial_state()["gripper"])) >= 0.1
        plan = solver_for("fetch_reach").solve(hard)
        assert len(plan) <= hard.max_steps


def test_seed_json_round_trip_and_exact_clone() -> None:
    a, b = fresh("hard", 11), fresh("hard", 11)
    assert a.initial_state() == b.initial_state()
    assert "physics" not in a.initial_state()  # the seed gives a readable state
    c = make("fetch_reach", "hard")
    c.reset(options={"state": json.dumps(a.initial_state())})
    assert c.export_state() == a.export_state()
    a.transition("('move', 0.3, 0.2, -0.1)")
    twin = a.clone()
    for env in (a, twin):
        env.transition("('move', -0.7, 0.1, 0.4)")
    assert twin.export_state() == a.export_state()  # physics state carried bit-for-bit
    assert fresh("hard", 12).initial_state() != a.initial_state()


@pytest.mark.parametrize(
    "bad",
    [
        {"gripper": [0.0, 0.0, 0.9], "gripper_closed": True, "target": [0, 0, 0.2]},
        {"gripper": [0.0, 0.0, 0.2], "gripper_closed": 1, "target": [0, 0, 0.2]},
        {"gripper": [0.0, 0.0], "gripper_closed": True, "target": [0, 0, 0.2]},
        {"gripper": [0.0, 0.0, 0.2], "gripper_closed": True, "target": [0, 0, 0.2], "physics": [1]},
    ],
)
def test_invalid_states_are_rejected(bad: dict[str, object]) -> None:
    with pytest.raises(ValueError, match="invalid state"):
        make("fetch_reach").reset(options={"state": bad})


def test_image_shows_the_target_and_follows_the_gripper() -> None:
    env = fresh(seed=2)
    obs, _ = env.reset(seed=2)
    assert obs["image"].shape == (336, 336, 3)
    assert red_pixels(obs["image"]) > 40  # the target ball
    assert "Target ball:" in obs["text"] and "closed" in obs["text"]
    obs2, *_ = env.step("('move', 0, 0, 1)")
    assert not np.array_equal(obs["image"], obs2["image"])
    assert obs2["text"] != obs["text"]


def test_axis_by_axis_moves_one_axis_at_a_time() -> None:
    env = fresh("hard", 4)
    plan = solver_for("fetch_reach").solve(env, "axis_by_axis")
    for action in plan[:-1]:
        values = [float(v) for v in action.removeprefix("('move', ").rstrip(")").split(",")]
        assert sum(v != 0 for v in values) == 1
    assert run_plan(env, plan) == 1.0
