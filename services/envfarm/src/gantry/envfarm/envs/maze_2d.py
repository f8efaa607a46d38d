"""maze_2d: move an agent through a top-down maze to the goal cell.

VisGym: 9×9 (easy) and 11×11 (hard) mazes, actions move up/down/left/right. Mazes are
carved by a randomized depth-first search over an odd grid, so there is exactly one path
between any two free cells; the goal is placed at a shortest-path distance that fits the
step budget.
"""

from __future__ import annotations

from collections import deque
from itertools import pairwise
from typing import ClassVar

import numpy as np

from gantry.envfarm.envs.actions import Action, ActionError, expect_args
from gantry.envfarm.envs.base import Image, JsonState, Solver, VisGymEnv
from gantry.envfarm.envs.render import DARK, GREEN, LIGHT, RED, canvas, grid_cell, to_array

Cell = tuple[int, int]
DIRECTIONS: dict[str, Cell] = {"up": (-1, 0), "right": (0, 1), "down": (1, 0), "left": (0, -1)}
BY_INDEX = ("up", "right", "down", "left")  # ('move', 0) is up, as in VisGym's examples
SIZES = {"easy": 9, "hard": 11}
# Shortest-path distance from start to goal: long enough to need planning, short enough
# to fit the step limit with the final `stop`.
DISTANCE = {"easy": (5, 14), "hard": (8, 22)}


def carve(size: int, rng: np.random.Generator) -> list[list[int]]:
    """1 = wall, 0 = free. Odd coordinates are rooms; DFS knocks down walls between them."""
    walls = [[1] * size for _ in range(size)]
    start = (1, 1)
    walls[1][1] = 0
    stack = [start]
    while stack:
        r, c = stack[-1]
        options = [
            (r + 2 * dr, c + 2 * dc, dr, dc)
            for dr, dc in DIRECTIONS.values()
            if 0 < r + 2 * dr < size - 1
            and 0 < c + 2 * dc < size - 1
            and walls[r + 2 * dr][c + 2 * dc]
        ]
        if not options:
            stack.pop()
            continue
        nr, nc, dr, dc = options[int(rng.integers(len(options)))]
        walls[r + dr][c + dc] = 0
        walls[nr][nc] = 0
        stack.append((nr, nc))
    return walls


def distances(walls: list[list[int]], source: Cell) -> dict[Cell, int]:
    size = len(walls)
    dist = {source: 0}
    queue = deque([source])
    while queue:
        r, c = queue.popleft()
        for dr, dc in DIRECTIONS.values():
            nxt = (r + dr, c + dc)
            if (
                0 <= nxt[0] < size
                and 0 <= nxt[1] < size
                and not walls[nxt[0]][nxt[1]]
                and nxt not in dist
            ):
                dist[nxt] = dist[(r, c)] + 1
                queue.append(nxt)
    return dist


def _right_hand(env: Maze2D) -> list[Cell]:
    """The cells visited by keeping a hand on the right wall until the goal."""
    size = len(env.walls)
    order = list(DIRECTIONS)
    heading, cell = 0, env.agent
    cells = [cell]

    def free(c: Cell) -> bool:
        return 0 <= c[0] < size and 0 <= c[1] < size and not env.walls[c[0]][c[1]]

    for _ in range(4 * size * size):
        if cell == env.goal:
            return cells
        for turn in (1, 0, 3, 2):  # right, straight, left, back
            candidate = (heading + turn) % 4
            dr, dc = DIRECTIONS[order[candidate]]
            nxt = (cell[0] + dr, cell[1] + dc)
            if free(nxt):
                heading, cell = candidate, nxt
                cells.append(cell)
                break
    raise ValueError("wall following did not reach the goal")


def _excursions(cells: list[Cell]) -> list[tuple[int, int]]:
    """Outermost loops of a walk: (i, j) with cells[i] == cells[j], i < j, not nested."""
    last = {cell: index for index, cell in enumerate(cells)}
    loops, i = [], 0
    while i < len(cells):
        j = last[cells[i]]
        if j > i:
            loops.append((i, j))
        i = max(i, j) + 1
    return loops


def _cut_excursions(cells: list[Cell], max_moves: int) -> list[Cell]:
    """Drop whole excursions until the walk takes at most `max_moves` moves (or none is left)."""
    while len(cells) - 1 > max_moves:
        loops = _excursions(cells)
        if not loops:
            break
        excess = len(cells) - 1 - max_moves
        enough = [loop for loop in loops if loop[1] - loop[0] >= excess]
        i, j = (
            min(enough, key=lambda lp: lp[1] - lp[0])
            if enough
            else max(loops, key=lambda lp: lp[1] - lp[0])
        )
        cells = cells[: i + 1] + cells[j + 1 :]
    return cells


def _moves(cells: list[Cell]) -> list[str]:
    names = {delta: name for name, delta in DIRECTIONS.items()}
    return [f"('move', '{names[(b[0] - a[0], b[1] - a[1])]}')" for a, b in pairwise(cells)]


class Maze2D(VisGymEnv):
    env_id: ClassVar[str] = "maze_2d"
    description: ClassVar[str] = (
        "A top-down maze. Dark cells are walls. Move the red agent to the green goal cell."
    )
    action_grammar: ClassVar[str] = (
        "('move', D) with D one of 'up', 'right', 'down', 'left' (or 0, 1, 2, 3 in that order); "
        "'stop'"
    )
    action_examples: ClassVar[tuple[str, ...]] = ("('move', 'up')", "('move', 2)", "stop")
    levels: ClassVar[dict[str, str]] = {
        "easy": "9x9 maze, goal 5-14 moves away",
        "hard": "11x11 maze, goal 8-22 moves away",
    }

    walls: list[list[int]]
    agent: Cell
    goal: Cell

    def _sample_state(self, rng: np.random.Generator) -> JsonState:
        size = SIZES[self.difficulty]
        low, high = DISTANCE[self.difficulty]
        high = min(high, self.max_steps - 1)
        if high < low:  # no goal fits: refuse instead of sampling forever
            raise ValueError(
                f"max_steps {self.max_steps} is too small for {self.difficulty}: "
                f"goals here need at least {low} moves plus 'stop'"
            )
        while True:
            walls = carve(size, rng)
            free = [(r, c) for r in range(size) for c in range(size) if not walls[r][c]]
            start = free[int(rng.integers(len(free)))]
            dist = distances(walls, start)
            goals = sorted(cell for cell, d in dist.items() if low <= d <= high)
            if goals:
                goal = goals[int(rng.integers(len(goals)))]
                return {"walls": walls, "agent": list(start), "goal": list(goal)}

    def _load_state(self, state: JsonState) -> None:
        walls = [[int(bool(v)) for v in row] for row in state["walls"]]
        size = len(walls)
        if size < 3 or any(len(row) != size for row in walls):
            raise ValueError("walls must be a square grid of at least 3×3")
        agent, goal = tuple(state["agent"]), tuple(state["goal"])
        for name, (r, c) in (("agent", agent), ("goal", goal)):
            if not (0 <= r < size and 0 <= c < size) or walls[r][c]:
                raise ValueError(f"{name} must be on a free cell")
        self.walls, self.agent, self.goal = (
            walls,
            (int(agent[0]), int(agent[1])),
            (int(goal[0]), int(goal[1])),
        )

    def _state(self) -> JsonState:
        return {"walls": self.walls, "agent": list(self.agent), "goal": list(self.goal)}

    def _apply(self, action: Action) -> str:
        if action.name != "move":
            raise ActionError(f"unknown action {action.name!r}; use ('move', 'up') or 'stop'")
        (direction,) = expect_args(action, 1, "('move', 'up'|'right'|'down'|'left')")
        if isinstance(direction, int) and not isinstance(direction, bool) and 0 <= direction < 4:
            direction = BY_INDEX[direction]
        if not isinstance(direction, str) or direction.lower() not in DIRECTIONS:
            raise ActionError("direction must be 'up', 'right', 'down', 'left' or 0-3")
        name = direction.lower()
        dr, dc = DIRECTIONS[name]
        r, c = self.agent[0] + dr, self.agent[1] + dc
        size = len(self.walls)
        if not (0 <= r < size and 0 <= c < size):
            return "Cannot move outside the maze."
        if self.walls[r][c]:
            return "Cannot move into a wall."
        self.agent = (r, c)
        return f"Moved {name}." + (" You are on the goal." if self.agent == self.goal else "")

    def goal_reached(self) -> bool:
        return self.agent == self.goal

    def render_image(self) -> Image:
        size = len(self.walls)
        image, draw = canvas(background=LIGHT)
        for r in range(size):
            for c in range(size):
                if self.walls[r][c]:
                    draw.rectangle(grid_cell(336, size, r, c), fill=DARK)
        x0, y0, x1, y1 = grid_cell(336, size, *self.goal)
        draw.rectangle((x0 + 3, y0 + 3, x1 - 3, y1 - 3), fill=GREEN)
        x0, y0, x1, y1 = grid_cell(336, size, *self.agent)
        draw.ellipse((x0 + 5, y0 + 5, x1 - 5, y1 - 5), fill=RED)
        return to_array(image)

    def render_text(self) -> str:
        rows = []
        for r, row in enumerate(self.walls):
            cells = []
            for c, wall in enumerate(row):
                cells.append(
                    "A"
                    if (r, c) == self.agent
                    else "G"
                    if (r, c) == self.goal
                    else "#"
                    if wall
                    else "."
                )
            rows.append("".join(cells))
        legend = "# wall, . free, A agent, G goal; row 0 is the top"
        return f"{legend}\n" + "\n".join(rows)


class Maze2DSolver(Solver):
    """`bfs`: a shortest path. `right_hand`: follow the right wall, which explores dead
    ends and comes back; when that walk does not fit the step limit, whole dead-end
    excursions are cut (the shortest one that frees enough room, else the longest, and
    again) until it fits. In these perfect mazes cutting them all leaves the shortest
    path, so the strategy always fits."""

    strategies: ClassVar[tuple[str, ...]] = ("bfs", "right_hand")

    def plan(self, env: VisGymEnv, strategy: str) -> list[str]:
        return self.plan_within(env, strategy, 1 << 30)

    def plan_within(self, env: VisGymEnv, strategy: str, max_moves: int) -> list[str]:
        assert isinstance(env, Maze2D)
        if strategy == "right_hand":
            return _moves(_cut_excursions(_right_hand(env), max_moves))
        dist = distances(env.walls, env.goal)
        if env.agent not in dist:
            raise ValueError("the goal is unreachable")
        cells, cell = [env.agent], env.agent
        while cell != env.goal:
            for dr, dc in DIRECTIONS.values():
                nxt = (cell[0] + dr, cell[1] + dc)
                if dist.get(nxt, 1 << 30) == dist[cell] - 1:
                    cells.append(nxt)
                    cell = nxt
                    break
        return _moves(cells)

    def detour(self, env: VisGymEnv, rng: np.random.Generator) -> str:
        assert isinstance(env, Maze2D)
        size = len(env.walls)
        options = [
            name
            for name, (dr, dc) in DIRECTIONS.items()
            if 0 <= env.agent[0] + dr < size
            and 0 <= env.agent[1] + dc < size
            and not env.walls[env.agent[0] + dr][env.agent[1] + dc]
        ]
        return f"('move', '{options[int(rng.integers(len(options)))]}')"


ENTRY = (Maze2D, Maze2DSolver())
