"""Procedural scene pieces and dataset-image loading shared by the image-based environments.

The real-image VisGym tasks (counting on LVIS, pointing on RefCOCO, unshuffling
Something-Something clips) are replaced by procedural scenes: coloured shapes with dark
outlines on a textured gradient background. Everything a scene needs is plain JSON data,
so the states stay serialisable. Environments that accept a `dataset_path` read images
and an `annotations.json` file through the helpers at the end.
"""

from __future__ import annotations

import json
import math
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image as PILImage
from PIL import ImageDraw

from gantry.envfarm.envs.base import Image, JsonState
from gantry.envfarm.envs.render import BLUE, GREEN, RED, YELLOW, Color

SHAPES: tuple[str, ...] = ("circle", "square", "triangle", "diamond", "hexagon", "star")
COLORS: dict[str, Color] = {
    "red": RED,
    "green": GREEN,
    "blue": BLUE,
    "yellow": YELLOW,
    "purple": (155, 89, 182),
    "orange": (230, 126, 34),
}
OUTLINE: Color = (30, 30, 36)
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".webp")


# ----- backgrounds -----
def sample_background(rng: np.random.Generator) -> JsonState:
    """Two pale gradient colours plus a soft stripe texture, so scenes are not flat."""
    top = [int(v) for v in rng.integers(196, 250, size=3)]
    bottom = [int(v) for v in rng.integers(196, 250, size=3)]
    return {
        "top": top,
        "bottom": bottom,
        "angle": round(float(rng.uniform(0, math.pi)), 4),
        "frequency": round(float(rng.uniform(6, 18)), 4),
    }


def check_background(spec: Any) -> JsonState:
    if not isinstance(spec, dict):
        raise ValueError("background must be an object")
    for key in ("top", "bottom"):
        color = spec[key]
        if not (isinstance(color, list) and len(color) == 3):
            raise ValueError(f"background {key} must be [r, g, b]")
        if not all(isinstance(v, int) and 0 <= v <= 255 for v in color):
            raise ValueError(f"background {key} channels must be integers 0-255")
    for key in ("angle", "frequency"):
        if not isinstance(spec[key], (int, float)) or not 0 <= spec[key] <= 100:
            raise ValueError(f"background {key} must be a number in [0, 100]")
    return {key: spec[key] for key in ("top", "bottom", "angle", "frequency")}


def background_array(spec: JsonState, height: int, width: int) -> Image:
    return _background(
        tuple(spec["top"]),
        tuple(spec["bottom"]),
        float(spec["angle"]),
        float(spec["frequency"]),
        height,
        width,
    ).copy()


@lru_cache(maxsize=64)
def _background(
    top: tuple[int, ...],
    bottom: tuple[int, ...],
    angle: float,
    frequency: float,
    height: int,
    width: int,
) -> Image:
    ys = np.linspace(0.0, 1.0, height, dtype=np.float32)[:, None]
    xs = np.linspace(0.0, 1.0, width, dtype=np.float32)[None, :]
    mix = (0.7 * ys + 0.3 * xs)[..., None]
    base = (1 - mix) * np.asarray(top, np.float32) + mix * np.asarray(bottom, np.float32)
    phase = (xs * math.cos(angle) + ys * math.sin(angle)) * frequency * 2 * math.pi
    texture = 9.0 * np.sin(phase)[..., None]
    pixels: Image = np.clip(base + texture, 0, 255).astype(np.uint8)
    return pixels


# ----- shapes -----
def shape_polygon(
    shape: str, cx: float, cy: float, radius: float, angle: float
) -> list[tuple[float, float]]:
    """Vertices of `shape` inscribed in a circle of `radius` px around (cx, cy)."""
    if shape == "star":
        radii = [radius if k % 2 == 0 else radius * 0.45 for k in range(10)]
        corners = 10
    else:
        corners = {"square": 4, "triangle": 3, "diamond": 4, "hexagon": 6}[shape]
        radii = [radius] * corners
    offset = {"square": math.pi / 4, "diamond": 0.0}.get(shape, -math.pi / 2)
    points = []
    for k in range(corners):
        theta = offset + angle + 2 * math.pi * k / corners
        scale = 0.62 if shape == "diamond" and k % 2 == 1 else 1.0  # a diamond is narrow
        points.append((cx + radii[k] * scale * math.cos(theta), cy + radii[k] * math.sin(theta)))
    return points


def draw_shape(
    draw: ImageDraw.ImageDraw,
    shape: str,
    color: Color,
    cx: float,
    cy: float,
    radius: float,
    angle: float = 0.0,
) -> None:
    width = 2 if radius >= 10 else 1
    if shape == "circle":
        box = (cx - radius, cy - radius, cx + radius, cy + radius)
        draw.ellipse(box, fill=color, outline=OUTLINE, width=width)
    else:
        draw.polygon(shape_polygon(shape, cx, cy, radius, angle), fill=color, outline=OUTLINE)
        if width > 1:
            points = shape_polygon(shape, cx, cy, radius, angle)
            draw.line([*points, points[0]], fill=OUTLINE, width=width, joint="curve")


def check_choice(value: Any, options: tuple[str, ...] | dict[str, Color], what: str) -> str:
    if not isinstance(value, str) or value not in options:
        raise ValueError(f"{what} must be one of {sorted(options)}")
    return value


def check_number(value: Any, what: str, low: float, high: float) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not low <= value <= high:
        raise ValueError(f"{what} must be a number in [{low}, {high}]")
    return float(value)


def check_unit(value: Any, what: str) -> float:
    return check_number(value, what, 0.0, 1.0)


def check_point(value: Any, what: str) -> list[float]:
    if not isinstance(value, list) or len(value) != 2:
        raise ValueError(f"{what} must be [x, y]")
    return [check_unit(value[0], f"{what} x"), check_unit(value[1], f"{what} y")]


# ----- dataset images -----
def load_annotations(root: Path) -> list[dict[str, Any]]:
    """`root/annotations.json`: a JSON list of objects (one per image/question)."""
    path = root / "annotations.json"
    try:
        entries = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise ValueError(f"cannot read {path}: {exc}") from exc
    if not isinstance(entries, list) or not entries:
        raise ValueError(f"{path} must hold a non-empty JSON list")
    return entries


def dataset_file(root: Path | None, relative: Any) -> Path:
    """A file inside `root`; refuses absolute paths and `..` escapes from a loaded state."""
    if root is None:
        raise ValueError("this state refers to a dataset image but no dataset_path is set")
    if not isinstance(relative, str) or not relative:
        raise ValueError("image must be a relative file name")
    path = (root / relative).resolve()
    if not path.is_relative_to(root.resolve()) or not path.is_file():
        raise ValueError(f"image {relative!r} is not a file inside the dataset")
    return path


def load_image(path: Path, height: int, width: int) -> Image:
    """The image resized (stretched) to height×width, so [0,1]² coordinates are unchanged."""
    return _load_image(str(path), path.stat().st_mtime_ns, height, width).copy()


@lru_cache(maxsize=32)
def _load_image(path: str, _mtime: int, height: int, width: int) -> Image:
    with PILImage.open(path) as image:
        resized = image.convert("RGB").resize((width, height), PILImage.Resampling.BILINEAR)
    return np.asarray(resized, dtype=np.uint8)
