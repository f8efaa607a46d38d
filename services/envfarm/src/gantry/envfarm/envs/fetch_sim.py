"""The simulated Fetch-like gripper shared by fetch_reach and fetch_pick_and_place.

Physics choice. VisGym runs the gymnasium-robotics Fetch tasks on MuJoCo. Gantry does
too, for the physics: the `mujoco` module (PyPI `mujoco-core`, which needs only numpy
and no OpenGL) steps a small model written here: a table, a Fetch-style parallel-jaw
gripper driven in Cartesian space through a mocap weld (as the Fetch tasks drive the
arm's end effector), two position-controlled fingers, and for pick-and-place a 5 cm
block that is held only by finger friction and falls under gravity when released.
MuJoCo's own renderer also works on a CPU-only machine (EGL through Mesa's software
rasteriser), but it needs GL system libraries in every image and a per-thread GL context
under the gRPC thread pool, so the image is drawn by `fetch_render` (numpy + PIL) from
the simulated poses instead: physics from MuJoCo, pixels from the same kind of small
software renderer as the other 3D environments. Nothing here needs a GPU.

Coordinates are metres in the viewer's frame: x to the right, y away from the viewer,
z up; the table top is z = 0, its centre is the origin. The agent's `('move', dx, dy, dz)`
takes each delta in [-1, 1], where 1 is MOVE_UNIT (10 cm).

State. The readable part (gripper position, finger state, block pose, target) is what a
seed produces and what a person may write; `physics` is MuJoCo's full integration state
(positions, velocities, controls, mocap, solver warm start), which `clone()` carries so
a copy continues bit-for-bit like the original.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import mujoco  # type: ignore[import-untyped]
import numpy as np
from numpy.typing import NDArray

from gantry.envfarm.envs.actions import Action, expect_args, expect_float

Vector = NDArray[np.float64]

MOVE_UNIT = 0.10  # metres per action unit
# Where the grip point (between the fingertips) may go: over the table, fingertips clear
# of the table top at the lowest point.
WORKSPACE_LOW = np.array([-0.25, -0.18, 0.025])
WORKSPACE_HIGH = np.array([0.25, 0.18, 0.35])
TABLE_HALF = (0.35, 0.30, 0.02)  # x, y half extents and half thickness of the top
BLOCK_HALF = 0.025
FINGER_TRAVEL = 0.045  # each finger slides this far from open to fully closed
# Finger geometry relative to the grip point (used by the renderer too).
FINGER_HALF = (0.006, 0.012, 0.03)
FINGER_OPEN_X = 0.05  # finger centre's |x| when open (the jaws close along x)
FINGER_Z = 0.01
PALM_HALF = (0.062, 0.02, 0.012)
PALM_Z = 0.045

TIMESTEP = 0.002
MOVE_STEPS = 150  # the mocap glides to the new position over 0.3 s ...
SETTLE_STEPS = 100  # ... and the hand settles for 0.2 s
GRIP_STEPS = 150
BLOCKED = 0.01  # metres between commanded and reached position that count as blocked


def _model_xml(with_block: bool) -> str:
    block = (
        f"""
    <body name="block" pos="0 0 {BLOCK_HALF}">
      <freejoint name="block"/>
      <geom name="block" type="box" size="{BLOCK_HALF} {BLOCK_HALF} {BLOCK_HALF}"
            mass="0.05" friction="1 0.01 0.001"/>
    </body>"""
        if with_block
        else ""
    )
    fx, fy, fz = FINGER_HALF
    px, py, pz = PALM_HALF
    fingers = "".join(
        f"""
      <body name="finger_{side}" pos="{sign * FINGER_OPEN_X} 0 {FINGER_Z}" gravcomp="1">
        <joint name="finger_{side}" type="slide" axis="{-sign} 0 0" range="0 {FINGER_TRAVEL}"
               damping="4" armature="0.01"/>
        <geom name="finger_{side}" type="box" size="{fx} {fy} {fz}" mass="0.02"
              friction="1.5 0.02 0.001" condim="4"/>
      </body>"""
        for side, sign in (("right", 1), ("left", -1))
    )
    tx, ty, tz = TABLE_HALF
    return f"""
<mujoco model="gantry_fetch">
  <option timestep="{TIMESTEP}" cone="elliptic" impratio="10"/>
  <!-- Contacts stiffer than the hand's weld, so a hand pushing down cannot squash the
       block into the table. -->
  <default>
    <geom solref="0.004 1" solimp="0.95 0.99 0.001"/>
  </default>
  <worldbody>
    <geom name="floor" type="plane" pos="0 0 -0.75" size="3 3 0.1"/>
    <geom name="table" type="box" pos="0 0 {-tz}" size="{tx} {ty} {tz}"/>
    <body name="hand_target" mocap="true" pos="0 0 0.2"/>
    <body name="hand" pos="0 0 0.2" gravcomp="1">
      <freejoint name="hand"/>
      <geom name="palm" type="box" pos="0 0 {PALM_Z}" size="{px} {py} {pz}" mass="0.2"/>
      <site name="grip" pos="0 0 0" size="0.005"/>{fingers}
    </body>{block}
  </worldbody>
  <equality>
    <weld body1="hand_target" body2="hand" solref="0.02 1"/>
  </equality>
  <contact>
    <exclude body1="finger_left" body2="finger_right"/>
  </contact>
  <actuator>
    <position name="finger_left" joint="finger_left" kp="300" ctrlrange="0 {FINGER_TRAVEL}"/>
    <position name="finger_right" joint="finger_right" kp="300" ctrlrange="0 {FINGER_TRAVEL}"/>
  </actuator>
</mujoco>"""


# Compiled once per process and only read afterwards; each environment has its own MjData.
_MODELS: dict[bool, Any] = {}


def model(with_block: bool) -> Any:
    if with_block not in _MODELS:
        _MODELS[with_block] = mujoco.MjModel.from_xml_string(_model_xml(with_block))
    return _MODELS[with_block]


def clamp_to_workspace(point: Vector) -> Vector:
    clamped: Vector = np.clip(point, WORKSPACE_LOW, WORKSPACE_HIGH)
    return clamped


def yaw_quat(degrees: float) -> list[float]:
    half = math.radians(degrees) / 2
    return [math.cos(half), 0.0, 0.0, math.sin(half)]


def quat_matrix(quat: Vector) -> Vector:
    matrix = np.zeros(9)
    mujoco.mju_quat2Mat(matrix, np.asarray(quat, dtype=np.float64))
    result: Vector = matrix.reshape(3, 3)
    return result


@dataclass(frozen=True)
class BlockPose:
    position: Vector
    quat: Vector  # w, x, y, z


class FetchSim:
    """One simulated gripper (and block): place it, move it, open and close it."""

    def __init__(self, with_block: bool) -> None:
        self.model = model(with_block)
        self.data = mujoco.MjData(self.model)
        self.with_block = with_block
        self._sig = mujoco.mjtState.mjSTATE_INTEGRATION
        self._hand_qpos = self.model.jnt_qposadr[self.model.joint("hand").id]
        self._grip_site = self.model.site("grip").id
        if with_block:
            self._block_qpos = self.model.jnt_qposadr[self.model.joint("block").id]
            self._block_body = self.model.body("block").id

    # ----- placing -----
    def place(self, gripper: Vector, closed: bool, block: BlockPose | None) -> None:
        """Put the hand (grip point at `gripper`) and block at rest, then settle."""
        mujoco.mj_resetData(self.model, self.data)
        q = self.data.qpos
        q[self._hand_qpos : self._hand_qpos + 3] = gripper
        q[self._hand_qpos + 3 : self._hand_qpos + 7] = [1, 0, 0, 0]
        self.data.mocap_pos[0] = gripper
        self.data.mocap_quat[0] = [1, 0, 0, 0]
        travel = FINGER_TRAVEL if closed else 0.0
        for side in ("finger_left", "finger_right"):
            q[self.model.jnt_qposadr[self.model.joint(side).id]] = 0.0
            self.data.ctrl[self.model.actuator(side).id] = travel
        if self.with_block:
            if block is None:
                raise ValueError("this scene has a block")
            q[self._block_qpos : self._block_qpos + 3] = block.position
            q[self._block_qpos + 3 : self._block_qpos + 7] = block.quat
        mujoco.mj_forward(self.model, self.data)
        self._run(GRIP_STEPS)

    def export_physics(self) -> list[float]:
        state = np.zeros(mujoco.mj_stateSize(self.model, self._sig))
        mujoco.mj_getState(self.model, self.data, state, self._sig)
        return [float(v) for v in state]

    def import_physics(self, values: list[float]) -> None:
        state = np.asarray(values, dtype=np.float64)
        if state.shape != (mujoco.mj_stateSize(self.model, self._sig),) or not np.all(
            np.isfinite(state)
        ):
            raise ValueError("physics must be the simulator's integration state")
        mujoco.mj_setState(self.model, self.data, state, self._sig)
        mujoco.mj_forward(self.model, self.data)

    # ----- reading -----
    def grip(self) -> Vector:
        """The grip point: midway between the fingertips."""
        point: Vector = self.data.site_xpos[self._grip_site].copy()
        return point

    def closed(self) -> bool:
        return bool(self.data.ctrl[0] > FINGER_TRAVEL / 2)

    def finger_travel(self) -> tuple[float, float]:
        """How far each finger has slid inwards (0 = open)."""
        left = self.data.qpos[self.model.jnt_qposadr[self.model.joint("finger_left").id]]
        right = self.data.qpos[self.model.jnt_qposadr[self.model.joint("finger_right").id]]
        return float(left), float(right)

    def hand_matrix(self) -> Vector:
        return quat_matrix(self.data.xquat[self.model.body("hand").id])

    def block(self) -> BlockPose:
        q = self.data.qpos
        return BlockPose(
            q[self._block_qpos : self._block_qpos + 3].copy(),
            q[self._block_qpos + 3 : self._block_qpos + 7].copy(),
        )

    def holding(self) -> bool:
        """Whether both fingers touch the block."""
        touching = set()
        for contact in self.data.contact[: self.data.ncon]:
            pair = {int(contact.geom1), int(contact.geom2)}
            for side in ("finger_left", "finger_right"):
                if pair == {self.model.geom(side).id, self.model.geom("block").id}:
                    touching.add(side)
        return len(touching) == 2

    # ----- acting -----
    def move_to(self, goal: Vector) -> Vector:
        """Glide the grip point to `goal` (clamped) and settle; return the goal.

        A hand that something blocked (the block, the table) is then told to stay where
        it stopped, as a force-limited arm controller would, so it rests on the obstacle
        instead of pressing it into the table.
        """
        goal = clamp_to_workspace(goal)
        start = self.grip()
        for k in range(1, MOVE_STEPS + 1):
            self.data.mocap_pos[0] = start + (goal - start) * (k / MOVE_STEPS)
            mujoco.mj_step(self.model, self.data)
        self._run(SETTLE_STEPS)
        if float(np.linalg.norm(self.grip() - goal)) > BLOCKED:
            self.data.mocap_pos[0] = self.grip()
            self._run(SETTLE_STEPS)
        return goal

    def set_gripper(self, closed: bool) -> None:
        self.data.ctrl[:] = FINGER_TRAVEL if closed else 0.0
        self._run(GRIP_STEPS)

    def _run(self, steps: int) -> None:
        for _ in range(steps):
            mujoco.mj_step(self.model, self.data)
        # mj_step leaves positions of bodies and sites one step stale; refresh them so
        # readings match the state (and a copy loaded from it).
        mujoco.mj_forward(self.model, self.data)


# ----- what the two environments share: actions, text, plans -----
MOVE_GRAMMAR = (
    "('move', DX, DY, DZ) moves the gripper by DX, DY, DZ, each in [-1, 1], where 1 is "
    f"{MOVE_UNIT * 100:.0f} cm; x is to the right, y away from the camera, z up"
)


def parse_move(action: Action) -> Vector:
    """The displacement in metres of a ('move', dx, dy, dz) or ('move', [dx, dy, dz])."""
    dx, dy, dz = expect_args(action, 3, "('move', dx, dy, dz) with each in [-1, 1]")
    return MOVE_UNIT * np.array(
        [
            expect_float(dx, "dx", -1.0, 1.0),
            expect_float(dy, "dy", -1.0, 1.0),
            expect_float(dz, "dz", -1.0, 1.0),
        ]
    )


def move_feedback(sim: FetchSim, goal: Vector, requested: Vector) -> str:
    """Say where the gripper went, and why if it fell short."""
    reached = sim.grip()
    parts = [f"Moved the gripper to {cm(reached)}."]
    if not np.allclose(goal, requested, atol=1e-9):
        parts.append("The move was clipped at the edge of the workspace.")
    elif float(np.linalg.norm(reached - goal)) > BLOCKED:
        parts.append("Something blocked the gripper on the way.")
    return " ".join(parts)


def cm(point: Vector) -> str:
    """A position in centimetres, as the prompts and feedback write it."""
    x, y, z = (round(float(v) * 100, 1) for v in point)
    return f"({x:g}, {y:g}, {z:g}) cm"


def move_action(delta: Vector) -> str:
    """The action string for a displacement in metres (each axis at most one unit)."""
    units = [round(float(v) / MOVE_UNIT, 3) for v in delta]
    text = ", ".join(f"{u:g}" for u in (0.0 if u == 0 else u for u in units))
    return f"('move', {text})"


def leg(start: Vector, end: Vector, axis_by_axis: bool = False) -> list[str]:
    """Moves from `start` to `end`: straight (in as few equal moves as the one-unit limit
    allows) or one axis at a time."""
    delta = end - start
    if axis_by_axis:
        moves: list[str] = []
        for axis in range(3):
            single = np.zeros(3)
            single[axis] = delta[axis]
            moves += leg(np.zeros(3), single)
        return moves
    count = math.ceil(float(np.max(np.abs(delta))) / MOVE_UNIT - 1e-9)
    return [move_action(delta / count) for _ in range(count)] if count > 0 else []


def random_nudge(
    rng: np.random.Generator, grip: Vector, low: Vector = WORKSPACE_LOW
) -> tuple[str, Vector]:
    """A small random move that stays inside the workspace (and above `low`)."""
    goal = np.clip(grip + rng.uniform(-0.06, 0.06, size=3), low, WORKSPACE_HIGH)
    delta = np.round((goal - grip) / MOVE_UNIT, 2)
    return move_action(delta * MOVE_UNIT), grip + delta * MOVE_UNIT


def check_point(value: Any, what: str, low: Vector, high: Vector) -> Vector:
    if not (isinstance(value, list) and len(value) == 3):
        raise ValueError(f"{what} must be [x, y, z] in metres")
    if any(isinstance(v, bool) or not isinstance(v, (int, float)) for v in value):
        raise ValueError(f"{what} entries must be numbers")
    point = np.array(value, dtype=np.float64)
    if np.any(point < low - 1e-9) or np.any(point > high + 1e-9):
        raise ValueError(f"{what} must lie within {low.tolist()} .. {high.tolist()}")
    return point
