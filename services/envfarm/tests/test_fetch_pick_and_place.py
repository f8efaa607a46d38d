"""fetch_pick_and_place: grasping by friction, gravity, targets per level, state, image.

Every seed's plan earning reward 1.0 (100 seeds per difficulty, every strategy with
detours) is checked for all environments in test_solvers.py; test_registry.py makes sure
fetch_pick_and_place is among them.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from gantry.envfarm.envs import make, solver_for
from gantry.envfarm.envs.base import run_plan
from gantry.envfarm.envs.fetch_pick_and_place import FetchPickAndPlace
from gantry.envfarm.envs.fetch_sim import BLOCK_HALF

REST = BLOCK_HALF  # a block resting on the table has its centre this high


def fresh(difficulty: str = "easy", seed: int = 0) -> FetchPickAndPlace:
    env = make("fetch_pick_and_place", difficulty)
    assert isinstance(env, FetchPickAndPlace)
    env.reset(seed=seed)
    return env


def scene(
    difficulty: str = "easy",
    gripper: tuple[float, float, float] = (0.0, 0.0, 0.1),
    target: tuple[float, float, float] = (0.15, 0.1, REST),
    closed: bool = False,
) -> FetchPickAndPlace:
    """The block at the origin, the gripper straight above it."""
    env = fresh(difficulty)
    state = {
        "gripper": list(gripper),
        "gripper_closed": closed,
        "block": {"position": [0.0, 0.0, REST], "quat": [1, 0, 0, 0]},
        "target": list(target),
    }
    env.reset(options={"state": state})
    return env


def block_z(env: FetchPickAndPlace) -> float:
    return float(env.sim.block().position[2])


def test_a_grasped_block_is_lifted_and_falls_when_released() -> None:
    env = scene()
    env.transition("('move', 0, 0, -0.75)")
    _, _, _, info = env.transition("('gripper', 'close')")
    assert info["env_feedback"] == "Closed the gripper around the block."
    env.transition("('move', 0, 0, 1)")
    assert block_z(env) == pytest.approx(REST + 0.1, abs=0.005)
    assert "holding the block" in env.render_text()
    env.transition("('gripper', 'open')")
    assert block_z(env) == pytest.approx(REST, abs=0.002)  # it fell back onto the table
    assert not env.sim.holding()


def test_closing_beside_the_block_holds_nothing() -> None:
    env = scene(gripper=(0.1, 0.0, 0.1))
    env.transition("('move', 0, 0, -0.75)")
    _, _, _, info = env.transition("('gripper', 'close')")
    assert info["env_feedback"] == "Closed the gripper; it holds nothing."
    env.transition("('move', 0, 0, 1)")
    assert block_z(env) == pytest.approx(REST, abs=0.002)


def test_closed_fingers_cannot_pass_through_the_block() -> None:
    env = scene(closed=True)
    _, _, _, info = env.transition("('move', 0, 0, -0.75)")
    assert "Something blocked the gripper" in info["env_feedback"]
    assert env.sim.grip()[2] > REST + 0.03  # the fingertips rest on top of the block
    assert block_z(env) == pytest.approx(REST, abs=0.003)


def test_success_is_the_block_at_the_target_then_stop() -> None:
    env = scene("hard", target=(0.0, 0.0, 0.15))
    env.transition("('move', 0, 0, -0.75)")
    env.transition("('gripper', 'close')")
    assert not env.goal_reached()
    env.transition("('move', 0, 0, 0.75)")
    _, _, _, info = env.transition("('move', 0, 0, 0.5)")
    assert info["env_feedback"].endswith("The target is reached.")
    reward, terminated, _, info = env.transition("stop")
    assert reward == 1.0 and terminated and info["env_feedback"] == "Task completed."
    # The gripper alone at the target does not count: the block must be there.
    env = scene("hard", target=(0.0, 0.1, 0.15))
    env.transition("('move', 0, 1, 0.5)")
    assert not env.goal_reached() and env.transition("stop")[0] == 0.0


@pytest.mark.parametrize(
    ("action", "message"),
    [
        ("('gripper', 'grab')", "the gripper command is 'open' or 'close'"),
        ("('gripper',)", "usage: ('gripper', 'open')"),
        ("('move', 0, 0, -1.01)", "dz must be between -1.0 and 1.0"),
        ("('push', 1)", "unknown action 'push'"),
    ],
)
def test_invalid_actions_explain_themselves(action: str, message: str) -> None:
    env = fresh()
    before = env.export_state()
    reward, terminated, _, info = env.transition(action)
    assert info["valid_action"] is False and message in info["env_feedback"]
    assert reward == 0.0 and not terminated
    assert env.export_state() == before


def test_targets_per_level_and_plans_fit_the_step_limit() -> None:
    solver = solver_for("fetch_pick_and_place")
    heights: dict[str, list[float]] = {"easy": [], "hard": []}
    for difficulty in ("easy", "hard"):
        for seed in range(30):
            env = fresh(difficulty, seed)
            heights[difficulty].append(float(env.target[2]))
            assert np.linalg.norm(env.target[:2] - env.sim.block().position[:2]) >= 0.1
            assert len(solver.solve(env)) <= env.max_steps
    assert all(h == REST for h in heights["easy"])
    in_air = [h for h in heights["hard"] if h > REST]
    assert 5 <= len(in_air) <= 25 and all(0.06 <= h <= 0.2 for h in in_air)


def test_seed_json_round_trip_and_exact_clone_while_holding() -> None:
    a, b = fresh("hard", 5), fresh("hard", 5)
    assert a.initial_state() == b.initial_state()
    c = make("fetch_pick_and_place", "hard")
    c.reset(options={"state": json.dumps(a.initial_state())})
    assert c.export_state() == a.export_state()
    plan = solver_for("fetch_pick_and_place").solve(a)
    grasp = plan.index("('gripper', 'close')") + 2  # closed and lifted
    for action in plan[:grasp]:
        a.transition(action)
    assert a.sim.holding()
    twin = a.clone()
    assert isinstance(twin, FetchPickAndPlace) and twin.sim.holding()
    for env in (a, twin):
        env.transition("('move', 0.3, -0.2, 0.5)")
    assert twin.export_state() == a.export_state()


def test_invalid_block_states_are_rejected() -> None:
    state = fresh().initial_state()
    for block in ({"position": [0, 0, REST]}, {"position": [0, 0, REST], "quat": [0, 0, 0, 0]}):
        with pytest.raises(ValueError, match="invalid state"):
            make("fetch_pick_and_place").reset(options={"state": {**state, "block": block}})


def test_image_shows_the_block_and_follows_it() -> None:
    env = scene(gripper=(0.0, 0.0, 0.1))
    image = env.render_image()
    blue = (image[..., 2] > 150) & (image[..., 0] < 90)
    assert blue.sum() > 100
    for action in ("('move', 0, 0, -0.75)", "('gripper', 'close')", "('move', 0, 0, 1)"):
        env.transition(action)
    lifted = env.render_image()
    rows = np.nonzero(blue.any(axis=1))[0]
    rows_lifted = np.nonzero(((lifted[..., 2] > 150) & (lifted[..., 0] < 90)).any(axis=1))[0]
    assert rows_lifted.mean() < rows.mean()  # the block is drawn higher up


def test_axis_by_axis_strategy_succeeds_from_a_closed_gripper() -> None:
    env = fresh("hard", 8)
    env.transition("('gripper', 'close')")
    plan = solver_for("fetch_pick_and_place").solve(env, "axis_by_axis")
    assert plan[0] == "('gripper', 'open')"
    env.max_steps = 100
    assert run_plan(env, plan) == 1.0
