"""sliding_block: move parsing, blocked moves, scramble difficulty and the optimal solver."""

from __future__ import annotations

import numpy as np
import pytest

from gantry.envfarm.envs import make, solver_for
from gantry.envfarm.envs.base import run_plan
from gantry.envfarm.envs.sliding_block import GOAL, SlidingBlock, manhattan, solve_board


def fresh(difficulty: str = "easy", seed: int = 0) -> SlidingBlock:
    env = make("sliding_block", difficulty)
    assert isinstance(env, SlidingBlock)
    env.reset(seed=seed)
    return env


def with_tiles(rows: list[list[int]]) -> SlidingBlock:
    env = fresh()
    env.reset(options={"state": {"tiles": rows}})
    return env


@pytest.mark.parametrize(
    "action",
    [
        "('move', [9, 'up'])",
        "('move', [0, 'up'])",
        "('move', [1])",
        "('move', [1, 'diagonal'])",
        "('move', [1, 4])",
        "('move', [1.5, 'up'])",
        "('push', [1, 'up'])",
    ],
)
def test_malformed_moves_are_invalid(action: str) -> None:
    env = fresh()
    before = env.export_state()
    _, _, _, _, info = env.step(action)
    assert info["valid_action"] is False and info["env_feedback"].startswith("Invalid action")
    assert env.export_state() == before


def test_both_spellings_and_direction_indices_move_a_tile() -> None:
    env = with_tiles([[1, 2, 3], [4, 5, 6], [7, 0, 8]])
    _, _, _, _, info = env.step("('move', 8, 3)")  # 3 = left
    assert info["env_feedback"].startswith("Moved tile 8 left.")
    assert env.goal_reached()
    env.step("('move', [8, 'right'])")
    assert env.export_state() == {"tiles": [[1, 2, 3], [4, 5, 6], [7, 0, 8]]}


def test_blocked_moves_give_feedback_and_change_nothing() -> None:
    env = with_tiles([[1, 2, 3], [4, 5, 6], [7, 0, 8]])
    _, _, _, _, info = env.step("('move', [1, 'down'])")
    assert info["valid_action"] is True
    assert info["env_feedback"] == "Tile 1 cannot move down: tile 4 is in the way."
    _, _, _, _, info = env.step("('move', [3, 'up'])")
    assert info["env_feedback"] == "Tile 3 cannot move up: it is at the edge of the board."
    assert env.export_state() == {"tiles": [[1, 2, 3], [4, 5, 6], [7, 0, 8]]}


def test_unsolvable_or_malformed_boards_are_rejected() -> None:
    env = fresh()
    with pytest.raises(ValueError, match="cannot reach"):
        env.reset(options={"state": {"tiles": [[2, 1, 3], [4, 5, 6], [7, 8, 0]]}})
    with pytest.raises(ValueError, match="once each"):
        env.reset(options={"state": {"tiles": [[1, 1, 3], [4, 5, 6], [7, 8, 0]]}})


def test_solver_is_optimal_on_known_boards() -> None:
    assert solve_board(GOAL) == []
    assert solve_board((1, 2, 3, 4, 5, 6, 7, 0, 8)) == [8]
    # A classic 8-puzzle instance whose optimal solution is 31 moves long.
    hardest = (8, 6, 7, 2, 5, 4, 3, 0, 1)
    plan = solve_board(hardest, limit=31)
    assert plan is not None and len(plan) == 31
    assert solve_board(hardest, limit=30) is None


def test_hard_scrambles_need_longer_solutions_and_all_fit_the_budget() -> None:
    lengths: dict[str, list[int]] = {"easy": [], "hard": []}
    for difficulty, (low, high) in (("easy", (8, 19)), ("hard", (14, 29))):
        for seed in range(40):
            env = fresh(difficulty, seed)
            plan = solver_for("sliding_block").solve(env)
            assert low <= len(plan) - 1 <= high
            lengths[difficulty].append(len(plan) - 1)
    assert np.mean(lengths["hard"]) > np.mean(lengths["easy"]) + 3


def test_greedy_strategy_is_never_shorter_than_optimal() -> None:
    solver = solver_for("sliding_block")
    for seed in range(10):
        env = fresh("hard", seed)
        optimal, greedy = solver.solve(env, "astar"), solver.solve(env, "greedy")
        assert len(greedy) >= len(optimal)
        roomy = make("sliding_block", "hard", max_steps=200)
        roomy.reset(options={"state": env.initial_state()})
        assert run_plan(roomy, greedy) == 1.0


def test_image_changes_after_a_move_and_shows_the_goal_board() -> None:
    env = with_tiles([[1, 2, 3], [4, 5, 6], [7, 0, 8]])
    before = env.render_image()
    assert before.shape == (252, 336, 3)
    env.step("('move', [8, 'left'])")
    after = env.render_image()
    assert not np.array_equal(before, after)
    # Once solved, the big board and the goal thumbnail show the same layout.
    assert manhattan(env.board) == 0
    assert "Goal:" in env.render_text() and "7 8 ." in env.render_text()
