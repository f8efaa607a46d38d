"""fetch_reach: move the robot's gripper to a target point in the air over a table.

VisGym wraps gymnasium-robotics' FetchReach (MuJoCo): the agent moves the end effector
by a delta (dx, dy, dz), each in [-1, 1], and succeeds when the gripper is within 5 cm
of a red target ball. Gantry simulates a Fetch-style gripper in MuJoCo (see
`fetch_sim` for the model and why the image is drawn by a software renderer) and
keeps the action: ('move', dx, dy, dz) with 1 = 10 cm, x to the right, y away from the
camera, z up. As in FetchReach the fingers stay closed.

Levels: easy puts the target within 15 cm of the start on every axis (FetchReach's
sampling range) and accepts 5 cm; hard puts it anywhere in the 50×36×32.5 cm workspace
and accepts 3 cm. Targets start at least 8 cm (easy) or 10 cm (hard) from the gripper.
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np

from gantry.envfarm.envs.base import JsonState, Solver, VisGymEnv
from gantry.envfarm.envs.fetch_env import AXES_TEXT, FetchEnv
from gantry.envfarm.envs.fetch_sim import (
    MOVE_GRAMMAR,
    WORKSPACE_HIGH,
    WORKSPACE_LOW,
    cm,
    leg,
    random_nudge,
)

START_LOW = np.array([-0.12, -0.08, 0.1])
START_HIGH = np.array([0.12, 0.08, 0.25])
EASY_RANGE = 0.15
MIN_DISTANCE = {"easy": 0.08, "hard": 0.10}


class FetchReach(FetchEnv):
    env_id: ClassVar[str] = "fetch_reach"
    with_block: ClassVar[bool] = False
    description: ClassVar[str] = (
        "A robot gripper hangs over a table. Move it so that the point between its "
        "fingertips reaches the translucent red ball (a cross on the table and a shadow "
        "mark the spot under the ball). " + AXES_TEXT
    )
    action_grammar: ClassVar[str] = MOVE_GRAMMAR + "; 'stop'"
    action_examples: ClassVar[tuple[str, ...]] = (
        "('move', 0.5, 0, -0.2)",
        "('move', [-1, 0.3, 0])",
        "stop",
    )
    levels: ClassVar[dict[str, str]] = {
        "easy": "target within 15 cm of the start per axis, tolerance 5 cm",
        "hard": "target anywhere in the workspace, tolerance 3 cm",
    }

    def _sample_state(self, rng: np.random.Generator) -> JsonState:
        start = np.round(rng.uniform(START_LOW, START_HIGH), 3)
        while True:
            if self.difficulty == "easy":
                raw = start + rng.uniform(-EASY_RANGE, EASY_RANGE, size=3)
            else:
                raw = rng.uniform(WORKSPACE_LOW, WORKSPACE_HIGH)
            target = np.round(np.clip(raw, WORKSPACE_LOW, WORKSPACE_HIGH), 3)
            if np.linalg.norm(target - start) >= MIN_DISTANCE[self.difficulty]:
                return {
                    "gripper": start.tolist(),
                    "gripper_closed": True,
                    "target": target.tolist(),
                }

    def goal_reached(self) -> bool:
        return bool(np.linalg.norm(self.sim.grip() - self.target) <= self.tolerance)

    def render_text(self) -> str:
        return "\n".join(
            [
                AXES_TEXT,
                self._gripper_line(),
                f"Target ball: {cm(self.target)}.",
                f"Success: the grip point within {self.tolerance * 100:g} cm of the target. "
                + self.move_limit_text(),
            ]
        )


class FetchReachSolver(Solver):
    """`straight`: along the straight line, in as few equal moves as the 10 cm limit allows.
    `axis_by_axis`: x, then y, then z."""

    strategies: ClassVar[tuple[str, ...]] = ("straight", "axis_by_axis")

    def plan(self, env: VisGymEnv, strategy: str) -> list[str]:
        assert isinstance(env, FetchReach)
        return leg(env.sim.grip(), env.target, axis_by_axis=strategy == "axis_by_axis")

    def detour(self, env: VisGymEnv, rng: np.random.Generator) -> str:
        assert isinstance(env, FetchReach)
        action, _ = random_nudge(rng, env.sim.grip())
        return action


ENTRY = (FetchReach, FetchReachSolver())
