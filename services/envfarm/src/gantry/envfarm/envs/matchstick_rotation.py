"""matchstick_rotation: slide and turn a matchstick onto a target outline.

VisGym shows a matchstick and a target pose; the agent moves it with (dx, dy, dθ) and
succeeds when the centre lies within 10 px and the angle within 15° of the target
(easy) or within 5 px and 10° (hard). Gantry draws a 336×336 board with a light grid
every 42 px (labelled at the edges, to judge distances), the target as a pale outline
and the matchstick in wood with a red head. The head makes the pose a full 360° angle,
so exactly one orientation matches. Coordinates are image pixels: x to the right,
y downward; angles are degrees counterclockwise on screen, 0 = head pointing right.
The match turns about its centre. Start poses are at least 40 px and 30° from the
target, so both the slide and the turn matter.
"""

from __future__ import annotations

import math
from typing import Any, ClassVar

import numpy as np
from PIL import ImageDraw

from gantry.envfarm.envs.actions import Action, ActionError, expect_args, expect_float
from gantry.envfarm.envs.base import IMAGE_LONG_SIDE, Image, JsonState, Solver, VisGymEnv
from gantry.envfarm.envs.render import DARK, RED, Color, canvas, font, to_array

SIZE = IMAGE_LONG_SIDE
LENGTH = 110.0  # px, tail to head
HALF_WIDTH = 4.5
HEAD_RADIUS = 7.5
GRID = 42
TOLERANCE = {"easy": (10.0, 15.0), "hard": (5.0, 10.0)}  # (px, degrees)
SPAWN = (60, SIZE - 60)  # centres are sampled in this range on both axes
MIN_START = (40.0, 30.0)  # (px, degrees) from the target at the start
WOOD: Color = (226, 184, 118)
GHOST: Color = (120, 130, 150)
BOARD_TOP: Color = (238, 240, 232)
BOARD_BOTTOM: Color = (214, 222, 214)

Pose = tuple[float, float, float]


def wrap(degrees: float) -> float:
    """The same angle in (-180, 180]."""
    wrapped = (degrees + 180.0) % 360.0 - 180.0
    return 180.0 if wrapped == -180.0 else wrapped


def number(value: float) -> int | float:
    """Integers print without a decimal point; other values keep two decimals."""
    rounded = round(value, 2)
    return int(rounded) if rounded == int(rounded) else rounded


def stick_polygon(pose: Pose) -> list[tuple[float, float]]:
    x, y, angle = pose
    t = math.radians(angle)
    ux, uy = math.cos(t), -math.sin(t)  # screen y grows downward
    nx, ny = -uy, ux
    half = LENGTH / 2
    return [
        (x - ux * half + nx * HALF_WIDTH * s, y - uy * half + ny * HALF_WIDTH * s) for s in (1, -1)
    ] + [
        (x + ux * half + nx * HALF_WIDTH * s, y + uy * half + ny * HALF_WIDTH * s) for s in (-1, 1)
    ]


def head_centre(pose: Pose) -> tuple[float, float]:
    x, y, angle = pose
    t = math.radians(angle)
    return x + math.cos(t) * LENGTH / 2, y - math.sin(t) * LENGTH / 2


def check_pose(value: Any, what: str) -> Pose:
    if not (isinstance(value, list) and len(value) == 3):
        raise ValueError(f"{what} must be [x, y, angle]")
    for item in value:
        if isinstance(item, bool) or not isinstance(item, (int, float)):
            raise ValueError(f"{what} entries must be numbers")
    x, y, angle = value
    if not (0 <= x <= SIZE and 0 <= y <= SIZE):
        raise ValueError(f"{what} centre must lie on the {SIZE}x{SIZE} board")
    if not 0 <= angle < 360:
        raise ValueError(f"{what} angle must be in [0, 360)")
    return x, y, angle


class MatchstickRotation(VisGymEnv):
    env_id: ClassVar[str] = "matchstick_rotation"
    description: ClassVar[str] = (
        "A matchstick (wood with a red head) lies on a 336x336 px board; a pale outline shows "
        "its target pose, with a circle at the target head. Move and turn the matchstick onto "
        "the outline. x grows to the right and y downward (grid lines every 42 px); angles "
        "are degrees counterclockwise, and the match turns about its centre."
    )
    action_grammar: ClassVar[str] = (
        "('move', DX, DY, DA): slide by DX, DY pixels (each in [-336, 336]) and turn by DA "
        "degrees (in [-180, 180], positive = counterclockwise); 'stop'"
    )
    action_examples: ClassVar[tuple[str, ...]] = (
        "('move', 40, -12, 30)",
        "('move', [0, 0, -90])",
        "stop",
    )
    levels: ClassVar[dict[str, str]] = {
        "easy": "tolerance 10 px and 15 degrees",
        "hard": "tolerance 5 px and 10 degrees",
    }

    match: Pose
    target: Pose

    @property
    def tolerance(self) -> tuple[float, float]:
        return TOLERANCE[self.difficulty]

    def offset(self) -> Pose:
        """(dx, dy, da) that would bring the match exactly onto the target."""
        return (
            self.target[0] - self.match[0],
            self.target[1] - self.match[1],
            wrap(self.target[2] - self.match[2]),
        )

    def _sample_state(self, rng: np.random.Generator) -> JsonState:
        while True:
            match = [int(v) for v in rng.integers(*SPAWN, size=2)] + [int(rng.integers(360))]
            target = [int(v) for v in rng.integers(*SPAWN, size=2)] + [int(rng.integers(360))]
            distance = math.hypot(target[0] - match[0], target[1] - match[1])
            turn = abs(wrap(target[2] - match[2]))
            if distance >= MIN_START[0] and turn >= MIN_START[1]:
                return {"match": match, "target": target}

    def _load_state(self, state: JsonState) -> None:
        self.match = check_pose(state["match"], "match")
        self.target = check_pose(state["target"], "target")

    def _state(self) -> JsonState:
        return {"match": list(self.match), "target": list(self.target)}

    def _apply(self, action: Action) -> str:
        if action.name != "move":
            raise ActionError(f"unknown action {action.name!r}; use ('move', dx, dy, da) or 'stop'")
        dx, dy, da = expect_args(action, 3, "('move', dx, dy, da)")
        dx = expect_float(dx, "dx", -SIZE, SIZE)
        dy = expect_float(dy, "dy", -SIZE, SIZE)
        da = expect_float(da, "da", -180, 180)
        x, y = self.match[0] + dx, self.match[1] + dy
        if not (0 <= x <= SIZE and 0 <= y <= SIZE):
            return "Cannot move the matchstick's centre off the board."
        angle = (self.match[2] + da) % 360.0
        self.match = (x, y, 0.0 if angle >= 360.0 else angle)
        return (
            f"Moved the matchstick by ({number(dx)}, {number(dy)}) px "
            f"and turned it {number(da)} degrees."
        )

    def goal_reached(self) -> bool:
        dx, dy, da = self.offset()
        px, degrees = self.tolerance
        return math.hypot(dx, dy) <= px and abs(da) <= degrees

    # ----- rendering -----
    def render_image(self) -> Image:
        image, draw = canvas(background=BOARD_TOP)
        _draw_board(draw)
        draw.polygon(stick_polygon(self.target), fill=(246, 248, 252), outline=GHOST, width=2)
        hx, hy = head_centre(self.target)
        r = HEAD_RADIUS + 1
        draw.ellipse((hx - r, hy - r, hx + r, hy + r), fill=(246, 248, 252), outline=GHOST, width=2)
        draw.polygon(stick_polygon(self.match), fill=WOOD, outline=(120, 84, 40), width=1)
        hx, hy = head_centre(self.match)
        r = HEAD_RADIUS
        draw.ellipse((hx - r, hy - r, hx + r, hy + r), fill=RED, outline=(110, 20, 20))
        return to_array(image)

    def render_text(self) -> str:
        px, degrees = self.tolerance
        return "\n".join(
            [
                f"A {SIZE}x{SIZE} px board; x grows to the right, y downward. Angles are "
                "degrees counterclockwise, 0 = head pointing right. The match is "
                f"{int(LENGTH)} px long and turns about its centre.",
                f"Matchstick: centre ({_fmt(self.match[0])}, {_fmt(self.match[1])}), "
                f"head pointing {_fmt(self.match[2])} degrees.",
                f"Target: centre ({_fmt(self.target[0])}, {_fmt(self.target[1])}), "
                f"head pointing {_fmt(self.target[2])} degrees.",
                f"Success: centre within {px:g} px and angle within {degrees:g} degrees.",
            ]
        )


def _fmt(value: float) -> str:
    return str(number(value))


def _draw_board(draw: ImageDraw.ImageDraw) -> None:
    # A vertical gradient in bands keeps the board from being a flat field.
    for y in range(0, SIZE, 6):
        mix = y / SIZE
        color = tuple(
            round((1 - mix) * a + mix * b) for a, b in zip(BOARD_TOP, BOARD_BOTTOM, strict=True)
        )
        draw.rectangle((0, y, SIZE, y + 6), fill=color)
    tick_font = font(10)
    for k in range(GRID, SIZE, GRID):
        draw.line((k, 0, k, SIZE), fill=(196, 204, 214), width=1)
        draw.line((0, k, SIZE, k), fill=(196, 204, 214), width=1)
        draw.text((k + 2, 1), str(k), fill=DARK, font=tick_font)
        draw.text((2, k + 1), str(k), fill=DARK, font=tick_font)


class MatchstickRotationSolver(Solver):
    """`direct`: one exact move. `slide_then_turn`: slide first, then turn in place."""

    strategies: ClassVar[tuple[str, ...]] = ("direct", "slide_then_turn")

    def plan(self, env: VisGymEnv, strategy: str) -> list[str]:
        assert isinstance(env, MatchstickRotation)
        dx, dy, da = (number(v) for v in env.offset())
        if strategy == "direct":
            return [f"('move', {dx}, {dy}, {da})"]
        return [f"('move', {dx}, {dy}, 0)", f"('move', 0, 0, {da})"]

    def detour(self, env: VisGymEnv, rng: np.random.Generator) -> str:
        assert isinstance(env, MatchstickRotation)
        x, y, _ = env.match
        # Stay on the board: clamp each slide so the centre lands inside it.
        dx = int(np.clip(rng.integers(-40, 41), -x + 10, SIZE - 10 - x))
        dy = int(np.clip(rng.integers(-40, 41), -y + 10, SIZE - 10 - y))
        return f"('move', {dx}, {dy}, {int(rng.integers(-45, 46))})"


ENTRY = (MatchstickRotation, MatchstickRotationSolver())
