"""The environments and their solvers, by id; also registered with gymnasium."""

from __future__ import annotations

import importlib
from typing import Any

import gymnasium as gym

from gantry.envfarm.envs.base import Solver, VisGymEnv

# One module per environment; each defines ENTRY = (EnvClass, SolverInstance).
MODULES = (
    "colorization",
    "counting",
    "fetch_pick_and_place",
    "fetch_reach",
    "jigsaw",
    "matchstick_equation",
    "matchstick_rotation",
    "maze_2d",
    "maze_3d",
    "mental_rotation_2d",
    "mental_rotation_3d_cube",
    "mental_rotation_3d_object",
    "patch_reassembly",
    "referring_dot_pointing",
    "sliding_block",
    "video_unshuffle",
    "zoom_in_puzzle",
)


def _load() -> dict[str, tuple[type[VisGymEnv], Solver]]:
    found: dict[str, tuple[type[VisGymEnv], Solver]] = {}
    for module_name in MODULES:
        qualified = f"gantry.envfarm.envs.{module_name}"
        # All seventeen exist: a module that fails to import is a bug, never skipped.
        module = importlib.import_module(qualified)
        env_type, solver = module.ENTRY
        if env_type.env_id != module_name:
            raise RuntimeError(f"{qualified} registers {env_type.env_id!r}, not {module_name!r}")
        found[env_type.env_id] = (env_type, solver)
    return found


ENVIRONMENTS: dict[str, tuple[type[VisGymEnv], Solver]] = _load()


def env_ids() -> list[str]:
    return sorted(ENVIRONMENTS)


def make(env_id: str, difficulty: str = "easy", **kwargs: Any) -> VisGymEnv:
    if env_id not in ENVIRONMENTS:
        raise KeyError(f"unknown environment {env_id!r}; known: {', '.join(env_ids())}")
    return ENVIRONMENTS[env_id][0](difficulty, **kwargs)  # type: ignore[arg-type]


def solver_for(env_id: str) -> Solver:
    if env_id not in ENVIRONMENTS:
        raise KeyError(f"unknown environment {env_id!r}")
    return ENVIRONMENTS[env_id][1]


def register_with_gymnasium() -> None:
    """`gymnasium.make("gantry/maze_2d-v0", difficulty="hard")` and friends."""
    for env_id, (env_type, _) in ENVIRONMENTS.items():
        gym_id = f"gantry/{env_id}-v0"
        if gym_id not in gym.registry:
            gym.register(id=gym_id, entry_point=f"{env_type.__module__}:{env_type.__name__}")
