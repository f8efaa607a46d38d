"""video_unshuffle: swaps, reorders, the temporal cue, and clips read from a dataset."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image as PILImage

from gantry.envfarm.envs import make, solver_for
from gantry.envfarm.envs.base import run_plan
from gantry.envfarm.envs.video_unshuffle import (
    MIN_STEP,
    VideoUnshuffle,
    bezier,
    frame_time,
    grid_boxes,
    trail_length,
)


def fresh(difficulty: str = "easy", seed: int = 0) -> VideoUnshuffle:
    env = make("video_unshuffle", difficulty)
    assert isinstance(env, VideoUnshuffle)
    env.reset(seed=seed)
    return env


def with_order(order: list[int]) -> VideoUnshuffle:
    env = fresh("easy" if len(order) == 4 else "hard")
    env.reset(options={"state": {**env.export_state(), "order": order}})
    return env


def test_frame_counts_and_initial_shuffle() -> None:
    for difficulty, frames in (("easy", 4), ("hard", 5)):
        for seed in range(30):
            env = fresh(difficulty, seed)
            assert sorted(env.order) == list(range(frames))
            assert env.order != list(range(frames))


def test_trails_only_grow_so_the_order_is_unambiguous() -> None:
    for difficulty in ("easy", "hard"):
        for seed in range(40):
            env = fresh(difficulty, seed)
            frames = len(env.order)
            for mover in env.movers:
                times = [frame_time(k, frames) for k in range(frames)]
                spots = [bezier(mover["path"], t) for t in times]
                lengths = [trail_length(mover["path"], t) for t in times]
                assert lengths[0] == 0.0
                for k in range(frames - 1):
                    assert lengths[k + 1] - lengths[k] >= MIN_STEP - 1e-6
                    assert np.hypot(*np.subtract(spots[k + 1], spots[k])) >= MIN_STEP - 1e-6


def test_reorder_lists_current_positions_in_their_new_order() -> None:
    env = with_order([2, 0, 3, 1])
    _, _, _, info = env.transition("('reorder', [1, 3, 0, 2])")
    assert info["env_feedback"] == "Reordered the frames as [1, 3, 0, 2]."
    assert env.order == [0, 1, 2, 3] and env.goal_reached()
    env.transition("('reorder', 3, 2, 1, 0)")  # the flat spelling works too
    assert env.order == [3, 2, 1, 0]


def test_swap_feedback_and_reward() -> None:
    env = with_order([1, 0, 2, 3, 4])
    _, _, _, info = env.transition("('swap', 1, 0)")
    assert info["env_feedback"] == "Swapped the frames at positions 1 and 0."
    reward, terminated, _, _ = env.transition("stop")
    assert terminated and reward == 1.0


@pytest.mark.parametrize(
    ("action", "message"),
    [
        ("('swap', 1, 1)", "two different positions"),
        ("('swap', 0, 4)", "j must be between 0 and 3"),
        ("('swap', 0)", "usage: ('swap', i, j)"),
        ("('swap', 0.5, 1)", "i must be an integer"),
        ("('reorder', [0, 1, 2])", "usage: ('reorder'"),
        ("('reorder', [0, 0, 1, 2])", "exactly once"),
        ("('reorder', [0, 1, 2, 7])", "between 0 and 3"),
        ("('shuffle',)", "unknown action 'shuffle'"),
    ],
)
def test_invalid_actions(action: str, message: str) -> None:
    env = with_order([3, 1, 2, 0])
    _, _, _, info = env.transition(action)
    assert info["valid_action"] is False and message in info["env_feedback"]
    assert env.order == [3, 1, 2, 0]


def test_image_follows_the_order() -> None:
    env = fresh("hard", 3)
    before = env.render_image()
    env.transition("('swap', 0, 4)")
    swapped = env.render_image()
    assert swapped.shape == (336, 336, 3)
    assert (swapped != before).any()
    env.transition("('swap', 0, 4)")
    assert (env.render_image() == before).all()


def test_sorted_swaps_uses_at_most_k_minus_one_swaps() -> None:
    solver = solver_for("video_unshuffle")
    for seed in range(30):
        env = fresh("hard", seed)
        plan = solver.solve(env, "sorted_swaps")
        assert len(plan) - 1 <= 4
        assert run_plan(env, plan) == 1.0


def _clips(root: Path) -> dict[str, list[tuple[int, int, int]]]:
    colors = {}
    for clip, count in (("pour", 6), ("short", 3)):
        (root / clip).mkdir()
        colors[clip] = [(40 * k, 255 - 40 * k, 100) for k in range(count)]
        for k, color in enumerate(colors[clip]):
            PILImage.new("RGB", (32, 24), color).save(root / clip / f"{k:03d}.png")
    return colors


def test_dataset_clips_take_evenly_spaced_frames_in_name_order(tmp_path: Path) -> None:
    colors = _clips(tmp_path)
    env = make("video_unshuffle", "hard", dataset_path=tmp_path)
    assert isinstance(env, VideoUnshuffle)
    env.reset(seed=2)
    assert env.clip == [f"pour/{k:03d}.png" for k in (0, 1, 2, 4, 5)]  # "short" is too short
    image = env.render_image()
    for position, (x0, y0, x1, y1) in enumerate(grid_boxes(5)):
        expected = colors["pour"][int(env.clip[env.order[position]][5:8])]
        centre = image[(y0 + y1) // 2, (x0 + x1) // 2]
        assert np.abs(centre.astype(int) - expected).max() <= 2
    assert run_plan(env, solver_for("video_unshuffle").solve(env)) == 1.0
    assert "only visible in the image" in env.render_text()
    env4 = make("video_unshuffle", "easy", dataset_path=tmp_path)
    with pytest.raises(ValueError, match="not a file inside the dataset"):
        env4.reset(options={"state": {"clip": ["../x.png"] * 4, "order": [1, 0, 2, 3]}})
