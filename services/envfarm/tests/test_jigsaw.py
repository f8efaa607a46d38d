"""jigsaw: swap/reorder parsing, grid sizes, the procedural picture and dataset images."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image as PILImage

from gantry.envfarm.envs import make, solver_for
from gantry.envfarm.envs.base import run_plan
from gantry.envfarm.envs.jigsaw import GAP, Jigsaw, render_landscape, tile_box


def fresh(difficulty: str = "easy", seed: int = 0, **kwargs: object) -> Jigsaw:
    env = make("jigsaw", difficulty, **kwargs)
    assert isinstance(env, Jigsaw)
    env.reset(seed=seed)
    return env


def with_order(order: list[int]) -> Jigsaw:
    env = fresh("easy" if len(order) == 4 else "hard")
    env.reset(options={"state": {**env.export_state(), "order": order}})
    return env


def test_grid_sizes_and_initial_shuffle() -> None:
    for difficulty, tiles in (("easy", 4), ("hard", 9)):
        for seed in range(20):
            env = fresh(difficulty, seed)
            assert sorted(env.order) == list(range(tiles))
            assert not env.goal_reached()


def test_swap_by_index_or_by_row_col_cells() -> None:
    env = with_order([0, 1, 2, 3, 4, 5, 6, 7, 8])
    _, _, _, _, info = env.step("('swap', (0, 1), (2, 2))")
    assert info["env_feedback"] == "Swapped the tiles at positions 1 and 8."
    assert env.order == [0, 8, 2, 3, 4, 5, 6, 7, 1]
    env.step("('swap', [1, 8])")
    assert env.goal_reached()


def test_reorder_lists_current_positions_in_their_new_order() -> None:
    env = with_order([2, 0, 3, 1])
    env.step("('reorder', [1, 3, 0, 2])")
    assert env.order == [0, 1, 2, 3]


@pytest.mark.parametrize(
    "action",
    [
        "('swap', 1, 1)",
        "('swap', 0, 4)",
        "('swap', (0, 2), (1, 1))",
        "('swap', 0)",
        "('reorder', [0, 1, 2])",
        "('reorder', [0, 0, 1, 2])",
        "('rotate', 0)",
    ],
)
def test_bad_actions_are_invalid_and_change_nothing(action: str) -> None:
    env = with_order([2, 0, 3, 1])
    _, _, _, _, info = env.step(action)
    assert info["valid_action"] is False and info["env_feedback"].startswith("Invalid action")
    assert env.order == [2, 0, 3, 1]


def test_solved_arrangement_shows_the_whole_picture() -> None:
    env = with_order([0, 1, 2, 3])
    assert env.picture is not None
    shown, picture = env.render_image(), render_landscape(env.picture)
    x0, y0, x1, y1 = tile_box(3, 2)
    inner = (slice(y0 + GAP + 20, y1 - GAP), slice(x0 + GAP + 20, x1 - GAP))
    assert np.array_equal(shown[inner], picture[inner])


def test_swap_changes_the_image_and_the_landscape_is_not_flat() -> None:
    env = with_order([2, 0, 3, 1])
    before = env.render_image()
    env.step("('swap', 0, 1)")
    assert not np.array_equal(before, env.render_image())
    assert env.picture is not None
    picture = render_landscape(env.picture).astype(np.int32)
    # Every tile of the 3x3 cut differs from the others (no two interchangeable tiles).
    tiles = [picture[y0:y1, x0:x1] for x0, y0, x1, y1 in (tile_box(k, 3) for k in range(9))]
    for a in range(9):
        for b in range(a + 1, 9):
            assert np.abs(tiles[a] - tiles[b]).mean() > 3


def test_text_mode_shows_each_tile_as_ascii_art() -> None:
    env = fresh("hard", 1)
    text = env.render_text()
    assert text.count("Position ") == 9 and text.isascii()


def test_dataset_directory_of_images(tmp_path: Path) -> None:
    for name, color in (("a.png", (200, 30, 30)), ("b.jpg", (30, 30, 200))):
        pixels = np.zeros((60, 90, 3), np.uint8)
        pixels[:, :, :] = color
        pixels[:30] //= 2  # top half darker: the tiles differ
        PILImage.fromarray(pixels).save(tmp_path / name)
    (tmp_path / "notes.txt").write_text("not an image")
    env = fresh("easy", 4, dataset_path=tmp_path)
    state = env.initial_state()
    assert state["image"] in {"a.png", "b.jpg"} and "picture" not in state
    plan = solver_for("jigsaw").solve(env)
    image = env.render_image()
    assert image.shape == (336, 336, 3)
    assert run_plan(env, plan) == 1.0
    with pytest.raises(ValueError, match="plain file name"):
        env.reset(options={"state": {"image": "../secret.png", "order": [1, 0, 2, 3]}})
