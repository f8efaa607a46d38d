"""patch_reassembly: partitions, place/remove rules and feedback, and any full tiling wins."""

from __future__ import annotations

import numpy as np
import pytest

from gantry.envfarm.envs import make, solver_for
from gantry.envfarm.envs.base import run_plan
from gantry.envfarm.envs.patch_reassembly import (
    STEPS,
    PatchReassembly,
    covered,
    extent,
    find_tiling,
)


def fresh(difficulty: str = "easy", seed: int = 0) -> PatchReassembly:
    env = make("patch_reassembly", difficulty)
    assert isinstance(env, PatchReassembly)
    env.reset(seed=seed)
    return env


def test_board_sizes_and_connected_patches_that_tile_the_board() -> None:
    for difficulty, (side, count, limit) in (("easy", (6, 5, 5)), ("hard", (8, 6, 6))):
        for seed in range(25):
            env = fresh(difficulty, seed)
            assert env.side == side and len(env.shapes) == count
            assert all(at is None for at in env.placed)
            cells = [set(covered(s, h)) for s, h in zip(env.shapes, env.home, strict=True)]
            assert set().union(*cells) == {(r, c) for r in range(side) for c in range(side)}
            for shape, patch in zip(env.shapes, cells, strict=True):
                assert len(shape) >= 3 and max(extent(shape)[2:]) <= limit
                seen, todo = set(), [next(iter(patch))]
                while todo:  # flood fill: a patch is one connected piece
                    r, c = todo.pop()
                    if (r, c) in seen:
                        continue
                    seen.add((r, c))
                    todo += [(r + dr, c + dc) for dr, dc in STEPS if (r + dr, c + dc) in patch]
                assert seen == patch


def test_place_feedback_for_outside_and_overlap() -> None:
    env = fresh()
    r, c = env.home[0]
    _, _, _, _, info = env.step(f"('place', [0, {r}, {c}])")
    assert info["env_feedback"].startswith(f"Placed patch 0 with its anchor at ({r}, {c}).")
    _, _, _, _, info = env.step(f"('place', 1, {r}, {c})")
    assert info["valid_action"] is True
    assert info["env_feedback"].endswith("it would overlap patch 0.")
    assert env.placed[1] is None
    _, _, _, _, info = env.step("('place', [1, 5, 5])")
    assert "stick out of the board" in info["env_feedback"] or "overlap" in info["env_feedback"]
    _, _, _, _, info = env.step("('remove', 0)")
    assert info["env_feedback"] == "Returned patch 0 to the tray."
    _, _, _, _, info = env.step("('remove', 0)")
    assert info["env_feedback"] == "Patch 0 is already in the tray."


@pytest.mark.parametrize(
    "action",
    [
        "('place', [5, 0, 0])",
        "('place', [0, 6, 0])",
        "('place', [0, 0])",
        "('remove', -1)",
        "('remove', 'all')",
        "('rotate', 0)",
    ],
)
def test_malformed_actions_are_invalid(action: str) -> None:
    env = fresh()
    _, _, _, _, info = env.step(action)
    assert info["valid_action"] is False and info["env_feedback"].startswith("Invalid action")


def test_any_complete_tiling_counts_and_home_strategy_also_works() -> None:
    solver = solver_for("patch_reassembly")
    for seed in range(15):
        env = fresh("hard", seed)
        tiling = find_tiling(env.side, env.shapes, {})
        assert tiling is not None
        for pid, (r, c) in tiling.items():
            env.step(f"('place', [{pid}, {r}, {c}])")
        assert env.goal_reached()
        env.reset(seed=seed)
        assert run_plan(env, solver.solve(env, "home")) == 1.0


def test_solver_repairs_a_misplaced_patch() -> None:
    env = make("patch_reassembly", "easy", max_steps=100)
    env.reset(seed=2)
    assert isinstance(env, PatchReassembly)
    solver = solver_for("patch_reassembly")
    for _ in range(4):
        env.step(solver.detour(env, np.random.default_rng(3)))
    assert run_plan(env, solver.solve(env)) == 1.0


def test_image_changes_after_placing_and_text_lists_the_tray() -> None:
    env = fresh("hard", 4)
    text = env.render_text()
    assert text.count("Patch ") == 6 and "*" in text
    before = env.render_image()
    r, c = env.home[2]
    env.step(f"('place', [2, {r}, {c}])")
    assert not np.array_equal(before, env.render_image())
    assert "Patch 2:" not in env.render_text()


def test_states_that_do_not_tile_are_rejected() -> None:
    env = fresh()
    state = env.export_state()
    state["patches"][0] = state["patches"][0][:-1]
    with pytest.raises(ValueError, match="as many cells as the board"):
        env.reset(options={"state": state})
