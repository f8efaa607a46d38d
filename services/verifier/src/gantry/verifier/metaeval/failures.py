"""Failure injection: turn an agent's correct action plan into one with a known failure.

Each kind stands for one taxonomy class, applied the way an agent would really fail on
a symbolic VisGym board (maze_2d, sliding_block). Injections only edit the plan; whether
the result is wrong is decided by replaying it in envfarm (dataset.py), never assumed.
"""

from __future__ import annotations

import random
import re
from collections.abc import Callable

STOP = "stop"
# One injected failure per taxonomy class (verifier.proto FailureClass names).
KINDS: dict[str, str] = {
    "wrong_source": "FAILURE_CLASS_FINDING_SOURCES",
    "reasoning_slip": "FAILURE_CLASS_REASONING",
    "misread_instruction": "FAILURE_CLASS_PROBLEM_UNDERSTANDING",
    "format_error": "FAILURE_CLASS_ACTION_ERRORS",
    "step_limit": "FAILURE_CLASS_MAX_STEP_REACHED",
}

# The subclass each kind stands for: the rubric the meta-evaluation verifies with.
SUBCLASSES: dict[str, str] = {
    "wrong_source": "FAILURE_SUBCLASS_WRONG_EVIDENCE",
    "reasoning_slip": "FAILURE_SUBCLASS_PREMATURE_CONCLUSION",
    "misread_instruction": "FAILURE_SUBCLASS_MISUNDERSTOOD_INSTRUCTIONS",
    "format_error": "FAILURE_SUBCLASS_FORMAT_MISTAKE",
    "step_limit": "FAILURE_SUBCLASS_STEP_LIMIT_EXHAUSTED",
}

_MAZE = re.compile(r"^\('move', '(up|down|left|right)'\)$")
_BLOCK = re.compile(r"^\('move', \((\d+), ([0-3])\)\)$")
_DIRECTIONS = ("up", "right", "down", "left")  # sliding_block's 0..3, clockwise


def _direction(action: str) -> tuple[int | None, int] | None:
    """(block or None, direction 0..3) of a move action, None for anything else."""
    if m := _MAZE.match(action):
        return None, _DIRECTIONS.index(m.group(1))
    if m := _BLOCK.match(action):
        return int(m.group(1)), int(m.group(2))
    return None


def _move(block: int | None, direction: int) -> str:
    if block is None:
        return f"('move', '{_DIRECTIONS[direction]}')"
    return f"('move', ({block}, {direction}))"


def _map_moves(plan: list[str], turn: Callable[[int], int]) -> list[str]:
    out = []
    for action in plan:
        parsed = _direction(action)
        out.append(action if parsed is None else _move(parsed[0], turn(parsed[1])))
    return out


def _moves(plan: list[str]) -> list[int]:
    return [i for i, action in enumerate(plan) if _direction(action) is not None]


def reasoning_slip(plan: list[str], rng: random.Random) -> list[str]:
    """Premature conclusion: the agent stops one move short of the goal."""
    moves = _moves(plan)
    return plan[: moves[-1]] + plan[moves[-1] + 1 :] if moves else plan


def misread_instruction(plan: list[str], rng: random.Random) -> list[str]:
    """The board says "row 0 is the top"; read the other way, up and down swap."""
    return _map_moves(plan, lambda d: {0: 2, 2: 0}.get(d, d))


def format_error(plan: list[str], rng: random.Random) -> list[str]:
    """One move written in prose ("move up", "move block 3 left") instead of the grammar."""
    moves = _moves(plan)
    if not moves:
        return plan
    i = rng.choice(moves)
    parsed = _direction(plan[i])
    assert parsed is not None
    block, direction = parsed
    prose = f"move {_DIRECTIONS[direction]}"
    if block is not None:
        prose = f"move block {block} {_DIRECTIONS[direction]}"
    return [*plan[:i], prose, *plan[i + 1 :]]


def step_limit(plan: list[str], max_steps: int) -> list[str]:
    """Dithering: the first move and its inverse, repeated, until the budget is spent."""
    moves = _moves(plan)
    if not moves:
        return plan
    parsed = _direction(plan[moves[0]])
    assert parsed is not None
    block, direction = parsed
    back = _move(block, (direction + 2) % 4)
    dither: list[str] = []
    while len(dither) + len(plan) <= max_steps:
        dither += [plan[moves[0]], back]
    return dither + plan
