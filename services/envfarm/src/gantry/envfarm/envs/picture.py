"""Picture helpers for the image-manipulation environments (2D rotation, colorization).

Both environments show a picture and change it (rotate it, shift its colours); in
dataset mode the picture is a file from a directory of images. This module lists and
loads such files safely, validates small JSON pieces of procedural pictures, and turns
an image into coarse ASCII art for the text renderings of dataset pictures.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image as PILImage

from gantry.envfarm.envs.base import Image
from gantry.envfarm.envs.render import Color

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".webp")
# Dark to light; one character per luminance band in the ASCII art.
ASCII_RAMP = " .:-=+*#%@"


def image_files(root: Path) -> list[str]:
    """Image file names directly inside `root`, sorted (the dataset-mode layout)."""
    if not root.is_dir():
        raise ValueError(f"dataset_path {root} is not a directory")
    names = sorted(
        p.name for p in root.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES
    )
    if not names:
        raise ValueError(f"dataset_path {root} holds no {'/'.join(IMAGE_SUFFIXES)} images")
    return names


def dataset_file(root: Path | None, name: Any, what: str = "image") -> Path:
    """`root/name`, refusing names that escape `root` (a loaded state is untrusted): a
    plain file name, not hidden, whose real path (symlinks resolved) is inside `root`."""
    if root is None:
        raise ValueError(f"this state names a dataset {what} but no dataset_path is set")
    if (
        not isinstance(name, str)
        or not name
        or len(name.encode("utf-8", "surrogatepass")) > 255
        or any(c in name for c in "/\\\x00")
        or name.startswith(".")
    ):
        raise ValueError(f"{what} must be a plain file name inside dataset_path")
    path = root / name
    try:
        real, base = path.resolve(), root.resolve()
        found = base in real.parents and real.is_file()
    except OSError as exc:
        raise ValueError(f"{what} {name[:64]!r} cannot be read ({exc.strerror})") from exc
    if not found:
        raise ValueError(f"{what} {name[:64]!r} is not a file in dataset_path")
    return path


def load_square(path: Path, size: int) -> Image:
    """The centre square of the image, resized to size×size."""
    return _load(str(path), path.stat().st_mtime_ns, size, size).copy()


def load_fitted(path: Path, height: int, width: int) -> Image:
    """The image centre-cropped to the aspect of height×width and resized to it."""
    return _load(str(path), path.stat().st_mtime_ns, height, width).copy()


@lru_cache(maxsize=32)
def _load(path: str, _mtime: int, height: int, width: int) -> Image:
    with PILImage.open(path) as image:
        rgb = image.convert("RGB")
    w, h = rgb.size
    scale = min(w / width, h / height)
    crop_w, crop_h = width * scale, height * scale
    left, top = (w - crop_w) / 2, (h - crop_h) / 2
    box = (int(left), int(top), int(left + crop_w), int(top + crop_h))
    resized = rgb.crop(box).resize((width, height), PILImage.Resampling.BILINEAR)
    return np.asarray(resized, dtype=np.uint8)


def gradient(height: int, width: int, top: Color, bottom: Color) -> Image:
    """A vertical two-colour gradient with a faint diagonal ripple (never a flat field)."""
    ys = np.linspace(0.0, 1.0, height, dtype=np.float32)[:, None, None]
    xs = np.linspace(0.0, 1.0, width, dtype=np.float32)[None, :, None]
    base = (1 - ys) * np.asarray(top, np.float32) + ys * np.asarray(bottom, np.float32)
    ripple = 6.0 * np.sin((xs + ys) * 9 * np.pi)
    pixels: Image = np.clip(base + ripple, 0, 255).astype(np.uint8)
    return pixels


def ascii_art(image: Image, cols: int, rows: int) -> str:
    """Coarse luminance art: the text-mode stand-in for a dataset picture."""
    small = PILImage.fromarray(image).convert("L").resize((cols, rows), PILImage.Resampling.BOX)
    levels = np.asarray(small, dtype=np.int32) * len(ASCII_RAMP) // 256
    return "\n".join("".join(ASCII_RAMP[v] for v in row) for row in levels)


def check_color(value: Any, what: str) -> Color:
    if not (isinstance(value, list) and len(value) == 3):
        raise ValueError(f"{what} must be [r, g, b]")
    if not all(isinstance(v, int) and not isinstance(v, bool) and 0 <= v <= 255 for v in value):
        raise ValueError(f"{what} channels must be integers 0-255")
    return int(value[0]), int(value[1]), int(value[2])


def check_number(value: Any, what: str, low: float, high: float) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not low <= value <= high:
        raise ValueError(f"{what} must be a number in [{low}, {high}]")
    return float(value)


def check_choice(value: Any, options: tuple[str, ...], what: str) -> str:
    if not isinstance(value, str) or value not in options:
        raise ValueError(f"{what} must be one of {', '.join(options)}")
    return value
