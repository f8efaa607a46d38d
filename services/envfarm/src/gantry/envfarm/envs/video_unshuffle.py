"""video_unshuffle: put the shuffled frames of a short clip back in temporal order.

VisGym samples frames from Something-Something clips, shows them shuffled in a grid, and
the agent swaps two frames or gives a full reordering. Gantry renders a procedural clip
instead: one or two objects glide along smooth curves (quadratic Bézier paths) past a few
static objects on a textured background. Motion alone is reversible, so each moving
object also leaves a trail behind it, like a pen drawing its path: the trail only grows,
which makes the temporal order unambiguous (the first frame has no trail, and every later
frame's trail extends the previous one by a clearly visible step).

Frames sit in a two-column grid, each labelled with its position 0..k-1 (top-left to
bottom-right, row by row). 4 frames (easy) or 5 (hard). The goal is met when the frames
are in temporal order.

Dataset mode (`dataset_path`): one subdirectory per clip holding its frames as image
files whose sorted names give the temporal order (`clip_a/000.png, clip_a/001.png, ...`).
Clips with at least k frames are used; k evenly spaced frames are taken from each.
"""

from __future__ import annotations

import itertools
import math
from typing import Any, ClassVar

import numpy as np
from PIL import Image as PILImage
from PIL import ImageDraw

from gantry.envfarm.envs.actions import Action, ActionError
from gantry.envfarm.envs.base import Image, JsonState, Solver, VisGymEnv
from gantry.envfarm.envs.permutations import (
    apply_reorder,
    apply_swap,
    random_swap,
    reorder_plan,
    swap_plan,
)
from gantry.envfarm.envs.render import DARK, WHITE, Color, font, to_array
from gantry.envfarm.envs.scenes import (
    COLORS,
    IMAGE_SUFFIXES,
    SHAPES,
    background_array,
    check_background,
    check_choice,
    check_number,
    check_point,
    dataset_file,
    draw_shape,
    load_image,
    sample_background,
)

SIZE = 336
FRAMES = {"easy": 4, "hard": 5}
MOVERS = {"easy": (1, 2), "hard": (1, 2)}
STATIC = (2, 4)
MIN_STEP = 0.12  # how far each mover travels between consecutive frames (normalised)
TRAIL_SAMPLES = 24  # polyline points per unit of time for drawing a trail

Obj = dict[str, Any]


def bezier(path: list[list[float]], t: float) -> tuple[float, float]:
    (x0, y0), (x1, y1), (x2, y2) = path
    u = 1 - t
    return (
        u * u * x0 + 2 * u * t * x1 + t * t * x2,
        u * u * y0 + 2 * u * t * y1 + t * t * y2,
    )


def frame_time(frame: int, frames: int) -> float:
    return frame / (frames - 1)


def trail(path: list[list[float]], t: float) -> list[tuple[float, float]]:
    steps = max(2, math.ceil(TRAIL_SAMPLES * t))
    return [bezier(path, t * k / steps) for k in range(steps + 1)]


def trail_length(path: list[list[float]], t: float) -> float:
    points = trail(path, t)
    return sum(math.dist(a, b) for a, b in itertools.pairwise(points))


def grid_boxes(frames: int) -> list[tuple[int, int, int, int]]:
    """Pixel boxes of the frame cells: two columns, as many rows as needed."""
    rows = math.ceil(frames / 2)
    width, height = SIZE // 2, SIZE // rows
    return [
        (
            (k % 2) * width + 3,
            (k // 2) * height + 3,
            (k % 2 + 1) * width - 3,
            (k // 2 + 1) * height - 3,
        )
        for k in range(frames)
    ]


def _sample_path(r: float, frames: int, rng: np.random.Generator) -> list[list[float]]:
    while True:
        path = [[float(v) for v in rng.uniform(r + 0.03, 1 - r - 0.03, size=2)] for _ in range(3)]
        spots = [bezier(path, frame_time(k, frames)) for k in range(frames)]
        if all(math.dist(a, b) >= MIN_STEP for a, b in itertools.pairwise(spots)):
            return [[round(x, 4), round(y, 4)] for x, y in path]


def _kind(rng: np.random.Generator) -> tuple[str, str]:
    return list(COLORS)[int(rng.integers(len(COLORS)))], SHAPES[int(rng.integers(len(SHAPES)))]


def _check_object(obj: Any, moving: bool) -> Obj:
    checked: Obj = {
        "color": check_choice(obj["color"], COLORS, "object color"),
        "shape": check_choice(obj["shape"], SHAPES, "object shape"),
        "r": check_number(obj["r"], "object r", 0.01, 0.2),
    }
    if moving:
        path = obj["path"]
        if not isinstance(path, list) or len(path) != 3:
            raise ValueError("a mover's path must be three [x, y] control points")
        checked["path"] = [check_point(p, "path point") for p in path]
    else:
        checked["x"], checked["y"] = check_point([obj["x"], obj["y"]], "object position")
    return checked


def _lighter(color: Color) -> Color:
    r, g, b = color
    return ((r + 255) // 2, (g + 255) // 2, (b + 255) // 2)


class VideoUnshuffle(VisGymEnv):
    env_id: ClassVar[str] = "video_unshuffle"
    description: ClassVar[str] = (
        "Frames of a short video are shown shuffled in a grid; each cell is labelled with its "
        "position (0 is top-left, counting row by row). Put the frames in temporal order, "
        "earliest at position 0. Moving objects leave a growing trail behind them."
    )
    action_grammar: ClassVar[str] = (
        "('swap', i, j) exchanges the frames at positions i and j; ('reorder', [p0, p1, ...]) "
        "lists, for each new position, the current position of the frame to put there "
        "(a permutation of all positions); 'stop'"
    )
    action_examples: ClassVar[tuple[str, ...]] = (
        "('swap', 0, 2)",
        "('reorder', [2, 0, 3, 1])",
        "stop",
    )
    levels: ClassVar[dict[str, str]] = {"easy": "4 frames", "hard": "5 frames"}

    order: list[int]  # order[position] = the true index of the frame shown there
    background: JsonState | None
    movers: list[Obj]
    static: list[Obj]
    clip: list[str] | None  # dataset mode: frame files in temporal order

    # ----- state -----
    def _sample_state(self, rng: np.random.Generator) -> JsonState:
        frames = FRAMES[self.difficulty]
        order = [int(k) for k in rng.permutation(frames)]
        while order == sorted(order):
            order = [int(k) for k in rng.permutation(frames)]
        if self.dataset_path is not None:
            return {"clip": self._sample_clip(frames, rng), "order": order}
        movers = []
        for _ in range(
            int(rng.integers(MOVERS[self.difficulty][0], MOVERS[self.difficulty][1] + 1))
        ):
            color, shape = _kind(rng)
            r = round(float(rng.uniform(0.06, 0.09)), 4)
            movers.append(
                {"color": color, "shape": shape, "r": r, "path": _sample_path(r, frames, rng)}
            )
        static = []
        moving = {(o["color"], o["shape"]) for o in movers}
        for _ in range(int(rng.integers(STATIC[0], STATIC[1] + 1))):
            color, shape = _kind(rng)
            if (color, shape) in moving:
                continue  # a static twin of a mover would blur which object moves
            x, y = (round(float(v), 4) for v in rng.uniform(0.1, 0.9, size=2))
            static.append(
                {
                    "color": color,
                    "shape": shape,
                    "r": round(float(rng.uniform(0.05, 0.08)), 4),
                    "x": x,
                    "y": y,
                }
            )
        return {
            "background": sample_background(rng),
            "movers": movers,
            "static": static,
            "order": order,
        }

    def _sample_clip(self, frames: int, rng: np.random.Generator) -> list[str]:
        assert self.dataset_path is not None
        clips = []
        for folder in sorted(p for p in self.dataset_path.iterdir() if p.is_dir()):
            files = sorted(f.name for f in folder.iterdir() if f.suffix.lower() in IMAGE_SUFFIXES)
            if len(files) >= frames:
                clips.append([f"{folder.name}/{name}" for name in files])
        if not clips:
            raise ValueError(f"no clip folder in {self.dataset_path} has {frames} frames")
        files = clips[int(rng.integers(len(clips)))]
        picks = np.linspace(0, len(files) - 1, frames).round().astype(int)
        return [files[int(k)] for k in picks]

    def _load_state(self, state: JsonState) -> None:
        order = state["order"]
        if not isinstance(order, list) or sorted(order) != list(range(len(order))):
            raise ValueError("order must be a permutation of 0..k-1")
        if not 2 <= len(order) <= 6:
            raise ValueError("a clip has 2-6 frames")
        if "clip" in state:
            clip = state["clip"]
            if not isinstance(clip, list) or len(clip) != len(order):
                raise ValueError("clip must list one frame file per position")
            for name in clip:
                dataset_file(self.dataset_path, name)
            self.clip, self.background, self.movers, self.static = list(clip), None, [], []
        else:
            movers, static = state["movers"], state["static"]
            if not isinstance(movers, list) or not 1 <= len(movers) <= 5:
                raise ValueError("movers must be a list of 1-5 moving objects")
            if not isinstance(static, list) or len(static) > 10:
                raise ValueError("static must be a list of at most 10 objects")
            self.movers = [_check_object(o, moving=True) for o in movers]
            self.static = [_check_object(o, moving=False) for o in static]
            self.background, self.clip = check_background(state["background"]), None
        self.order = [int(k) for k in order]

    def _state(self) -> JsonState:
        if self.clip is not None:
            return {"clip": self.clip, "order": self.order}
        return {
            "background": self.background,
            "movers": self.movers,
            "static": self.static,
            "order": self.order,
        }

    # ----- actions -----
    def _apply(self, action: Action) -> str:
        if action.name == "swap":
            a, b = apply_swap(self.order, action)
            return f"Swapped the frames at positions {a} and {b}."
        if action.name == "reorder":
            perm = apply_reorder(self.order, action)
            return f"Reordered the frames as {perm}."
        raise ActionError(
            f"unknown action {action.name!r}; use ('swap', i, j), ('reorder', [...]) or 'stop'"
        )

    def goal_reached(self) -> bool:
        return self.order == list(range(len(self.order)))

    # ----- rendering -----
    def render_image(self) -> Image:
        picture = PILImage.new("RGB", (SIZE, SIZE), DARK)
        label_font = font(13)
        frames = len(self.order)
        for position, (x0, y0, x1, y1) in enumerate(grid_boxes(frames)):
            tile = self._frame(self.order[position], x1 - x0, y1 - y0)
            picture.paste(PILImage.fromarray(tile), (x0, y0))
            draw = ImageDraw.Draw(picture)
            draw.rectangle((x0, y0, x0 + 18, y0 + 17), fill=DARK)
            draw.text((x0 + 9, y0 + 9), str(position), fill=WHITE, font=label_font, anchor="mm")
        if frames % 2:
            x0, y0, x1, y1 = grid_boxes(frames + 1)[-1]
            draw = ImageDraw.Draw(picture)
            note = "Order the frames\nearliest first\n(position 0 = first)"
            draw.multiline_text(
                ((x0 + x1) / 2, (y0 + y1) / 2),
                note,
                fill=WHITE,
                font=font(13),
                anchor="mm",
                align="center",
            )
        return to_array(picture)

    def _frame(self, index: int, width: int, height: int) -> Image:
        if self.clip is not None:
            return load_image(dataset_file(self.dataset_path, self.clip[index]), height, width)
        assert self.background is not None
        tile = PILImage.fromarray(background_array(self.background, height, width))
        draw = ImageDraw.Draw(tile)
        scale = min(width, height)
        for obj in self.static:
            draw_shape(
                draw,
                obj["shape"],
                COLORS[obj["color"]],
                obj["x"] * width,
                obj["y"] * height,
                obj["r"] * scale,
            )
        t = frame_time(index, len(self.order))
        for obj in self.movers:
            color = COLORS[obj["color"]]
            points = [(x * width, y * height) for x, y in trail(obj["path"], t)]
            if t > 0:
                draw.line(points, fill=_lighter(color), width=4, joint="curve")
            x, y = points[-1]
            draw_shape(draw, obj["shape"], color, x, y, obj["r"] * scale)
        return to_array(tile)

    def render_text(self) -> str:
        frames = len(self.order)
        lines = [f"{frames} video frames, shown shuffled; put them in temporal order."]
        if self.clip is not None:
            lines.append("The frames are only visible in the image.")
            lines += [f"Position {p}: a frame of the clip" for p in range(frames)]
            return "\n".join(lines)
        still = ", ".join(
            f"{o['color']} {o['shape']} at ({o['x']:.2f}, {o['y']:.2f})" for o in self.static
        )
        lines.append(f"Static objects: {still or 'none'}.")
        lines.append("Each moving object leaves a trail along the path it has travelled so far.")
        for position, index in enumerate(self.order):
            t = frame_time(index, frames)
            parts = []
            for obj in self.movers:
                x, y = bezier(obj["path"], t)
                parts.append(
                    f"{obj['color']} {obj['shape']} at ({x:.2f}, {y:.2f}), "
                    f"trail length {trail_length(obj['path'], t):.2f}"
                )
            lines.append(f"Position {position}: " + "; ".join(parts))
        return "\n".join(lines)


class VideoUnshuffleSolver(Solver):
    """`reorder`: one full reordering. `sorted_swaps`: selection sort, one swap per
    misplaced frame (at most k-1 swaps)."""

    strategies: ClassVar[tuple[str, ...]] = ("reorder", "sorted_swaps")

    def plan(self, env: VisGymEnv, strategy: str) -> list[str]:
        assert isinstance(env, VideoUnshuffle)
        return reorder_plan(env.order) if strategy == "reorder" else swap_plan(env.order)

    def detour(self, env: VisGymEnv, rng: np.random.Generator) -> str:
        assert isinstance(env, VideoUnshuffle)
        return random_swap(len(env.order), rng)


ENTRY = (VideoUnshuffle, VideoUnshuffleSolver())
