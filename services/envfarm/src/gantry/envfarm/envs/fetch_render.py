"""Drawing the Fetch scenes: a fixed perspective camera over the table, flat-shaded boxes.

A small software renderer (numpy + PIL), so the image needs no GL: the camera looks at
the table from the front and above; boxes (table, gripper parts, block) are drawn face by
face, back faces culled, far to near (the painter's algorithm); soft shadows straight
below the gripper, block and target show heights; the target is a translucent red ball
drawn last so it is never hidden. The table carries a 5 cm grid, with 10 cm lines
labelled in centimetres along the front (x) and left (y) edges.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray
from PIL import Image as PILImage
from PIL import ImageDraw

from gantry.envfarm.envs.base import IMAGE_LONG_SIDE, Image
from gantry.envfarm.envs.fetch_sim import (
    BLOCK_HALF,
    FINGER_HALF,
    FINGER_OPEN_X,
    FINGER_Z,
    PALM_HALF,
    PALM_Z,
    TABLE_HALF,
    FetchSim,
    Vector,
    quat_matrix,
)
from gantry.envfarm.envs.render import DARK, Color, font

SIZE = IMAGE_LONG_SIDE
EYE = np.array([0.0, -0.92, 0.68])
LOOK_AT = np.array([0.0, 0.02, 0.08])
FOCAL = 390.0  # pixels
LIGHT = np.array([-0.35, -0.45, 0.82]) / np.linalg.norm([-0.35, -0.45, 0.82])
TARGET_RADIUS = 0.02
TABLE_TOP: Color = (214, 190, 150)
TABLE_SIDE: Color = (150, 118, 84)
GRID_MINOR: Color = (196, 170, 130)
GRID_MAJOR: Color = (160, 130, 96)
METAL: Color = (150, 156, 168)
ARM: Color = (210, 212, 216)
BLOCK: Color = (40, 110, 220)
TARGET = np.array([230, 40, 40], np.float64)

Points = NDArray[np.float64]


@dataclass(frozen=True)
class Box:
    centre: Vector
    rotation: Vector  # 3x3, box frame to world
    half: tuple[float, float, float]
    color: Color


def _camera_axes() -> Points:
    forward = LOOK_AT - EYE
    forward /= np.linalg.norm(forward)
    right = np.cross(forward, [0.0, 0.0, 1.0])
    right /= np.linalg.norm(right)
    up = np.cross(right, forward)
    axes: Points = np.stack([right, up, forward])
    return axes


AXES = _camera_axes()


def project(points: Points) -> tuple[Points, Points]:
    """Pixel coordinates (n×2) and depths (n) of world points (n×3)."""
    camera = (np.atleast_2d(points) - EYE) @ AXES.T
    depth = camera[:, 2]
    pixels = np.stack(
        [SIZE / 2 + FOCAL * camera[:, 0] / depth, SIZE / 2 - FOCAL * camera[:, 1] / depth], axis=1
    )
    return pixels, depth


# The six faces of a unit box as corner sign patterns, with their outward normals.
_FACES = [
    (axis, sign)
    for axis in range(3)
    for sign in (-1.0, 1.0)  # each face: all corners with coordinate `axis` = sign
]


def _box_faces(box: Box) -> list[tuple[float, list[tuple[float, float]], Color]]:
    """(distance, polygon, shaded colour) of each face that looks at the camera."""
    half = np.array(box.half)
    faces = []
    for axis, sign in _FACES:
        u, v = [a for a in range(3) if a != axis]
        corners = []
        for su, sv in ((-1, -1), (1, -1), (1, 1), (-1, 1)):
            local = np.zeros(3)
            local[axis], local[u], local[v] = sign * half[axis], su * half[u], sv * half[v]
            corners.append(box.centre + box.rotation @ local)
        normal = box.rotation[:, axis] * sign
        centre = np.mean(corners, axis=0)
        if float(normal @ (EYE - centre)) <= 0:
            continue
        shade = 0.5 + 0.5 * max(0.0, float(normal @ LIGHT))
        color = tuple(int(c * shade) for c in box.color)
        pixels, _ = project(np.array(corners))
        polygon = [(float(x), float(y)) for x, y in pixels]
        faces.append((float(np.linalg.norm(centre - EYE)), polygon, (color[0], color[1], color[2])))
    return faces


def gripper_boxes(sim: FetchSim) -> list[Box]:
    """Palm, fingers and the forearm above them, posed like the simulated hand."""
    grip, rotation = sim.grip(), sim.hand_matrix()
    left, right = sim.finger_travel()
    arm_half = (0.03, 0.022, 0.3)
    parts = [
        ((0.0, 0.0, PALM_Z), PALM_HALF, METAL),
        ((-FINGER_OPEN_X + left, 0.0, FINGER_Z), FINGER_HALF, METAL),
        ((FINGER_OPEN_X - right, 0.0, FINGER_Z), FINGER_HALF, METAL),
        ((0.0, 0.0, PALM_Z + PALM_HALF[2] + arm_half[2]), arm_half, ARM),
    ]
    return [
        Box(grip + rotation @ np.array(offset), rotation, half, color)
        for offset, half, color in parts
    ]


def _ground_disc(centre: Vector, radius: float, sides: int = 20) -> list[tuple[float, float]]:
    angles = np.linspace(0, 2 * math.pi, sides, endpoint=False)
    ring = np.stack(
        [centre[0] + radius * np.cos(angles), centre[1] + radius * np.sin(angles), np.zeros(sides)],
        axis=1,
    )
    pixels, _ = project(ring)
    return [(float(x), float(y)) for x, y in pixels]


def _table(draw: ImageDraw.ImageDraw) -> None:
    tx, ty, tz = TABLE_HALF
    table = Box(np.array([0.0, 0.0, -tz]), np.eye(3), (tx, ty, tz), TABLE_SIDE)
    for _, polygon, color in sorted(_box_faces(table), reverse=True):
        draw.polygon(polygon, fill=color)
    top, _ = project(np.array([[-tx, -ty, 0], [tx, -ty, 0], [tx, ty, 0], [-tx, ty, 0]]))
    draw.polygon([(float(x), float(y)) for x, y in top], fill=TABLE_TOP)
    labels = font(10)
    for k in range(-6, 7):  # x lines every 5 cm
        x = k * 0.05
        if abs(x) > tx:
            continue
        (a, b), _ = project(np.array([[x, -ty, 0], [x, ty, 0]]))
        draw.line((*a, *b), fill=GRID_MAJOR if k % 2 == 0 else GRID_MINOR, width=1)
        if k % 2 == 0:
            draw.text((a[0], a[1] + 3), f"{round(x * 100)}", fill=DARK, font=labels, anchor="mt")
    for k in range(-6, 7):  # y lines every 5 cm
        y = k * 0.05
        if abs(y) > ty:
            continue
        (a, b), _ = project(np.array([[-tx, y, 0], [tx, y, 0]]))
        draw.line((*a, *b), fill=GRID_MAJOR if k % 2 == 0 else GRID_MINOR, width=1)
        if k % 2 == 0:
            draw.text((a[0] - 4, a[1]), f"{round(y * 100)}", fill=DARK, font=labels, anchor="rm")


def _background() -> Image:
    t = np.linspace(0, 1, SIZE)[:, None, None]
    rgb = (1 - t) * np.array([228, 232, 238]) + t * np.array([168, 174, 186])
    image: Image = np.broadcast_to(rgb, (SIZE, SIZE, 3)).astype(np.uint8)
    return image


BACKGROUND = _background()


def render_scene(sim: FetchSim, target: Vector) -> Image:
    image = PILImage.fromarray(BACKGROUND.copy())
    draw = ImageDraw.Draw(image)
    _table(draw)
    # Shadows straight down: they tell how high the gripper, block and target are.
    shadow = PILImage.new("L", (SIZE, SIZE), 0)
    shade = ImageDraw.Draw(shadow)
    shade.polygon(_ground_disc(sim.grip(), 0.045), fill=90)
    shade.polygon(_ground_disc(target, TARGET_RADIUS), fill=60)
    boxes = gripper_boxes(sim)
    if sim.with_block:
        pose = sim.block()
        shade.polygon(_ground_disc(pose.position, BLOCK_HALF * 1.3), fill=90)
        boxes.append(Box(pose.position, quat_matrix(pose.quat), (BLOCK_HALF,) * 3, BLOCK))
    pixels = np.asarray(image, dtype=np.float64)
    pixels *= 1 - np.asarray(shadow, dtype=np.float64)[..., None] / 255
    image = PILImage.fromarray(pixels.astype(np.uint8))
    draw = ImageDraw.Draw(image)
    # Target marker on the table under the ball: a cross, so its footprint is exact.
    ((cx, cy),), _ = project(np.array([[target[0], target[1], 0.0]]))
    draw.line((cx - 5, cy, cx + 5, cy), fill=(150, 30, 30), width=2)
    draw.line((cx, cy - 4, cx, cy + 4), fill=(150, 30, 30), width=2)
    # A dotted plumb line joins the ball to its mark, so its height can be read.
    heights = np.arange(0.0, float(target[2]), 0.01)
    dots, _ = project(
        np.stack(
            [np.full_like(heights, target[0]), np.full_like(heights, target[1]), heights], axis=1
        )
    )
    for x, y in dots[1::2]:
        draw.ellipse((x - 1, y - 1, x + 1, y + 1), fill=(170, 60, 60))
    faces = [face for box in boxes for face in _box_faces(box)]
    for _, polygon, color in sorted(faces, key=lambda face: -face[0]):
        draw.polygon(polygon, fill=color, outline=tuple(int(c * 0.7) for c in color))
    result = np.asarray(image, dtype=np.uint8).copy()
    _ball(result, target)
    return result


def _ball(image: Image, centre: Vector) -> None:
    """A translucent, shaded red ball, blended over whatever is behind it."""
    ((sx, sy),), (depth,) = project(centre[None, :])
    radius = FOCAL * TARGET_RADIUS / float(depth)
    x0, x1 = max(0, int(sx - radius) - 1), min(SIZE, int(sx + radius) + 2)
    y0, y1 = max(0, int(sy - radius) - 1), min(SIZE, int(sy + radius) + 2)
    if x0 >= x1 or y0 >= y1:
        return
    nx = (np.arange(x0, x1) + 0.5 - sx)[None, :] / radius
    ny = (np.arange(y0, y1)[:, None] + 0.5 - sy) / radius
    inside = nx**2 + ny**2 <= 1
    nz = np.sqrt(np.clip(1 - nx**2 - ny**2, 0, 1))
    light = np.clip(-0.4 * nx - 0.5 * ny + 0.75 * nz, 0, 1)
    color = TARGET * (0.45 + 0.55 * light[..., None])
    patch = image[y0:y1, x0:x1].astype(np.float64)
    blended = 0.3 * patch + 0.7 * color
    patch[inside] = blended[inside]
    image[y0:y1, x0:x1] = np.clip(patch, 0, 255).astype(np.uint8)
