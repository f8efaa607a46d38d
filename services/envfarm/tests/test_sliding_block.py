"""sliding_block: VisGym's 5x4 Klotski board: pieces, moves, feedback, scrambles, solvers."""

from __future__ import annotations

import numpy as np
import pytest

from gantry.envfarm.envs import make, solver_for
from gantry.envfarm.envs.base import PlanTooLong, run_plan
from gantry.envfarm.envs.sliding_block import (
    SHAPES,
    START,
    SlidingBlock,
    grid,
    legal_moves,
    moved,
    search,
)

CLASSIC = [
    [3, 1, 1, 4],
    [3, 1, 1, 4],
    [5, 2, 2, 6],
    [5, 9, 10, 6],
    [7, 0, 0, 8],
]
START_JSON = [[0, 1], [2, 1], [0, 0], [0, 3], [2, 0], [2, 3], [4, 0], [4, 3], [3, 1], [3, 2]]


def fresh(difficulty: str = "easy", seed: int = 0) -> SlidingBlock:
    env = make("sliding_block", difficulty)
    assert isinstance(env, SlidingBlock)
    env.reset(seed=seed)
    return env


def with_state(blocks: list[list[int]], target: list[list[int]]) -> SlidingBlock:
    env = fresh()
    env.reset(options={"state": {"blocks": blocks, "target": target}})
    return env


def test_the_board_is_the_classic_klotski_layout_with_visgyms_pieces() -> None:
    assert grid(START) == CLASSIC
    # 2x2, 1x2 (wide), four 2x1 (tall), four 1x1: 18 of the 20 cells, two left empty.
    assert SHAPES == (
        (2, 2),
        (1, 2),
        (2, 1),
        (2, 1),
        (2, 1),
        (2, 1),
        (1, 1),
        (1, 1),
        (1, 1),
        (1, 1),
    )
    env = fresh("hard", 3)
    assert env.initial_state()["blocks"] == START_JSON  # every episode starts here
    assert env.initial_state()["target"] != START_JSON


@pytest.mark.parametrize(
    "action",
    [
        "('move', (11, 0))",
        "('move', (0, 0))",
        "('move', (1,))",
        "('move', (1, 'diagonal'))",
        "('move', (1, 4))",
        "('move', (1.5, 0))",
        "('push', (1, 0))",
    ],
)
def test_malformed_moves_are_invalid(action: str) -> None:
    env = fresh()
    before = env.export_state()
    _, _, _, _, info = env.step(action)
    assert info["valid_action"] is False and info["env_feedback"].startswith("Invalid action")
    assert env.export_state() == before


def test_visgym_tuple_list_and_named_spellings_all_move_a_block() -> None:
    target = [list(p) for p in START_JSON]
    target[8] = [4, 1]  # block 9 one cell down
    env = with_state(START_JSON, target)
    _, reward, _, _, info = env.step("('move', (9, 2))")  # 2 = down
    assert info["env_feedback"] == "Moved block 9 down. Every block is in its target position."
    env.step("('move', [9, 'up'])")
    env.step("('move', 9, 'down')")
    assert env.goal_reached()
    _, reward, terminated, _, _ = env.step("stop")
    assert terminated and reward == 1.0


def test_blocked_moves_give_feedback_and_change_nothing() -> None:
    env = with_state(START_JSON, START_JSON)
    feedback = [
        env.step(a)[4]["env_feedback"]
        for a in ("('move', (1, 0))", "('move', (2, 2))", "('move', (7, 3))", "('move', (5, 1))")
    ]
    assert feedback == [
        "Block 1 cannot move up: it is at the edge of the board.",
        "Block 2 cannot move down: block 9 is in the way.",
        "Block 7 cannot move left: it is at the edge of the board.",
        "Block 5 cannot move right: block 2 is in the way.",
    ]
    assert env.export_state()["blocks"] == START_JSON


def test_the_big_block_needs_both_empty_cells_below_it() -> None:
    env = with_state(START_JSON, START_JSON)
    for action in ("('move', (9, 2))", "('move', (10, 2))", "('move', (2, 2))"):
        env.step(action)
    assert grid(env.layout)[2:] == [[5, 0, 0, 6], [5, 2, 2, 6], [7, 9, 10, 8]]
    _, _, _, _, info = env.step("('move', (1, 2))")
    assert info["env_feedback"] == "Moved block 1 down."
    assert grid(env.layout)[1:3] == [[3, 1, 1, 4], [5, 1, 1, 6]]


def test_reward_needs_every_numbered_block_in_place_not_just_the_shapes() -> None:
    # Blocks 9 and 10 swapped: the same picture of shapes, a different layout.
    target = [list(p) for p in START_JSON]
    target[8], target[9] = target[9], target[8]
    env = with_state(START_JSON, target)
    _, reward, terminated, _, info = env.step("stop")
    assert terminated and reward == 0.0 and "before the goal" in info["env_feedback"]


@pytest.mark.parametrize(
    ("blocks", "message"),
    [
        (START_JSON[:9], "each of the 10 blocks"),
        ([[0, 0], *START_JSON[1:]], "overlaps"),
        ([[4, 0], *START_JSON[1:]], "does not fit"),
        ([[0, 1], [0, 1.0], *START_JSON[2:]], r"blocks\[1\]"),
        ([[5, 0], *START_JSON[1:]], r"blocks\[0\]"),
    ],
)
def test_malformed_layouts_are_rejected(blocks: list[list[int]], message: str) -> None:
    env = fresh()
    with pytest.raises(ValueError, match=message):
        env.reset(options={"state": {"blocks": blocks, "target": START_JSON}})


def test_search_is_optimal_on_a_known_layout() -> None:
    assert search(START, START, limit=0) == []
    # Two moves apart (9 down, 10 left) and no shorter way round.
    layout = START
    for block, direction in ((8, "down"), (9, "left")):
        new = next(cell for b, d, cell in legal_moves(layout) if (b, d) == (block, direction))
        layout = moved(layout, block, new)
    assert search(START, layout, limit=10) == [(8, "down"), (9, "left")]
    assert search(START, layout, limit=1) is None


def test_scrambles_fit_the_budget_and_hard_needs_more_moves() -> None:
    solver = solver_for("sliding_block")
    lengths: dict[str, list[int]] = {"easy": [], "hard": []}
    for difficulty, (low, high) in (("easy", (6, 19)), ("hard", (10, 29))):
        for seed in range(30):
            env = fresh(difficulty, seed)
            plan = solver.solve(env, "astar")
            assert low <= len(plan) - 1 <= high
            assert run_plan(env.clone(), plan) == 1.0
            lengths[difficulty].append(len(plan) - 1)
    assert np.mean(lengths["hard"]) > np.mean(lengths["easy"]) + 3


def test_greedy_is_never_shorter_than_optimal_and_always_fits() -> None:
    solver = solver_for("sliding_block")
    longer = 0
    for seed in range(20):
        env = fresh("hard", seed)
        optimal, greedy = solver.solve(env, "astar"), solver.solve(env, "greedy")
        assert len(optimal) <= len(greedy) <= env.max_steps
        assert run_plan(env.clone(), greedy) == 1.0
        longer += len(greedy) > len(optimal)
    assert longer > 0  # a different demonstration, not a copy of astar


def test_a_target_past_the_steps_left_is_refused() -> None:
    env = fresh("hard", 1)
    needed = len(solver_for("sliding_block").solve(env))
    for _ in range(env.max_steps - needed + 1):
        env.step("('move', (1, 0))")  # blocked: a step spent, nothing moves
    for strategy in ("astar", "greedy"):
        with pytest.raises(PlanTooLong, match=f"needs {needed} actions"):
            solver_for("sliding_block").solve(env, strategy)


def test_image_shows_target_and_current_boards_and_text_mode_matches() -> None:
    env = with_state(START_JSON, START_JSON)
    before = env.render_image()
    assert before.shape == (228, 336, 3)
    env.step("('move', (9, 2))")
    after = env.render_image()
    changed = np.argwhere((before != after).any(axis=2))
    assert changed[:, 1].min() >= 168  # only the right-hand (current) board changed
    text = env.render_text().splitlines()
    assert text[2] == " 3  1  1  4 |  3  1  1  4"
    assert text[5] == " 5  9 10  6 |  5  . 10  6"
    assert text[6] == " 7  .  .  8 |  7  9  .  8"
