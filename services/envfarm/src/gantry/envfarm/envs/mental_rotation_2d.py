"""mental_rotation_2d: rotate a picture until it matches a target view of the same picture.

VisGym shows an image rotated away from a target orientation; the agent rotates it by
integer degrees in [-180, 180] and stops when it lies within 10° (easy) or 5° (hard) of
the target. Gantry shows two discs side by side: the target view (left) and the current
view (right) of one picture, each turned by its own angle. The picture is cut to a disc
so its frame gives no hint of the angle.

The procedural picture is five shapes of distinct colours on a gradient, scattered off
the centre, so no rotation other than the identity maps it onto itself and the goal is
unambiguous. Dataset mode (`dataset_path`): a directory of PNG/JPEG/BMP/WebP images;
each episode picks one, centre-cropped to a square. Photos should have no rotational
symmetry.
"""

from __future__ import annotations

import json
import math
from functools import lru_cache
from typing import Any, ClassVar

import numpy as np
from PIL import Image as PILImage
from PIL import ImageDraw

from gantry.envfarm.envs.actions import Action, ActionError, expect_args, expect_int
from gantry.envfarm.envs.base import Image, JsonState, Solver, VisGymEnv
from gantry.envfarm.envs.picture import (
    ascii_art,
    check_choice,
    check_color,
    check_number,
    dataset_file,
    gradient,
    image_files,
    load_square,
)
from gantry.envfarm.envs.render import DARK, LIGHT, PALETTE, Color, canvas, font, to_array

TOLERANCE = {"easy": 10, "hard": 5}
MIN_START_ERROR = 30  # degrees; well outside either tolerance
PICTURE = 160  # disc diameter in px
PANEL = 168
LABEL = 22
KINDS = ("circle", "square", "triangle", "bar", "arrow", "star")
SHAPES_PER_PICTURE = 5


def wrap(degrees: float) -> float:
    """The same angle in (-180, 180]."""
    wrapped = (degrees + 180.0) % 360.0 - 180.0
    return 180.0 if wrapped == -180.0 else wrapped


def rotate_point(x: float, y: float, degrees: float) -> tuple[float, float]:
    """Counterclockwise rotation with y pointing up."""
    t = math.radians(degrees)
    return x * math.cos(t) - y * math.sin(t), x * math.sin(t) + y * math.cos(t)


# ----- the procedural picture -----
def sample_picture(rng: np.random.Generator) -> JsonState:
    colors = rng.permutation(len(PALETTE))[:SHAPES_PER_PICTURE]
    shapes: list[dict[str, Any]] = []
    while len(shapes) < SHAPES_PER_PICTURE:
        size = float(rng.uniform(0.14, 0.24))
        radius = float(rng.uniform(0.3, 0.88 - size))
        theta = float(rng.uniform(0, 2 * math.pi))
        x, y = radius * math.cos(theta), radius * math.sin(theta)
        if any(math.hypot(x - s["x"], y - s["y"]) < size + s["size"] for s in shapes):
            continue  # keep shapes apart so each one is seen whole
        shapes.append(
            {
                "kind": KINDS[int(rng.integers(len(KINDS)))],
                "color": list(PALETTE[int(colors[len(shapes)])]),
                "x": round(x, 3),
                "y": round(y, 3),
                "size": round(size, 3),
                "angle": int(rng.integers(360)),
            }
        )
    top = [int(v) for v in rng.integers(200, 250, size=3)]
    bottom = [int(v) for v in rng.integers(150, 210, size=3)]
    return {"background": [top, bottom], "shapes": shapes}


def check_picture(picture: Any) -> JsonState:
    if not isinstance(picture, dict):
        raise ValueError("picture must be an object")
    if "image" in picture:
        return {"image": picture["image"]}
    background = picture["background"]
    if not (isinstance(background, list) and len(background) == 2):
        raise ValueError("background must be [top colour, bottom colour]")
    check_color(background[0], "background top")
    check_color(background[1], "background bottom")
    shapes = picture["shapes"]
    if not (isinstance(shapes, list) and 1 <= len(shapes) <= 12):
        raise ValueError("shapes must be a list of 1-12 shapes")
    for shape in shapes:
        check_choice(shape["kind"], KINDS, "shape kind")
        check_color(shape["color"], "shape colour")
        for key, low, high in (("x", -1, 1), ("y", -1, 1), ("size", 0.02, 0.5), ("angle", 0, 360)):
            check_number(shape[key], f"shape {key}", low, high)
    return {"background": background, "shapes": shapes}


def shape_outline(kind: str, size: float, angle: float) -> list[tuple[float, float]]:
    """Polygon vertices (x right, y up) of a shape of radius `size` around the origin."""
    if kind == "bar":
        corners = [(-1.0, -0.35), (1.0, -0.35), (1.0, 0.35), (-1.0, 0.35)]
    elif kind == "arrow":  # not mirror-symmetric about its long axis: a true pointer
        corners = [(-1.0, -0.25), (0.2, -0.25), (0.2, -0.6), (1.0, 0.1), (-1.0, 0.25)]
    elif kind == "star":
        corners = [
            (
                radius * math.cos(k * math.pi / 5 + math.pi / 2),
                radius * math.sin(k * math.pi / 5 + math.pi / 2),
            )
            for k, radius in enumerate([1.0, 0.45] * 5)
        ]
    elif kind == "square":
        corners = [(-0.75, -0.75), (0.75, -0.75), (0.75, 0.75), (-0.75, 0.75)]
    else:  # a tall isosceles triangle points one way
        corners = [(1.0, 0.0), (-0.7, 0.6), (-0.7, -0.6)]
    return [rotate_point(size * cx, size * cy, angle) for cx, cy in corners]


@lru_cache(maxsize=64)
def _procedural(key: str) -> PILImage.Image:
    picture = json.loads(key)
    top, bottom = (tuple(c) for c in picture["background"])
    image = PILImage.fromarray(gradient(PICTURE, PICTURE, top, bottom))
    draw = ImageDraw.Draw(image)
    half = PICTURE / 2
    for shape in picture["shapes"]:
        color: Color = tuple(shape["color"])  # type: ignore[assignment]
        cx, cy, r = half + shape["x"] * half, half - shape["y"] * half, shape["size"] * half
        if shape["kind"] == "circle":
            draw.ellipse((cx - r, cy - r, cx + r, cy + r), fill=color, outline=DARK, width=2)
            # an off-centre dot makes even a circle show its turn
            dx, dy = rotate_point(0.5 * r, 0.0, shape["angle"])
            draw.ellipse((cx + dx - 3, cy - dy - 3, cx + dx + 3, cy - dy + 3), fill=DARK)
            continue
        points = [(cx + px * half, cy - py * half) for px, py in _outline(shape)]
        draw.polygon(points, fill=color, outline=DARK, width=2)
    return image


def _outline(shape: dict[str, Any]) -> list[tuple[float, float]]:
    return shape_outline(shape["kind"], shape["size"], shape["angle"])


class MentalRotation2D(VisGymEnv):
    env_id: ClassVar[str] = "mental_rotation_2d"
    description: ClassVar[str] = (
        "Two discs show the same picture. Rotate the right picture (current) until it has "
        "the same orientation as the left picture (target). Positive degrees turn it "
        "counterclockwise. Within 10 degrees counts as matched (5 on hard)."
    )
    action_grammar: ClassVar[str] = (
        "('rotate', D) with D an integer number of degrees in [-180, 180], positive = "
        "counterclockwise; 'stop'"
    )
    action_examples: ClassVar[tuple[str, ...]] = ("('rotate', 45)", "('rotate', -90)", "stop")
    levels: ClassVar[dict[str, str]] = {
        "easy": "tolerance 10 degrees",
        "hard": "tolerance 5 degrees",
    }
    image_shape: ClassVar[tuple[int, int]] = (PANEL + LABEL + 2, 2 * PANEL)

    picture: JsonState
    target: int
    angle: int

    @property
    def tolerance(self) -> int:
        return TOLERANCE[self.difficulty]

    def error(self) -> float:
        """Signed degrees by which the current view is turned past the target."""
        return wrap(self.angle - self.target)

    def _sample_state(self, rng: np.random.Generator) -> JsonState:
        if self.dataset_path is not None:
            names = image_files(self.dataset_path)
            picture: JsonState = {"image": names[int(rng.integers(len(names)))]}
        else:
            picture = sample_picture(rng)
        target = int(rng.integers(360))
        magnitude = int(rng.integers(MIN_START_ERROR, 181))
        sign = 1 if rng.random() < 0.5 else -1
        return {"picture": picture, "target": target, "angle": (target + sign * magnitude) % 360}

    def _load_state(self, state: JsonState) -> None:
        picture = check_picture(state["picture"])
        if "image" in picture:
            dataset_file(self.dataset_path, picture["image"])
        for key in ("target", "angle"):
            value = state[key]
            if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < 360:
                raise ValueError(f"{key} must be an integer in [0, 360)")
        self.picture, self.target, self.angle = picture, state["target"], state["angle"]

    def _state(self) -> JsonState:
        return {"picture": self.picture, "target": self.target, "angle": self.angle}

    def _apply(self, action: Action) -> str:
        if action.name != "rotate":
            raise ActionError(f"unknown action {action.name!r}; use ('rotate', degrees) or 'stop'")
        args = action.args
        if len(args) == 1 and isinstance(args[0], tuple) and len(args[0]) == 1:
            args = args[0]  # ('rotate', [30])
        (value,) = expect_args(Action(action.name, args), 1, "('rotate', degrees)")
        degrees = expect_int(value, "the rotation", -180, 180)
        self.angle = (self.angle + degrees) % 360
        if degrees == 0:
            return "Rotated by 0 degrees; nothing changed."
        way = "counterclockwise" if degrees > 0 else "clockwise"
        return f"Rotated the picture {abs(degrees)} degrees {way}."

    def goal_reached(self) -> bool:
        return abs(self.error()) <= self.tolerance

    # ----- rendering -----
    def _base(self) -> PILImage.Image:
        if "image" in self.picture:
            path = dataset_file(self.dataset_path, self.picture["image"])
            return PILImage.fromarray(load_square(path, PICTURE))
        return _procedural(json.dumps(self.picture, sort_keys=True))

    def render_image(self) -> Image:
        image, draw = canvas(*self.image_shape, background=LIGHT)
        base = self._base()
        mask = _disc_mask()
        label_font = font(15)
        for column, (label, degrees) in enumerate(
            (("Target", self.target), ("Current", self.angle))
        ):
            x0 = column * PANEL + (PANEL - PICTURE) // 2
            y0 = LABEL + (PANEL - PICTURE) // 2
            turned = base.rotate(degrees, resample=PILImage.Resampling.BICUBIC)
            image.paste(turned, (x0, y0), mask)
            draw.ellipse((x0, y0, x0 + PICTURE - 1, y0 + PICTURE - 1), outline=DARK, width=2)
            draw.text(
                (column * PANEL + PANEL // 2, 3), label, fill=DARK, font=label_font, anchor="mt"
            )
        draw.line((PANEL, 4, PANEL, self.image_shape[0] - 4), fill=DARK, width=1)
        return to_array(image)

    def render_text(self) -> str:
        lines = [
            "Two views of one picture. Rotate the current view until it matches the target "
            f"view (within {self.tolerance} degrees)."
        ]
        if "image" in self.picture:
            base = np.asarray(self._base(), dtype=np.uint8)
            for label, degrees in (("Target", self.target), ("Current", self.angle)):
                turned = PILImage.fromarray(base).rotate(degrees, PILImage.Resampling.BICUBIC)
                art = ascii_art(np.asarray(turned, dtype=np.uint8), 32, 16)
                lines += [f"{label} view (luminance art, dark to light ' .:-=+*#%@'):", art]
            return "\n".join(lines)
        lines.append("Shape centres from the picture centre: x right, y up, 1 = disc radius.")
        for label, degrees in (("Target", self.target), ("Current", self.angle)):
            lines.append(f"{label} view:")
            for shape in self.picture["shapes"]:
                x, y = rotate_point(shape["x"], shape["y"], degrees)
                name = _color_name(shape["color"])
                lines.append(f"  {name} {shape['kind']} at ({x:.2f}, {y:.2f})")
        return "\n".join(lines)


@lru_cache(maxsize=1)
def _disc_mask() -> PILImage.Image:
    mask = PILImage.new("L", (PICTURE, PICTURE), 0)
    ImageDraw.Draw(mask).ellipse((0, 0, PICTURE - 1, PICTURE - 1), fill=255)
    return mask


COLOR_NAMES = (
    "red",
    "green",
    "blue",
    "yellow",
    "purple",
    "orange",
    "teal",
    "pink",
    "brown",
    "dark-teal",
    "indigo",
    "lime",
)


def _color_name(color: list[int]) -> str:
    for name, known in zip(COLOR_NAMES, PALETTE, strict=True):
        if tuple(color) == known:
            return name
    return "rgb({}, {}, {})".format(*color)


class MentalRotation2DSolver(Solver):
    """`direct`: one rotation by the exact error. `steps45`: turns of at most 45 degrees."""

    strategies: ClassVar[tuple[str, ...]] = ("direct", "steps45")

    def plan(self, env: VisGymEnv, strategy: str) -> list[str]:
        assert isinstance(env, MentalRotation2D)
        remaining = -round(env.error())
        if strategy == "direct":
            return [f"('rotate', {remaining})"] if remaining else []
        actions = []
        while remaining:
            step = max(-45, min(45, remaining))
            actions.append(f"('rotate', {step})")
            remaining -= step
        return actions

    def detour(self, env: VisGymEnv, rng: np.random.Generator) -> str:
        magnitude = int(rng.integers(5, 61))
        return f"('rotate', {magnitude if rng.random() < 0.5 else -magnitude})"


ENTRY = (MentalRotation2D, MentalRotation2DSolver())
