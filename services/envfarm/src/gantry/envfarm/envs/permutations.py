"""Swap and reorder actions shared by the arrangement puzzles (jigsaw, zoom_in_puzzle).

Both puzzles show k pieces at labelled positions 0..k-1 and keep `order`, where
`order[position]` is the true index of the piece shown there; the goal is the identity.
`('swap', i, j)` exchanges two positions; `('reorder', [p0, ..., pk-1])` lists, for each
new position, the current position of the piece to put there. Grid puzzles also accept
cells as (row, col) pairs, VisGym's jigsaw spelling: `('swap', (0, 1), (1, 1))`.
"""

from __future__ import annotations

import numpy as np

from gantry.envfarm.envs.actions import Action, ActionError, Value, expect_args, expect_int


def position(value: Value, what: str, count: int, cols: int | None) -> int:
    """A position index, or a (row, col) pair when the pieces form a grid `cols` wide."""
    if isinstance(value, tuple):
        if cols is None or len(value) != 2:
            raise ActionError(f"{what} must be a position 0-{count - 1}")
        rows = count // cols
        row = expect_int(value[0], f"{what} row", 0, rows - 1)
        col = expect_int(value[1], f"{what} column", 0, cols - 1)
        return row * cols + col
    return expect_int(value, what, 0, count - 1)


def apply_swap(order: list[int], action: Action, cols: int | None = None) -> tuple[int, int]:
    """Swap two positions of `order` in place; return them."""
    count = len(order)
    usage = "('swap', i, j) with two positions" + (" or (row, col) cells" if cols else "")
    first, second = expect_args(action, 2, usage)
    a, b = position(first, "i", count, cols), position(second, "j", count, cols)
    if a == b:
        raise ActionError("swap needs two different positions")
    order[a], order[b] = order[b], order[a]
    return a, b


def apply_reorder(order: list[int], action: Action) -> list[int]:
    """Rearrange `order` in place by a full permutation of positions; return it."""
    last = len(order) - 1
    usage = f"('reorder', [p0, ..., p{last}]) with a permutation of 0..{last}"
    values = expect_args(action, last + 1, usage)
    perm = [expect_int(v, "each position", 0, last) for v in values]
    if sorted(perm) != list(range(last + 1)):
        raise ActionError(f"the new order must list each position 0..{last} exactly once")
    order[:] = [order[p] for p in perm]
    return perm


def shuffled(count: int, rng: np.random.Generator) -> list[int]:
    """A random order of `count` pieces that is never already solved."""
    while True:
        order = [int(k) for k in rng.permutation(count)]
        if order != list(range(count)):
            return order


def check_order(value: object, low: int, high: int) -> list[int]:
    if not isinstance(value, list) or not low <= len(value) <= high:
        raise ValueError(f"order must list {low}-{high} positions")
    if not all(type(v) is int for v in value) or sorted(value) != list(range(len(value))):
        raise ValueError("order must be a permutation of 0..k-1")
    return list(value)


def reorder_plan(order: list[int]) -> list[str]:
    """One `reorder` that solves `order` (none if it is solved)."""
    if order == sorted(order):
        return []
    return [f"('reorder', {[order.index(k) for k in range(len(order))]})"]


def swap_plan(order: list[int]) -> list[str]:
    """Selection sort: one swap per misplaced piece, at most k-1 swaps."""
    order, actions = list(order), []
    for pos in range(len(order)):
        if order[pos] != pos:
            source = order.index(pos)
            order[pos], order[source] = order[source], order[pos]
            actions.append(f"('swap', {pos}, {source})")
    return actions


def random_swap(count: int, rng: np.random.Generator) -> str:
    i, j = rng.choice(count, size=2, replace=False)
    return f"('swap', {int(i)}, {int(j)})"
