"""fetch_pick_and_place: pick up a block with the gripper and bring it to a target.

VisGym wraps gymnasium-robotics' FetchPickAndPlace (MuJoCo): the agent moves the end
effector by (dx, dy, dz) and opens or closes the gripper; success is the block's centre
within 5 cm of the target, which is on the table or (half the time) in the air. Gantry
simulates the task in MuJoCo (`fetch_sim`): the 5 cm blue block is held only by the
fingers' friction, so it must be grasped between them, and it falls when released.
Actions: ('move', dx, dy, dz) with 1 = 10 cm, and ('gripper', 'open'|'close').

Levels: easy puts the target on the table and accepts 5 cm; hard puts it on the table
or, half the time, 6-20 cm in the air (as FetchPickAndPlace does), and accepts 3 cm.
The gripper starts open, 12-25 cm above the table; the block starts at rest, turned by
up to 25 degrees, at least 10 cm from the target.
"""

from __future__ import annotations

import itertools
from typing import ClassVar

import numpy as np

from gantry.envfarm.envs.base import JsonState, Solver, VisGymEnv
from gantry.envfarm.envs.fetch_env import AXES_TEXT, FetchEnv
from gantry.envfarm.envs.fetch_sim import (
    BLOCK_HALF,
    MOVE_GRAMMAR,
    WORKSPACE_LOW,
    Vector,
    clamp_to_workspace,
    cm,
    leg,
    random_nudge,
    yaw_quat,
)

START_LOW = np.array([-0.15, -0.12, 0.12])
START_HIGH = np.array([0.15, 0.12, 0.25])
# Block and target footprints stay inside the workspace, so the gripper can get there.
PLACE_LOW = np.array([-0.2, -0.14])
PLACE_HIGH = np.array([0.2, 0.14])
AIR_HEIGHT = (0.06, 0.20)
MAX_YAW = 25
MIN_SEPARATION = 0.10
HOVER = BLOCK_HALF + 0.075  # fingertips clear the top of a resting block by 3 cm


class FetchPickAndPlace(FetchEnv):
    env_id: ClassVar[str] = "fetch_pick_and_place"
    with_block: ClassVar[bool] = True
    description: ClassVar[str] = (
        "A robot gripper hangs over a table with a blue 5 cm block on it. Pick the block up "
        "and bring its centre to the translucent red ball (a cross on the table and a "
        "shadow mark the spot under the ball); the block is held only between the closed "
        "fingers and falls if released. " + AXES_TEXT
    )
    action_grammar: ClassVar[str] = (
        MOVE_GRAMMAR + "; ('gripper', 'open') or ('gripper', 'close'); 'stop'"
    )
    action_examples: ClassVar[tuple[str, ...]] = (
        "('move', 0.4, -0.2, 0)",
        "('move', [0, 0, -0.75])",
        "('gripper', 'close')",
        "stop",
    )
    levels: ClassVar[dict[str, str]] = {
        "easy": "target on the table, tolerance 5 cm",
        "hard": "target on the table or in the air (half the time), tolerance 3 cm",
    }

    def _sample_state(self, rng: np.random.Generator) -> JsonState:
        gripper = np.round(rng.uniform(START_LOW, START_HIGH), 3)
        block = np.round(rng.uniform(PLACE_LOW, PLACE_HIGH), 3)
        yaw = int(rng.integers(-MAX_YAW, MAX_YAW + 1))
        in_air = self.difficulty == "hard" and bool(rng.random() < 0.5)
        height = round(float(rng.uniform(*AIR_HEIGHT)), 3) if in_air else BLOCK_HALF
        while True:
            spot = np.round(rng.uniform(PLACE_LOW, PLACE_HIGH), 3)
            if np.linalg.norm(spot - block) >= MIN_SEPARATION:
                break
        return {
            "gripper": gripper.tolist(),
            "gripper_closed": False,
            "block": {"position": [*block.tolist(), BLOCK_HALF], "quat": yaw_quat(yaw)},
            "target": [*spot.tolist(), height],
        }

    def goal_reached(self) -> bool:
        return bool(np.linalg.norm(self.sim.block().position - self.target) <= self.tolerance)

    def render_text(self) -> str:
        block = self.sim.block().position
        resting = " (on the table)" if block[2] < BLOCK_HALF + 0.005 else ""
        where = "on the table" if self.target[2] < BLOCK_HALF + 0.005 else "in the air"
        return "\n".join(
            [
                AXES_TEXT,
                self._gripper_line(),
                f"Block (5 cm cube) centre: {cm(block)}{resting}.",
                f"Target for the block's centre: {cm(self.target)}, {where}.",
                f"Success: the block's centre within {self.tolerance * 100:g} cm of the "
                "target. " + self.move_limit_text(),
            ]
        )


class FetchPickAndPlaceSolver(Solver):
    """`waypoints`: open, glide to a hover point over the block, descend, close, lift,
    carry to over the target, lower onto it and (for a target on the table) let go.
    `axis_by_axis`: the same waypoints, moving one axis at a time."""

    strategies: ClassVar[tuple[str, ...]] = ("waypoints", "axis_by_axis")

    def plan(self, env: VisGymEnv, strategy: str) -> list[str]:
        assert isinstance(env, FetchPickAndPlace)
        by_axis = strategy == "axis_by_axis"
        grip, block, target = env.sim.grip(), env.sim.block().position, env.target
        actions = ["('gripper', 'open')"] if env.sim.closed() else []
        # Only ever move sideways above HOVER, so open fingers never sweep into the block.
        if grip[2] < HOVER:
            actions += leg(grip, _at(grip, HOVER), by_axis)
            grip = _at(grip, HOVER)
        waypoints: list[Vector] = [_at(block, HOVER), clamp_to_workspace(block)]
        carry = max(HOVER, float(target[2]))
        lift, over = _at(block, carry), _at(target, carry)
        path = [grip, *waypoints]
        for start, end in itertools.pairwise(path):
            actions += leg(start, end, by_axis)
        actions.append("('gripper', 'close')")
        for start, end in ((waypoints[-1], lift), (lift, over), (over, target.copy())):
            actions += leg(start, end, by_axis)
        if target[2] < BLOCK_HALF + 0.005:
            actions.append("('gripper', 'open')")
        return actions

    def detour(self, env: VisGymEnv, rng: np.random.Generator) -> str:
        assert isinstance(env, FetchPickAndPlace)
        if rng.random() < 0.2:
            return "('gripper', 'open')"
        low = WORKSPACE_LOW.copy()
        low[2] = HOVER  # stay clear of the block
        action, _ = random_nudge(rng, env.sim.grip(), low)
        return action


def _at(point: Vector, height: float) -> Vector:
    """`point` moved to `height` (inside the workspace)."""
    return clamp_to_workspace(np.array([point[0], point[1], height]))


ENTRY = (FetchPickAndPlace, FetchPickAndPlaceSolver())
