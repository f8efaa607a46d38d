"""mental_rotation_3d_object: turn a 3D object until it matches a target view of it.

VisGym renders Objaverse meshes in a current and a target orientation; the agent turns
the object with three Euler angles and succeeds within 15 degrees (easy) or 5 degrees
(hard). Gantry cannot ship Objaverse, so it builds a procedural stand-in: a box body with
three or four parts (cones, cylinders, cubes, spheres) sticking out of distinct faces,
every piece in its own colour. Because each coloured part can only map onto itself and
at least two parts stick out along non-parallel directions, no rotation other than the
identity maps the object onto itself: exactly one orientation matches the target. The
error is the geodesic angle between the current and the target orientation. Start
orientations are uniformly random and at least 45 degrees from the target; target views
are three-quarter views. Both views are drawn by `solid.py` (perspective, flat shading,
painter's algorithm).

Dataset mode (`dataset_path`): a directory of Wavefront `.obj` files (`v` and `f` lines;
`usemtl` switches to the next colour of a fixed palette; at most 3000 faces each). Each
episode picks one mesh, centred on its bounding box and scaled to fit. The goal is the
single target orientation, so meshes should not be rotationally symmetric.
"""

from __future__ import annotations

import json
import math
from functools import lru_cache
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from gantry.envfarm.envs.actions import Action
from gantry.envfarm.envs.base import Image, JsonState, Solver, VisGymEnv
from gantry.envfarm.envs.picture import check_choice, check_color, check_number, dataset_file
from gantry.envfarm.envs.render import LIGHT, PALETTE, Color, canvas, to_array
from gantry.envfarm.envs.solid import (
    LABEL,
    PANEL,
    Matrix,
    Mesh,
    angle_between,
    check_rotation,
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

TOLERANCE = {"easy": 15.0, "hard": 5.0}
MIN_START_ERROR = 45.0
SHAPES = ("cone", "cylinder", "box", "sphere")
DIRECTIONS = {
    "+x": (0, 1.0),
    "-x": (0, -1.0),
    "+y": (1, 1.0),
    "-y": (1, -1.0),
    "+z": (2, 1.0),
    "-z": (2, -1.0),
}
COLOR_NAMES = ("red", "green", "blue", "yellow", "purple", "orange", "teal", "pink")
SEGMENTS = 14  # around cylinders, cones and spheres
MAX_OBJ_FACES = 3000
MAX_OBJ_BYTES = 4_000_000
OBJ_DEFAULT: Color = (176, 180, 196)
Landmark = tuple[str, Matrix]


# ----- the procedural object -----
def sample_object(rng: np.random.Generator) -> JsonState:
    colors = [list(PALETTE[int(k)]) for k in rng.permutation(len(COLOR_NAMES))]
    count = int(rng.integers(3, 5))
    directions = [str(d) for d in rng.permutation(list(DIRECTIONS))[:count]]
    parts = [
        {
            "shape": SHAPES[int(rng.integers(len(SHAPES)))],
            "direction": direction,
            "radius": round(float(rng.uniform(0.12, 0.22)), 3),
            "length": round(float(rng.uniform(0.55, 0.95)), 3),
            "color": colors[k + 1],
        }
        for k, direction in enumerate(directions)
    ]
    size = [round(float(v), 3) for v in rng.uniform(0.22, 0.42, size=3)]
    return {"body": {"size": size, "color": colors[0]}, "parts": parts}


def check_object(spec: Any) -> JsonState:
    if not isinstance(spec, dict):
        raise ValueError("object must be an object")
    if "mesh" in spec:
        return {"mesh": spec["mesh"]}
    body = spec["body"]
    size = body["size"]
    if not (isinstance(size, list) and len(size) == 3):
        raise ValueError("body size must be [x, y, z] half-extents")
    for value in size:
        check_number(value, "body half-extent", 0.1, 1.0)
    colors = [check_color(body["color"], "body colour")]
    parts = spec["parts"]
    if not (isinstance(parts, list) and 2 <= len(parts) <= 6):
        raise ValueError("parts must be a list of 2-6 parts")
    for part in parts:
        check_choice(part["shape"], SHAPES, "part shape")
        check_choice(part["direction"], tuple(DIRECTIONS), "part direction")
        check_number(part["radius"], "part radius", 0.05, 0.5)
        check_number(part["length"], "part length", 0.1, 1.5)
        colors.append(check_color(part["color"], "part colour"))
    axes = {DIRECTIONS[p["direction"]][0] for p in parts}
    if len({p["direction"] for p in parts}) != len(parts) or len(axes) < 2:
        raise ValueError("parts need distinct directions along at least two axes")
    if len(set(colors)) != len(colors):
        raise ValueError("body and parts need distinct colours (they make it asymmetric)")
    return {"body": body, "parts": parts}


class _Builder:
    """Collects convex pieces, orienting each piece's faces away from its centre."""

    def __init__(self) -> None:
        self.vertices: list[Matrix] = []
        self.faces: list[tuple[int, ...]] = []
        self.colors: list[Color] = []

    def add(self, points: Matrix, faces: list[list[int]], color: Color) -> None:
        offset = sum(len(v) for v in self.vertices)
        middle = points.mean(axis=0)
        for face in faces:
            corners = points[face]
            normal = np.cross(corners[1] - corners[0], corners[2] - corners[0])
            if np.dot(normal, corners.mean(axis=0) - middle) < 0:
                face = face[::-1]
            self.faces.append(tuple(offset + v for v in face))
            self.colors.append(color)
        self.vertices.append(points)

    def mesh(self) -> tuple[Mesh, float]:
        points = np.concatenate(self.vertices)
        radius = float(np.linalg.norm(points, axis=1).max())
        origin = np.zeros(3)
        return make_mesh(points, self.faces, self.colors, closed=True, centre=origin), radius


def _box(centre: Matrix, half: Matrix) -> tuple[Matrix, list[list[int]]]:
    signs = np.array([[x, y, z] for x in (-1, 1) for y in (-1, 1) for z in (-1, 1)])
    faces = [[0, 1, 3, 2], [4, 5, 7, 6], [0, 1, 5, 4], [2, 3, 7, 6], [0, 2, 6, 4], [1, 3, 7, 5]]
    return centre + signs * half, faces


def _frame(axis: int, sign: float) -> tuple[Matrix, Matrix, Matrix]:
    """Unit vectors (along, u, v) for a part pointing along ±axis."""
    basis = np.eye(3)
    return sign * basis[axis], basis[(axis + 1) % 3], basis[(axis + 2) % 3]


def _ring(centre: Matrix, u: Matrix, v: Matrix, radius: float) -> Matrix:
    angles = np.linspace(0, 2 * math.pi, SEGMENTS, endpoint=False)
    ring: Matrix = centre + radius * (np.outer(np.cos(angles), u) + np.outer(np.sin(angles), v))
    return ring


def _part(base: Matrix, axis: int, sign: float, part: JsonState) -> tuple[Matrix, list[list[int]]]:
    along, u, v = _frame(axis, sign)
    radius, length = float(part["radius"]), float(part["length"])
    ring_faces = [[k, (k + 1) % SEGMENTS] for k in range(SEGMENTS)]
    if part["shape"] == "box":
        half = np.full(3, radius * 1.2)
        return _box(base + along * radius * 1.2, half)
    if part["shape"] == "cone":
        points = np.vstack([_ring(base, u, v, radius * 1.3), base + along * length])
        faces = [[a, b, SEGMENTS] for a, b in ring_faces] + [list(range(SEGMENTS))]
        return points, faces
    if part["shape"] == "cylinder":
        points = np.vstack([_ring(base, u, v, radius), _ring(base + along * length, u, v, radius)])
        faces = [[a, b, b + SEGMENTS, a + SEGMENTS] for a, b in ring_faces]
        faces += [list(range(SEGMENTS)), list(range(SEGMENTS, 2 * SEGMENTS))]
        return points, faces
    return _sphere(base + along * radius * 1.1, radius * 1.4)


def _sphere(centre: Matrix, radius: float) -> tuple[Matrix, list[list[int]]]:
    rings = 7
    pole = np.array([0.0, 0.0, radius])
    poles = [centre + pole, centre - pole]
    rings_points = [
        _ring(
            centre + pole * math.cos(math.pi * k / rings),
            np.eye(3)[0],
            np.eye(3)[1],
            radius * math.sin(math.pi * k / rings),
        )
        for k in range(1, rings)
    ]
    points = np.vstack([np.array(poles), *rings_points])
    faces = []
    for k in range(SEGMENTS):
        nxt = (k + 1) % SEGMENTS
        faces.append([0, 2 + k, 2 + nxt])
        last = 2 + (rings - 2) * SEGMENTS
        faces.append([1, last + k, last + nxt])
        for ring in range(rings - 2):
            top, bottom = 2 + ring * SEGMENTS, 2 + (ring + 1) * SEGMENTS
            faces.append([top + k, top + nxt, bottom + nxt, bottom + k])
    return points, faces


@lru_cache(maxsize=64)
def procedural_object(key: str) -> tuple[Mesh, tuple[Landmark, ...]]:
    """The mesh and, for the text mode, the outer end of each part (same scale)."""
    spec = json.loads(key)
    builder = _Builder()
    half = np.array(spec["body"]["size"], dtype=np.float64)
    builder.add(*_box(np.zeros(3), half), tuple(spec["body"]["color"]))  # type: ignore[arg-type]
    ends = []
    for part in spec["parts"]:
        axis, sign = DIRECTIONS[part["direction"]]
        base = np.zeros(3)
        base[axis] = sign * half[axis]
        points, faces = _part(base, axis, sign, part)
        builder.add(points, faces, tuple(part["color"]))  # type: ignore[arg-type]
        along = sign * np.eye(3)[axis]
        reach = float(((points - base) @ along).max())  # how far the part sticks out
        ends.append((f"{_color_name(part['color'])} {part['shape']} end", base + along * reach))
    mesh, radius = builder.mesh()
    return mesh, tuple((label, point / radius) for label, point in ends)


def _color_name(color: list[int]) -> str:
    for name, known in zip(COLOR_NAMES, PALETTE, strict=False):
        if tuple(color) == known:
            return name
    return "rgb({}, {}, {})".format(*color)


# ----- dataset meshes -----
def mesh_files(root: Path) -> list[str]:
    if not root.is_dir():
        raise ValueError(f"dataset_path {root} is not a directory")
    names = sorted(p.name for p in root.iterdir() if p.is_file() and p.suffix.lower() == ".obj")
    if not names:
        raise ValueError(f"dataset_path {root} holds no .obj meshes")
    return names


def mesh_path(root: Path | None, name: Any) -> Path:
    if isinstance(name, str) and not name.endswith(".obj"):
        raise ValueError("mesh must be a plain .obj file name inside dataset_path")
    return dataset_file(root, name, "mesh")


def parse_obj(text: str) -> tuple[Matrix, list[tuple[int, ...]], list[Color]]:
    """Vertices, polygons (0-based) and a colour per polygon from Wavefront OBJ text."""
    vertices: list[list[float]] = []
    faces: list[tuple[int, ...]] = []
    colors: list[Color] = []
    materials: dict[str, Color] = {}
    color = OBJ_DEFAULT
    for line in text.splitlines():
        fields = line.split()
        if not fields:
            continue
        if fields[0] == "v" and len(fields) >= 4:
            vertices.append([float(v) for v in fields[1:4]])
        elif fields[0] == "usemtl" and len(fields) >= 2:
            color = materials.setdefault(fields[1], PALETTE[len(materials) % len(PALETTE)])
        elif fields[0] == "f" and len(fields) >= 4:
            indices = []
            for field in fields[1:]:
                index = int(field.split("/")[0])
                indices.append(index - 1 if index > 0 else len(vertices) + index)
            if not all(0 <= i < len(vertices) for i in indices):
                raise ValueError("an OBJ face refers to a missing vertex")
            faces.append(tuple(indices))
            colors.append(color)
    if not faces:
        raise ValueError("the OBJ file has no faces")
    if len(faces) > MAX_OBJ_FACES:
        raise ValueError(f"the OBJ file has more than {MAX_OBJ_FACES} faces")
    return np.array(vertices, dtype=np.float64), faces, colors


def load_obj(path: Path) -> tuple[Mesh, tuple[Landmark, ...]]:
    return _load_obj(str(path), path.stat().st_mtime_ns)


@lru_cache(maxsize=16)
def _load_obj(path: str, _mtime: int) -> tuple[Mesh, tuple[Landmark, ...]]:
    file = Path(path)
    if file.stat().st_size > MAX_OBJ_BYTES:
        raise ValueError(f"{file.name} is larger than {MAX_OBJ_BYTES} bytes")
    vertices, faces, colors = parse_obj(file.read_text(errors="replace"))
    mesh = make_mesh(vertices, faces, colors, closed=False)
    # The extreme vertices along the model axes stand in for named parts in text mode.
    landmarks = []
    for axis, name in enumerate("xyz"):
        for sign, end in ((1, "+"), (-1, "-")):
            point = mesh.vertices[int(np.argmax(sign * mesh.vertices[:, axis]))]
            landmarks.append((f"{end}{name} extreme", point))
    return mesh, tuple(landmarks)


class MentalRotation3DObject(VisGymEnv):
    env_id: ClassVar[str] = "mental_rotation_3d_object"
    description: ClassVar[str] = (
        "Two views of one 3D object. Rotate the right one (current) until it looks exactly "
        "like the left one (target). Axes are fixed to the viewer: x to the right, y up, z "
        "toward you. ('rotate', [a, b, c]) turns the object a degrees about x, then b about "
        "y, then c about z; positive is counterclockwise when the axis points at you. "
        "Within 15 degrees counts as matched (5 on hard)."
    )
    action_grammar: ClassVar[str] = (
        "('rotate', [A, B, C]) with A, B, C degrees in [-180, 180] about the x, y, z axes "
        "(applied in that order); 'stop'"
    )
    action_examples: ClassVar[tuple[str, ...]] = (
        "('rotate', [0, 45, 0])",
        "('rotate', -30, 10, 90)",
        "stop",
    )
    levels: ClassVar[dict[str, str]] = {
        "easy": "tolerance 15 degrees",
        "hard": "tolerance 5 degrees",
    }
    image_shape: ClassVar[tuple[int, int]] = (PANEL + LABEL, 2 * PANEL)

    model: JsonState
    target: Matrix
    rotation: Matrix

    @property
    def tolerance(self) -> float:
        return TOLERANCE[self.difficulty]

    def error(self) -> float:
        return angle_between(self.rotation, self.target)

    def _sample_state(self, rng: np.random.Generator) -> JsonState:
        if self.dataset_path is not None:
            names = mesh_files(self.dataset_path)
            spec: JsonState = {"mesh": names[int(rng.integers(len(names)))]}
        else:
            spec = sample_object(rng)
        target = view_rotation(rng)
        while True:
            start = random_rotation(rng)
            if angle_between(start, target) >= MIN_START_ERROR:
                return {
                    "object": spec,
                    "target": rotation_json(target),
                    "rotation": rotation_json(start),
                }

    def _load_state(self, state: JsonState) -> None:
        spec = check_object(state["object"])
        if "mesh" in spec:
            load_obj(mesh_path(self.dataset_path, spec["mesh"]))  # fail now, not at render
        self.model = spec
        self.target = check_rotation(state["target"], "target")
        self.rotation = check_rotation(state["rotation"], "rotation")

    def _state(self) -> JsonState:
        return {
            "object": self.model,
            "target": self.target.tolist(),
            "rotation": self.rotation.tolist(),
        }

    def _apply(self, action: Action) -> str:
        a, b, c = parse_rotation(action)
        self.rotation = snap(euler_matrix(a, b, c) @ self.rotation)
        return rotation_feedback(a, b, c)

    def goal_reached(self) -> bool:
        return self.error() <= self.tolerance

    def _object(self) -> tuple[Mesh, tuple[Landmark, ...]]:
        if "mesh" in self.model:
            return load_obj(mesh_path(self.dataset_path, self.model["mesh"]))
        return procedural_object(json.dumps(self.model, sort_keys=True))

    def render_image(self) -> Image:
        image, draw = canvas(*self.image_shape, background=LIGHT)
        mesh, _ = self._object()
        draw_panels(draw, mesh, (self.target, self.rotation), None)
        return to_array(image)

    def render_text(self) -> str:
        _, landmarks = self._object()
        lines = [
            "One 3D object shown in two orientations. Rotate the current one to match the "
            f"target (within {self.tolerance:g} degrees).",
            "Landmark positions from the object's centre: x right, y up, z toward you; "
            "1 = the object's radius.",
        ]
        for label, rotation in (("Target", self.target), ("Current", self.rotation)):
            lines.append(f"{label} view:")
            for name, point in landmarks:
                x, y, z = rotation @ point
                lines.append(f"  {name} at ({x:.2f}, {y:.2f}, {z:.2f})")
        return "\n".join(lines)


class MentalRotation3DObjectSolver(Solver):
    """`one_turn`: a single Euler rotation onto the target. `axis_by_axis`: x, y, then z."""

    strategies: ClassVar[tuple[str, ...]] = ("one_turn", "axis_by_axis")

    def plan(self, env: VisGymEnv, strategy: str) -> list[str]:
        assert isinstance(env, MentalRotation3DObject)
        return rotation_plan(env.target @ env.rotation.T, strategy)

    def detour(self, env: VisGymEnv, rng: np.random.Generator) -> str:
        return rotation_detour(rng)


ENTRY = (MentalRotation3DObject, MentalRotation3DObjectSolver())
