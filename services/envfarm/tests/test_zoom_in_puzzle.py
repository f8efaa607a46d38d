"""zoom_in_puzzle: nested views, zoom ratios per difficulty, actions and dataset images."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image as PILImage

from gantry.envfarm.envs import make, solver_for
from gantry.envfarm.envs.base import run_plan
from gantry.envfarm.envs.zoom_in_puzzle import RATIO, ZoomInPuzzle


def fresh(difficulty: str = "easy", seed: int = 0, **kwargs: object) -> ZoomInPuzzle:
    env = make("zoom_in_puzzle", difficulty, **kwargs)
    assert isinstance(env, ZoomInPuzzle)
    env.reset(seed=seed)
    return env


def test_views_are_nested_and_zoom_ratios_follow_the_difficulty() -> None:
    for difficulty, count in (("easy", 4), ("hard", 5)):
        low, high = RATIO[difficulty]
        for seed in range(30):
            env = fresh(difficulty, seed)
            assert len(env.views) == count and not env.goal_reached()
            for (ax, ay, aside), (bx, by, bside) in zip(env.views, env.views[1:], strict=False):
                assert ax - 1e-4 <= bx and bx + bside <= ax + aside + 1e-4
                assert ay - 1e-4 <= by and by + bside <= ay + aside + 1e-4
                assert low - 0.01 <= aside / bside <= high + 0.01


def test_swap_and_reorder() -> None:
    env = fresh()
    env.reset(options={"state": {**env.export_state(), "order": [3, 1, 0, 2]}})
    _, _, _, _, info = env.step("('swap', [0, 3])")
    assert info["env_feedback"] == "Swapped the views in slots 0 and 3."
    assert env.order == [2, 1, 0, 3]
    env.step("('reorder', [2, 1, 0, 3])")
    assert env.goal_reached()


@pytest.mark.parametrize(
    "action", ["('swap', 0, 4)", "('swap', (0, 1), (1, 0))", "('reorder', [0, 1, 2, 2])", "zoom"]
)
def test_bad_actions_are_invalid(action: str) -> None:
    env = fresh()
    order = list(env.order)
    _, _, _, _, info = env.step(action)
    assert info["valid_action"] is False and env.order == order


def test_views_must_be_listed_widest_first() -> None:
    env = fresh()
    state = env.export_state()
    state["views"] = state["views"][::-1]
    with pytest.raises(ValueError, match="widest"):
        env.reset(options={"state": state})


def test_image_changes_after_a_swap_and_zoomed_views_are_not_flat() -> None:
    env = fresh("hard", 2)
    before = env.render_image()
    env.step("('swap', 0, 1)")
    after = env.render_image()
    assert not np.array_equal(before, after)
    # The most zoomed view (slot 4 once solved) still shows structure.
    env.reset(options={"state": {**env.export_state(), "order": [0, 1, 2, 3, 4]}})
    view = env.render_image()[226:334, 226:334].astype(np.float32)
    assert view.std() > 20


def test_text_lists_objects_at_growing_apparent_size() -> None:
    env = fresh("easy", 3)
    text = env.render_text()
    assert text.count("Slot ") == 4 and "Original:" in text and text.isascii()


def test_dataset_directory_of_images(tmp_path: Path) -> None:
    ys, xs = np.mgrid[0:200, 0:200]
    pixels = np.stack([xs % 256, ys % 256, (xs * ys) % 256], axis=-1).astype(np.uint8)
    PILImage.fromarray(pixels).save(tmp_path / "photo.png")
    env = fresh("hard", 1, dataset_path=tmp_path)
    assert env.initial_state()["image"] == "photo.png"
    image = env.render_image()
    assert image.shape == (336, 336, 3)
    assert "only visible in the image" in env.render_text()
    assert run_plan(env, solver_for("zoom_in_puzzle").solve(env)) == 1.0
