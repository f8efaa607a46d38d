"""matchstick_equation: indexing, legal moves, undo, and puzzles needing exactly 1 or 2 moves."""

from __future__ import annotations

import pytest

from gantry.envfarm.envs import make, solver_for
from gantry.envfarm.envs.base import run_plan
from gantry.envfarm.envs.matchstick_equation import (
    MatchstickEquation,
    is_true,
    legal_moves,
    shortest_solution,
)


def with_equation(equation: str, history: list[list[int]] | None = None) -> MatchstickEquation:
    env = make("matchstick_equation", "easy")
    assert isinstance(env, MatchstickEquation)
    env.reset(options={"state": {"equation": equation, "history": history or []}})
    return env


def test_positions_count_operators_and_segments_follow_the_seven_segment_order() -> None:
    env = with_equation("6+4=4")
    # Position 0 is the 6: its middle bar (segment 6) goes to its upper right (segment 1): 0.
    _, _, _, info = env.transition("('move', [0, 6, 0, 1])")
    assert (
        info["env_feedback"] == "Moved the match at position 0 segment 6 to position 0 segment 1."
    )
    assert env.equation == "0+4=4" and env.goal_reached()
    env = with_equation("6+4=4")
    # Position 1 is '+': its vertical bar (segment 1) completes the 6 into an 8: 8-4=4.
    env.transition("('move', 1, 1, 0, 1)")
    assert env.equation == "8-4=4"
    reward, terminated, _, _ = env.transition("stop")
    assert terminated and reward == 1.0


@pytest.mark.parametrize(
    ("action", "message"),
    [
        ("('move', [3, 0, 0, 1])", "the '=' sign at position 3 is fixed"),
        ("('move', [0, 1, 3, 0])", "the '=' sign at position 3 is fixed"),
        ("('move', [1, 2, 0, 1])", "position 1 has segments 0-1"),
        ("('move', [0, 1, 2, 0])", "there is no match at position 0 segment 1"),
        ("('move', [0, 0, 2, 1])", "position 2 segment 1 already has a match"),
        ("('move', [0, 0, 0, 0])", "must move to a different place"),
        ("('move', [0, 0, 2, 0])", "would leave position 0 as no valid digit"),
        ("('move', [1, 0, 0, 1])", "would leave position 1 as no valid '+' or '-'"),
        ("('move', [0, 0, 9, 0])", "dst_position must be between 0 and 4"),
        ("('move', [0, 0, 2])", "usage: ('move', [src_position"),
        ("('move', [0, 'a', 2, 1])", "src_segment must be an integer"),
        ("('flip', 1)", "unknown action 'flip'"),
    ],
)
def test_illegal_moves_are_explained(action: str, message: str) -> None:
    env = with_equation("6+4=4")
    _, _, _, info = env.transition(action)
    assert info["valid_action"] is False and message in info["env_feedback"]
    assert env.equation == "6+4=4" and env.history == []


def test_undo_reverts_moves_in_order() -> None:
    env = with_equation("6+4=4")
    env.transition("('move', [0, 6, 0, 1])")
    env.transition("('move', [0, 4, 0, 6])")
    assert env.equation == "9+4=4" and env.history == [[0, 6, 0, 1], [0, 4, 0, 6]]
    _, _, _, info = env.transition("('undo',)")
    assert (
        info["env_feedback"] == "Undid the move from position 0 segment 4 to position 0 segment 6."
    )
    assert env.equation == "0+4=4"
    env.transition("undo")
    assert env.equation == "6+4=4" and env.history == []
    _, _, _, info = env.transition("('undo',)")
    assert info["valid_action"] is True and info["env_feedback"] == "There is no move to undo."


def test_truth_needs_numbers_without_leading_zeros() -> None:
    assert is_true("9+8=17") and is_true("7-7=0")
    assert not is_true("1+0=01") and not is_true("3+4=8")


@pytest.mark.parametrize(("difficulty", "needed"), [("easy", 1), ("hard", 2)])
def test_puzzles_are_false_and_need_exactly_the_set_number_of_moves(
    difficulty: str, needed: int
) -> None:
    equations = set()
    for seed in range(60):
        env = make("matchstick_equation", difficulty)
        assert isinstance(env, MatchstickEquation)
        env.reset(seed=seed)
        equations.add(env.equation)
        assert not is_true(env.equation)
        solution = shortest_solution(env.equation)
        assert solution is not None and len(solution) == needed, env.equation
    assert len(equations) > 30


def test_legal_moves_are_exactly_the_valid_actions() -> None:
    env = make("matchstick_equation", "easy", max_steps=5000)
    assert isinstance(env, MatchstickEquation)
    env.reset(options={"state": {"equation": "5+3=6", "history": []}})
    legal = {move for move, _ in legal_moves(env.equation)}
    for src in range(5):
        for s in range(7):
            for dst in range(5):
                for t in range(7):
                    _, _, _, info = env.transition(f"('move', [{src}, {s}, {dst}, {t}])")
                    assert info["valid_action"] == ((src, s, dst, t) in legal)
                    if info["valid_action"]:
                        env.transition("('undo',)")
                    assert env.equation == "5+3=6"


def test_unsolvable_equation_has_no_solution_and_solver_says_so() -> None:
    assert shortest_solution("3+4=8") is None
    with pytest.raises(ValueError, match="no sequence of moves"):
        solver_for("matchstick_equation").solve(with_equation("3+4=8"))


def test_undo_first_strategy_rewinds_every_move() -> None:
    env = with_equation("8-3=6")
    env.transition("('move', [2, 2, 2, 4])")  # solved: 8-2=6
    move, after = next((m, e) for m, e in legal_moves(env.equation) if not is_true(e))
    env.transition(f"('move', {list(move)})")
    assert env.equation == after and len(env.history) == 2
    plan = solver_for("matchstick_equation").solve(env, "undo_first")
    assert plan == ["('undo',)", "('undo',)", "('move', [2, 2, 2, 4])", "stop"]
    assert run_plan(env, plan) == 1.0


def test_image_changes_after_a_move() -> None:
    env = with_equation("6+4=4")
    before = env.render_image()
    env.transition("('move', [0, 6, 0, 1])")
    after = env.render_image()
    assert after.shape == (336, 336, 3) and (after != before).any()


def test_state_validation() -> None:
    env = with_equation("6+4=4")
    for bad in ("6+4+4", "6*4=4", "6+=44", "=6+44"):
        with pytest.raises(ValueError, match="equation"):
            env.reset(options={"state": {"equation": bad, "history": []}})
    with pytest.raises(ValueError, match="history does not undo cleanly"):
        env.reset(options={"state": {"equation": "6+4=4", "history": [[0, 1, 2, 0]]}})
    text = with_equation("6+4=4", history=[[0, 1, 0, 6]]).render_text()
    assert "Position 3: '=' (fixed)" in text and "Moves made: 1" in text
