"""matchstick_rotation: move actions, board edges, tolerances and rendering."""

from __future__ import annotations

import numpy as np
import pytest

from gantry.envfarm.envs import make, solver_for
from gantry.envfarm.envs.base import run_plan
from gantry.envfarm.envs.matchstick_rotation import MatchstickRotation, head_centre


def fresh(difficulty: str = "easy", seed: int = 0) -> MatchstickRotation:
    env = make("matchstick_rotation", difficulty)
    assert isinstance(env, MatchstickRotation)
    env.reset(seed=seed)
    return env


def place(env: MatchstickRotation, match: list[float], target: list[float]) -> None:
    env.reset(options={"state": {"match": match, "target": target}})


@pytest.mark.parametrize(
    ("action", "message"),
    [
        ("('move', 10, 5)", "usage: ('move', dx, dy, da)"),
        ("('move', 337, 0, 0)", "dx must be between -336 and 336"),
        ("('move', 0, -400, 0)", "dy must be between -336 and 336"),
        ("('move', 0, 0, 190)", "da must be between -180 and 180"),
        ("('move', 'left', 0, 0)", "dx must be a number"),
        ("('rotate', 10)", "unknown action 'rotate'"),
    ],
)
def test_invalid_actions_explain_themselves(action: str, message: str) -> None:
    env = fresh()
    before = env.export_state()
    _, _, _, info = env.transition(action)
    assert info["valid_action"] is False and message in info["env_feedback"]
    assert env.export_state() == before


def test_move_spellings_feedback_and_angle_wrap() -> None:
    env = fresh()
    place(env, [100, 100, 350], [150, 80, 20])
    _, _, _, info = env.transition("('move', 50, -20, 30)")
    assert info["env_feedback"] == "Moved the matchstick by (50, -20) px and turned it 30 degrees."
    assert env.match == (150, 80, 20)
    assert env.goal_reached()
    env.transition("('move', [0.5, 0, -40.25])")
    assert env.match[0] == 150.5 and env.match[2] == pytest.approx(339.75)


def test_centre_cannot_leave_the_board() -> None:
    env = fresh()
    place(env, [20, 300, 0], [150, 150, 90])
    _, _, _, info = env.transition("('move', -30, 0, 45)")
    assert info["valid_action"] is True
    assert info["env_feedback"] == "Cannot move the matchstick's centre off the board."
    assert env.match == (20, 300, 0)


@pytest.mark.parametrize(
    ("offset", "easy", "hard"),
    [
        ((4, 3, 8), True, True),  # 5 px, 8 degrees
        ((6, 6, 0), True, False),  # 8.5 px
        ((0, 0, 12), True, False),
        ((0, 0, 16), False, False),
        ((11, 0, 0), False, False),
    ],
)
def test_tolerances(offset: tuple[int, int, int], easy: bool, hard: bool) -> None:
    for difficulty, expected in (("easy", easy), ("hard", hard)):
        env = fresh(difficulty)
        dx, dy, da = offset
        place(env, [150 + dx, 150 + dy, (90 + da) % 360], [150, 150, 90])
        assert env.goal_reached() is expected, (difficulty, offset)


def test_start_needs_both_a_slide_and_a_turn() -> None:
    for seed in range(50):
        dx, dy, da = fresh("hard", seed).offset()
        assert np.hypot(dx, dy) >= 40 and abs(da) >= 30


def test_slide_then_turn_strategy_uses_two_moves() -> None:
    env = fresh("hard", 3)
    plan = solver_for("matchstick_rotation").solve(env, "slide_then_turn")
    assert len(plan) == 3 and plan[0].endswith(", 0)") and plan[1].startswith("('move', 0, 0,")
    assert run_plan(env, plan) == 1.0


def test_image_and_text_follow_the_match() -> None:
    env = fresh(seed=1)
    image, text = env.render_image(), env.render_text()
    env.transition("('move', 10, 10, 20)")
    assert not np.array_equal(image, env.render_image())
    assert "Matchstick: centre" in text and text != env.render_text()
    # The red head is drawn at the head end of the match.
    x, y = (round(v) for v in head_centre(env.match))
    red, green, blue = (int(v) for v in env.render_image()[y, x])
    assert red > 180 and green < 90 and blue < 90
