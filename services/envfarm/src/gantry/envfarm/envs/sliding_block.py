"""sliding_block: slide numbered tiles into order on a 3×3 board with one empty cell.

VisGym's sliding_block is a Klotski board (5×4, blocks of several sizes) scrambled by
30 (easy) or 90 (hard) random moves, and the agent moves one block at a time with
`('move', (block, direction))`. Gantry keeps the action and the scramble lengths but
uses the classic 15-puzzle family instead of Klotski, on a 3×3 board (the 8-puzzle):
its optimal solutions are at most 31 moves, so a scramble can be checked against the
step budget exactly. A 4×4 board scrambled by 90 moves typically needs 35-50 moves,
which no plan could fit in 30 steps.

A scramble is a random walk of the blank (never undoing the previous move); it is kept
only if its optimal solution (A* with the Manhattan-distance heuristic, which is
admissible, so the length is exact) fits the step budget with the final `stop`:
easy keeps 30-move walks needing 8-19 moves, hard keeps 90-move walks needing 14-29.
The goal is tiles 1-8 in reading order with the empty cell bottom-right; the image
shows it as a small reference board next to the puzzle.
"""

from __future__ import annotations

import heapq
from collections.abc import Sequence
from typing import ClassVar

import numpy as np
from PIL import ImageDraw, ImageFont

from gantry.envfarm.envs.actions import Action, ActionError, expect_args, expect_int
from gantry.envfarm.envs.base import Image, JsonState, Solver, VisGymEnv
from gantry.envfarm.envs.render import DARK, LIGHT, WHITE, Color, canvas, font, to_array

SIDE = 3
CELLS = SIDE * SIDE
GOAL: tuple[int, ...] = (*range(1, CELLS), 0)
DIRECTIONS: dict[str, tuple[int, int]] = {
    "up": (-1, 0),
    "right": (0, 1),
    "down": (1, 0),
    "left": (0, -1),
}
BY_INDEX = ("up", "right", "down", "left")  # VisGym: 0=up, 1=right, 2=down, 3=left
SHUFFLE_MOVES = {"easy": 30, "hard": 90}
# Optimal solution length kept per difficulty (the upper end is capped by the budget).
SOLUTION_LENGTH = {"easy": (8, 19), "hard": (14, 29)}
# Tile colours by goal row, so rows read as bands once solved.
ROW_COLORS: tuple[Color, ...] = ((214, 96, 77), (86, 160, 96), (72, 118, 196))

Board = tuple[int, ...]
Font = ImageFont.FreeTypeFont | ImageFont.ImageFont


def _neighbours() -> tuple[tuple[int, ...], ...]:
    result = []
    for index in range(CELLS):
        r, c = divmod(index, SIDE)
        cells = [
            (r + dr) * SIDE + c + dc
            for dr, dc in DIRECTIONS.values()
            if 0 <= r + dr < SIDE and 0 <= c + dc < SIDE
        ]
        result.append(tuple(cells))
    return tuple(result)


NEIGHBOURS = _neighbours()
# MANHATTAN[tile][cell]: moves tile `tile` needs from `cell` to its goal cell.
MANHATTAN: tuple[tuple[int, ...], ...] = tuple(
    tuple(
        0
        if tile == 0
        else abs((tile - 1) // SIDE - cell // SIDE) + abs((tile - 1) % SIDE - cell % SIDE)
        for cell in range(CELLS)
    )
    for tile in range(CELLS)
)


def manhattan(board: Board) -> int:
    return sum(MANHATTAN[tile][cell] for cell, tile in enumerate(board))


def solve_board(board: Board, limit: int = 64, weight: float = 1.0) -> list[int] | None:
    """Tiles to move, in order, to reach the goal; None if no plan of <= `limit` moves.

    A* on the blank's moves with the Manhattan heuristic (optimal for weight 1; a larger
    weight is greedier: faster, possibly longer). The heuristic is updated incrementally
    because only one tile moves per step.
    """
    h0 = manhattan(board)
    if h0 > limit:
        return None
    best = {board: 0}
    parent: dict[Board, tuple[Board, int]] = {}
    queue = [(weight * h0, 0, h0, board, board.index(0))]
    while queue:
        _, g, h, state, blank = heapq.heappop(queue)
        if g > best[state]:
            continue
        if h == 0:
            return _moves_to(state, parent)
        for cell in NEIGHBOURS[blank]:
            tile = state[cell]
            h2 = h - MANHATTAN[tile][cell] + MANHATTAN[tile][blank]
            if g + 1 + h2 > limit:
                continue  # admissible bound: cannot finish within the limit
            nxt = list(state)
            nxt[blank], nxt[cell] = tile, 0
            child = tuple(nxt)
            if g + 1 < best.get(child, limit + 1):
                best[child] = g + 1
                parent[child] = (state, tile)
                heapq.heappush(queue, (g + 1 + weight * h2, g + 1, h2, child, cell))
    return None


def _moves_to(state: Board, parent: dict[Board, tuple[Board, int]]) -> list[int]:
    tiles = []
    while state in parent:
        state, tile = parent[state]
        tiles.append(tile)
    return tiles[::-1]


def solvable(board: Sequence[int]) -> bool:
    """An odd-width board is solvable iff its tiles (blank ignored) have even inversions."""
    tiles = [t for t in board if t]
    inversions = sum(1 for i, a in enumerate(tiles) for b in tiles[i + 1 :] if a > b)
    return inversions % 2 == 0


def random_walk(moves: int, rng: np.random.Generator) -> Board:
    board = list(GOAL)
    blank, previous = board.index(0), -1
    for _ in range(moves):
        options = [cell for cell in NEIGHBOURS[blank] if cell != previous]
        cell = options[int(rng.integers(len(options)))]
        board[blank], board[cell] = board[cell], 0
        previous, blank = blank, cell
    return tuple(board)


def direction_of(board: Board, tile: int) -> str:
    """The direction `tile` slides to fill the blank (it must be next to the blank)."""
    cell, blank = board.index(tile), board.index(0)
    delta = (blank // SIDE - cell // SIDE, blank % SIDE - cell % SIDE)
    return next(name for name, d in DIRECTIONS.items() if d == delta)


class SlidingBlock(VisGymEnv):
    env_id: ClassVar[str] = "sliding_block"
    description: ClassVar[str] = (
        "A 3x3 sliding-tile puzzle: eight numbered tiles and one empty cell. A tile next to "
        "the empty cell can slide into it. Arrange the tiles as in the small goal board: "
        "1 2 3 / 4 5 6 / 7 8, with the empty cell at the bottom right."
    )
    action_grammar: ClassVar[str] = (
        "('move', [T, D]) slides tile T (1-8) one cell in direction D, one of 'up', 'right', "
        "'down', 'left' (or 0, 1, 2, 3 in that order); the cell it moves into must be empty; "
        "'stop'"
    )
    action_examples: ClassVar[tuple[str, ...]] = ("('move', [6, 'down'])", "('move', 3, 3)", "stop")
    levels: ClassVar[dict[str, str]] = {
        "easy": "3x3 board, 30-move scramble, optimal solution 8-19 moves",
        "hard": "3x3 board, 90-move scramble, optimal solution 14-29 moves",
    }
    image_shape: ClassVar[tuple[int, int]] = (252, 336)

    board: Board

    def _sample_state(self, rng: np.random.Generator) -> JsonState:
        low, high = SOLUTION_LENGTH[self.difficulty]
        high = min(high, self.max_steps - 1)
        if high < low:  # no goal fits: refuse instead of sampling forever
            raise ValueError(
                f"max_steps {self.max_steps} is too small for {self.difficulty}: "
                f"goals here need at least {low} moves plus 'stop'"
            )
        while True:
            board = random_walk(SHUFFLE_MOVES[self.difficulty], rng)
            if manhattan(board) < low:
                continue  # cannot need `low` moves; skip the search
            plan = solve_board(board, limit=high)
            if plan is not None and len(plan) >= low:
                return {"tiles": [list(board[r * SIDE : (r + 1) * SIDE]) for r in range(SIDE)]}

    def _load_state(self, state: JsonState) -> None:
        rows = state["tiles"]
        if not isinstance(rows, list) or len(rows) != SIDE:
            raise ValueError(f"tiles must be {SIDE} rows")
        flat = []
        for row in rows:
            if not isinstance(row, list) or len(row) != SIDE:
                raise ValueError(f"each row of tiles must hold {SIDE} numbers")
            flat += row
        if sorted(flat) != list(range(CELLS)) or not all(type(t) is int for t in flat):
            raise ValueError(f"tiles must hold 0-{CELLS - 1} once each (0 is the empty cell)")
        if not solvable(flat):
            raise ValueError("this arrangement cannot reach the goal")
        self.board = tuple(flat)

    def _state(self) -> JsonState:
        return {"tiles": [list(self.board[r * SIDE : (r + 1) * SIDE]) for r in range(SIDE)]}

    def _apply(self, action: Action) -> str:
        if action.name != "move":
            raise ActionError(f"unknown action {action.name!r}; use ('move', [tile, direction])")
        tile_arg, direction = expect_args(action, 2, "('move', [tile, direction])")
        tile = expect_int(tile_arg, "tile", 1, CELLS - 1)
        if isinstance(direction, int) and not isinstance(direction, bool) and 0 <= direction < 4:
            direction = BY_INDEX[direction]
        if not isinstance(direction, str) or direction.lower() not in DIRECTIONS:
            raise ActionError("direction must be 'up', 'right', 'down', 'left' or 0-3")
        name = direction.lower()
        cell = self.board.index(tile)
        dr, dc = DIRECTIONS[name]
        r, c = cell // SIDE + dr, cell % SIDE + dc
        if not (0 <= r < SIDE and 0 <= c < SIDE):
            return f"Tile {tile} cannot move {name}: it is at the edge of the board."
        target = r * SIDE + c
        if self.board[target] != 0:
            return f"Tile {tile} cannot move {name}: tile {self.board[target]} is in the way."
        board = list(self.board)
        board[cell], board[target] = 0, tile
        self.board = tuple(board)
        return f"Moved tile {tile} {name}." + (
            " The tiles are in order." if self.goal_reached() else ""
        )

    def goal_reached(self) -> bool:
        return self.board == GOAL

    def render_image(self) -> Image:
        height, width = self.image_shape
        image, draw = canvas(height, width, background=LIGHT)
        _draw_board(draw, self.board, 12, 12, 76, font(40))
        draw.text((294, 40), "goal", fill=DARK, font=font(16), anchor="mm")
        _draw_board(draw, GOAL, 258, 56, 24, font(13))
        return to_array(image)

    def render_text(self) -> str:
        rows = [
            " ".join(str(t) if t else "." for t in self.board[r * SIDE : (r + 1) * SIDE])
            for r in range(SIDE)
        ]
        return (
            "Sliding tiles (. is the empty cell); row 0 is the top.\n"
            + "\n".join(rows)
            + "\nGoal:\n1 2 3\n4 5 6\n7 8 ."
        )


def _draw_board(
    draw: ImageDraw.ImageDraw, board: Board, x0: int, y0: int, cell: int, label: Font
) -> None:
    draw.rectangle((x0 - 3, y0 - 3, x0 + SIDE * cell + 3, y0 + SIDE * cell + 3), fill=DARK)
    for index, tile in enumerate(board):
        r, c = divmod(index, SIDE)
        box = (
            x0 + c * cell + 2,
            y0 + r * cell + 2,
            x0 + (c + 1) * cell - 2,
            y0 + (r + 1) * cell - 2,
        )
        if tile == 0:
            draw.rectangle(box, fill=(70, 74, 82))
            continue
        draw.rounded_rectangle(box, radius=max(2, cell // 10), fill=ROW_COLORS[(tile - 1) // SIDE])
        centre = ((box[0] + box[2]) / 2, (box[1] + box[3]) / 2)
        draw.text(centre, str(tile), fill=WHITE, font=label, anchor="mm")


class SlidingBlockSolver(Solver):
    """`astar`: an optimal plan (A*, Manhattan heuristic). `greedy`: weighted A* (weight
    3), usually a few moves longer; a different, still correct demonstration."""

    strategies: ClassVar[tuple[str, ...]] = ("astar", "greedy")

    def plan(self, env: VisGymEnv, strategy: str) -> list[str]:
        assert isinstance(env, SlidingBlock)
        weight = 3.0 if strategy == "greedy" else 1.0
        tiles = solve_board(env.board, limit=200, weight=weight)
        if tiles is None:
            raise ValueError("the board cannot be solved")
        board, actions = list(env.board), []
        for tile in tiles:
            actions.append(f"('move', [{tile}, '{direction_of(tuple(board), tile)}'])")
            cell, blank = board.index(tile), board.index(0)
            board[cell], board[blank] = 0, tile
        return actions

    def detour(self, env: VisGymEnv, rng: np.random.Generator) -> str:
        assert isinstance(env, SlidingBlock)
        blank = env.board.index(0)
        cells = NEIGHBOURS[blank]
        tile = env.board[cells[int(rng.integers(len(cells)))]]
        return f"('move', [{tile}, '{direction_of(env.board, tile)}'])"


ENTRY = (SlidingBlock, SlidingBlockSolver())
