"""What fetch_reach and fetch_pick_and_place share: the simulated gripper as a VisGymEnv.

The state is JSON: `gripper` (grip point, metres), `gripper_closed`, `target`, for
pick-and-place a `block` ({"position", "quat" as w, x, y, z}), and, once the episode has
run, `physics` (the simulator's full state; when present it wins over the readable
fields, so `clone()` continues exactly like the original). Loading a state without
`physics` puts the hand and block there and lets them settle for 0.3 s.
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np

from gantry.envfarm.envs.actions import Action, ActionError, expect_args
from gantry.envfarm.envs.base import Image, JsonState, VisGymEnv
from gantry.envfarm.envs.fetch_render import render_scene
from gantry.envfarm.envs.fetch_sim import (
    MOVE_UNIT,
    WORKSPACE_HIGH,
    WORKSPACE_LOW,
    BlockPose,
    FetchSim,
    Vector,
    check_point,
    clamp_to_workspace,
    cm,
    move_feedback,
    parse_move,
)

TOLERANCE = {"easy": 0.05, "hard": 0.03}  # metres; 5 cm is the Fetch tasks' threshold
AXES_TEXT = (
    "The camera looks at a table from the front. Positions are in cm: x to the right, "
    "y away from the camera, z up; the table top is z = 0 and its centre is x = y = 0 "
    "(grid lines every 5 cm, labelled every 10 cm)."
)


class FetchEnv(VisGymEnv):
    """A Cartesian gripper over a table, moved by ('move', dx, dy, dz) in 10 cm units."""

    with_block: ClassVar[bool]
    sim: FetchSim
    target: Vector

    @property
    def tolerance(self) -> float:
        return TOLERANCE[self.difficulty]

    # ----- state -----
    def _load_state(self, state: JsonState) -> None:
        if not hasattr(self, "sim"):
            self.sim = FetchSim(self.with_block)
        gripper = check_point(state["gripper"], "gripper", WORKSPACE_LOW, WORKSPACE_HIGH)
        closed = state["gripper_closed"]
        if not isinstance(closed, bool):
            raise ValueError("gripper_closed must be true or false")
        self.target = check_point(state["target"], "target", WORKSPACE_LOW, WORKSPACE_HIGH)
        block = _check_block(state["block"]) if self.with_block else None
        self.sim.place(gripper, closed, block)
        if state.get("physics") is not None:
            self.sim.import_physics(state["physics"])

    def _state(self) -> JsonState:
        state: dict[str, Any] = {
            "gripper": [float(v) for v in self.sim.grip()],
            "gripper_closed": self.sim.closed(),
            "target": [float(v) for v in self.target],
        }
        if self.with_block:
            pose = self.sim.block()
            state["block"] = {
                "position": [float(v) for v in pose.position],
                "quat": [float(v) for v in pose.quat],
            }
        state["physics"] = self.sim.export_physics()
        return state

    # ----- actions -----
    def _apply(self, action: Action) -> str:
        if action.name == "move":
            requested = self.sim.grip() + parse_move(action)
            goal = self.sim.move_to(clamp_to_workspace(requested))
            return move_feedback(self.sim, goal, requested) + self._goal_note()
        if action.name == "gripper" and self.with_block:
            (arg,) = expect_args(action, 1, "('gripper', 'open') or ('gripper', 'close')")
            if not (isinstance(arg, str) and arg.lower() in ("open", "close")):
                raise ActionError("the gripper command is 'open' or 'close'")
            self.sim.set_gripper(arg.lower() == "close")
            return self._grip_feedback(arg.lower() == "close") + self._goal_note()
        names = "('move', dx, dy, dz)" + (", ('gripper', ...)" if self.with_block else "")
        raise ActionError(f"unknown action {action.name!r}; use {names} or 'stop'")

    def _grip_feedback(self, closed: bool) -> str:
        if not closed:
            return "Opened the gripper."
        return "Closed the gripper" + (
            " around the block." if self.sim.holding() else "; it holds nothing."
        )

    def _goal_note(self) -> str:
        return " The target is reached." if self.goal_reached() else ""

    # ----- rendering -----
    def render_image(self) -> Image:
        return render_scene(self.sim, self.target)

    def _gripper_line(self) -> str:
        state = "closed" if self.sim.closed() else "open"
        holding = ", holding the block" if self.with_block and self.sim.holding() else ""
        return (
            f"Gripper (grip point between the fingertips): {cm(self.sim.grip())}, {state}{holding}."
        )

    @classmethod
    def move_limit_text(cls) -> str:
        return f"Each move is at most {MOVE_UNIT * 100:.0f} cm per axis."


def _check_block(value: Any) -> BlockPose:
    if not isinstance(value, dict):
        raise ValueError("block must be {'position': [x, y, z], 'quat': [w, x, y, z]}")
    low = np.array([-0.35, -0.30, 0.0])
    high = np.array([0.35, 0.30, WORKSPACE_HIGH[2]])
    position = check_point(value["position"], "block position", low, high)
    quat = value["quat"]
    if not (isinstance(quat, list) and len(quat) == 4) or any(
        isinstance(v, bool) or not isinstance(v, (int, float)) for v in quat
    ):
        raise ValueError("block quat must be [w, x, y, z]")
    q = np.array(quat, dtype=np.float64)
    norm = float(np.linalg.norm(q))
    if not norm > 1e-6:
        raise ValueError("block quat must not be zero")
    return BlockPose(position, q / norm)
