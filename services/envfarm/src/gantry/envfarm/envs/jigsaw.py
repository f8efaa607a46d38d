"""jigsaw: restore a picture cut into square tiles that were shuffled.

VisGym cuts a natural photo into a 2×2 (easy) or 3×3 (hard) grid, shuffles the tiles,
and the agent swaps two tiles or gives a full reordering. Gantry draws a procedural
landscape instead of a photo, built so every tile's place can be read from the picture:
a sky whose colour changes both downwards and sideways (lighter towards the sun), rolling
hills that run continuously across tile borders, a road narrowing to a vanishing point
on the horizon, and a few large outlined shapes that straddle tile borders.

Tiles sit in the grid at positions 0..k-1 (row by row from the top left, labelled in the
image); `('swap', i, j)` also accepts (row, col) cells as in VisGym. The goal is met when
every tile is back at its own position.

Dataset mode (`dataset_path`): a directory of image files (.png/.jpg/.jpeg/.bmp/.webp);
each episode cuts the centre square of one of them.
"""

from __future__ import annotations

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
    ascii_art,
    check_color,
    check_number,
    dataset_file,
    image_files,
    load_square,
)
from gantry.envfarm.envs.render import DARK, WHITE, font, to_array
from gantry.envfarm.envs.scenes import COLORS, SHAPES, check_choice, draw_shape

SIZE = 336
GRID = {"easy": 2, "hard": 3}
GAP = 2  # dark border around each tile, so tile edges are visible
HILL_LAYERS = 2
SHAPE_COUNT = (3, 5)


def _color(rng: np.random.Generator, low: int, high: int) -> list[int]:
    return [int(v) for v in rng.integers(low, high, size=3)]


def sample_landscape(rng: np.random.Generator) -> JsonState:
    """A landscape as plain JSON data (all coordinates normalised to [0, 1])."""
    horizon = round(float(rng.uniform(0.45, 0.6)), 4)
    hills = []
    for layer in range(HILL_LAYERS):
        hills.append(
            {
                "color": _color(rng, 40, 150),
                "base": round(horizon - 0.04 * (HILL_LAYERS - layer), 4),
                "waves": [
                    [
                        round(float(rng.uniform(0.02, 0.07)), 4),
                        int(rng.integers(1, 4)),
                        round(float(rng.uniform(0, 2 * math.pi)), 4),
                    ]
                    for _ in range(2)
                ],
            }
        )
    shapes = []
    for _ in range(int(rng.integers(SHAPE_COUNT[0], SHAPE_COUNT[1] + 1))):
        shapes.append(
            {
                "shape": SHAPES[int(rng.integers(len(SHAPES)))],
                "color": list(COLORS)[int(rng.integers(len(COLORS)))],
                "x": round(float(rng.uniform(0.1, 0.9)), 4),
                "y": round(float(rng.uniform(0.15, 0.9)), 4),
                "r": round(float(rng.uniform(0.07, 0.13)), 4),
                "angle": round(float(rng.uniform(0, math.pi)), 4),
            }
        )
    return {
        "sky_top": _color(rng, 20, 120),
        "sky_bottom": _color(rng, 150, 235),
        "ground_far": _color(rng, 90, 170),
        "ground_near": _color(rng, 30, 110),
        "sun": [round(float(rng.uniform(0.12, 0.88)), 4), round(horizon * 0.35, 4)],
        "horizon": horizon,
        "road_x": round(float(rng.uniform(0.25, 0.75)), 4),
        "hills": hills,
        "shapes": shapes,
    }


def check_landscape(spec: Any) -> JsonState:
    if not isinstance(spec, dict):
        raise ValueError("picture must be an object")
    for key in ("sky_top", "sky_bottom", "ground_far", "ground_near"):
        check_color(spec[key], key)
    sun = spec["sun"]
    if not isinstance(sun, list) or len(sun) != 2:
        raise ValueError("sun must be [x, y]")
    for value in (*sun, spec["road_x"]):
        check_number(value, "sun/road position", 0.0, 1.0)
    check_number(spec["horizon"], "horizon", 0.2, 0.8)
    hills = spec["hills"]
    if not isinstance(hills, list) or len(hills) > 4:
        raise ValueError("hills must be a list of at most 4 layers")
    for hill in hills:
        check_color(hill["color"], "hill color")
        check_number(hill["base"], "hill base", 0.0, 1.0)
        if not isinstance(hill["waves"], list) or len(hill["waves"]) > 4:
            raise ValueError("hill waves must be a list of at most 4 [amplitude, cycles, phase]")
        for amplitude, cycles, phase in hill["waves"]:
            check_number(amplitude, "wave amplitude", 0.0, 0.2)
            check_number(cycles, "wave cycles", 0, 8)
            check_number(phase, "wave phase", 0.0, 7.0)
    shapes = spec["shapes"]
    if not isinstance(shapes, list) or len(shapes) > 10:
        raise ValueError("shapes must be a list of at most 10 shapes")
    for shape in shapes:
        check_choice(shape["shape"], SHAPES, "shape")
        check_choice(shape["color"], tuple(COLORS), "shape color")
        for key in ("x", "y"):
            check_number(shape[key], f"shape {key}", 0.0, 1.0)
        check_number(shape["r"], "shape r", 0.01, 0.3)
        check_number(shape["angle"], "shape angle", 0.0, 7.0)
    return spec


def render_landscape(spec: JsonState) -> Image:
    return _render_landscape(json.dumps(spec, sort_keys=True)).copy()


@lru_cache(maxsize=16)
def _render_landscape(key: str) -> Image:
    spec = json.loads(key)
    ys = np.linspace(0.0, 1.0, SIZE, dtype=np.float32)[:, None, None]
    xs = np.linspace(0.0, 1.0, SIZE, dtype=np.float32)[None, :, None]
    horizon, (sun_x, sun_y) = spec["horizon"], spec["sun"]
    # Sky: top-to-horizon gradient, brightened near the sun's side (a sideways cue).
    mix = np.clip(ys / horizon, 0, 1)
    sky = (1 - mix) * np.float32(spec["sky_top"]) + mix * np.float32(spec["sky_bottom"])
    sky = sky + 70.0 * np.exp(-((xs - sun_x) ** 2) / 0.08)
    ground_mix = np.clip((ys - horizon) / (1 - horizon), 0, 1)
    ground = (1 - ground_mix) * np.float32(spec["ground_far"]) + ground_mix * np.float32(
        spec["ground_near"]
    )
    ground = ground + 10.0 * np.sin(xs * 40 + ys * 13)  # field furrows: texture, not flat
    pixels = np.where(ys < horizon, sky, ground)
    image = PILImage.fromarray(np.clip(pixels, 0, 255).astype(np.uint8))
    draw = ImageDraw.Draw(image)
    draw.ellipse(_box(sun_x, sun_y, 0.07), fill=(255, 236, 150), outline=(250, 200, 90), width=3)
    for hill in spec["hills"]:
        draw.polygon(_hill_outline(hill), fill=tuple(hill["color"]))
    # The road runs from its vanishing point to the opposite side of the bottom edge, so
    # its slant tells left from right in the lower tiles.
    top, bottom = spec["road_x"] * SIZE, (1 - spec["road_x"]) * SIZE
    y_top = horizon * SIZE
    draw.polygon(
        [
            (top - 2, y_top),
            (top + 2, y_top),
            (bottom + 0.14 * SIZE, SIZE),
            (bottom - 0.14 * SIZE, SIZE),
        ],
        fill=(88, 84, 80),
    )
    draw.line([(top, y_top), (bottom, SIZE)], fill=(240, 220, 90), width=3)
    for shape in spec["shapes"]:
        draw_shape(
            draw,
            shape["shape"],
            COLORS[shape["color"]],
            shape["x"] * SIZE,
            shape["y"] * SIZE,
            shape["r"] * SIZE,
            shape["angle"],
        )
    return to_array(image)


def _box(x: float, y: float, r: float) -> tuple[float, float, float, float]:
    return (x - r) * SIZE, (y - r) * SIZE, (x + r) * SIZE, (y + r) * SIZE


def _hill_outline(hill: JsonState) -> list[tuple[float, float]]:
    points = []
    for step in range(0, SIZE + 1, 6):
        t = step / SIZE
        lift = sum(a * math.sin(2 * math.pi * k * t + p) for a, k, p in hill["waves"])
        points.append((float(step), (hill["base"] - abs(lift)) * SIZE))
    return [*points, (SIZE, hill["base"] * SIZE + 14), (0, hill["base"] * SIZE + 14)]


def tile_box(position: int, side: int) -> tuple[int, int, int, int]:
    """Pixel box (x0, y0, x1, y1) of grid position `position` on the SIZE×SIZE picture."""
    r, c = divmod(position, side)
    step = SIZE // side
    return c * step, r * step, (c + 1) * step, (r + 1) * step


class Jigsaw(VisGymEnv):
    env_id: ClassVar[str] = "jigsaw"
    description: ClassVar[str] = (
        "A picture was cut into square tiles and the tiles were shuffled. Each grid cell is "
        "labelled with its position (0 is top-left, counting row by row). Move the tiles "
        "back so the picture is whole again."
    )
    action_grammar: ClassVar[str] = (
        "('swap', i, j) exchanges the tiles at positions i and j (a position may also be "
        "given as (row, col)); ('reorder', [p0, p1, ...]) lists, for each position in "
        "order, the current position of the tile to put there (a permutation); 'stop'"
    )
    action_examples: ClassVar[tuple[str, ...]] = (
        "('swap', 0, 3)",
        "('swap', (0, 0), (1, 1))",
        "('reorder', [2, 0, 3, 1])",
        "stop",
    )
    levels: ClassVar[dict[str, str]] = {"easy": "2x2 tiles", "hard": "3x3 tiles"}

    order: list[int]  # order[position] = the tile (its home position) shown there
    picture: JsonState | None
    image_name: str | None

    def _sample_state(self, rng: np.random.Generator) -> JsonState:
        order = shuffled(GRID[self.difficulty] ** 2, rng)
        if self.dataset_path is not None:
            names = image_files(self.dataset_path)
            return {"image": names[int(rng.integers(len(names)))], "order": order}
        return {"picture": sample_landscape(rng), "order": order}

    def _load_state(self, state: JsonState) -> None:
        order = check_order(state["order"], 4, 9)
        if math.isqrt(len(order)) ** 2 != len(order):
            raise ValueError("order must cover a square grid (4 or 9 tiles)")
        if "image" in state:
            dataset_file(self.dataset_path, state["image"])
            self.image_name, self.picture = str(state["image"]), None
        else:
            self.picture, self.image_name = check_landscape(state["picture"]), None
        self.order = order

    def _state(self) -> JsonState:
        if self.image_name is not None:
            return {"image": self.image_name, "order": self.order}
        return {"picture": self.picture, "order": self.order}

    @property
    def side(self) -> int:
        return math.isqrt(len(self.order))

    def _apply(self, action: Action) -> str:
        if action.name == "swap":
            a, b = apply_swap(self.order, action, cols=self.side)
            return f"Swapped the tiles at positions {a} and {b}."
        if action.name == "reorder":
            perm = apply_reorder(self.order, action)
            return f"Reordered the tiles as {perm}."
        raise ActionError(
            f"unknown action {action.name!r}; use ('swap', i, j), ('reorder', [...]) or 'stop'"
        )

    def goal_reached(self) -> bool:
        return self.order == list(range(len(self.order)))

    def _picture(self) -> Image:
        if self.image_name is not None:
            return load_square(dataset_file(self.dataset_path, self.image_name), SIZE)
        assert self.picture is not None
        return render_landscape(self.picture)

    def render_image(self) -> Image:
        source = self._picture()
        out = np.empty_like(source)
        out[:] = DARK
        side = self.side
        for pos, tile in enumerate(self.order):
            x0, y0, x1, y1 = tile_box(pos, side)
            sx0, sy0, sx1, sy1 = tile_box(tile, side)
            out[y0 + GAP : y1 - GAP, x0 + GAP : x1 - GAP] = source[
                sy0 + GAP : sy1 - GAP, sx0 + GAP : sx1 - GAP
            ]
        image = PILImage.fromarray(out)
        draw = ImageDraw.Draw(image)
        label = font(14)
        for pos in range(len(self.order)):
            x0, y0, _, _ = tile_box(pos, side)
            draw.rectangle((x0 + GAP, y0 + GAP, x0 + GAP + 18, y0 + GAP + 18), fill=DARK)
            draw.text((x0 + GAP + 9, y0 + GAP + 9), str(pos), fill=WHITE, font=label, anchor="mm")
        return to_array(image)

    def render_text(self) -> str:
        side = self.side
        source = self._picture()
        cols, rows = (16, 8) if side == 2 else (12, 6)
        lines = [
            f"A picture cut into a {side}x{side} grid of shuffled tiles; positions count row "
            "by row from the top left. Each tile is shown as brightness art "
            "(' ' darkest ... '@' brightest)."
        ]
        for pos, tile in enumerate(self.order):
            x0, y0, x1, y1 = tile_box(tile, side)
            lines.append(f"Position {pos}:")
            lines.append(ascii_art(source[y0:y1, x0:x1], cols, rows))
        return "\n".join(lines)


class JigsawSolver(Solver):
    """`reorder`: one full reordering. `sorted_swaps`: selection sort, one swap per
    misplaced tile (at most k-1 swaps)."""

    strategies: ClassVar[tuple[str, ...]] = ("reorder", "sorted_swaps")

    def plan(self, env: VisGymEnv, strategy: str) -> list[str]:
        assert isinstance(env, Jigsaw)
        return reorder_plan(env.order) if strategy == "reorder" else swap_plan(env.order)

    def detour(self, env: VisGymEnv, rng: np.random.Generator) -> str:
        assert isinstance(env, Jigsaw)
        return random_swap(len(env.order), rng)


ENTRY = (Jigsaw, JigsawSolver())
