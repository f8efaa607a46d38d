"""patch_reassembly: fill a square grid completely with irregular patches.

VisGym partitions a grid into irregular, connected patches, parks them around the
board, and the agent places a patch by snapping its anchor cell (the cell labelled with
the patch's number, its top-most then left-most cell) onto a board cell with
`('place', [patch, row, col])`, or parks it again with `('remove', patch)`. The goal is a
board with no gaps and no overlaps: any complete tiling counts, not only the original
one. Sizes: 6×6 with 5 patches (easy), 8×8 with 6 patches (hard).

Gantry grows the partition from random seed cells, always extending the smallest patch
that can still grow, so patch sizes stay balanced; partitions with a patch smaller than
3 cells or wider or taller than 5 (easy) / 6 (hard) cells are redrawn, so the parked
patches stay readable in the tray. A placement that would leave the board or overlap
another patch is refused with feedback and changes nothing. The pieces are flat-coloured
shapes, as in VisGym, so there is no dataset mode.
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np
from PIL import ImageDraw

from gantry.envfarm.envs.actions import Action, ActionError, expect_args, expect_int
from gantry.envfarm.envs.base import Image, JsonState, Solver, VisGymEnv
from gantry.envfarm.envs.render import DARK, LIGHT, PALETTE, WHITE, Color, canvas, font, to_array

Cell = tuple[int, int]
Shape = tuple[Cell, ...]  # offsets from the anchor, anchor first
SETTINGS = {"easy": (6, 5), "hard": (8, 6)}  # (grid side, patches)
MAX_EXTENT = {"easy": 5, "hard": 6}
MIN_CELLS = 3
SIZE = 336
BOARD = 228  # the board (with its row/column labels) fills the top-left square
LABEL = 20
STEPS: tuple[Cell, ...] = ((-1, 0), (1, 0), (0, -1), (0, 1))


def grow_partition(side: int, count: int, rng: np.random.Generator) -> list[list[Cell]]:
    """Split the side×side grid into `count` connected patches of similar size."""
    cells = [(r, c) for r in range(side) for c in range(side)]
    seeds = rng.choice(len(cells), size=count, replace=False)
    owner: dict[Cell, int] = {cells[int(s)]: k for k, s in enumerate(seeds)}
    patches: list[list[Cell]] = [[cells[int(s)]] for s in seeds]
    while len(owner) < side * side:
        frontier = [_free_neighbours(patch, owner, side) for patch in patches]
        growable = [k for k in range(count) if frontier[k]]
        smallest = min(len(patches[k]) for k in growable)
        choices = [k for k in growable if len(patches[k]) == smallest]
        k = choices[int(rng.integers(len(choices)))]
        cell = frontier[k][int(rng.integers(len(frontier[k])))]
        owner[cell] = k
        patches[k].append(cell)
    return [sorted(patch) for patch in patches]


def _free_neighbours(patch: list[Cell], owner: dict[Cell, int], side: int) -> list[Cell]:
    found = {
        (r + dr, c + dc)
        for r, c in patch
        for dr, dc in STEPS
        if 0 <= r + dr < side and 0 <= c + dc < side and (r + dr, c + dc) not in owner
    }
    return sorted(found)


def extent(shape: Shape) -> tuple[int, int, int, int]:
    """(min_dr, min_dc, rows, cols) of a shape's offsets."""
    rows = [dr for dr, _ in shape]
    cols = [dc for _, dc in shape]
    return min(rows), min(cols), max(rows) - min(rows) + 1, max(cols) - min(cols) + 1


def covered(shape: Shape, at: Cell) -> list[Cell]:
    return [(at[0] + dr, at[1] + dc) for dr, dc in shape]


def _check_shape(value: Any) -> Shape:
    if not isinstance(value, list) or not 1 <= len(value) <= 64:
        raise ValueError("a patch must list 1-64 [dr, dc] offsets")
    shape: list[Cell] = []
    for offset in value:
        if not (isinstance(offset, list) and len(offset) == 2):
            raise ValueError("a patch offset must be [dr, dc]")
        if not all(type(v) is int and -16 <= v <= 16 for v in offset):
            raise ValueError("patch offsets must be small integers")
        shape.append((offset[0], offset[1]))
    if shape[0] != (0, 0) or min(shape) != (0, 0) or len(set(shape)) != len(shape):
        raise ValueError("a patch starts with its anchor [0, 0], its top-left-most cell")
    return tuple(shape)


def _check_cell(value: Any, side: int, what: str) -> Cell | None:
    if value is None:
        return None
    if not (isinstance(value, list) and len(value) == 2):
        raise ValueError(f"{what} must be [row, col] or null")
    if not all(type(v) is int and 0 <= v < side for v in value):
        raise ValueError(f"{what} must be on the board")
    return value[0], value[1]


class PatchReassembly(VisGymEnv):
    env_id: ClassVar[str] = "patch_reassembly"
    description: ClassVar[str] = (
        "Irregular patches wait in the tray around the square board. Place all of them so "
        "the board is completely filled, with no gaps and no overlaps. Placing a patch puts "
        "its numbered anchor cell (its top-most, then left-most cell) on the given board "
        "cell; rows and columns are numbered from 0 at the top left."
    )
    action_grammar: ClassVar[str] = (
        "('place', [P, R, C]) puts patch P's anchor cell on row R, column C (a placed patch "
        "moves); ('remove', P) returns patch P to the tray; 'stop'"
    )
    action_examples: ClassVar[tuple[str, ...]] = (
        "('place', [0, 2, 3])",
        "('place', 1, 0, 0)",
        "('remove', 0)",
        "stop",
    )
    levels: ClassVar[dict[str, str]] = {
        "easy": "6x6 board, 5 patches",
        "hard": "8x8 board, 6 patches",
    }

    side: int
    shapes: list[Shape]
    home: list[Cell]  # where each anchor sits in the partition the patches came from
    placed: list[Cell | None]

    # ----- state -----
    def _sample_state(self, rng: np.random.Generator) -> JsonState:
        side, count = SETTINGS[self.difficulty]
        limit = MAX_EXTENT[self.difficulty]
        while True:
            patches = grow_partition(side, count, rng)
            shapes = [tuple((r - p[0][0], c - p[0][1]) for r, c in p) for p in patches]
            if all(len(s) >= MIN_CELLS and max(extent(s)[2:]) <= limit for s in shapes):
                break
        return {
            "side": side,
            "patches": [[list(offset) for offset in shape] for shape in shapes],
            "home": [list(p[0]) for p in patches],
            "placed": [None] * count,
        }

    def _load_state(self, state: JsonState) -> None:
        side = state["side"]
        if type(side) is not int or not 3 <= side <= 12:
            raise ValueError("side must be an integer 3-12")
        shapes = [_check_shape(s) for s in state["patches"]]
        if not 2 <= len(shapes) <= len(PALETTE):
            raise ValueError(f"there must be 2-{len(PALETTE)} patches")
        if sum(len(s) for s in shapes) != side * side:
            raise ValueError("the patches must have as many cells as the board")
        home = [_check_cell(h, side, "home") for h in state["home"]]
        placed = [_check_cell(p, side, "placed") for p in state["placed"]]
        if len(home) != len(shapes) or len(placed) != len(shapes) or None in home:
            raise ValueError("home and placed must hold one entry per patch")
        self.side, self.shapes = side, shapes
        self.home = [h for h in home if h is not None]
        self.placed = [None] * len(shapes)
        if not _tiles(side, shapes, self.home):
            raise ValueError("the home positions must tile the board")
        for pid, at in enumerate(placed):
            if at is not None and self._blocker(pid, at) is not None:
                raise ValueError(f"patch {pid} does not fit where it is placed")
            self.placed[pid] = at

    def _state(self) -> JsonState:
        return {
            "side": self.side,
            "patches": [[list(offset) for offset in shape] for shape in self.shapes],
            "home": [list(h) for h in self.home],
            "placed": [list(p) if p is not None else None for p in self.placed],
        }

    # ----- actions -----
    def occupancy(self, skip: int | None = None) -> dict[Cell, int]:
        board: dict[Cell, int] = {}
        for pid, at in enumerate(self.placed):
            if at is not None and pid != skip:
                board.update((cell, pid) for cell in covered(self.shapes[pid], at))
        return board

    def _blocker(self, pid: int, at: Cell) -> str | None:
        """Why patch `pid` cannot go to `at`, or None if it fits."""
        board = self.occupancy(skip=pid)
        for r, c in covered(self.shapes[pid], at):
            if not (0 <= r < self.side and 0 <= c < self.side):
                return "it would stick out of the board"
            if (r, c) in board:
                return f"it would overlap patch {board[(r, c)]}"
        return None

    def _apply(self, action: Action) -> str:
        last = len(self.shapes) - 1
        if action.name == "place":
            p, r, c = expect_args(action, 3, "('place', [patch, row, col])")
            pid = expect_int(p, "patch", 0, last)
            at = (
                expect_int(r, "row", 0, self.side - 1),
                expect_int(c, "col", 0, self.side - 1),
            )
            reason = self._blocker(pid, at)
            if reason is not None:
                return f"Patch {pid} does not fit at ({at[0]}, {at[1]}): {reason}."
            self.placed[pid] = at
            done = " The board is full." if self.goal_reached() else ""
            return f"Placed patch {pid} with its anchor at ({at[0]}, {at[1]}).{done}"
        if action.name == "remove":
            (p,) = expect_args(action, 1, "('remove', patch)")
            pid = expect_int(p, "patch", 0, last)
            if self.placed[pid] is None:
                return f"Patch {pid} is already in the tray."
            self.placed[pid] = None
            return f"Returned patch {pid} to the tray."
        raise ActionError(
            f"unknown action {action.name!r}; use ('place', [patch, row, col]), "
            "('remove', patch) or 'stop'"
        )

    def goal_reached(self) -> bool:
        return len(self.occupancy()) == self.side * self.side

    # ----- rendering -----
    def _board_cell(self) -> int:
        return (BOARD - LABEL - 4) // self.side

    def _slots(self) -> list[tuple[int, int, int, int]]:
        """Tray slots: the right column beside the board, then the bottom row."""
        count = len(self.shapes)
        right = count // 2
        bottom = count - right
        slots = []
        for k in range(right):
            y0, y1 = k * BOARD // right, (k + 1) * BOARD // right
            slots.append((BOARD, y0, SIZE, y1))
        for k in range(bottom):
            x0, x1 = k * SIZE // bottom, (k + 1) * SIZE // bottom
            slots.append((x0, BOARD, x1, SIZE))
        return slots

    def _tray_cell(self, slots: list[tuple[int, int, int, int]]) -> int:
        """One cell size for every parked patch (their sizes stay comparable); the number
        on the anchor cell names the patch, so a slot needs no caption."""
        size = self._board_cell()
        for shape, (x0, y0, x1, y1) in zip(self.shapes, slots, strict=True):
            _, _, rows, cols = extent(shape)
            size = min(size, (x1 - x0 - 10) // cols, (y1 - y0 - 10) // rows)
        return max(size, 4)

    def render_image(self) -> Image:
        image, draw = canvas(SIZE, SIZE, background=LIGHT)
        cell = self._board_cell()
        ox, oy = LABEL + 2, LABEL + 2
        draw.rectangle(
            (ox - 2, oy - 2, ox + cell * self.side + 2, oy + cell * self.side + 2), fill=DARK
        )
        labels = font(12)
        for k in range(self.side):
            draw.text(
                (ox + k * cell + cell / 2, LABEL / 2), str(k), fill=DARK, font=labels, anchor="mm"
            )
            draw.text(
                (LABEL / 2, oy + k * cell + cell / 2), str(k), fill=DARK, font=labels, anchor="mm"
            )
            for c in range(self.side):
                x, y = ox + c * cell, oy + k * cell
                draw.rectangle((x + 1, y + 1, x + cell - 1, y + cell - 1), fill=(226, 226, 220))
        for pid, at in enumerate(self.placed):
            if at is not None:
                _draw_patch(draw, self.shapes[pid], pid, ox + at[1] * cell, oy + at[0] * cell, cell)
        slots = self._slots()
        tray = self._tray_cell(slots)
        for pid, (x0, y0, x1, y1) in enumerate(slots):
            draw.rectangle((x0 + 2, y0 + 2, x1 - 2, y1 - 2), outline=(150, 150, 150))
            if self.placed[pid] is not None:
                draw.text(
                    ((x0 + x1) / 2, (y0 + y1) / 2),
                    f"{pid}: placed",
                    fill=(130, 130, 130),
                    font=labels,
                    anchor="mm",
                )
                continue
            min_dr, min_dc, rows, cols = extent(self.shapes[pid])
            left = (x0 + x1 - cols * tray) // 2 - min_dc * tray
            top = (y0 + y1 - rows * tray) // 2 - min_dr * tray
            _draw_patch(draw, self.shapes[pid], pid, left, top, tray)
        return to_array(image)

    def render_text(self) -> str:
        board = self.occupancy()
        lines = [
            f"A {self.side}x{self.side} board; fill it with all patches, no gaps or overlaps. "
            "Digits are placed patches, '.' is empty; rows and columns count from 0."
        ]
        lines.append("   " + " ".join(str(c) for c in range(self.side)))
        for r in range(self.side):
            row = " ".join(str(board[(r, c)]) if (r, c) in board else "." for c in range(self.side))
            lines.append(f"{r:2d} {row}")
        parked = [pid for pid, at in enumerate(self.placed) if at is None]
        lines.append("Patches in the tray ('*' is the anchor cell):" if parked else "Tray: empty.")
        for pid in parked:
            lines.append(f"Patch {pid}:")
            lines += _shape_art(self.shapes[pid], str(pid))
        return "\n".join(lines)


def _draw_patch(
    draw: ImageDraw.ImageDraw, shape: Shape, pid: int, left: int, top: int, cell: int
) -> None:
    """Draw `shape` with its anchor cell's top-left corner at (left, top)."""
    color: Color = PALETTE[pid % len(PALETTE)]
    for dr, dc in shape:
        x, y = left + dc * cell, top + dr * cell
        draw.rectangle((x, y, x + cell, y + cell), fill=color, outline=DARK)
    size = max(9, int(cell * 0.7))
    draw.text(
        (left + cell / 2, top + cell / 2),
        str(pid),
        fill=WHITE,
        font=font(size),
        anchor="mm",
        stroke_width=1,
        stroke_fill=DARK,
    )


def _shape_art(shape: Shape, mark: str) -> list[str]:
    min_dr, min_dc, rows, cols = extent(shape)
    grid = [[" "] * cols for _ in range(rows)]
    for dr, dc in shape:
        grid[dr - min_dr][dc - min_dc] = "*" if (dr, dc) == (0, 0) else mark
    return ["  " + "".join(row).rstrip() for row in grid]


def _tiles(side: int, shapes: list[Shape], anchors: list[Cell]) -> bool:
    seen: set[Cell] = set()
    for shape, at in zip(shapes, anchors, strict=True):
        for r, c in covered(shape, at):
            if not (0 <= r < side and 0 <= c < side) or (r, c) in seen:
                return False
            seen.add((r, c))
    return len(seen) == side * side


def find_tiling(side: int, shapes: list[Shape], fixed: dict[int, Cell]) -> dict[int, Cell] | None:
    """Anchor cells for every patch that fill the board, keeping `fixed` ones in place.

    Exact cover by backtracking: the first empty cell in reading order can only be
    covered by a patch's anchor (its reading-order-first cell), which prunes hard.
    """
    board: set[Cell] = set()
    for pid, at in fixed.items():
        cells = covered(shapes[pid], at)
        if any(not (0 <= r < side and 0 <= c < side) or (r, c) in board for r, c in cells):
            return None
        board.update(cells)
    free = [pid for pid in range(len(shapes)) if pid not in fixed]
    result = dict(fixed)
    return result if _cover(side, shapes, board, free, result) else None


def _cover(
    side: int, shapes: list[Shape], board: set[Cell], free: list[int], result: dict[int, Cell]
) -> bool:
    empty = next(((r, c) for r in range(side) for c in range(side) if (r, c) not in board), None)
    if empty is None:
        return not free
    for pid in list(free):
        cells = covered(shapes[pid], empty)
        if all(0 <= r < side and 0 <= c < side and (r, c) not in board for r, c in cells):
            board.update(cells)
            free.remove(pid)
            result[pid] = empty
            if _cover(side, shapes, board, free, result):
                return True
            board.difference_update(cells)
            free.append(pid)
            free.sort()
            del result[pid]
    return False


class PatchReassemblySolver(Solver):
    """`backtrack`: find a tiling by exact-cover search, keeping already placed patches
    where possible. `home`: put every patch back where the partition cut it from. Both
    first return misplaced patches to the tray, then place the rest."""

    strategies: ClassVar[tuple[str, ...]] = ("backtrack", "home")

    def plan(self, env: VisGymEnv, strategy: str) -> list[str]:
        assert isinstance(env, PatchReassembly)
        target = self._target(env, strategy)
        actions = [
            f"('remove', {pid})"
            for pid, at in enumerate(env.placed)
            if at is not None and at != target[pid]
        ]
        for pid in sorted(target):
            if env.placed[pid] != target[pid]:
                r, c = target[pid]
                actions.append(f"('place', [{pid}, {r}, {c}])")
        return actions

    def _target(self, env: PatchReassembly, strategy: str) -> dict[int, Cell]:
        if strategy == "home":
            return dict(enumerate(env.home))
        fixed = {pid: at for pid, at in enumerate(env.placed) if at is not None}
        tiling = find_tiling(env.side, env.shapes, fixed) or find_tiling(env.side, env.shapes, {})
        if tiling is None:
            raise ValueError("the patches cannot tile the board")
        return tiling

    def detour(self, env: VisGymEnv, rng: np.random.Generator) -> str:
        assert isinstance(env, PatchReassembly)
        parked = [pid for pid, at in enumerate(env.placed) if at is None]
        options = [
            f"('place', [{pid}, {r}, {c}])"
            for pid in parked
            for r in range(env.side)
            for c in range(env.side)
            if env._blocker(pid, (r, c)) is None
        ]
        if not options:
            placed = [pid for pid, at in enumerate(env.placed) if at is not None]
            return f"('remove', {placed[int(rng.integers(len(placed)))]})"
        return options[int(rng.integers(len(options)))]


ENTRY = (PatchReassembly, PatchReassemblySolver())
