"""mental_rotation_3d_cube: turn a polycube until it matches a target view of it.

VisGym shows a shape made of cube segments (4 on easy, 6 on hard, in the spirit of
Shepard and Metzler's figures) in a current and a target orientation; the agent turns
it with three Euler angles. Gantry renders both views side by side with its own small
renderer (`solid.py`: perspective projection, flat shading, painter's algorithm, dark
cube edges so every segment is visible). The shape is grown at random, one face-adjacent
cube at a time; straight bars are rejected.

Success tolerance (Gantry's choice; VisGym varies only the cube count): the geodesic
angle between the current and the target orientation is at most 15 degrees on both
difficulties. A shape with rotational symmetry looks the same in several orientations,
so the error is the smallest angle to any orientation that renders identically (the
target composed with a symmetry of the shape). Start orientations are uniformly random
and at least 45 degrees from every such goal; target views are three-quarter views.
"""

from __future__ import annotations

from functools import lru_cache
from typing import ClassVar

import numpy as np

from gantry.envfarm.envs.actions import Action
from gantry.envfarm.envs.base import Image, JsonState, Solver, VisGymEnv
from gantry.envfarm.envs.picture import check_color
from gantry.envfarm.envs.render import LIGHT, PALETTE, canvas, to_array
from gantry.envfarm.envs.solid import (
    LABEL,
    PANEL,
    Matrix,
    Mesh,
    angle_between,
    check_rotation,
    cube_rotations,
    draw_panels,
    euler_matrix,
    make_mesh,
    parse_rotation,
    random_rotation,
    rotation_detour,
    rotation_feedback,
    rotation_json,
    rotation_plan,
    snap,
    view_rotation,
)

CUBES = {"easy": 4, "hard": 6}
TOLERANCE = 15.0  # degrees, both difficulties
MIN_START_ERROR = 45.0
NEIGHBOURS = ((1, 0, 0), (-1, 0, 0), (0, 1, 0), (0, -1, 0), (0, 0, 1), (0, 0, -1))
EDGE = (30, 30, 36)

Cell = tuple[int, int, int]


def grow_polycube(count: int, rng: np.random.Generator) -> list[Cell]:
    """Face-connected cubes added one at a time; never all in one line."""
    while True:
        cells: list[Cell] = [(0, 0, 0)]
        while len(cells) < count:
            base = cells[int(rng.integers(len(cells)))]
            step = NEIGHBOURS[int(rng.integers(6))]
            cell = (base[0] + step[0], base[1] + step[1], base[2] + step[2])
            if cell not in cells:
                cells.append(cell)
        if any(len({c[axis] for c in cells}) == count for axis in range(3)):
            continue  # a straight bar: too symmetric to be a rotation puzzle
        low = [min(c[axis] for c in cells) for axis in range(3)]
        return [(c[0] - low[0], c[1] - low[1], c[2] - low[2]) for c in cells]


def centred(cells: tuple[Cell, ...]) -> Matrix:
    points = np.array(cells, dtype=np.float64)
    result: Matrix = points - points.mean(axis=0)
    return result


@lru_cache(maxsize=256)
def symmetries(cells: tuple[Cell, ...]) -> tuple[Matrix, ...]:
    """Cube rotations (about the centroid) that map the shape onto itself."""
    points = centred(cells) * len(cells)  # integer coordinates: exact set comparison
    shape = {tuple(round(float(v)) for v in p) for p in points}
    found = []
    for rotation in cube_rotations():
        turned = {tuple(round(float(v)) for v in p) for p in points @ rotation.T}
        if turned == shape:
            found.append(rotation)
    return tuple(found)


@lru_cache(maxsize=256)
def polycube_mesh(cells: tuple[Cell, ...], color: tuple[int, int, int]) -> Mesh:
    """One square per exposed cube face, centred on the centroid of the cube centres."""
    occupied = set(cells)
    vertices: list[tuple[float, float, float]] = []
    faces: list[tuple[int, ...]] = []
    for cell in cells:
        for axis in range(3):
            for sign in (1, -1):
                neighbour = list(cell)
                neighbour[axis] += sign
                if tuple(neighbour) in occupied:
                    continue
                faces.append(tuple(range(len(vertices), len(vertices) + 4)))
                vertices += _square(cell, axis, sign)
    points = np.array(vertices, dtype=np.float64)
    centre = np.array(cells, dtype=np.float64).mean(axis=0)
    return make_mesh(points, faces, [color] * len(faces), closed=True, centre=centre)


def _square(cell: Cell, axis: int, sign: int) -> list[tuple[float, float, float]]:
    """The four corners of one cube face, counterclockwise seen from outside."""
    u, v = (axis + 1) % 3, (axis + 2) % 3
    corners = [(-1, -1), (1, -1), (1, 1), (-1, 1)]
    if sign < 0:
        corners.reverse()
    result = []
    for du, dv in corners:
        point = [float(c) for c in cell]
        point[axis] += 0.5 * sign
        point[u] += 0.5 * du
        point[v] += 0.5 * dv
        result.append((point[0], point[1], point[2]))
    return result


class MentalRotation3DCube(VisGymEnv):
    env_id: ClassVar[str] = "mental_rotation_3d_cube"
    description: ClassVar[str] = (
        "Two views of one shape made of cubes. Rotate the right one (current) until it "
        "looks exactly like the left one (target). Axes are fixed to the viewer: x to the "
        "right, y up, z toward you. ('rotate', [a, b, c]) turns the shape a degrees about "
        "x, then b about y, then c about z; positive is counterclockwise when the axis "
        "points at you. Within 15 degrees counts as matched."
    )
    action_grammar: ClassVar[str] = (
        "('rotate', [A, B, C]) with A, B, C degrees in [-180, 180] about the x, y, z axes "
        "(applied in that order); 'stop'"
    )
    action_examples: ClassVar[tuple[str, ...]] = (
        "('rotate', [30, 0, -45])",
        "('rotate', 0, 90, 0)",
        "stop",
    )
    levels: ClassVar[dict[str, str]] = {"easy": "4 cubes", "hard": "6 cubes"}
    image_shape: ClassVar[tuple[int, int]] = (PANEL + LABEL, 2 * PANEL)

    cells: tuple[Cell, ...]
    color: tuple[int, int, int]
    target: Matrix
    rotation: Matrix

    def error(self) -> float:
        """Degrees from the nearest orientation that looks like the target."""
        return min(angle_between(self.rotation, g) for g in self.goals())

    def goals(self) -> list[Matrix]:
        return [self.target @ s for s in symmetries(self.cells)]

    def _sample_state(self, rng: np.random.Generator) -> JsonState:
        cells = grow_polycube(CUBES[self.difficulty], rng)
        color = PALETTE[int(rng.integers(len(PALETTE)))]
        target = view_rotation(rng)
        goals = [target @ s for s in symmetries(tuple(cells))]
        while True:
            start = random_rotation(rng)
            if min(angle_between(start, g) for g in goals) >= MIN_START_ERROR:
                return {
                    "cubes": [list(c) for c in cells],
                    "color": list(color),
                    "target": rotation_json(target),
                    "rotation": rotation_json(start),
                }

    def _load_state(self, state: JsonState) -> None:
        cubes = state["cubes"]
        if not (isinstance(cubes, list) and 2 <= len(cubes) <= 12):
            raise ValueError("cubes must be a list of 2-12 [x, y, z] cells")
        cells = []
        for cube in cubes:
            if not (isinstance(cube, list) and len(cube) == 3):
                raise ValueError("each cube must be [x, y, z]")
            if not all(isinstance(v, int) and not isinstance(v, bool) for v in cube):
                raise ValueError("cube coordinates must be integers")
            cells.append((cube[0], cube[1], cube[2]))
        if len(set(cells)) != len(cells) or not _connected(cells):
            raise ValueError("cubes must be distinct and face-connected")
        self.cells = tuple(cells)
        self.color = check_color(state["color"], "color")
        self.target = check_rotation(state["target"], "target")
        self.rotation = check_rotation(state["rotation"], "rotation")

    def _state(self) -> JsonState:
        return {
            "cubes": [list(c) for c in self.cells],
            "color": list(self.color),
            "target": self.target.tolist(),
            "rotation": self.rotation.tolist(),
        }

    def _apply(self, action: Action) -> str:
        a, b, c = parse_rotation(action)
        self.rotation = snap(euler_matrix(a, b, c) @ self.rotation)
        return rotation_feedback(a, b, c)

    def goal_reached(self) -> bool:
        return self.error() <= TOLERANCE

    def render_image(self) -> Image:
        image, draw = canvas(*self.image_shape, background=LIGHT)
        mesh = polycube_mesh(self.cells, self.color)
        draw_panels(draw, mesh, (self.target, self.rotation), EDGE)
        return to_array(image)

    def render_text(self) -> str:
        lines = [
            f"A shape of {len(self.cells)} unit cubes, shown in two orientations. Rotate the "
            "current one to match the target (within 15 degrees).",
            "Cube centres relative to the shape's centre: x right, y up, z toward you.",
        ]
        points = centred(self.cells)
        for label, rotation in (("Target", self.target), ("Current", self.rotation)):
            turned = points @ rotation.T
            cubes = ", ".join(f"({x:.2f}, {y:.2f}, {z:.2f})" for x, y, z in turned)
            lines.append(f"{label}: {cubes}")
        return "\n".join(lines)


def _connected(cells: list[Cell]) -> bool:
    seen, stack = {cells[0]}, [cells[0]]
    occupied = set(cells)
    while stack:
        x, y, z = stack.pop()
        for dx, dy, dz in NEIGHBOURS:
            nxt = (x + dx, y + dy, z + dz)
            if nxt in occupied and nxt not in seen:
                seen.add(nxt)
                stack.append(nxt)
    return len(seen) == len(cells)


class MentalRotation3DCubeSolver(Solver):
    """`one_turn`: a single Euler rotation onto the nearest goal. `axis_by_axis`: x, y, z."""

    strategies: ClassVar[tuple[str, ...]] = ("one_turn", "axis_by_axis")

    def plan(self, env: VisGymEnv, strategy: str) -> list[str]:
        assert isinstance(env, MentalRotation3DCube)
        goal = min(env.goals(), key=lambda g: angle_between(env.rotation, g))
        return rotation_plan(goal @ env.rotation.T, strategy)

    def detour(self, env: VisGymEnv, rng: np.random.Generator) -> str:
        return rotation_detour(rng)


ENTRY = (MentalRotation3DCube, MentalRotation3DCubeSolver())
