"""Small drawing helpers shared by the environments (PIL, no display needed)."""

from __future__ import annotations

import numpy as np
from PIL import Image as PILImage
from PIL import ImageDraw, ImageFont

from gantry.envfarm.envs.base import IMAGE_LONG_SIDE, Image

Color = tuple[int, int, int]
WHITE: Color = (255, 255, 255)
BLACK: Color = (0, 0, 0)
GRAY: Color = (128, 128, 128)
DARK: Color = (40, 44, 52)
LIGHT: Color = (236, 236, 228)
RED: Color = (220, 50, 47)
GREEN: Color = (64, 160, 43)
BLUE: Color = (38, 110, 220)
YELLOW: Color = (240, 190, 40)
PALETTE: tuple[Color, ...] = (
    RED,
    GREEN,
    BLUE,
    YELLOW,
    (155, 89, 182),
    (230, 126, 34),
    (26, 188, 156),
    (236, 64, 122),
    (121, 85, 72),
    (0, 150, 136),
    (63, 81, 181),
    (205, 220, 57),
)


def canvas(
    height: int = IMAGE_LONG_SIDE, width: int = IMAGE_LONG_SIDE, background: Color = WHITE
) -> tuple[PILImage.Image, ImageDraw.ImageDraw]:
    image = PILImage.new("RGB", (width, height), background)
    return image, ImageDraw.Draw(image)


def font(size: int = 14) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    return ImageFont.load_default(size=size)


def to_array(image: PILImage.Image) -> Image:
    return np.asarray(image, dtype=np.uint8).copy()


def grid_cell(
    size: int, cells: int, row: int, col: int, margin: int = 8
) -> tuple[int, int, int, int]:
    """Pixel box (x0, y0, x1, y1) of a cell in a `cells`×`cells` grid drawn on `size` px."""
    step = (size - 2 * margin) / cells
    x0, y0 = margin + col * step, margin + row * step
    return int(x0), int(y0), int(x0 + step), int(y0 + step)
