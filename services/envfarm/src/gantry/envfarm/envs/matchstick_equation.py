"""matchstick_equation: move matches to make a false matchstick equation true.

VisGym shows an equation such as 6+4=4 made of matches in seven-segment digits; the agent
moves one match at a time, given as [src_digit, src_seg, dst_digit, dst_seg], and may
undo. Gantry's equations have the form `a+b=c` or `a-b=c` with single-digit a and b (c has
one or two digits). A puzzle is made by taking a true equation and applying 1 (easy) or
2 (hard) random moves backwards; it is kept only if it is false and no shorter solution
exists (checked by breadth-first search), so exactly that many moves are needed. Any
true equation reached counts, not only the one the puzzle came from.

Indexing. Positions are the symbols left to right, counting from 0, operators and the
'=' sign included: in `3+4=8`, 0 is '3', 1 is '+', 2 is '4', 3 is '=', 4 is '8'. Digit
segments: 0 top, 1 upper right, 2 lower right, 3 bottom, 4 lower left, 5 upper left,
6 middle. Operator segments: 0 the horizontal bar, 1 the vertical bar ('+' has both, '-'
only the bar). The '=' sign is fixed. Every move must leave each position a valid symbol
(a digit 0-9, '+' or '-'); a multi-digit number with a leading zero never makes the
equation true. The undo history keeps the last 100 moves.
"""

from __future__ import annotations

from collections import deque
from typing import ClassVar

import numpy as np
from PIL import ImageDraw

from gantry.envfarm.envs.actions import Action, ActionError, expect_args, expect_int
from gantry.envfarm.envs.base import Image, JsonState, Solver, VisGymEnv
from gantry.envfarm.envs.render import canvas, font, to_array

MOVES_NEEDED = {"easy": 1, "hard": 2}
MAX_HISTORY = 100
DIGITS: dict[str, frozenset[int]] = {
    "0": frozenset({0, 1, 2, 3, 4, 5}),
    "1": frozenset({1, 2}),
    "2": frozenset({0, 1, 6, 4, 3}),
    "3": frozenset({0, 1, 6, 2, 3}),
    "4": frozenset({5, 6, 1, 2}),
    "5": frozenset({0, 5, 6, 2, 3}),
    "6": frozenset({0, 5, 6, 4, 3, 2}),
    "7": frozenset({0, 1, 2}),
    "8": frozenset(range(7)),
    "9": frozenset({0, 1, 2, 3, 5, 6}),
}
OPERATORS: dict[str, frozenset[int]] = {"+": frozenset({0, 1}), "-": frozenset({0})}
SEGMENT_NAMES = (
    "top",
    "upper right",
    "lower right",
    "bottom",
    "lower left",
    "upper left",
    "middle",
)
Move = tuple[int, int, int, int]


def kind(symbol: str) -> str:
    return "digit" if symbol in DIGITS else "operator" if symbol in OPERATORS else "equals"


def segments(symbol: str) -> frozenset[int]:
    return DIGITS.get(symbol) or OPERATORS.get(symbol) or frozenset()


def slot_count(symbol: str) -> int:
    return {"digit": 7, "operator": 2, "equals": 0}[kind(symbol)]


_BY_MASK: dict[tuple[str, frozenset[int]], str] = {
    (kind(s), mask): s for table in (DIGITS, OPERATORS) for s, mask in table.items()
}


def symbol_for(kind_name: str, mask: frozenset[int]) -> str | None:
    return _BY_MASK.get((kind_name, mask))


def _tables() -> tuple[dict[str, list[tuple[int, str]]], dict[str, list[tuple[int, str]]]]:
    """Per symbol: which single match can be taken away, and where one can be added."""
    take: dict[str, list[tuple[int, str]]] = {}
    put: dict[str, list[tuple[int, str]]] = {}
    for symbol in [*DIGITS, *OPERATORS]:
        mask, name = segments(symbol), kind(symbol)
        take[symbol] = [
            (s, new) for s in sorted(mask) if (new := symbol_for(name, mask - {s})) is not None
        ]
        put[symbol] = [
            (t, new)
            for t in range(slot_count(symbol))
            if t not in mask and (new := symbol_for(name, mask | {t})) is not None
        ]
    return take, put


TAKE, PUT = _tables()


def legal_moves(equation: str) -> list[tuple[Move, str]]:
    """Every move that leaves each position a valid symbol, with the resulting equation."""
    found: list[tuple[Move, str]] = []
    for i, src in enumerate(equation):
        if src == "=":
            continue
        mask = segments(src)
        for s in sorted(mask):  # within one position: the match changes place
            for t in range(slot_count(src)):
                new = symbol_for(kind(src), (mask - {s}) | {t}) if t not in mask else None
                if new is not None:
                    found.append(((i, s, i, t), _replace(equation, i, new)))
        for s, taken in TAKE[src]:
            partial = _replace(equation, i, taken)
            for j, dst in enumerate(equation):
                if j == i or dst == "=":
                    continue
                for t, grown in PUT[dst]:
                    found.append(((i, s, j, t), _replace(partial, j, grown)))
    return found


def _replace(text: str, index: int, symbol: str) -> str:
    return text[:index] + symbol + text[index + 1 :]


def _number(text: str) -> int | None:
    if not text or not text.isdigit() or (len(text) > 1 and text[0] == "0"):
        return None
    return int(text)


def is_true(equation: str) -> bool:
    left, _, right = equation.partition("=")
    op = next((k for k, ch in enumerate(left) if ch in OPERATORS), -1)
    a, b, c = _number(left[:op]), _number(left[op + 1 :]), _number(right)
    if op < 0 or a is None or b is None or c is None:
        return False
    return (a + b if left[op] == "+" else a - b) == c


def shortest_solution(equation: str, limit: int | None = None) -> list[Move] | None:
    """Breadth-first search for the fewest moves to a true equation (None if none)."""
    if is_true(equation):
        return []
    parent: dict[str, tuple[str, Move]] = {}
    frontier, depth = deque([equation]), {equation: 0}
    while frontier:
        current = frontier.popleft()
        if limit is not None and depth[current] >= limit:
            continue
        for move, nxt in legal_moves(current):
            if nxt in depth:
                continue
            depth[nxt], parent[nxt] = depth[current] + 1, (current, move)
            if is_true(nxt):
                path = []
                while nxt != equation:
                    nxt, step = parent[nxt]
                    path.append(step)
                return path[::-1]
            frontier.append(nxt)
    return None


def check_equation(equation: object) -> str:
    if not isinstance(equation, str) or not 5 <= len(equation) <= 12:
        raise ValueError("equation must be a string of 5-12 symbols")
    if any(ch not in DIGITS and ch not in OPERATORS and ch != "=" for ch in equation):
        raise ValueError("equation symbols must be digits, '+', '-' or '='")
    left, eq, right = equation.partition("=")
    ops = [k for k, ch in enumerate(left) if ch in OPERATORS]
    if not eq or "=" in right or len(ops) != 1 or not right.isdigit():
        raise ValueError("equation must look like a+b=c or a-b=c")
    if not left[: ops[0]].isdigit() or not left[ops[0] + 1 :].isdigit():
        raise ValueError("equation must look like a+b=c or a-b=c")
    return equation


class MatchstickEquation(VisGymEnv):
    env_id: ClassVar[str] = "matchstick_equation"
    description: ClassVar[str] = (
        "A false equation made of matches. Move matches to make it true. Positions are the "
        "symbols left to right from 0, operators and '=' included. Digit segments: 0 top, "
        "1 upper right, 2 lower right, 3 bottom, 4 lower left, 5 upper left, 6 middle. "
        "Operator segments: 0 horizontal, 1 vertical. The '=' sign is fixed; every symbol must "
        "stay a valid digit, '+' or '-'."
    )
    action_grammar: ClassVar[str] = (
        "('move', [src_position, src_segment, dst_position, dst_segment]) moves one match; "
        "('undo',) reverts the last move; 'stop'"
    )
    action_examples: ClassVar[tuple[str, ...]] = (
        "('move', [0, 4, 2, 1])",
        "('move', 1, 1, 4, 5)",
        "('undo',)",
        "stop",
    )
    levels: ClassVar[dict[str, str]] = {"easy": "1 move needed", "hard": "2 moves needed"}

    equation: str
    history: list[list[int]]

    # ----- state -----
    def _sample_state(self, rng: np.random.Generator) -> JsonState:
        needed = MOVES_NEEDED[self.difficulty]
        while True:
            equation = self._true_equation(rng)
            stuck = False
            for _ in range(needed):
                options = legal_moves(equation)
                if not options:  # no stick can move (about 2% of seeds): draw another
                    stuck = True
                    break
                equation = options[int(rng.integers(len(options)))][1]
            if stuck or is_true(equation):
                continue
            shorter = shortest_solution(equation, limit=needed - 1) if needed > 1 else None
            if shorter is None:
                return {"equation": equation, "history": []}

    @staticmethod
    def _true_equation(rng: np.random.Generator) -> str:
        a, b = (int(v) for v in rng.integers(0, 10, size=2))
        if rng.random() < 0.5:
            return f"{a}+{b}={a + b}"
        a, b = max(a, b), min(a, b)
        return f"{a}-{b}={a - b}"

    def _load_state(self, state: JsonState) -> None:
        equation = check_equation(state["equation"])
        history = state["history"]
        if not isinstance(history, list) or len(history) > MAX_HISTORY:
            raise ValueError(f"history must be a list of at most {MAX_HISTORY} moves")
        moves = []
        for entry in history:
            if not isinstance(entry, list) or len(entry) != 4:
                raise ValueError("each history entry must be [src, src_seg, dst, dst_seg]")
            if not all(isinstance(v, int) and not isinstance(v, bool) for v in entry):
                raise ValueError("history entries must hold integers")
            moves.append([int(v) for v in entry])
        rewound = equation
        for src, s, dst, t in reversed(moves):  # the history must undo cleanly
            try:
                rewound = apply_move(rewound, (dst, t, src, s))
            except ActionError as exc:
                raise ValueError(f"history does not undo cleanly: {exc}") from exc
        self.equation, self.history = equation, moves

    def _state(self) -> JsonState:
        return {"equation": self.equation, "history": self.history}

    # ----- actions -----
    def _apply(self, action: Action) -> str:
        if action.name == "undo":
            expect_args(action, 0, "('undo',)")
            if not self.history:
                return "There is no move to undo."
            src, s, dst, t = self.history.pop()
            self.equation = apply_move(self.equation, (dst, t, src, s))
            return f"Undid the move from position {src} segment {s} to position {dst} segment {t}."
        if action.name != "move":
            raise ActionError(
                f"unknown action {action.name!r}; use ('move', [...]), ('undo',) or 'stop'"
            )
        usage = "('move', [src_position, src_segment, dst_position, dst_segment])"
        values = expect_args(action, 4, usage)
        last = len(self.equation) - 1
        src = expect_int(values[0], "src_position", 0, last)
        s = expect_int(values[1], "src_segment", 0, 6)
        dst = expect_int(values[2], "dst_position", 0, last)
        t = expect_int(values[3], "dst_segment", 0, 6)
        self.equation = apply_move(self.equation, (src, s, dst, t))
        self.history = [*self.history, [src, s, dst, t]][-MAX_HISTORY:]
        return f"Moved the match at position {src} segment {s} to position {dst} segment {t}."

    def goal_reached(self) -> bool:
        return is_true(self.equation)

    # ----- rendering -----
    def render_image(self) -> Image:
        image, draw = canvas(background=BOARD)
        draw.text(
            (168, 22),
            "Move matches to make the equation true",
            fill=INK,
            font=font(15),
            anchor="mm",
        )
        for position, (symbol, x) in enumerate(
            zip(self.equation, _slot_x(self.equation), strict=True)
        ):
            _draw_symbol(draw, symbol, x, SYMBOL_TOP)
            label_y = SYMBOL_TOP + DIGIT_H + 22
            draw.text((x, label_y), str(position), fill=LABEL, font=font(14), anchor="mm")
        _draw_legend(draw)
        return to_array(image)

    def render_text(self) -> str:
        lines = [
            f"Equation: {' '.join(self.equation)} (false until you fix it; make it true)",
            "Segments: digits 0 top, 1 upper right, 2 lower right, 3 bottom, 4 lower left, "
            "5 upper left, 6 middle; operators 0 horizontal, 1 vertical.",
        ]
        for position, symbol in enumerate(self.equation):
            if symbol == "=":
                lines.append(f"Position {position}: '=' (fixed)")
                continue
            what = "digit" if kind(symbol) == "digit" else "operator"
            held = sorted(segments(symbol))
            lines.append(f"Position {position}: {what} {symbol}, matches at segments {held}")
        lines.append(f"Moves made: {len(self.history)}")
        return "\n".join(lines)


def apply_move(equation: str, move: Move) -> str:
    """The equation after moving one match, or ActionError saying why the move is illegal."""
    src, s, dst, t = move
    for position in (src, dst):
        if not 0 <= position < len(equation):
            raise ActionError(f"position {position} is outside the equation")
        if equation[position] == "=":
            raise ActionError(f"the '=' sign at position {position} is fixed")
    for position, segment in ((src, s), (dst, t)):
        if not 0 <= segment < slot_count(equation[position]):
            raise ActionError(
                f"position {position} has segments 0-{slot_count(equation[position]) - 1}"
            )
    if (src, s) == (dst, t):
        raise ActionError("the match must move to a different place")
    if s not in segments(equation[src]):
        raise ActionError(f"there is no match at position {src} segment {s}")
    if t in segments(equation[dst]) and (src, s) != (dst, t):
        raise ActionError(f"position {dst} segment {t} already has a match")
    masks = {src: set(segments(equation[src]))}
    masks.setdefault(dst, set(segments(equation[dst])))
    masks[src].discard(s)
    masks[dst].add(t)
    result = equation
    for position, mask in masks.items():
        symbol = symbol_for(kind(equation[position]), frozenset(mask))
        if symbol is None:
            noun = "digit" if kind(equation[position]) == "digit" else "'+' or '-'"
            raise ActionError(f"that move would leave position {position} as no valid {noun}")
        result = _replace(result, position, symbol)
    return result


# ----- drawing -----
BOARD = (34, 40, 49)
INK = (236, 236, 228)
LABEL = (150, 200, 255)
WOOD = (233, 196, 140)
WOOD_EDGE = (150, 110, 60)
HEAD = (200, 40, 40)
GHOST = (70, 78, 90)
DIGIT_W, DIGIT_H = 30, 64
SYMBOL_TOP = 70
SLOT_WIDTH = {"digit": 48, "operator": 42, "equals": 42}


def _slot_x(equation: str) -> list[float]:
    widths = [SLOT_WIDTH[kind(ch)] for ch in equation]
    x = (336 - sum(widths)) / 2
    centres = []
    for width in widths:
        centres.append(x + width / 2)
        x += width
    return centres


def segment_lines(
    symbol_kind: str, cx: float, top: float, w: float = DIGIT_W, h: float = DIGIT_H
) -> list[tuple[float, float, float, float]]:
    """Endpoints of each segment slot (index = segment number) of a symbol centred at cx."""
    x0, x1, mid, bottom = cx - w / 2, cx + w / 2, top + h / 2, top + h
    if symbol_kind == "digit":
        return [
            (x0, top, x1, top),
            (x1, top, x1, mid),
            (x1, mid, x1, bottom),
            (x0, bottom, x1, bottom),
            (x0, mid, x0, bottom),
            (x0, top, x0, mid),
            (x0, mid, x1, mid),
        ]
    if symbol_kind == "operator":
        half = w * 0.5
        return [(cx - half, mid, cx + half, mid), (cx, mid - half, cx, mid + half)]
    return [(cx - w / 2, mid - 7, cx + w / 2, mid - 7), (cx - w / 2, mid + 7, cx + w / 2, mid + 7)]


def _draw_match(
    draw: ImageDraw.ImageDraw, line: tuple[float, float, float, float], width: int = 6
) -> None:
    x0, y0, x1, y1 = line
    # Shorten both ends so neighbouring matches do not touch at the corners.
    dx, dy = (x1 - x0), (y1 - y0)
    length = max((dx * dx + dy * dy) ** 0.5, 1e-6)
    ux, uy = dx / length * 3, dy / length * 3
    a, b = (x0 + ux, y0 + uy), (x1 - ux, y1 - uy)
    draw.line((a, b), fill=WOOD_EDGE, width=width + 2)
    draw.line((a, b), fill=WOOD, width=width)
    r = width / 2 + 1
    draw.ellipse((b[0] - r, b[1] - r, b[0] + r, b[1] + r), fill=HEAD)


def _draw_symbol(draw: ImageDraw.ImageDraw, symbol: str, cx: float, top: float) -> None:
    name = kind(symbol)
    lines = segment_lines(name, cx, top)
    present = segments(symbol) if name != "equals" else frozenset({0, 1})
    for index, line in enumerate(lines):
        if index in present:
            _draw_match(draw, line)
        else:
            draw.line(line, fill=GHOST, width=2)  # an empty slot a match can move into


def _draw_legend(draw: ImageDraw.ImageDraw) -> None:
    """A key to the segment numbers, so image-only agents can name a match."""
    draw.text((12, 206), "Segment numbers:", fill=INK, font=font(13))
    small = font(12)
    cx, top, w, h = 70.0, 240.0, 34.0, 70.0
    for line in segment_lines("digit", cx, top, w, h):
        draw.line(line, fill=GHOST, width=3)
    x0, x1 = cx - w / 2, cx + w / 2
    spots = [
        (cx, top - 9),
        (x1 + 9, top + h / 4),
        (x1 + 9, top + 3 * h / 4),
        (cx, top + h + 9),
        (x0 - 9, top + 3 * h / 4),
        (x0 - 9, top + h / 4),
        (cx, top + h / 2 - 9),
    ]
    for index, spot in enumerate(spots):
        draw.text(spot, str(index), fill=LABEL, font=small, anchor="mm")
    ocx, mid, half = 160.0, top + h / 2, 17.0
    for line in segment_lines("operator", ocx, top, 2 * half, h):
        draw.line(line, fill=GHOST, width=3)
    draw.text((ocx + half + 9, mid), "0", fill=LABEL, font=small, anchor="mm")
    draw.text((ocx + 9, mid - half - 2), "1", fill=LABEL, font=small, anchor="mm")
    note = "digit: 0-6\noperator: 0 = bar,\n1 = upright\n'=' is fixed"
    draw.multiline_text((212, top), note, fill=INK, font=small, spacing=6)


class MatchstickEquationSolver(Solver):
    """`bfs`: fewest moves from the current equation. `undo_first`: undo every earlier
    move, then the fewest moves from the original puzzle."""

    strategies: ClassVar[tuple[str, ...]] = ("bfs", "undo_first")

    def plan(self, env: VisGymEnv, strategy: str) -> list[str]:
        assert isinstance(env, MatchstickEquation)
        actions: list[str] = []
        equation = env.equation
        if strategy == "undo_first":
            for src, s, dst, t in reversed(env.history):
                equation = apply_move(equation, (dst, t, src, s))
                actions.append("('undo',)")
        path = shortest_solution(equation)
        if path is None:
            raise ValueError("no sequence of moves makes this equation true")
        return actions + [f"('move', {list(move)})" for move in path]

    def detour(self, env: VisGymEnv, rng: np.random.Generator) -> str:
        assert isinstance(env, MatchstickEquation)
        if env.history and rng.random() < 0.25:
            return "('undo',)"
        options = legal_moves(env.equation)
        if not options:
            return "('undo',)"  # nothing can move; undo is always a valid action
        move, _ = options[int(rng.integers(len(options)))]
        return f"('move', {list(move)})"


ENTRY = (MatchstickEquation, MatchstickEquationSolver())
