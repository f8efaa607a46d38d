"""referring_dot_pointing: mark the object that a referring expression describes.

VisGym shows a RefCOCO photo with an expression ("the man in the red shirt") and the agent
answers with a point; it succeeds when the point lies inside the referred object. Gantry
renders a procedural stand-in: coloured shapes of two sizes on a textured background and
an expression generated to pick out exactly one of them, e.g. "the small red triangle left
of the blue circle", "the rightmost green star" or "the large purple hexagon". Every
scene holds at least one object of the target's colour and shape, so colour plus shape
alone rarely suffices. Relations need a clear margin (the target is at least 0.08 of the
image beyond the anchor, within a 45-degree cone of the named direction; every other
candidate with the same name is on the other side of the anchor), and "leftmost"-style
words need a 0.08 lead over the runner-up, so an expression is never borderline.

Levels: VisGym has a single setting, which `easy` reproduces (5-7 objects). `hard` is a
Gantry extension with no counterpart in the paper: 8-11 objects with more look-alikes;
results on it are not comparable with VisGym's. The goal is met when the latest mark lies
inside the referred object's bounding box (objects' boxes never overlap). A mark's
feedback only echoes the point, so it does not reveal the answer.

Text mode: VisGym's referring_dot_pointing has no text rendering (RGB only); the text it
gives is the expression. Listing the objects with their positions would make pointing a
reading task, so the text observation carries the expression and the latest mark only; the
objects are visible only in the image, and text-only sessions are a baseline.

Dataset mode (`dataset_path`): a directory with images and `annotations.json`, a list of
`{"image": "kitchen.jpg", "expression": "the cup left of the kettle",
"box": [x0, y0, x1, y1]}` with the box in [0,1]² image coordinates (0,0 top-left).
Images are stretched to 336×336, so boxes and marks share coordinates.
"""

from __future__ import annotations

import textwrap
from typing import Any, ClassVar

import numpy as np
from PIL import Image as PILImage
from PIL import ImageDraw

from gantry.envfarm.envs.actions import Action, ActionError, expect_args, expect_float
from gantry.envfarm.envs.base import Image, JsonState, Solver, VisGymEnv
from gantry.envfarm.envs.render import BLACK, WHITE, font, to_array
from gantry.envfarm.envs.scenes import (
    COLORS,
    SHAPES,
    background_array,
    check_background,
    check_choice,
    check_number,
    check_point,
    dataset_file,
    draw_shape,
    load_annotations,
    load_image,
    sample_background,
)

SIZE = 336
CAPTION_HEIGHT = 0.12  # two lines of text; objects stay below it
OBJECTS = {"easy": (5, 7), "hard": (8, 11)}
TWINS = {"easy": (1, 1), "hard": (1, 2)}  # extra objects with the target's colour and shape
RADII = {"small": (0.04, 0.05), "large": (0.075, 0.09)}
MARGIN = 0.08  # how far beyond the anchor (or the runner-up) the target must be
MAX_MARKS = 60
MARK_COLOR = (255, 255, 255)
LAST_MARK_COLOR = (255, 30, 200)

Obj = dict[str, Any]
# Spatial relations: the coordinate they compare and the sign of "target minus anchor".
RELATIONS: dict[str, tuple[str, int]] = {
    "left of": ("x", -1),
    "right of": ("x", 1),
    "above": ("y", -1),
    "below": ("y", 1),
}
EXTREMES: dict[str, tuple[str, int]] = {
    "leftmost": ("x", -1),
    "rightmost": ("x", 1),
    "topmost": ("y", -1),
    "lowest": ("y", 1),
}


def noun(obj: Obj, with_size: bool = False) -> str:
    words = [obj["size"]] if with_size else []
    return " ".join([*words, obj["color"], obj["shape"]])


def _matches(obj: Obj, other: Obj, with_size: bool) -> bool:
    same = obj["color"] == other["color"] and obj["shape"] == other["shape"]
    return same and (not with_size or obj["size"] == other["size"])


def _unique(objects: list[Obj], index: int, with_size: bool) -> bool:
    target = objects[index]
    return sum(_matches(target, o, with_size) for o in objects) == 1


def expressions(objects: list[Obj], index: int) -> list[tuple[str, float]]:
    """Every expression that picks out `objects[index]` alone, with a selection weight."""
    target = objects[index]
    found: list[tuple[str, float]] = []
    for with_size in (False, True):
        name = noun(target, with_size)
        rivals = [o for k, o in enumerate(objects) if k != index and _matches(target, o, with_size)]
        if not rivals:
            found.append((f"the {name}", 1.0 if not with_size else 1.5))
        for word, (axis, sign) in EXTREMES.items():
            lead = min((sign * (target[axis] - o[axis]) for o in rivals), default=-1.0)
            if rivals and lead >= MARGIN:
                found.append((f"the {word} {name}", 2.0))
        for k, anchor in enumerate(objects):
            if k == index:
                continue
            anchor_name = _anchor_name(objects, k)
            if anchor_name is None:
                continue
            for word, (axis, sign) in RELATIONS.items():
                beyond = sign * (target[axis] - anchor[axis])
                # Within a 45-degree cone, so "above" does not mean "far off to one side".
                aside = abs(
                    target["y" if axis == "x" else "x"] - anchor["y" if axis == "x" else "x"]
                )
                if beyond >= max(MARGIN, aside) and all(
                    sign * (o[axis] - anchor[axis]) <= 0 for o in rivals
                ):
                    found.append((f"the {name} {word} the {anchor_name}", 3.0))
    return found


def _anchor_name(objects: list[Obj], index: int) -> str | None:
    for with_size in (False, True):
        if _unique(objects, index, with_size):
            return noun(objects[index], with_size)
    return None


def _place(radii: list[float], rng: np.random.Generator) -> list[tuple[float, float]] | None:
    """Centres whose bounding boxes are disjoint with a gap, below the caption band."""
    placed: list[tuple[float, float, float]] = []
    for r in radii:
        for _ in range(200):
            x = float(rng.uniform(r + 0.01, 1 - r - 0.01))
            y = float(rng.uniform(CAPTION_HEIGHT + r + 0.01, 1 - r - 0.01))
            if all(max(abs(x - px), abs(y - py)) >= r + pr + 0.02 for px, py, pr in placed):
                placed.append((x, y, r))
                break
        else:
            return None
    return [(x, y) for x, y, _ in placed]


def _random_kind(rng: np.random.Generator) -> tuple[str, str]:
    return list(COLORS)[int(rng.integers(len(COLORS)))], SHAPES[int(rng.integers(len(SHAPES)))]


def _sample_kinds(difficulty: str, rng: np.random.Generator) -> list[tuple[str, str, str]]:
    """(colour, shape, size) per object; object 0 is the target, then its look-alikes."""
    low, high = OBJECTS[difficulty]
    total = int(rng.integers(low, high + 1))
    color, shape = _random_kind(rng)
    sizes = ("small", "large")
    kinds = [(color, shape, sizes[int(rng.integers(2))])]
    twins = int(rng.integers(TWINS[difficulty][0], TWINS[difficulty][1] + 1))
    kinds += [(color, shape, sizes[int(rng.integers(2))]) for _ in range(twins)]
    while len(kinds) < total:
        c, s = _random_kind(rng)
        if rng.random() < 0.5:  # a confuser sharing the target's colour or shape
            c, s = (color, s) if rng.random() < 0.5 else (c, shape)
        kinds.append((c, s, sizes[int(rng.integers(2))]))
    return kinds


class ReferringDotPointing(VisGymEnv):
    env_id: ClassVar[str] = "referring_dot_pointing"
    description: ClassVar[str] = (
        "A scene of objects and a referring expression that describes exactly one of them. "
        "Mark a point on the referred object. Coordinates are fractions of the image: (0, 0) "
        "is the top-left corner, (1, 1) the bottom-right. The latest mark is your answer. "
        "The objects are shown only in the image: text mode gives the expression and your "
        "latest mark. Level hard is a Gantry extension (VisGym has one setting, like easy)."
    )
    action_grammar: ClassVar[str] = "('mark', x, y) with x, y in [0, 1]; 'stop'"
    action_examples: ClassVar[tuple[str, ...]] = ("('mark', 0.25, 0.6)", "stop")
    levels: ClassVar[dict[str, str]] = {
        "easy": "5-7 objects (VisGym's single setting)",
        "hard": "Gantry extension, not in VisGym: 8-11 objects with more look-alikes",
    }

    expression: str
    objects: list[Obj]
    background: JsonState | None
    target: int
    image: str | None  # dataset mode: image file relative to dataset_path
    box: list[float]  # the referred object's [x0, y0, x1, y1]
    marks: list[list[float]]

    # ----- state -----
    def _sample_state(self, rng: np.random.Generator) -> JsonState:
        if self.dataset_path is not None:
            entries = load_annotations(self.dataset_path)
            entry = entries[int(rng.integers(len(entries)))]
            if not isinstance(entry, dict):
                raise ValueError("each annotation must be an object")
            keys = ("image", "expression", "box")
            return {**{key: entry.get(key) for key in keys}, "marks": []}
        while True:
            kinds = _sample_kinds(self.difficulty, rng)
            radii = [round(float(rng.uniform(*RADII[size])), 4) for _, _, size in kinds]
            centres = _place(radii, rng)
            if centres is None:
                continue
            objects = [
                {
                    "color": c,
                    "shape": s,
                    "size": size,
                    "x": round(x, 4),
                    "y": round(y, 4),
                    "r": r,
                    "angle": round(float(rng.uniform(-0.3, 0.3)), 3),
                }
                for (c, s, size), (x, y), r in zip(kinds, centres, radii, strict=True)
            ]
            options = expressions(objects, 0)
            if options:
                break
        weights = np.asarray([w for _, w in options])
        text = options[int(rng.choice(len(options), p=weights / weights.sum()))][0]
        order = [int(k) for k in rng.permutation(len(objects))]  # hide the target's index
        return {
            "objects": [objects[k] for k in order],
            "background": sample_background(rng),
            "target": order.index(0),
            "expression": text,
            "marks": [],
        }

    def _load_state(self, state: JsonState) -> None:
        expression = state["expression"]
        if not isinstance(expression, str) or not expression.strip():
            raise ValueError("expression must be a non-empty string")
        if not expression.isprintable() or len(expression) > 300:
            raise ValueError("expression must be printable and at most 300 characters")
        marks = state["marks"]
        if not isinstance(marks, list) or len(marks) > MAX_MARKS:
            raise ValueError(f"marks must be a list of at most {MAX_MARKS} points")
        if "objects" in state:
            self._load_scene(state["objects"], state["background"], state["target"])
        else:
            dataset_file(self.dataset_path, state["image"])
            box = state["box"]
            if not isinstance(box, list) or len(box) != 4:
                raise ValueError("box must be [x0, y0, x1, y1]")
            x0, y0 = check_point(box[:2], "box corner")
            x1, y1 = check_point(box[2:], "box corner")
            if not (x0 < x1 and y0 < y1):
                raise ValueError("box must have x0 < x1 and y0 < y1")
            self.objects, self.background, self.target = [], None, -1
            self.image, self.box = state["image"], [x0, y0, x1, y1]
        self.expression = expression
        self.marks = [check_point(m, "mark") for m in marks]

    def _load_scene(self, objects: Any, background: Any, target: Any) -> None:
        if not isinstance(objects, list) or not 1 <= len(objects) <= 50:
            raise ValueError("objects must be a list of 1-50 objects")
        checked: list[Obj] = [
            {
                "color": check_choice(o["color"], COLORS, "object color"),
                "shape": check_choice(o["shape"], SHAPES, "object shape"),
                "size": check_choice(o["size"], ("small", "large"), "object size"),
                "x": check_number(o["x"], "object x", 0.0, 1.0),
                "y": check_number(o["y"], "object y", 0.0, 1.0),
                "r": check_number(o["r"], "object r", 0.005, 0.3),
                "angle": check_number(o["angle"], "object angle", -10.0, 10.0),
            }
            for o in objects
        ]
        if not isinstance(target, int) or isinstance(target, bool):
            raise ValueError("target must be an object index")
        if not 0 <= target < len(checked):
            raise ValueError("target is out of range")
        self.objects, self.background, self.target = checked, check_background(background), target
        self.image = None
        t = checked[target]
        self.box = [t["x"] - t["r"], t["y"] - t["r"], t["x"] + t["r"], t["y"] + t["r"]]

    def _state(self) -> JsonState:
        common = {"expression": self.expression, "marks": self.marks}
        if self.image is not None:
            return {"image": self.image, "box": self.box, **common}
        return {
            "objects": self.objects,
            "background": self.background,
            "target": self.target,
            **common,
        }

    # ----- actions -----
    def _apply(self, action: Action) -> str:
        if action.name != "mark":
            raise ActionError(f"unknown action {action.name!r}; use ('mark', x, y) or 'stop'")
        x, y = expect_args(action, 2, "('mark', x, y) with x, y in [0, 1]")
        point = [expect_float(x, "x", 0.0, 1.0), expect_float(y, "y", 0.0, 1.0)]
        if len(self.marks) >= MAX_MARKS:
            self.marks.pop(0)  # only the latest mark counts; keep the drawing bounded
        self.marks.append(point)
        return f"Marked ({point[0]:.2f}, {point[1]:.2f})."

    def goal_reached(self) -> bool:
        if not self.marks:
            return False
        x, y = self.marks[-1]
        x0, y0, x1, y1 = self.box
        return x0 <= x <= x1 and y0 <= y <= y1

    # ----- rendering -----
    def render_image(self) -> Image:
        if self.image is not None:
            pixels = load_image(dataset_file(self.dataset_path, self.image), SIZE, SIZE)
        else:
            assert self.background is not None
            pixels = background_array(self.background, SIZE, SIZE)
        picture = PILImage.fromarray(pixels)
        draw = ImageDraw.Draw(picture)
        for o in self.objects:
            color = COLORS[o["color"]]
            draw_shape(
                draw, o["shape"], color, o["x"] * SIZE, o["y"] * SIZE, o["r"] * SIZE, o["angle"]
            )
        if self.image is None:
            band = int(CAPTION_HEIGHT * SIZE)
            draw.rectangle((0, 0, SIZE, band), fill=(32, 36, 44))
            lines = textwrap.wrap(f"Point at {self.expression}.", width=44)[:2]
            for k, line in enumerate(lines):
                draw.text((8, 4 + 18 * k), line, fill=WHITE, font=font(15))
        for k, (x, y) in enumerate(self.marks):
            last = k == len(self.marks) - 1
            _draw_cross(draw, x * SIZE, y * SIZE, LAST_MARK_COLOR if last else MARK_COLOR)
        return to_array(picture)

    def render_text(self) -> str:
        # The expression and the agent's own mark only: the scene is perceived in the image.
        latest = f"({self.marks[-1][0]:.2f}, {self.marks[-1][1]:.2f})" if self.marks else "none"
        return "\n".join(
            [
                f"Point at {self.expression}.",
                "The objects are visible only in the image.",
                f"Latest mark: {latest}",
            ]
        )


def _draw_cross(
    draw: ImageDraw.ImageDraw, cx: float, cy: float, color: tuple[int, int, int]
) -> None:
    for dx, dy in ((7, 0), (0, 7)):
        draw.line((cx - dx, cy - dy, cx + dx, cy + dy), fill=BLACK, width=5)
        draw.line((cx - dx, cy - dy, cx + dx, cy + dy), fill=color, width=3)


class ReferringDotPointingSolver(Solver):
    """`center`: mark the centre of the referred box. `jitter`: a point near the centre
    (within 30% of the half-size, inside every shape), seeded by the box, as a varied demo.
    """

    strategies: ClassVar[tuple[str, ...]] = ("center", "jitter")

    def plan(self, env: VisGymEnv, strategy: str) -> list[str]:
        assert isinstance(env, ReferringDotPointing)
        x0, y0, x1, y1 = env.box
        cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
        if strategy == "jitter":
            seed = [int(v * 10_000) for v in env.box]
            dx, dy = np.random.default_rng(seed).uniform(-0.3, 0.3, size=2)
            cx, cy = cx + dx * (x1 - x0) / 2, cy + dy * (y1 - y0) / 2
        if strategy == "center":
            return [f"('mark', {cx:.3f}, {cy:.3f})"]
        return [f"('mark', {cx:.4f}, {cy:.4f})"]

    def detour(self, env: VisGymEnv, rng: np.random.Generator) -> str:
        x, y = rng.uniform(0.02, 0.98, size=2)
        return f"('mark', {x:.3f}, {y:.3f})"


ENTRY = (ReferringDotPointing, ReferringDotPointingSolver())
