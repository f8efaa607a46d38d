"""mental_rotation_2d: rotation actions, tolerances, the text views and the dataset mode."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image as PILImage

from gantry.envfarm.envs import make, solver_for
from gantry.envfarm.envs.base import run_plan
from gantry.envfarm.envs.mental_rotation_2d import MentalRotation2D, wrap


def fresh(difficulty: str = "easy", seed: int = 0, **kwargs: object) -> MentalRotation2D:
    env = make("mental_rotation_2d", difficulty, **kwargs)
    assert isinstance(env, MentalRotation2D)
    env.reset(seed=seed)
    return env


@pytest.mark.parametrize(
    ("action", "message"),
    [
        ("('rotate', 181)", "the rotation must be between -180 and 180"),
        ("('rotate', 12.5)", "the rotation must be an integer"),
        ("('rotate', 'left')", "the rotation must be an integer"),
        ("('rotate',)", "usage: ('rotate', degrees)"),
        ("('rotate', 10, 20)", "usage: ('rotate', degrees)"),
        ("('turn', 10)", "unknown action 'turn'"),
    ],
)
def test_invalid_actions_explain_themselves(action: str, message: str) -> None:
    env = fresh()
    before = env.export_state()
    _, _, _, info = env.transition(action)
    assert info["valid_action"] is False and message in info["env_feedback"]
    assert env.export_state() == before


def test_rotation_spellings_and_feedback() -> None:
    env = fresh(seed=2)
    start = env.angle
    _, _, _, info = env.transition("('rotate', 30)")
    assert info["env_feedback"] == "Rotated the picture 30 degrees counterclockwise."
    env.transition("('rotate', [-50])")
    assert env.angle == (start - 20) % 360
    assert env.transition("('rotate', -180)")[3]["env_feedback"].endswith("clockwise.")
    assert env.transition("('rotate', 0)")[3]["env_feedback"] == (
        "Rotated by 0 degrees; nothing changed."
    )


def test_tolerance_differs_between_difficulties() -> None:
    for difficulty, matched in (("easy", True), ("hard", False)):
        env = fresh(difficulty)
        state = env.export_state() | {"target": 350, "angle": 3}  # 13 degrees apart
        env.reset(options={"state": state})
        assert env.error() == 13
        assert not env.goal_reached()
        env.transition("('rotate', -5)")  # now 8 degrees off
        assert env.goal_reached() is matched
    assert wrap(-180) == 180 and wrap(190) == -170


def test_start_is_far_from_the_target_and_plans_are_short() -> None:
    for seed in range(40):
        env = fresh("hard", seed)
        assert 30 <= abs(env.error()) <= 180
        plan = solver_for("mental_rotation_2d").solve(env, "steps45")
        assert 2 <= len(plan) <= 5
        assert run_plan(env, plan) == 1.0


def test_text_view_lists_positions_that_line_up_once_solved() -> None:
    env = fresh(seed=5)
    env.transition(f"('rotate', {-round(env.error())})")
    text = env.render_text()
    target = text.split("Target view:")[1].split("Current view:")[0]
    current = text.split("Current view:")[1]
    assert target.strip() == current.strip()
    assert text.isascii()


def test_image_changes_after_a_rotation() -> None:
    env = fresh(seed=1)
    before = env.render_image()
    left = before[:, :168].copy()
    env.transition("('rotate', 45)")
    after = env.render_image()
    assert after.shape == (192, 336, 3)
    assert not np.array_equal(before, after)
    assert np.array_equal(left, after[:, :168])  # the target view does not move


def _write_images(root: Path) -> None:
    for name, color in (("one.png", (200, 40, 40)), ("two.jpg", (40, 40, 200))):
        pixels = np.full((40, 60, 3), 230, dtype=np.uint8)
        pixels[5:15, 5:30] = color  # an off-centre block: not rotation-symmetric
        PILImage.fromarray(pixels).save(root / name)
    (root / "notes.txt").write_text("ignored")


def test_dataset_mode_uses_images_from_the_directory(tmp_path: Path) -> None:
    _write_images(tmp_path)
    seen = set()
    for seed in range(8):
        env = fresh("easy", seed, dataset_path=tmp_path)
        seen.add(env.picture["image"])
        assert env.render_image().shape == (192, 336, 3)
        assert "luminance art" in env.render_text()
        plan = solver_for("mental_rotation_2d").solve(env)
        assert run_plan(env, plan) == 1.0
    assert seen == {"one.png", "two.jpg"}
    env = fresh("easy", 0, dataset_path=tmp_path)
    bad = env.export_state() | {"picture": {"image": "../one.png"}}
    with pytest.raises(ValueError, match="invalid state"):
        env.reset(options={"state": bad})
    with pytest.raises(ValueError, match="no dataset_path"):
        fresh().reset(options={"state": env.export_state()})
