"""sliding_block: VisGym's Klotski board, 5 rows by 4 columns, ten numbered blocks.

The pieces are those of the classic "Huarong Dao" layout: block 1 is 2×2, block 2 is a
horizontal 1×2, blocks 3-6 are vertical 2×1 and blocks 7-10 are 1×1; two cells stay
empty. As in VisGym, every episode starts from the classic layout and the goal is a
*target* layout reached from it by a scramble of 30 (easy) or 90 (hard) random moves;
the agent moves one block one cell at a time with `('move', (block, direction))`, and
`stop` earns the reward only when every block sits where it is in the target (blocks of
the same shape are not interchangeable: the numbers count). The image shows the target
board on the left and the current board on the right.

The scramble is a random walk that never undoes its previous move and spends its first
third pushing the 2×2 block around (so the big block travels, as in VisGym's shuffle).
A walk is kept only if its optimal solution (A* with the summed Manhattan distance of
the blocks to their targets, which is admissible: a move shifts one block by one cell)
fits the step budget with the final `stop`: easy keeps walks needing 6-19 moves, hard
walks needing 10-29. Measured over 300 walks each, 30-move walks need 0-22 moves (median
10; 9 % are too short, 0.7 % too long) and 90-move walks 2-38 (median 14; 14 % too short,
4 % too long); over 200 seeds the kept targets need 6-18 moves (easy, median 10) and
10-28 (hard, median 14). Every length is even: a move changes the sum of the blocks'
row + column by exactly one, so every path between two layouts has the same parity, and
both scramble lengths are even.
"""

from __future__ import annotations

import heapq
from collections.abc import Sequence
from typing import ClassVar

import numpy as np
from PIL import ImageDraw

from gantry.envfarm.envs.actions import Action, ActionError, expect_args, expect_int
from gantry.envfarm.envs.base import Image, JsonState, Solver, VisGymEnv
from gantry.envfarm.envs.render import BLACK, DARK, LIGHT, WHITE, Color, canvas, font, to_array

ROWS, COLS = 5, 4
# (height, width) of blocks 1-10, VisGym's numbering.
SHAPES: tuple[tuple[int, int], ...] = ((2, 2), (1, 2), *[(2, 1)] * 4, *[(1, 1)] * 4)
BLOCKS = len(SHAPES)
# The classic layout every episode starts from (top-left cell of each block):
#   3 1 1 4
#   3 1 1 4
#   5 2 2 6
#   5 9 10 6
#   7 . . 8
START: tuple[int, ...] = tuple(
    r * COLS + c
    for r, c in ((0, 1), (2, 1), (0, 0), (0, 3), (2, 0), (2, 3), (4, 0), (4, 3), (3, 1), (3, 2))
)
DIRECTIONS: dict[str, tuple[int, int]] = {
    "up": (-1, 0),
    "right": (0, 1),
    "down": (1, 0),
    "left": (0, -1),
}
BY_INDEX = ("up", "right", "down", "left")  # VisGym: 0=up, 1=right, 2=down, 3=left
SHUFFLE_MOVES = {"easy": 30, "hard": 90}
# Optimal solution length kept per difficulty (the upper end is capped by the budget).
SOLUTION_LENGTH = {"easy": (6, 19), "hard": (10, 29)}
# A* gives up after this many expansions (a client's target may be out of reach).
SEARCH_BUDGET = 300_000
COLORS: tuple[Color, ...] = (
    (214, 64, 52),  # 2x2
    (76, 164, 84),  # 1x2
    *[(62, 112, 204)] * 4,  # 2x1
    *[(236, 188, 48)] * 4,  # 1x1
)

Layout = tuple[int, ...]  # top-left cell (row * COLS + col) of blocks 1-10


def _masks() -> tuple[tuple[int, ...], ...]:
    """MASKS[block][cell]: the bitmask of cells the block covers from `cell` (0 if off-board)."""
    table = []
    for height, width in SHAPES:
        row = []
        for cell in range(ROWS * COLS):
            r, c = divmod(cell, COLS)
            if r + height > ROWS or c + width > COLS:
                row.append(0)
                continue
            row.append(
                sum(1 << ((r + i) * COLS + c + j) for i in range(height) for j in range(width))
            )
        table.append(tuple(row))
    return tuple(table)


MASKS = _masks()
DISTANCE: tuple[tuple[int, ...], ...] = tuple(
    tuple(abs(a // COLS - b // COLS) + abs(a % COLS - b % COLS) for b in range(ROWS * COLS))
    for a in range(ROWS * COLS)
)


def occupied(layout: Layout) -> int:
    return sum(MASKS[block][cell] for block, cell in enumerate(layout))


def step_to(layout: Layout, block: int, direction: str) -> int | None:
    """The block's new top-left cell after one move, or None if it leaves the board."""
    r, c = divmod(layout[block], COLS)
    dr, dc = DIRECTIONS[direction]
    r, c = r + dr, c + dc
    if not (0 <= r < ROWS and 0 <= c < COLS) or not MASKS[block][r * COLS + c]:
        return None
    return r * COLS + c


def legal_moves(layout: Layout) -> list[tuple[int, str, int]]:
    """Every (block, direction, new cell) that slides a block into empty cells."""
    occ = occupied(layout)
    moves = []
    for block, cell in enumerate(layout):
        own = MASKS[block][cell]
        for name in BY_INDEX:
            new = step_to(layout, block, name)
            if new is not None and not (MASKS[block][new] & ~own & occ):
                moves.append((block, name, new))
    return moves


def moved(layout: Layout, block: int, cell: int) -> Layout:
    return (*layout[:block], cell, *layout[block + 1 :])


def distance(layout: Layout, target: Layout) -> int:
    return sum(DISTANCE[a][b] for a, b in zip(layout, target, strict=True))


def search(
    layout: Layout, target: Layout, limit: int, weight: float = 1.0
) -> list[tuple[int, str]] | None:
    """Moves (block index, direction) from `layout` to `target`; None if none of <= `limit`.

    A* on block moves with the summed Manhattan distance (optimal for weight 1; a larger
    weight is greedier: fewer expansions, possibly longer plans, never past `limit`,
    because states whose admissible bound exceeds it are pruned and cheaper paths to a
    state reopen it). Raises ValueError when the search budget runs out.
    """
    h0 = distance(layout, target)
    if h0 > limit:
        return None
    best = {layout: 0}
    parent: dict[Layout, tuple[Layout, int, str]] = {}
    queue = [(weight * h0, 0, h0, layout)]
    expanded = 0
    while queue:
        _, g, h, state = heapq.heappop(queue)
        if g > best[state]:
            continue
        if h == 0:
            return _path(state, parent)
        expanded += 1
        if expanded > SEARCH_BUDGET:
            raise ValueError("no plan found within the search budget; is the target reachable?")
        for block, name, new in legal_moves(state):
            h2 = h - DISTANCE[state[block]][target[block]] + DISTANCE[new][target[block]]
            if g + 1 + h2 > limit:
                continue
            child = moved(state, block, new)
            if g + 1 < best.get(child, limit + 1):
                best[child] = g + 1
                parent[child] = (state, block, name)
                heapq.heappush(queue, (g + 1 + weight * h2, g + 1, h2, child))
    return None


def _path(state: Layout, parent: dict[Layout, tuple[Layout, int, str]]) -> list[tuple[int, str]]:
    moves = []
    while state in parent:
        state, block, name = parent[state]
        moves.append((block, name))
    return moves[::-1]


def scramble(moves: int, rng: np.random.Generator) -> Layout:
    """A random walk of `moves` block moves from START that undoes its previous move only
    in a dead end; the first third moves the 2×2 block whenever it can."""
    layout, previous = START, (-1, "")
    undo = {"up": "down", "down": "up", "left": "right", "right": "left"}
    for index in range(moves):
        legal = legal_moves(layout)
        options = [m for m in legal if (m[0], undo[m[1]]) != previous] or legal
        big = [m for m in options if m[0] == 0]
        if index < moves // 3 and big:
            options = big
        block, name, new = options[int(rng.integers(len(options)))]
        layout, previous = moved(layout, block, new), (block, name)
    return layout


def _layout(value: object, what: str) -> Layout:
    """A JSON list of [row, col] per block, checked: on the board and not overlapping."""
    if not isinstance(value, list) or len(value) != BLOCKS:
        raise ValueError(f"{what} must list [row, col] for each of the {BLOCKS} blocks")
    cells, covered = [], 0
    for block, pair in enumerate(value):
        if (
            not isinstance(pair, list)
            or len(pair) != 2
            or not all(type(v) is int for v in pair)
            or not (0 <= pair[0] < ROWS and 0 <= pair[1] < COLS)
        ):
            raise ValueError(f"{what}[{block}] must be [row, col] on the {ROWS}x{COLS} board")
        cell = pair[0] * COLS + pair[1]
        mask = MASKS[block][cell]
        if not mask:
            raise ValueError(f"{what}: block {block + 1} does not fit at {pair}")
        if mask & covered:
            raise ValueError(f"{what}: block {block + 1} overlaps another block")
        covered |= mask
        cells.append(cell)
    return tuple(cells)


def _as_json(layout: Layout) -> list[list[int]]:
    return [list(divmod(cell, COLS)) for cell in layout]


def grid(layout: Layout) -> list[list[int]]:
    """Block number (1-10) per cell, 0 for empty."""
    cells = [[0] * COLS for _ in range(ROWS)]
    for block, cell in enumerate(layout):
        height, width = SHAPES[block]
        r, c = divmod(cell, COLS)
        for i in range(height):
            for j in range(width):
                cells[r + i][c + j] = block + 1
    return cells


class SlidingBlock(VisGymEnv):
    env_id: ClassVar[str] = "sliding_block"
    description: ClassVar[str] = (
        "A 5x4 sliding block puzzle (Klotski). Ten numbered blocks: block 1 is 2x2, block 2 "
        "is 1x2 (wide), blocks 3-6 are 2x1 (tall) and blocks 7-10 are 1x1; two cells are "
        "empty. A block slides one cell at a time into empty cells. The left board is the "
        "target, the right board the current state: move the blocks until every block is "
        "where it is in the target."
    )
    action_grammar: ClassVar[str] = (
        "('move', (B, D)) slides block B (1-10) one cell in direction D: 0=up, 1=right, "
        "2=down, 3=left (or 'up', 'right', 'down', 'left'); the cells it moves into must be "
        "empty; 'stop'"
    )
    action_examples: ClassVar[tuple[str, ...]] = (
        "('move', (7, 1))",
        "('move', [1, 'down'])",
        "stop",
    )
    levels: ClassVar[dict[str, str]] = {
        "easy": "5x4 Klotski, 30-move scramble, optimal solution 6-19 moves",
        "hard": "5x4 Klotski, 90-move scramble, optimal solution 10-29 moves",
    }
    image_shape: ClassVar[tuple[int, int]] = (228, 336)

    layout: Layout
    target: Layout

    def _sample_state(self, rng: np.random.Generator) -> JsonState:
        low, high = SOLUTION_LENGTH[self.difficulty]
        high = min(high, self.max_steps - 1)
        if high < low:  # no target fits: refuse instead of sampling forever
            raise ValueError(
                f"max_steps {self.max_steps} is too small for {self.difficulty}: "
                f"targets here need at least {low} moves plus 'stop'"
            )
        while True:
            target = scramble(SHUFFLE_MOVES[self.difficulty], rng)
            if distance(START, target) > high:
                continue  # cannot fit; skip the search
            plan = search(START, target, limit=high)
            if plan is not None and len(plan) >= low:
                return {"blocks": _as_json(START), "target": _as_json(target)}

    def _load_state(self, state: JsonState) -> None:
        self.layout = _layout(state["blocks"], "blocks")
        self.target = _layout(state["target"], "target")

    def _state(self) -> JsonState:
        return {"blocks": _as_json(self.layout), "target": _as_json(self.target)}

    def _apply(self, action: Action) -> str:
        if action.name != "move":
            raise ActionError(f"unknown action {action.name!r}; use ('move', (block, direction))")
        block_arg, direction = expect_args(action, 2, "('move', (block, direction))")
        number = expect_int(block_arg, "block", 1, BLOCKS)
        if isinstance(direction, int) and not isinstance(direction, bool) and 0 <= direction < 4:
            direction = BY_INDEX[direction]
        if not isinstance(direction, str) or direction.lower() not in DIRECTIONS:
            raise ActionError("direction must be 0-3 or 'up', 'right', 'down', 'left'")
        name, block = direction.lower(), number - 1
        new = step_to(self.layout, block, name)
        if new is None:
            return f"Block {number} cannot move {name}: it is at the edge of the board."
        rest = occupied(self.layout) & ~MASKS[block][self.layout[block]]
        blocking = MASKS[block][new] & rest
        if blocking:
            cells = grid(self.layout)
            cell = (blocking & -blocking).bit_length() - 1
            other = cells[cell // COLS][cell % COLS]
            return f"Block {number} cannot move {name}: block {other} is in the way."
        self.layout = moved(self.layout, block, new)
        return f"Moved block {number} {name}." + (
            " Every block is in its target position." if self.goal_reached() else ""
        )

    def goal_reached(self) -> bool:
        return self.layout == self.target

    def render_image(self) -> Image:
        height, width = self.image_shape
        image, draw = canvas(height, width, background=LIGHT)
        label = font(15)
        for x0, title, layout in ((10, "target", self.target), (174, "current", self.layout)):
            draw.text((x0 + 76, 16), title, fill=DARK, font=label, anchor="mm")
            _draw_board(draw, layout, x0, 32, 38)
        return to_array(image)

    def render_text(self) -> str:
        def rows(layout: Layout) -> list[str]:
            return [" ".join(f"{v:>2}" if v else " ." for v in row) for row in grid(layout)]

        lines = [f"{'Target':<11} | Current"]
        lines += [f"{t} | {c}" for t, c in zip(rows(self.target), rows(self.layout), strict=True)]
        return (
            "Klotski, 5 rows x 4 columns; numbers are blocks, . is empty; row 0 is the top.\n"
            + "\n".join(lines)
        )


def _draw_board(
    draw: ImageDraw.ImageDraw, layout: Sequence[int], x0: int, y0: int, cell: int
) -> None:
    draw.rectangle((x0 - 3, y0 - 3, x0 + COLS * cell + 3, y0 + ROWS * cell + 3), fill=DARK)
    draw.rectangle((x0, y0, x0 + COLS * cell, y0 + ROWS * cell), fill=(70, 74, 82))
    label = font(18)
    for block, where in enumerate(layout):
        height, width = SHAPES[block]
        r, c = divmod(where, COLS)
        box = (
            x0 + c * cell + 2,
            y0 + r * cell + 2,
            x0 + (c + width) * cell - 2,
            y0 + (r + height) * cell - 2,
        )
        draw.rounded_rectangle(box, radius=5, fill=COLORS[block], outline=BLACK, width=1)
        centre = ((box[0] + box[2]) / 2, (box[1] + box[3]) / 2)
        draw.text(centre, str(block + 1), fill=WHITE, font=label, anchor="mm")


class SlidingBlockSolver(Solver):
    """`astar`: an optimal plan (A*, summed Manhattan distance). `greedy`: weighted A*
    (weight 3) bounded by the steps left: usually a few moves longer, a different and
    still correct demonstration that always fits."""

    strategies: ClassVar[tuple[str, ...]] = ("astar", "greedy")

    def plan(self, env: VisGymEnv, strategy: str) -> list[str]:
        return self.plan_within(env, strategy, 200)

    def plan_within(self, env: VisGymEnv, strategy: str, max_moves: int) -> list[str]:
        assert isinstance(env, SlidingBlock)
        weight = 3.0 if strategy == "greedy" else 1.0
        moves = search(env.layout, env.target, limit=max(max_moves, 0), weight=weight)
        if moves is None:
            # The optimal length tells the caller how far past the limit it is.
            optimal = search(env.layout, env.target, limit=200)
            if optimal is None:
                raise ValueError("the target cannot be reached from this layout")
            return [_action(block, name) for block, name in optimal]
        return [_action(block, name) for block, name in moves]

    def detour(self, env: VisGymEnv, rng: np.random.Generator) -> str:
        assert isinstance(env, SlidingBlock)
        options = legal_moves(env.layout)
        block, name, _ = options[int(rng.integers(len(options)))]
        return _action(block, name)


def _action(block: int, name: str) -> str:
    return f"('move', ({block + 1}, {BY_INDEX.index(name)}))"


ENTRY = (SlidingBlock, SlidingBlockSolver())
