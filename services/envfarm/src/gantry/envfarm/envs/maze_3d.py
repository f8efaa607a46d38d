"""maze_3d: walk through a maze seen only in first person and reach the red ball.

VisGym renders a 3D grid maze (Ursina) from the agent's point of view; the agent moves
forward and turns left, right or around, and must reach the cell holding a red sphere.
There is no map or minimap in the view. Gantry keeps that task: a 7×7 (easy) or 9×9
(hard) maze carved like maze_2d's, drawn by a small numpy raycaster (one ray per image
column, walls textured as bricks and shaded by side and distance, a checkered floor
whose squares are the maze cells, so distances can be counted). The goal is a red ball
at eye height over a red floor square, depth-tested against the walls, so it is seen
exactly when it is in sight. Gantry also allows stepping back without turning.

The start heading faces an open corridor in which the goal is not visible (as in
VisGym), and the goal is placed 6-19 (easy) or 10-29 (hard) actions away, counting
turns, so the shortest plan plus `stop` fits the step limit.
"""

from __future__ import annotations

import math
from collections import deque
from typing import ClassVar

import numpy as np

from gantry.envfarm.envs.actions import Action, ActionError, expect_args
from gantry.envfarm.envs.base import Image, JsonState, Solver, VisGymEnv
from gantry.envfarm.envs.maze_2d import carve

Cell = tuple[int, int]
Pose = tuple[int, int, int]  # row, col, heading
HEADINGS = ("north", "east", "south", "west")
# Heading steps as (d_row, d_col); heading + 1 is a right turn.
STEPS: tuple[Cell, ...] = ((-1, 0), (0, 1), (1, 0), (0, -1))
SIZES = {"easy": 7, "hard": 9}
COST = {"easy": (6, 19), "hard": (10, 29)}
MOVES = {"forward": 0, "back": 1}
TURNS = {"left": -1, "right": 1, "around": 2}
TURN_BY_INDEX = ("left", "right", "around")  # VisGym: ('turn', 1|2|3)

# Camera and scene.
WIDTH = HEIGHT = 336
FOV = math.radians(70)
PLANE = math.tan(FOV / 2)
FOCAL = (WIDTH / 2) / PLANE
BALL_RADIUS = 0.25
FOG = np.array([24, 26, 34], np.float32)
WALL = np.array([196, 172, 132], np.float32)
MORTAR = np.array([110, 96, 80], np.float32)
BALL = np.array([235, 40, 36], np.float32)
FLOOR_PALETTE = np.array([[150, 150, 158], [118, 120, 130], [200, 60, 56]], np.float32)
FOG_DISTANCE = 7.0  # cells over which colours fade into the fog (at most 85%)
CAM_X = (np.arange(WIDTH) + 0.5) / WIDTH * 2 - 1  # each column's offset on the camera plane
ROWS = (np.arange(HEIGHT) + 0.5 - HEIGHT / 2).astype(np.float32)  # pixel rows from the horizon
# The floor distance seen on each row below the horizon (eye height is half a cell).
FLOOR_DEPTH = (0.5 * FOCAL / ROWS[HEIGHT // 2 :]).astype(np.float32)


def _fog(distance: np.ndarray) -> np.ndarray:
    fog: np.ndarray = np.clip(distance / FOG_DISTANCE, 0, 0.85)
    return fog


def _ceiling() -> Image:
    """A dark ceiling, a little lighter towards the horizon (the same in every view)."""
    t = np.clip(-ROWS / (HEIGHT / 2), 0, 1)[:, None, None]
    rgb = (1 - t) * np.array([70, 74, 90], np.float32) + t * np.array([40, 44, 60], np.float32)
    image: Image = np.broadcast_to(rgb, (HEIGHT, WIDTH, 3)).astype(np.uint8)
    return image


CEILING = _ceiling()


def action_costs(walls: list[list[int]], start: Pose, allow_back: bool = True) -> dict[Pose, Pose]:
    """BFS over poses; returns each reached pose's predecessor (the start maps to itself)."""
    parent = {start: start}
    queue = deque([start])
    while queue:
        pose = queue.popleft()
        for nxt in _successors(walls, pose, allow_back).values():
            if nxt not in parent:
                parent[nxt] = pose
                queue.append(nxt)
    return parent


def _successors(walls: list[list[int]], pose: Pose, allow_back: bool) -> dict[str, Pose]:
    r, c, h = pose
    result = {
        "('turn', 'left')": (r, c, (h - 1) % 4),
        "('turn', 'right')": (r, c, (h + 1) % 4),
        "('turn', 'around')": (r, c, (h + 2) % 4),
    }
    moves = {"forward": 1, "back": -1} if allow_back else {"forward": 1}
    for name, sign in moves.items():
        nr, nc = r + sign * STEPS[h][0], c + sign * STEPS[h][1]
        if not walls[nr][nc]:
            result[f"('move', '{name}')"] = (nr, nc, h)
    return result


def pose_distance(parent: dict[Pose, Pose], pose: Pose) -> int:
    steps = 0
    while parent[pose] != pose:
        pose, steps = parent[pose], steps + 1
    return steps


def cast(walls: list[list[int]], x: float, y: float, rays: np.ndarray) -> tuple[np.ndarray, ...]:
    """DDA through the grid for every ray (n×2, world x/y); returns, per ray, the ray
    parameter t of the wall hit (the perpendicular distance for camera rays), the hit
    side (0: a wall facing east/west, 1: north/south) and the texture coordinate."""
    grid = np.asarray(walls, dtype=bool)
    n = len(rays)
    rx, ry = rays[:, 0], rays[:, 1]
    with np.errstate(divide="ignore"):
        dx, dy = np.abs(1.0 / rx), np.abs(1.0 / ry)
    mx, my = np.full(n, int(x)), np.full(n, int(y))
    step_x, step_y = np.where(rx < 0, -1, 1), np.where(ry < 0, -1, 1)
    side_x = np.where(rx < 0, (x - mx) * dx, (mx + 1 - x) * dx)
    side_y = np.where(ry < 0, (y - my) * dy, (my + 1 - y) * dy)
    side = np.zeros(n, dtype=np.int8)
    live = np.ones(n, dtype=bool)
    for _ in range(2 * (grid.shape[0] + grid.shape[1])):
        go_x = live & (side_x < side_y)
        go_y = live & ~go_x
        side_x, mx = np.where(go_x, side_x + dx, side_x), np.where(go_x, mx + step_x, mx)
        side_y, my = np.where(go_y, side_y + dy, side_y), np.where(go_y, my + step_y, my)
        side = np.where(go_x, 0, np.where(go_y, 1, side)).astype(np.int8)
        inside = (my >= 0) & (my < grid.shape[0]) & (mx >= 0) & (mx < grid.shape[1])
        hit = ~inside | grid[np.clip(my, 0, grid.shape[0] - 1), np.clip(mx, 0, grid.shape[1] - 1)]
        live &= ~hit
        if not live.any():
            break
    with np.errstate(invalid="ignore"):  # inf - inf on axis-parallel rays, never selected
        t = np.where(side == 0, side_x - dx, side_y - dy)
    along = np.where(side == 0, y + t * ry, x + t * rx)
    return t, side, along - np.floor(along)


class Maze3D(VisGymEnv):
    env_id: ClassVar[str] = "maze_3d"
    description: ClassVar[str] = (
        "You are inside a maze and see it in first person. Find the red ball (it floats over "
        "a red floor square) and walk onto its cell. Each floor square is one maze cell."
    )
    action_grammar: ClassVar[str] = (
        "('move', 'forward') or ('move', 'back') steps one cell (0 and 1 also work); "
        "('turn', 'left'|'right'|'around') turns in place (VisGym's 1, 2, 3 also work); 'stop'"
    )
    action_examples: ClassVar[tuple[str, ...]] = (
        "('move', 'forward')",
        "('turn', 'left')",
        "('turn', 3)",
        "stop",
    )
    levels: ClassVar[dict[str, str]] = {
        "easy": "7x7 maze, goal 6-19 actions away",
        "hard": "9x9 maze, goal 10-29 actions away",
    }

    walls: list[list[int]]
    agent: Cell
    heading: int
    goal: Cell

    # ----- state -----
    def _sample_state(self, rng: np.random.Generator) -> JsonState:
        size = SIZES[self.difficulty]
        low, high = COST[self.difficulty]
        high = min(high, self.max_steps - 1)
        if high < low:  # no goal fits: refuse instead of sampling forever
            raise ValueError(
                f"max_steps {self.max_steps} is too small for {self.difficulty}: "
                f"goals here need at least {low} moves plus 'stop'"
            )
        while True:
            walls = carve(size, rng)
            free = [(r, c) for r in range(size) for c in range(size) if not walls[r][c]]
            r, c = free[int(rng.integers(len(free)))]
            open_headings = [h for h, (dr, dc) in enumerate(STEPS) if not walls[r + dr][c + dc]]
            heading = open_headings[int(rng.integers(len(open_headings)))]
            parent = action_costs(walls, (r, c, heading))
            best: dict[Cell, int] = {}
            for pose in parent:
                cost = pose_distance(parent, pose)
                best[pose[:2]] = min(cost, best.get(pose[:2], cost))
            goals = sorted(cell for cell, cost in best.items() if low <= cost <= high)
            if not goals:
                continue
            goal = goals[int(rng.integers(len(goals)))]
            state = {"walls": walls, "agent": [r, c], "heading": heading, "goal": list(goal)}
            self._load_state(state)
            if self.goal_in_view() is None:
                return state

    def _load_state(self, state: JsonState) -> None:
        walls = [[int(bool(v)) for v in row] for row in state["walls"]]
        size = len(walls)
        if size < 3 or any(len(row) != size for row in walls):
            raise ValueError("walls must be a square grid of at least 3x3")
        if not all(walls[0] + walls[-1]) or not all(row[0] and row[-1] for row in walls):
            raise ValueError("the maze must be enclosed by walls")
        agent, goal = tuple(state["agent"]), tuple(state["goal"])
        for name, (r, c) in (("agent", agent), ("goal", goal)):
            if not (0 <= r < size and 0 <= c < size) or walls[r][c]:
                raise ValueError(f"{name} must be on a free cell")
        heading = state["heading"]
        if type(heading) is not int or not 0 <= heading < 4:
            raise ValueError("heading must be 0-3 (north, east, south, west)")
        self.walls, self.heading = walls, heading
        self.agent = (int(agent[0]), int(agent[1]))
        self.goal = (int(goal[0]), int(goal[1]))

    def _state(self) -> JsonState:
        return {
            "walls": self.walls,
            "agent": list(self.agent),
            "heading": self.heading,
            "goal": list(self.goal),
        }

    # ----- actions -----
    def _apply(self, action: Action) -> str:
        (arg,) = expect_args(action, 1, f"('{action.name}', direction)")
        if action.name == "move":
            name = _choose(arg, MOVES, ("forward", "back"), "move direction")
            sign = 1 if name == "forward" else -1
            dr, dc = STEPS[self.heading]
            r, c = self.agent[0] + sign * dr, self.agent[1] + sign * dc
            if self.walls[r][c]:
                return f"Cannot move {name}: there is a wall."
            self.agent = (r, c)
            return f"Moved {name}." + (" You are on the goal." if self.goal_reached() else "")
        if action.name == "turn":
            name = _choose(arg, TURNS, TURN_BY_INDEX, "turn direction", first_index=1)
            self.heading = (self.heading + TURNS[name]) % 4
            return f"Turned {name}."
        raise ActionError(f"unknown action {action.name!r}; use ('move', ...), ('turn', ...)")

    def goal_reached(self) -> bool:
        return self.agent == self.goal

    # ----- camera -----
    def _camera(self) -> tuple[float, float, np.ndarray, np.ndarray]:
        """Eye position (world x, y at the cell centre), unit view direction, and the
        camera plane (to the right, scaled by tan(FOV/2))."""
        dr, dc = STEPS[self.heading]
        rr, rc = STEPS[(self.heading + 1) % 4]
        view = np.array([dc, dr], np.float64)
        plane = np.array([rc, rr], np.float64) * PLANE
        return self.agent[1] + 0.5, self.agent[0] + 0.5, view, plane

    def goal_in_view(self) -> tuple[float, float] | None:
        """(depth, lateral) of the ball's centre in camera space if it can be seen."""
        x, y, view, plane = self._camera()
        rel = np.array([self.goal[1] + 0.5 - x, self.goal[0] + 0.5 - y])
        depth = float(rel @ view)
        lateral = float(rel @ plane) / PLANE
        if depth < 0.3 or abs(lateral) - BALL_RADIUS > depth * PLANE:
            return None
        t, _, _ = cast(self.walls, x, y, rel[None, :])
        return (depth, lateral) if t[0] > 1.0 else None

    # ----- rendering -----
    def render_image(self) -> Image:
        x, y, view, plane = self._camera()
        rays = view[None, :] + CAM_X[:, None] * plane[None, :]
        dist, side, along = cast(self.walls, x, y, rays)
        image = CEILING.copy()
        image[HEIGHT // 2 :] = self._floor(x, y, rays)
        self._walls(image, dist, side, along)
        self._draw_ball(image, x, y, view, plane, dist)
        return image

    def _walls(self, image: Image, dist: np.ndarray, side: np.ndarray, along: np.ndarray) -> None:
        """Brick walls: a column's wall spans |row - horizon| < FOCAL / (2 dist)."""
        v4 = ROWS[:, None] * (4 * dist / FOCAL).astype(np.float32)[None, :] + 2  # 4 courses
        wall = (v4 >= 0) & (v4 < 4)
        courses = np.floor(v4)
        u = (2 * along).astype(np.float32)[None, :] + 0.5 * (courses.astype(np.int32) & 1)
        mortar = (v4 - courses < 0.07) | (u - np.floor(u) < 0.035)
        # Per column: darker for north/south faces, fading into fog with distance.
        keep = (np.where(side == 1, 0.72, 1.0) * (1 - _fog(dist)))[:, None]
        haze = _fog(dist)[:, None] * FOG
        table = np.stack([WALL * keep + haze, MORTAR * keep + haze], axis=1).astype(np.uint8)
        cols = np.broadcast_to(np.arange(WIDTH), wall.shape)
        image[wall] = table[cols[wall], mortar[wall].astype(np.int8)]

    def _floor(self, x: float, y: float, rays: np.ndarray) -> Image:
        """The lower half: floor squares (one per cell), the goal's square red."""
        depth = FLOOR_DEPTH[:, None]
        fx = x + depth * rays[None, :, 0].astype(np.float32)
        fy = y + depth * rays[None, :, 1].astype(np.float32)
        cx, cy = np.floor(fx), np.floor(fy)
        kind = ((cx + cy) % 2).astype(np.int8)
        kind[(cy == self.goal[0]) & (cx == self.goal[1])] = 2
        ex, ey = fx - cx, fy - cy
        edge = (np.minimum(ex, 1 - ex) < 0.03) | (np.minimum(ey, 1 - ey) < 0.03)
        light = np.where(edge, 0.6, 1.0) * (1 - _fog(depth))
        rgb = FLOOR_PALETTE[kind] * light[..., None] + _fog(depth)[..., None] * FOG
        result: Image = rgb.astype(np.uint8)
        return result

    def _draw_ball(
        self,
        image: Image,
        x: float,
        y: float,
        view: np.ndarray,
        plane: np.ndarray,
        dist: np.ndarray,
    ) -> None:
        rel = np.array([self.goal[1] + 0.5 - x, self.goal[0] + 0.5 - y])
        depth = float(rel @ view)
        if depth < 0.3:
            return
        sx = WIDTH / 2 + FOCAL * float(rel @ plane) / PLANE / depth
        radius = FOCAL * BALL_RADIUS / depth
        x0, x1 = max(0, int(sx - radius)), min(WIDTH, int(sx + radius) + 2)
        y0, y1 = max(0, int(HEIGHT / 2 - radius)), min(HEIGHT, int(HEIGHT / 2 + radius) + 2)
        if x0 >= x1 or y0 >= y1:
            return
        nx = (np.arange(x0, x1) + 0.5 - sx)[None, :] / radius
        ny = (np.arange(y0, y1)[:, None] + 0.5 - HEIGHT / 2) / radius
        inside = (nx**2 + ny**2 <= 1) & (dist[None, x0:x1] > depth)
        nz = np.sqrt(np.clip(1 - nx**2 - ny**2, 0, 1))
        light = np.clip(-0.45 * nx - 0.55 * ny + 0.7 * nz, 0, 1)  # lit from the upper left
        shaded = BALL * (0.35 + 0.65 * light[..., None])
        shaded += np.clip(light - 0.85, 0, 1)[..., None] * 6 * 255  # specular highlight
        patch = image[y0:y1, x0:x1]
        patch[inside] = np.clip(shaded, 0, 255)[inside].astype(np.uint8)

    def render_text(self) -> str:
        r, c = self.agent
        lines = ["First-person view in a maze (no map). Cells ahead of you:"]
        dr, dc = STEPS[self.heading]
        left, right = STEPS[(self.heading - 1) % 4], STEPS[(self.heading + 1) % 4]
        ahead = 0
        openings = []
        while not self.walls[r + (ahead + 1) * dr][c + (ahead + 1) * dc]:
            ahead += 1
            cr, cc = r + ahead * dr, c + ahead * dc
            sides = [
                name
                for name, (sr, sc) in (("left", left), ("right", right))
                if not self.walls[cr + sr][cc + sc]
            ]
            if sides:
                openings.append(f"{' and '.join(sides)} after {ahead}")
        lines.append(
            f"The corridor ahead is {ahead} cell(s) long, then a wall."
            if ahead
            else "A wall is right in front of you."
        )
        lines.append("Side openings: " + ("; ".join(openings) if openings else "none") + ".")
        seen = self.goal_in_view()
        if self.goal_reached():
            lines.append("You are standing on the goal cell.")
        elif seen is None:
            lines.append("The red ball is not in view.")
        else:
            depth, lateral = seen
            where = (
                "straight ahead"
                if abs(lateral) < 0.25
                else ("to the left" if lateral < 0 else "to the right")
            )
            lines.append(f"The red ball is visible {where}, about {depth:.0f} cell(s) away.")
        return "\n".join(lines)


def _choose(
    arg: object, names: dict[str, int], by_index: tuple[str, ...], what: str, first_index: int = 0
) -> str:
    """A direction given by name, or by index (from `first_index`) into `by_index`."""
    if isinstance(arg, int) and not isinstance(arg, bool):
        if first_index <= arg < first_index + len(by_index):
            return by_index[arg - first_index]
    elif isinstance(arg, str) and arg.lower() in names:
        return arg.lower()
    choices = ", ".join(f"'{n}'" for n in by_index)
    numbers = f"{first_index}-{first_index + len(by_index) - 1}"
    raise ActionError(f"{what} must be one of {choices} (or {numbers})")


class Maze3DSolver(Solver):
    """`bfs`: fewest actions (turns count), stepping back where that is shorter.
    `turn_and_walk`: fewest actions using only forward moves and turns (VisGym's set)."""

    strategies: ClassVar[tuple[str, ...]] = ("bfs", "turn_and_walk")

    def plan(self, env: VisGymEnv, strategy: str) -> list[str]:
        assert isinstance(env, Maze3D)
        start = (*env.agent, env.heading)
        allow_back = strategy == "bfs"
        parent = action_costs(env.walls, start, allow_back)
        ends = [p for p in parent if p[:2] == env.goal]
        if not ends:
            raise ValueError("the goal is unreachable")
        pose = min(ends, key=lambda p: pose_distance(parent, p))
        actions: list[str] = []
        while pose != start:
            before = parent[pose]
            successors = _successors(env.walls, before, allow_back)
            actions.append(next(name for name, nxt in successors.items() if nxt == pose))
            pose = before
        return actions[::-1]

    def detour(self, env: VisGymEnv, rng: np.random.Generator) -> str:
        assert isinstance(env, Maze3D)
        options = list(_successors(env.walls, (*env.agent, env.heading), True))
        return options[int(rng.integers(len(options)))]


ENTRY = (Maze3D, Maze3DSolver())
