"""zoom_in_puzzle: order zoomed-in views of a picture from the widest to the most zoomed.

VisGym shows a natural photo next to 4 (easy) or 5 (hard) square crops of it at
different zoom levels, shuffled, and the agent swaps two views or gives a full
reordering until they run from the least to the most zoomed. Gantry draws a procedural
picture instead: a textured gradient with stripes at several frequencies (so even a
strong zoom is never a flat field) and outlined shapes at several sizes. The crops are
nested, each inside the previous one, and each crop gets a few shapes of its own scale,
so every view shows objects of a comfortable size and the next view's content can be
found inside it. Consecutive zoom ratios are 1.6-2.0× (easy) and 1.35-1.6× (hard, where
neighbouring views are also harder to tell apart).

The image shows the original picture large at the top left and the views in labelled
slots 0..k-1 (right column top to bottom, then the bottom row left to right). Positions
are 0-based as in Gantry's other arrangement puzzles (VisGym numbers them from 1).

Dataset mode (`dataset_path`): a directory of image files (.png/.jpg/.jpeg/.bmp/.webp);
each episode crops views from the centre square of one of them.
"""

from __future__ import annotations

import itertools
import json
import math
from functools import lru_cache
from typing import Any, ClassVar

import numpy as np
from PIL import Image as PILImage
from PIL import ImageDraw

from gantry.envfarm.envs.actions import Action, ActionError
from gantry.envfarm.envs.base import Image, JsonState, Solver, VisGymEnv
from gantry.envfarm.envs.permutations import (
    apply_reorder,
    apply_swap,
    check_order,
    random_swap,
    reorder_plan,
    shuffled,
    swap_plan,
)
from gantry.envfarm.envs.picture import (
    check_color,
    check_number,
    dataset_file,
    image_files,
    load_square,
)
from gantry.envfarm.envs.render import DARK, WHITE, canvas, font, to_array
from gantry.envfarm.envs.scenes import COLORS, SHAPES, check_choice, draw_shape

SIZE = 336
ORIGINAL = 224  # the full picture, top left
VIEW = 112  # each zoomed view
VIEWS = {"easy": 4, "hard": 5}
FIRST_ZOOM = (1.3, 1.8)
RATIO = {"easy": (1.6, 2.0), "hard": (1.35, 1.6)}
SHAPES_PER_LEVEL = (2, 4)
FULL_SHAPES = (5, 8)
DATASET_RESOLUTION = 896  # dataset pictures are loaded this large, then cropped
# Slots for the views: the right column (two cells), then the bottom row (three cells).
SLOTS: tuple[tuple[int, int], ...] = ((224, 0), (224, 112), (0, 224), (112, 224), (224, 224))

Box = tuple[float, float, float]  # x0, y0, side, normalised to the full picture


def sample_views(count: int, ratio: tuple[float, float], rng: np.random.Generator) -> list[Box]:
    """Nested square crops, widest first; each lies inside the previous one."""
    side = 1.0 / float(rng.uniform(*FIRST_ZOOM))
    x, y = (float(v) for v in rng.uniform(0, 1 - side, size=2))
    boxes = [(x, y, side)]
    for _ in range(count - 1):
        inner = side / float(rng.uniform(*ratio))
        x += float(rng.uniform(0, side - inner))
        y += float(rng.uniform(0, side - inner))
        side = inner
        boxes.append((x, y, side))
    return [(round(x, 5), round(y, 5), round(s, 5)) for x, y, s in boxes]


def _shape(x0: float, y0: float, side: float, rng: np.random.Generator) -> JsonState:
    r = side * float(rng.uniform(0.06, 0.13))
    return {
        "shape": SHAPES[int(rng.integers(len(SHAPES)))],
        "color": list(COLORS)[int(rng.integers(len(COLORS)))],
        "x": round(x0 + float(rng.uniform(r, side - r)), 5),
        "y": round(y0 + float(rng.uniform(r, side - r)), 5),
        "r": round(r, 5),
        "angle": round(float(rng.uniform(0, math.pi)), 4),
    }


def sample_scene(boxes: list[Box], rng: np.random.Generator) -> JsonState:
    """Background colours plus shapes at every crop's scale, largest first."""
    shapes = [
        _shape(0.0, 0.0, 1.0, rng)
        for _ in range(int(rng.integers(FULL_SHAPES[0], FULL_SHAPES[1] + 1)))
    ]
    for x0, y0, side in boxes:
        for _ in range(int(rng.integers(SHAPES_PER_LEVEL[0], SHAPES_PER_LEVEL[1] + 1))):
            shapes.append(_shape(x0, y0, side, rng))
    return {
        "top": [int(v) for v in rng.integers(150, 240, size=3)],
        "bottom": [int(v) for v in rng.integers(60, 160, size=3)],
        "angle": round(float(rng.uniform(0, math.pi)), 4),
        "shapes": shapes,
    }


def check_box(value: Any) -> Box:
    if not isinstance(value, list) or len(value) != 3:
        raise ValueError("a view must be [x0, y0, side]")
    x0, y0 = check_number(value[0], "view x0", 0, 1), check_number(value[1], "view y0", 0, 1)
    side = check_number(value[2], "view side", 0.02, 1)
    if x0 + side > 1 + 1e-6 or y0 + side > 1 + 1e-6:
        raise ValueError("a view must lie inside the picture")
    return x0, y0, side


def check_scene(spec: Any) -> JsonState:
    if not isinstance(spec, dict):
        raise ValueError("scene must be an object")
    check_color(spec["top"], "scene top")
    check_color(spec["bottom"], "scene bottom")
    check_number(spec["angle"], "scene angle", 0, 7)
    shapes = spec["shapes"]
    if not isinstance(shapes, list) or len(shapes) > 60:
        raise ValueError("scene shapes must be a list of at most 60 shapes")
    for shape in shapes:
        check_choice(shape["shape"], SHAPES, "shape")
        check_choice(shape["color"], tuple(COLORS), "shape color")
        for key in ("x", "y"):
            check_number(shape[key], f"shape {key}", 0, 1)
        check_number(shape["r"], "shape r", 0.001, 0.5)
        check_number(shape["angle"], "shape angle", 0, 7)
    return spec


def render_crop(scene: JsonState, box: Box, size: int) -> Image:
    """The part `box` of the procedural picture, drawn directly at `size` px (crisp at
    any zoom, because the picture is vector data)."""
    return _render_crop(json.dumps(scene, sort_keys=True), box, size).copy()


@lru_cache(maxsize=64)
def _render_crop(key: str, box: Box, size: int) -> Image:
    scene = json.loads(key)
    x0, y0, side = box
    coords = (np.arange(size, dtype=np.float32) + 0.5) / size * side
    xs, ys = (x0 + coords)[None, :, None], (y0 + coords)[:, None, None]
    angle = scene["angle"]
    along = xs * math.cos(angle) + ys * math.sin(angle)
    mix = np.clip(along * 0.7 + 0.15, 0, 1)
    base = (1 - mix) * np.float32(scene["top"]) + mix * np.float32(scene["bottom"])
    # Stripes at three frequencies: coarse ones show in wide views, fine ones when zoomed.
    across = xs * math.sin(angle) - ys * math.cos(angle)
    texture = sum(
        amp * np.sin(2 * math.pi * freq * (across + 0.3 * along))
        for amp, freq in ((10.0, 5.0), (8.0, 23.0), (6.0, 97.0))
    )
    image = PILImage.fromarray(np.clip(base + texture, 0, 255).astype(np.uint8))
    draw = ImageDraw.Draw(image)
    scale = size / side
    for shape in scene["shapes"]:
        r = shape["r"] * scale
        cx, cy = (shape["x"] - x0) * scale, (shape["y"] - y0) * scale
        if r < 1.5 or cx + r < 0 or cy + r < 0 or cx - r > size or cy - r > size:
            continue  # too small to see, or outside this crop
        draw_shape(draw, shape["shape"], COLORS[shape["color"]], cx, cy, r, shape["angle"])
    return to_array(image)


class ZoomInPuzzle(VisGymEnv):
    env_id: ClassVar[str] = "zoom_in_puzzle"
    description: ClassVar[str] = (
        "The large picture at the top left is the original. The labelled slots show zoomed-in "
        "views of it, shuffled (slot 0 is the top of the right column, then down, then the "
        "bottom row from left to right). Arrange the views from the widest (least zoomed) at "
        "slot 0 to the most zoomed at the last slot."
    )
    action_grammar: ClassVar[str] = (
        "('swap', i, j) exchanges the views in slots i and j; ('reorder', [p0, p1, ...]) "
        "lists, for each slot in order, the current slot of the view to put there "
        "(a permutation); 'stop'"
    )
    action_examples: ClassVar[tuple[str, ...]] = (
        "('swap', 0, 2)",
        "('reorder', [3, 0, 2, 1])",
        "stop",
    )
    levels: ClassVar[dict[str, str]] = {
        "easy": "4 views, each 1.6-2.0x more zoomed than the previous",
        "hard": "5 views, each 1.35-1.6x more zoomed than the previous",
    }

    order: list[int]  # order[slot] = rank of the view shown there (0 = widest)
    views: list[Box]  # by rank, widest first
    scene: JsonState | None
    image_name: str | None

    def _sample_state(self, rng: np.random.Generator) -> JsonState:
        count = VIEWS[self.difficulty]
        views = sample_views(count, RATIO[self.difficulty], rng)
        order = shuffled(count, rng)
        views_json = [list(v) for v in views]
        if self.dataset_path is not None:
            names = image_files(self.dataset_path)
            name = names[int(rng.integers(len(names)))]
            return {"image": name, "views": views_json, "order": order}
        return {"scene": sample_scene(views, rng), "views": views_json, "order": order}

    def _load_state(self, state: JsonState) -> None:
        order = check_order(state["order"], 2, len(SLOTS))
        views = state["views"]
        if not isinstance(views, list) or len(views) != len(order):
            raise ValueError("views must list one [x0, y0, side] per slot")
        boxes = [check_box(v) for v in views]
        if any(b[2] >= a[2] for a, b in itertools.pairwise(boxes)):
            raise ValueError("views must be listed from the widest to the most zoomed")
        if "image" in state:
            dataset_file(self.dataset_path, state["image"])
            self.image_name, self.scene = str(state["image"]), None
        else:
            self.scene, self.image_name = check_scene(state["scene"]), None
        self.order, self.views = order, boxes

    def _state(self) -> JsonState:
        source: JsonState = (
            {"image": self.image_name} if self.image_name is not None else {"scene": self.scene}
        )
        return {**source, "views": [list(v) for v in self.views], "order": self.order}

    def _apply(self, action: Action) -> str:
        if action.name == "swap":
            a, b = apply_swap(self.order, action)
            return f"Swapped the views in slots {a} and {b}."
        if action.name == "reorder":
            perm = apply_reorder(self.order, action)
            return f"Reordered the views as {perm}."
        raise ActionError(
            f"unknown action {action.name!r}; use ('swap', i, j), ('reorder', [...]) or 'stop'"
        )

    def goal_reached(self) -> bool:
        return self.order == list(range(len(self.order)))

    def _crop(self, box: Box, size: int) -> Image:
        if self.scene is not None:
            return render_crop(self.scene, box, size)
        assert self.image_name is not None
        full = load_square(dataset_file(self.dataset_path, self.image_name), DATASET_RESOLUTION)
        x0, y0, side = (round(v * DATASET_RESOLUTION) for v in box)
        piece = PILImage.fromarray(full[y0 : y0 + side, x0 : x0 + side])
        resized = piece.resize((size, size), PILImage.Resampling.BILINEAR)
        return np.asarray(resized, dtype=np.uint8)

    def render_image(self) -> Image:
        image, draw = canvas(SIZE, SIZE, background=DARK)
        image.paste(PILImage.fromarray(self._crop((0.0, 0.0, 1.0), ORIGINAL - 4)), (2, 2))
        draw.rectangle((2, 2, 72, 20), fill=DARK)
        draw.text((37, 11), "original", fill=WHITE, font=font(13), anchor="mm")
        for slot, rank in enumerate(self.order):
            x, y = SLOTS[slot]
            image.paste(PILImage.fromarray(self._crop(self.views[rank], VIEW - 4)), (x + 2, y + 2))
            draw.rectangle((x + 2, y + 2, x + 20, y + 20), fill=DARK)
            draw.text((x + 11, y + 11), str(slot), fill=WHITE, font=font(14), anchor="mm")
        if len(self.order) < len(SLOTS):
            x, y = SLOTS[-1]
            note = "widest at 0,\nmost zoomed\nlast"
            draw.multiline_text(
                (x + VIEW / 2, y + VIEW / 2),
                note,
                fill=WHITE,
                font=font(13),
                anchor="mm",
                align="center",
            )
        return to_array(image)

    def render_text(self) -> str:
        count = len(self.order)
        lines = [
            f"An original picture and {count} zoomed-in views of it, "
            f"shuffled in slots 0-{count - 1}."
        ]
        if self.scene is None:
            lines.append("The picture is only visible in the image.")
            lines += [f"Slot {slot}: a zoomed view" for slot in range(count)]
            return "\n".join(lines)
        lines.append(
            "Objects are listed with centre (x, y) and radius, as fractions of the view width."
        )
        lines.append("Original: " + self._describe((0.0, 0.0, 1.0)))
        for slot, rank in enumerate(self.order):
            lines.append(f"Slot {slot}: " + self._describe(self.views[rank]))
        return "\n".join(lines)

    def _describe(self, box: Box, limit: int = 6) -> str:
        assert self.scene is not None
        x0, y0, side = box
        seen = []
        for shape in self.scene["shapes"]:
            x, y, r = (shape["x"] - x0) / side, (shape["y"] - y0) / side, shape["r"] / side
            if 0 <= x <= 1 and 0 <= y <= 1 and r >= 0.02:
                seen.append((r, f"{shape['color']} {shape['shape']} ({x:.2f}, {y:.2f}) r {r:.2f}"))
        seen.sort(key=lambda item: -item[0])
        return "; ".join(text for _, text in seen[:limit]) or "no whole objects"


class ZoomInPuzzleSolver(Solver):
    """`reorder`: one full reordering. `sorted_swaps`: selection sort, one swap per
    misplaced view (at most k-1 swaps)."""

    strategies: ClassVar[tuple[str, ...]] = ("reorder", "sorted_swaps")

    def plan(self, env: VisGymEnv, strategy: str) -> list[str]:
        assert isinstance(env, ZoomInPuzzle)
        return reorder_plan(env.order) if strategy == "reorder" else swap_plan(env.order)

    def detour(self, env: VisGymEnv, rng: np.random.Generator) -> str:
        assert isinstance(env, ZoomInPuzzle)
        return random_swap(len(env.order), rng)


ENTRY = (ZoomInPuzzle, ZoomInPuzzleSolver())
