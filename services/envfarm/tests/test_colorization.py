"""colorization: hue/saturation actions, the accuracy radius, restoring, dataset mode."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image as PILImage

from gantry.envfarm.envs import make, solver_for
from gantry.envfarm.envs.base import run_plan
from gantry.envfarm.envs.colorization import (
    RADIUS,
    TOLERANCE,
    Colorization,
    color_distance,
    recolor,
)


def fresh(difficulty: str = "easy", seed: int = 0, **kwargs: object) -> Colorization:
    env = make("colorization", difficulty, **kwargs)
    assert isinstance(env, Colorization)
    env.reset(seed=seed)
    return env


@pytest.mark.parametrize(
    ("action", "message"),
    [
        ("('rotate', 361)", "the hue rotation must be between -360 and 360"),
        ("('rotate', 2.5)", "the hue rotation must be an integer"),
        ("('saturate', -256)", "the saturation change must be between -255 and 255"),
        ("('saturate', 'more')", "the saturation change must be an integer"),
        ("('saturate',)", "usage: ('saturate', number)"),
        ("('paint', 3)", "unknown action 'paint'"),
    ],
)
def test_invalid_actions_explain_themselves(action: str, message: str) -> None:
    env = fresh()
    before = env.export_state()
    _, _, _, info = env.transition(action)
    assert info["valid_action"] is False and message in info["env_feedback"]
    assert env.export_state() == before


def test_actions_accumulate_wrap_and_clamp() -> None:
    env = fresh()
    env.reset(options={"state": env.export_state() | {"hue": 170, "saturation": 250}})
    assert env.transition("('rotate', 30)")[3]["env_feedback"] == "Hue rotated by 30 degrees."
    assert env.hue == -160
    env.transition("('rotate', [-360])")
    assert env.hue == -160
    _, _, _, info = env.transition("('saturate', 20)")
    assert info["env_feedback"] == "Saturation changed by 20; it cannot go further."
    assert env.saturation == 255
    assert env.transition("('saturate', -5)")[3]["env_feedback"] == "Saturation changed by -5."


def test_accuracy_radius_is_the_success_tolerance() -> None:
    # VisGym: success when sqrt((2 dh)^2 + ds^2) <= radius / 20 * 0.3 * sqrt(360^2 + 2 * 255^2).
    assert TOLERANCE["easy"] == pytest.approx(84.08, abs=0.01)
    assert TOLERANCE["hard"] == pytest.approx(122.29, abs=0.01)
    cases = {
        "easy": ((42, 0, True), (43, 0, False), (0, 84, True), (0, 85, False), (30, 58, True)),
        "hard": ((61, 0, True), (62, 0, False), (0, 122, True), (0, 123, False), (43, 86, True)),
    }
    for difficulty, rows in cases.items():
        env = fresh(difficulty)
        for hue, saturation, matched in rows:
            state = env.export_state() | {"hue": hue, "saturation": saturation}
            env.reset(options={"state": state})
            assert env.goal_reached() is matched, (difficulty, hue, saturation)
            assert (env.error() <= 1.0) is matched
    assert color_distance(30, 40) == pytest.approx(72.11, abs=0.01)


def test_episodes_start_outside_the_tolerance_anywhere_on_the_wheel() -> None:
    for difficulty in RADIUS:
        starts = [fresh(difficulty, 900_000 + s) for s in range(80)]
        assert all(env.error() >= 1.25 and not env.goal_reached() for env in starts)
        assert all(abs(env.saturation) <= 120 for env in starts)
        hues = [env.hue for env in starts]
        assert min(hues) < -120 and max(hues) > 120  # the whole hue circle, as in VisGym


def test_solving_restores_the_original_exactly() -> None:
    env = fresh("hard", seed=4)
    original = env.original()
    assert not np.array_equal(env.render_image(), original)
    for action in solver_for("colorization").solve(env)[:-1]:
        env.transition(action)
    assert (env.hue, env.saturation) == (0, 0)
    assert np.array_equal(env.render_image(), original)


def test_greys_stay_grey_and_hue_turns_colours() -> None:
    pixels = np.array([[[128, 128, 128], [230, 77, 77]]], dtype=np.uint8)
    shifted = recolor(pixels, 120, 60)
    assert tuple(shifted[0, 0]) == (128, 128, 128)
    red, green, blue = (int(v) for v in shifted[0, 1])
    assert green > red and green > blue  # red turned by 120 degrees is green


def test_image_and_text_change_after_an_action() -> None:
    env = fresh(seed=2)
    image, text = env.render_image(), env.render_text()
    env.transition("('rotate', 90)")
    assert not np.array_equal(image, env.render_image())
    assert text != env.render_text() and env.render_text().isascii()
    assert "patch 'red'" in text


def test_dataset_mode_recolours_photos(tmp_path: Path) -> None:
    for name, color in (("a.png", (200, 60, 40)), ("b.jpeg", (40, 150, 60))):
        pixels = np.zeros((30, 50, 3), dtype=np.uint8)
        pixels[:, :] = color
        pixels[10:20, 10:40] = (240, 230, 60)
        PILImage.fromarray(pixels).save(tmp_path / name)
    names = set()
    for seed in range(6):
        env = fresh("easy", seed, dataset_path=tmp_path)
        names.add(env.picture["image"])
        assert env.render_image().shape == (336, 336, 3)
        assert "4x4 blocks" in env.render_text()
        assert run_plan(env, solver_for("colorization").solve(env)) == 1.0
    assert names == {"a.png", "b.jpeg"}
    env = fresh("easy", 0, dataset_path=tmp_path)
    with pytest.raises(ValueError, match="invalid state"):
        env.reset(options={"state": env.export_state() | {"picture": {"image": "c.png"}}})
