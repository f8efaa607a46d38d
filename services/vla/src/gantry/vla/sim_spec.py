"""What the Meta-World setup means, without importing the simulator.

The service describes its policy from these (GetPolicyInfo) and must not need MuJoCo or
Meta-World to do so.
"""

from __future__ import annotations

STATE_NAMES = ["hand_x", "hand_y", "hand_z", "gripper_opening"]
STATE_UNITS = ["m", "m", "m", "normalised [0, 1], 1 = open"]
ACTION_NAMES = ["dx", "dy", "dz", "grip"]
ACTION_UNITS = ["1/100 m per step", "1/100 m per step", "1/100 m per step", "effort"]
ACTION_NOTES = (
    "Meta-World end-effector control: the mocap target moves by action[:3] / 100 m per "
    "control step in the world frame (x right, y away from the robot base, z up); "
    "entries are clipped to [-1, 1]"
)
GRIPPER_NOTES = "grip > 0 closes the fingers, < 0 opens them"
CAMERA = "corner"
CAMERA_VIEW = "fixed third-person camera at the table's front corner, looking at the arm"
CAMERA_ORIENTATION = "row 0 is the top of the image; not mirrored"

TASKS: dict[str, list[str]] = {
    "reach-v3": ["reach the goal position", "move the hand to the goal"],
    "button-press-topdown-v3": ["press the button from the top", "push the button down"],
    "drawer-close-v3": ["close the drawer", "push the drawer shut"],
}
MAX_STEPS = 150  # the scripted policies solve these in ~40-90 steps
CONTROL_HZ = 80.0  # Meta-World: 5 MuJoCo steps of 2.5 ms per control step
