"""maze_3d: movement and turning, the first-person render, goal visibility, plan lengths."""

from __future__ import annotations

import numpy as np
import pytest

from gantry.envfarm.envs import make, solver_for
from gantry.envfarm.envs.maze_3d import Maze3D

# A corridor maze: free cells (1,1)..(1,5) in a row; the goal at its east end.
CORRIDOR = [[1] * 7, [1, 0, 0, 0, 0, 0, 1], *[[1] * 7 for _ in range(5)]]


def fresh(difficulty: str = "easy", seed: int = 0) -> Maze3D:
    env = make("maze_3d", difficulty)
    assert isinstance(env, Maze3D)
    env.reset(seed=seed)
    return env


def corridor(heading: int, agent: tuple[int, int] = (1, 1)) -> Maze3D:
    env = fresh()
    state = {"walls": CORRIDOR, "agent": list(agent), "heading": heading, "goal": [1, 5]}
    env.reset(options={"state": state})
    return env


def red_pixels(image: np.ndarray) -> int:
    r, g, b = (image[..., k].astype(np.int32) for k in range(3))
    return int(((r > 150) & (g < 90) & (b < 90)).sum())


def test_moves_turns_and_wall_feedback() -> None:
    env = corridor(heading=1)
    _, _, _, _, info = env.step("('move', 'forward')")
    assert info["env_feedback"] == "Moved forward." and env.agent == (1, 2)
    env.step("('move', 1)")  # 1 = back
    assert env.agent == (1, 1)
    _, _, _, _, info = env.step("('move', 'back')")
    assert info["env_feedback"] == "Cannot move back: there is a wall." and env.agent == (1, 1)
    env.step("('turn', 1)")  # VisGym's 1 = left: east -> north
    assert env.heading == 0
    env.step("('turn', 'around')")
    assert env.heading == 2
    env.step("('turn', 'right')")
    assert env.heading == 3


@pytest.mark.parametrize(
    "action",
    [
        "('move', 'left')",
        "('move', 2)",
        "('turn', 0)",
        "('turn', 4)",
        "('turn', 'up')",
        "('turn', 'left', 'right')",
        "('jump', 1)",
    ],
)
def test_malformed_actions_are_invalid(action: str) -> None:
    env = corridor(heading=1)
    _, _, _, _, info = env.step(action)
    assert info["valid_action"] is False and info["env_feedback"].startswith("Invalid action")
    assert (env.agent, env.heading) == ((1, 1), 1)


def test_goal_ball_is_drawn_only_when_in_sight() -> None:
    facing = corridor(heading=1)
    assert facing.goal_in_view() is not None
    assert red_pixels(facing.render_image()) > 150
    assert "visible straight ahead, about 4 cell(s) away" in facing.render_text()
    away = corridor(heading=3)
    assert away.goal_in_view() is None
    assert red_pixels(away.render_image()) == 0
    assert "not in view" in away.render_text()
    nearer = corridor(heading=1, agent=(1, 3))
    assert red_pixels(nearer.render_image()) > red_pixels(facing.render_image())


def test_walls_hide_the_goal() -> None:
    walls = [row[:] for row in CORRIDOR]
    walls[2][1] = walls[3][1] = walls[3][2] = walls[3][3] = 0  # an L-shaped side passage
    env = fresh()
    state = {"walls": walls, "agent": [3, 1], "heading": 0, "goal": [1, 5]}
    env.reset(options={"state": state})
    assert env.goal_in_view() is None  # the goal lies ahead-right, behind the wall
    assert red_pixels(env.render_image()) == 0


def test_image_changes_after_turning() -> None:
    env = fresh("hard", 3)
    before = env.render_image()
    assert before.shape == (336, 336, 3)
    env.step("('turn', 'left')")
    assert not np.array_equal(before, env.render_image())


def test_sizes_starts_and_plan_lengths_per_difficulty() -> None:
    for difficulty, size, (low, high) in (("easy", 7, (6, 19)), ("hard", 9, (10, 29))):
        for seed in range(30):
            env = fresh(difficulty, seed)
            assert len(env.walls) == size
            assert env.goal_in_view() is None  # the start view never shows the goal
            plan = solver_for("maze_3d").solve(env)
            assert low <= len(plan) - 1 <= high


def test_turn_and_walk_strategy_never_steps_back() -> None:
    env = fresh("hard", 5)
    plan = solver_for("maze_3d").solve(env, "turn_and_walk")
    assert not any("back" in action for action in plan)
