"""3D pieces shared by the 3D mental-rotation environments: rotations, meshes, rendering.

Conventions (the same in both environments and their prompts): the viewer's axes are
x to the right, y up and z toward the viewer. `('rotate', [a, b, c])` turns the object
by a degrees about x, then b about y, then c about z, all about the fixed viewer axes
and right-handed (positive = counterclockwise when the axis points at you), i.e. the
object's orientation R becomes Rz(c) Ry(b) Rx(a) R. The distance between two
orientations is the geodesic angle of the rotation taking one to the other.

Rendering is a small software renderer: a mild perspective projection, flat shading
from one light, and the painter's algorithm (faces drawn far to near, back faces culled
for closed convex-part meshes). Rotations live in the state as 3×3 nested lists.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray
from PIL import ImageDraw

from gantry.envfarm.envs.actions import Action, ActionError, expect_args, expect_float
from gantry.envfarm.envs.render import DARK, Color, font

Matrix = NDArray[np.float64]
LIGHT_DIRECTION = np.array([-0.35, 0.55, 0.75]) / math.sqrt(0.35**2 + 0.55**2 + 0.75**2)
CAMERA_DISTANCE = 5.0  # in object radii; larger is closer to orthographic
PANEL = 168  # each view is a PANEL×PANEL square below a LABEL-high caption
LABEL = 22


# ----- rotations -----
def axis_rotation(axis: int, degrees: float) -> Matrix:
    t = math.radians(degrees)
    c, s = math.cos(t), math.sin(t)
    i, j = [(1, 2), (2, 0), (0, 1)][axis]
    matrix = np.eye(3)
    matrix[i, i], matrix[i, j], matrix[j, i], matrix[j, j] = c, -s, s, c
    return matrix


def euler_matrix(a: float, b: float, c: float) -> Matrix:
    """Rz(c) Ry(b) Rx(a): turn about x, then y, then z (fixed viewer axes)."""
    return axis_rotation(2, c) @ axis_rotation(1, b) @ axis_rotation(0, a)


def euler_angles(matrix: Matrix) -> tuple[float, float, float]:
    """(a, b, c) in degrees with euler_matrix(a, b, c) == matrix; b in [-90, 90]."""
    sin_b = -float(np.clip(matrix[2, 0], -1.0, 1.0))
    b = math.asin(sin_b)
    if abs(sin_b) < 1 - 1e-9:
        a = math.atan2(matrix[2, 1], matrix[2, 2])
        c = math.atan2(matrix[1, 0], matrix[0, 0])
    else:  # gimbal lock: only a - c (or a + c) is determined; put it all in a
        c = 0.0
        a = math.atan2(-matrix[1, 2], matrix[1, 1])
    return math.degrees(a), math.degrees(b), math.degrees(c)


def angle_between(first: Matrix, second: Matrix) -> float:
    """Geodesic distance in degrees between two orientations."""
    cosine = (float(np.trace(first.T @ second)) - 1.0) / 2.0
    return math.degrees(math.acos(max(-1.0, min(1.0, cosine))))


def random_rotation(rng: np.random.Generator) -> Matrix:
    """Uniformly distributed (a random unit quaternion)."""
    w, x, y, z = (float(v) for v in rng.normal(size=4))
    norm = math.sqrt(w * w + x * x + y * y + z * z)
    w, x, y, z = w / norm, x / norm, y / norm, z / norm
    return np.array(
        [
            [1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y)],
            [2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x)],
            [2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y)],
        ]
    )


def cube_rotations() -> list[Matrix]:
    """The 24 rotations that map the axis-aligned cube onto itself."""
    found = []
    for perm in itertools.permutations(range(3)):
        for signs in itertools.product((1, -1), repeat=3):
            matrix = np.zeros((3, 3))
            for row, (col, sign) in enumerate(zip(perm, signs, strict=True)):
                matrix[row, col] = sign
            if np.linalg.det(matrix) > 0:
                found.append(matrix)
    return found


def view_rotation(rng: np.random.Generator) -> Matrix:
    """A pleasant three-quarter view: a random cube-aligned pose, yawed, then tilted."""
    base = cube_rotations()[int(rng.integers(24))]
    yaw = float(rng.uniform(20, 70)) + 90 * int(rng.integers(4))
    tilt = float(rng.uniform(20, 40))
    return axis_rotation(0, tilt) @ axis_rotation(1, yaw) @ base


def rotation_json(matrix: Matrix) -> list[list[float]]:
    return [[round(float(v), 9) for v in row] for row in matrix]


def check_rotation(value: Any, what: str) -> Matrix:
    """A 3×3 nested list that is a rotation (to 1e-4), snapped to the nearest rotation."""
    if not (isinstance(value, list) and len(value) == 3):
        raise ValueError(f"{what} must be a 3x3 rotation matrix")
    for row in value:
        if not (isinstance(row, list) and len(row) == 3):
            raise ValueError(f"{what} must be a 3x3 rotation matrix")
        if any(isinstance(v, bool) or not isinstance(v, (int, float)) for v in row):
            raise ValueError(f"{what} entries must be numbers")
    matrix = np.asarray(value, dtype=np.float64)
    if not np.allclose(matrix @ matrix.T, np.eye(3), atol=1e-4) or np.linalg.det(matrix) < 0:
        raise ValueError(f"{what} is not a rotation matrix")
    return snap(matrix)


def snap(matrix: Matrix) -> Matrix:
    """The rotation nearest to `matrix` (undoes floating-point drift)."""
    u, _, vt = np.linalg.svd(matrix)
    result: Matrix = u @ vt
    return result


# ----- meshes -----
@dataclass(frozen=True)
class Mesh:
    """Polygons over shared vertices, in a frame centred on the rotation centre."""

    vertices: Matrix  # (n, 3), scaled to fit the unit sphere
    faces: tuple[tuple[int, ...], ...]
    colors: tuple[Color, ...]
    centres: Matrix  # (faces, 3)
    normals: Matrix  # (faces, 3), unit; outward when `closed`
    closed: bool  # outward normals are trustworthy: cull back faces


def make_mesh(
    vertices: Matrix,
    faces: list[tuple[int, ...]],
    colors: list[Color],
    *,
    closed: bool,
    centre: Matrix | None = None,
) -> Mesh:
    """Centre (on `centre`, else the bounding-box centre) and scale into the unit sphere."""
    if centre is None:
        centre = (vertices.min(axis=0) + vertices.max(axis=0)) / 2
    shifted = vertices - centre
    radius = float(np.linalg.norm(shifted, axis=1).max()) or 1.0
    scaled = shifted / radius
    centres = np.array([scaled[list(face)].mean(axis=0) for face in faces])
    normals = np.array([_normal(scaled[list(face)]) for face in faces])
    return Mesh(scaled, tuple(faces), tuple(colors), centres, normals, closed)


def _normal(points: Matrix) -> Matrix:
    """Newell's method: robust for any planar-ish polygon."""
    total = np.zeros(3)
    for k in range(len(points)):
        a, b = points[k], points[(k + 1) % len(points)]
        total += np.array(
            [
                (a[1] - b[1]) * (a[2] + b[2]),
                (a[2] - b[2]) * (a[0] + b[0]),
                (a[0] - b[0]) * (a[1] + b[1]),
            ]
        )
    norm = float(np.linalg.norm(total))
    return total / norm if norm > 0 else np.array([0.0, 0.0, 1.0])


def draw_mesh(
    draw: ImageDraw.ImageDraw,
    mesh: Mesh,
    rotation: Matrix,
    centre: tuple[float, float],
    scale: float,
    *,
    edges: Color | None = None,
) -> None:
    """Painter's algorithm: shade each visible face and draw from far to near."""
    points = mesh.vertices @ rotation.T
    depth = CAMERA_DISTANCE / (CAMERA_DISTANCE - points[:, 2])  # perspective factor
    xs = centre[0] + scale * points[:, 0] * depth
    ys = centre[1] - scale * points[:, 1] * depth
    normals = mesh.normals @ rotation.T
    centres = mesh.centres @ rotation.T
    facing = np.sum(normals * (np.array([0.0, 0.0, CAMERA_DISTANCE]) - centres), axis=1)
    light = normals @ LIGHT_DIRECTION
    if not mesh.closed:
        light = np.abs(light)  # unknown winding: light both sides alike
    brightness = 0.35 + 0.65 * np.clip(light, 0.0, 1.0)
    for index in np.argsort(centres[:, 2], kind="stable"):
        if mesh.closed and facing[index] <= 0:
            continue
        face = mesh.faces[index]
        shade = brightness[index]
        fill = tuple(int(channel * shade) for channel in mesh.colors[index])
        polygon = [(float(xs[v]), float(ys[v])) for v in face]
        draw.polygon(polygon, fill=fill, outline=edges if edges is not None else fill)


# ----- what the two 3D environments share -----
def parse_rotation(action: Action) -> tuple[float, float, float]:
    """('rotate', [a, b, c]) or ('rotate', a, b, c), each in [-180, 180] degrees."""
    if action.name != "rotate":
        raise ActionError(f"unknown action {action.name!r}; use ('rotate', [a, b, c]) or 'stop'")
    a, b, c = expect_args(action, 3, "('rotate', [a, b, c])")
    return (
        expect_float(a, "the x angle", -180, 180),
        expect_float(b, "the y angle", -180, 180),
        expect_float(c, "the z angle", -180, 180),
    )


def rotation_feedback(a: float, b: float, c: float) -> str:
    return f"Rotated by {a:g} degrees about x, {b:g} about y and {c:g} about z."


def rotation_plan(delta: Matrix, strategy: str) -> list[str]:
    """Actions turning the object by `delta`: all at once, or one axis at a time."""
    a, b, c = (round(v) for v in euler_angles(delta))
    if strategy == "one_turn":
        return [f"('rotate', [{a}, {b}, {c}])"] if (a, b, c) != (0, 0, 0) else []
    axes = ([a, 0, 0], [0, b, 0], [0, 0, c])
    return [f"('rotate', {axis})" for axis in axes if any(axis)]


def rotation_detour(rng: np.random.Generator) -> str:
    a, b, c = (int(v) for v in rng.integers(-40, 41, size=3))
    return f"('rotate', [{a}, {b}, {c}])"


def draw_panels(
    draw: ImageDraw.ImageDraw, mesh: Mesh, views: tuple[Matrix, Matrix], edges: Color | None
) -> None:
    """Target (left) and current (right) views, each labelled, split by a line."""
    label_font = font(15)
    for column, (label, rotation) in enumerate(zip(("Target", "Current"), views, strict=True)):
        centre = (column * PANEL + PANEL / 2, LABEL + PANEL / 2)
        draw_mesh(draw, mesh, rotation, centre, PANEL * 0.4, edges=edges)
        draw.text((centre[0], 3), label, fill=DARK, font=label_font, anchor="mt")
    draw.line((PANEL, 4, PANEL, LABEL + PANEL - 2), fill=DARK, width=1)
