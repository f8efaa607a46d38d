"""Meta-World tasks as gymnasium environments with camera images and language.

Each episode is one Meta-World v3 task (Sawyer arm, MuJoCo) whose object and goal
positions come from the episode's seed. Observations are a dict: `image` (uint8
[S, S, 3] from the fixed "corner" camera) and `state` (float32 [4]: the hand's x, y, z
in metres and the gripper opening in [0, 1]). Actions are float32 [4] in [-1, 1]:
hand deltas along x, y, z (1 = 1 cm per control step, sim_spec.ACTION_NOTES) and the
gripper effort (> 0 closes). `info["success"]` is Meta-World's own success check.

Rendering: MuJoCo's renderer offscreen through EGL (`MUJOCO_GL=egl`, set here unless
the caller chose a backend; Mesa's software EGL works without a GPU). Where no GL
context can be made at all, `schematic` frames are drawn with numpy instead: a top-down
sketch of the hand, the object and the goal. The two kinds are never mixed in one run.

Compatibility: metaworld 3.1.1 was written for MuJoCo 3.3, whose weld constraints hold 11
numbers; MuJoCo 4 adds a twelfth. `_patch_welds` makes Meta-World write its 11 and leave
the new one at the model's value (the only incompatibility met; metaworld is installed
without its `mujoco==3.3.0` pin, see requirements-nodeps.txt).
"""

from __future__ import annotations

import importlib
import os
from dataclasses import dataclass
from typing import Any

os.environ.setdefault("MUJOCO_GL", "egl")

import gymnasium as gym
import mujoco  # type: ignore[import-untyped]
import numpy as np
from numpy.typing import NDArray

from gantry.vla.sim_spec import CAMERA, MAX_STEPS, TASKS


def _patch_welds() -> None:
    import metaworld.sawyer_xyz_env as sawyer  # type: ignore[import-untyped]

    def reset_mocap_welds(self: Any) -> None:
        if self.model.nmocap > 0 and self.model.eq_data is not None:
            for i in range(self.model.eq_data.shape[0]):
                if self.model.eq_type[i] == mujoco.mjtEq.mjEQ_WELD:
                    self.model.eq_data[i, :11] = [0, 0, 0, 0, 0, 0, -1, 0, 0, 0, 5]

    sawyer.SawyerMocapBase.reset_mocap_welds = reset_mocap_welds  # type: ignore[method-assign]


_patch_welds()
# Meta-World's own annotations are partial (abstract policies, untyped constructors).
metaworld: Any = importlib.import_module("metaworld")
ENV_POLICY_MAP: Any = importlib.import_module("metaworld.policies").ENV_POLICY_MAP


class _GLFrames:
    """MuJoCo's offscreen renderer (EGL) for one model."""

    kind = "mujoco"

    def __init__(self, model: Any, size: int) -> None:
        # A small offscreen buffer, no multisampling, shadows or reflections: with Mesa's
        # software rasteriser this is ~20x faster than Meta-World's defaults at 64 px.
        model.vis.global_.offwidth = max(size, 1)
        model.vis.global_.offheight = max(size, 1)
        model.vis.quality.offsamples = 0
        self.renderer = mujoco.Renderer(model, size, size)
        self.renderer.scene.flags[mujoco.mjtRndFlag.mjRND_SHADOW] = 0
        self.renderer.scene.flags[mujoco.mjtRndFlag.mjRND_REFLECTION] = 0

    def __call__(self, env: Any) -> NDArray[np.uint8]:
        self.renderer.update_scene(env.data, camera=CAMERA)
        # The corner camera's raw image is upside down; flip it so row 0 is the top.
        return np.ascontiguousarray(np.asarray(self.renderer.render(), dtype=np.uint8)[::-1])

    def close(self) -> None:
        self.renderer.close()


class _SchematicFrames:
    """Top-down numpy sketch used where no GL context exists: hand, object, goal."""

    kind = "schematic"
    # World x in [-0.5, 0.5], y in [0.3, 1.0] onto the image.
    LOW = np.array([-0.5, 0.3])
    HIGH = np.array([0.5, 1.0])

    def __init__(self, model: Any, size: int) -> None:
        self.size = size
        yy, xx = np.mgrid[0:size, 0:size]
        self.grid = np.stack([xx, yy], axis=-1).astype(np.float32)

    def _disc(
        self, img: NDArray[np.uint8], xy: NDArray[Any], radius: float, rgb: tuple[int, ...]
    ) -> None:
        rel = (np.asarray(xy[:2]) - self.LOW) / (self.HIGH - self.LOW)
        centre = np.array([rel[0], 1.0 - rel[1]]) * (self.size - 1)
        inside = np.linalg.norm(self.grid - centre, axis=-1) <= radius
        img[inside] = rgb

    def __call__(self, env: Any) -> NDArray[np.uint8]:
        img = np.full((self.size, self.size, 3), 200, dtype=np.uint8)
        scale = self.size / 32
        self._disc(img, env._target_pos, 2.0 * scale, (0, 170, 0))
        self._disc(img, env._get_pos_objects()[:3], 2.0 * scale, (0, 0, 200))
        hand = env.tcp_center
        self._disc(img, hand, (1.5 + 2.0 * float(hand[2])) * scale, (200, 0, 0))
        return img

    def close(self) -> None:
        pass


def make_frames(model: Any, size: int, backend: str = "auto") -> _GLFrames | _SchematicFrames:
    if backend == "schematic":
        return _SchematicFrames(model, size)
    try:
        return _GLFrames(model, size)
    except Exception:
        if backend == "mujoco":
            raise
        return _SchematicFrames(model, size)


@dataclass
class Step:
    observation: dict[str, NDArray[Any]]
    success: bool


class MetaWorldEnv(gym.Env[dict[str, NDArray[Any]], NDArray[np.float32]]):
    """One Meta-World task with images, proprioception and an instruction."""

    metadata = {"render_modes": ["rgb_array"]}  # noqa: RUF012 (gymnasium's own attribute)

    def __init__(
        self,
        task: str,
        *,
        seed: int = 0,
        image_size: int = 64,
        max_steps: int = MAX_STEPS,
        render_backend: str = "auto",
        instruction_index: int = 0,
    ) -> None:
        if task not in TASKS:
            raise ValueError(f"unknown task {task!r}; known: {', '.join(TASKS)}")
        self.task = task
        self.instruction = TASKS[task][instruction_index % len(TASKS[task])]
        self.max_steps = max_steps
        self.image_size = image_size
        self.render_mode = "rgb_array"
        envs = metaworld.ALL_V3_ENVIRONMENTS_GOAL_OBSERVABLE
        self.sim = envs[f"{task}-goal-observable"](seed=seed)
        self.sim.max_path_length = max_steps + 1  # this wrapper owns truncation
        self.frames = make_frames(self.sim.model, image_size, render_backend)
        self.expert = ENV_POLICY_MAP[task]()
        self.action_space = gym.spaces.Box(-1.0, 1.0, (4,), dtype=np.float32)
        self.observation_space = gym.spaces.Dict(  # type: ignore[assignment]
            {
                "image": gym.spaces.Box(0, 255, (image_size, image_size, 3), dtype=np.uint8),
                "state": gym.spaces.Box(-np.inf, np.inf, (4,), dtype=np.float32),
            }
        )
        self._raw: NDArray[np.float64] = np.zeros(39)
        self._steps = 0

    @property
    def render_kind(self) -> str:
        return self.frames.kind

    def _observation(self) -> dict[str, NDArray[Any]]:
        return {
            "image": self.frames(self.sim),
            "state": self._raw[:4].astype(np.float32),
        }

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[dict[str, NDArray[Any]], dict[str, Any]]:
        # The task's positions were fixed by the constructor's seed (Meta-World freezes
        # them); `seed` here is accepted for the gymnasium API and ignored.
        self._raw, _ = self.sim.reset()
        self._steps = 0
        return self._observation(), {"instruction": self.instruction}

    def expert_action(self) -> NDArray[np.float32]:
        """The scripted policy's action for the current state (clipped to the box)."""
        action = np.asarray(self.expert.get_action(self._raw), dtype=np.float32)
        return np.clip(action, -1.0, 1.0)

    def step(
        self, action: NDArray[np.float32]
    ) -> tuple[dict[str, NDArray[Any]], float, bool, bool, dict[str, Any]]:
        action = np.clip(np.asarray(action, dtype=np.float32), -1.0, 1.0)
        self._raw, reward, _, _, info = self.sim.step(action)
        self._steps += 1
        success = bool(info.get("success", 0.0))
        truncated = self._steps >= self.max_steps
        info = {"success": success, "instruction": self.instruction}
        return self._observation(), float(reward), success, truncated, info

    def render(self) -> NDArray[np.uint8]:  # type: ignore[override]
        return self.frames(self.sim)

    def close(self) -> None:
        self.frames.close()
        self.sim.close()
