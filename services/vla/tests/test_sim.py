"""Meta-World through MetaWorldEnv: rendering, seeds, scripted demonstrations."""

from __future__ import annotations

import numpy as np
import pytest

from gantry.vla.sim import MetaWorldEnv
from gantry.vla.train import action_chunks, collect_demos


@pytest.mark.slow
def test_scripted_policy_solves_reach_with_rendered_frames() -> None:
    env = MetaWorldEnv("reach-v3", seed=3, image_size=48)
    obs, info = env.reset()
    assert info["instruction"] == env.instruction
    assert obs["image"].shape == (48, 48, 3) and obs["image"].dtype == np.uint8
    assert obs["state"].shape == (4,) and obs["state"].dtype == np.float32
    assert obs["image"].std() > 5  # a real picture, not a blank buffer
    first = obs["image"]
    for _ in range(env.max_steps):
        obs, _, success, truncated, info = env.step(env.expert_action())
        if success or truncated:
            break
    assert info["success"] and success and not truncated
    assert not np.array_equal(first, obs["image"])  # the arm moved in the picture
    env.close()


def test_seeds_place_the_goal_differently() -> None:
    goals = []
    for seed in (0, 1):
        env = MetaWorldEnv("reach-v3", seed=seed, image_size=16, render_backend="schematic")
        env.reset()
        goals.append(env.sim._target_pos.copy())
        env.close()
    assert not np.allclose(goals[0], goals[1])


def test_schematic_frames_without_gl() -> None:
    env = MetaWorldEnv("button-press-topdown-v3", seed=0, image_size=32, render_backend="schematic")
    obs, _ = env.reset()
    assert env.render_kind == "schematic"
    before = obs["image"]
    for _ in range(15):
        obs, *_ = env.step(np.array([0.0, 0.0, -1.0, 0.0], np.float32))
    assert not np.array_equal(before, obs["image"])  # the hand's disc shrinks as it drops
    env.close()


def test_unknown_task() -> None:
    with pytest.raises(ValueError, match="unknown task"):
        MetaWorldEnv("fly-v3")


def test_action_chunks_repeat_the_last_action() -> None:
    actions = np.arange(6, dtype=np.float32).reshape(3, 2)
    chunks = action_chunks(actions, 4)
    assert chunks.shape == (3, 4, 2)
    assert chunks[0].tolist() == [[0, 1], [2, 3], [4, 5], [4, 5]]
    assert chunks[2].tolist() == [[4, 5]] * 4


def test_demos_keep_only_solved_episodes() -> None:
    demos = collect_demos(
        ["drawer-close-v3"], [0], chunk_size=4, image_size=16, render_backend="schematic"
    )
    assert demos.episodes == demos.successes == 1
    assert len(demos) == demos.images.shape[0] == demos.states.shape[0] == demos.chunks.shape[0]
    assert demos.images.shape[1:] == (1, 16, 16, 3)
    assert demos.chunks.shape[1:] == (4, 4)
    assert set(demos.instructions) == {"close the drawer"}
