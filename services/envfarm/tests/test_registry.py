"""The registry: exactly VisGym's seventeen environments, and a missing one is an error."""

from __future__ import annotations

import gymnasium as gym
import pytest

from gantry.envfarm.envs import registry
from gantry.envfarm.envs.base import Solver, VisGymEnv

VISGYM_17 = {
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
}


def test_exactly_the_seventeen_environments_are_registered() -> None:
    assert len(registry.env_ids()) == 17
    assert set(registry.env_ids()) == VISGYM_17 == set(registry.MODULES)
    for env_id, (env_type, solver) in registry.ENVIRONMENTS.items():
        assert issubclass(env_type, VisGymEnv) and env_type.env_id == env_id
        assert isinstance(solver, Solver) and solver.strategies


def test_a_missing_module_is_an_error_not_a_skip(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(registry, "MODULES", (*registry.MODULES, "no_such_environment"))
    with pytest.raises(ModuleNotFoundError, match="no_such_environment"):
        registry._load()


def test_a_module_must_register_its_own_id(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(registry, "MODULES", ("maze_2d", "maze_3d"))
    assert sorted(registry._load()) == ["maze_2d", "maze_3d"]
    import gantry.envfarm.envs.maze_3d as maze_3d

    monkeypatch.setattr(maze_3d, "ENTRY", registry.ENVIRONMENTS["maze_2d"])
    with pytest.raises(RuntimeError, match="registers 'maze_2d', not 'maze_3d'"):
        registry._load()


def test_make_and_gymnasium_registration() -> None:
    with pytest.raises(KeyError, match="unknown environment"):
        registry.make("fetch_slide")
    registry.register_with_gymnasium()
    env = gym.make("gantry/fetch_pick_and_place-v0", difficulty="hard")
    obs, _ = env.reset(seed=0)
    assert obs["image"].shape == (336, 336, 3)
    inner = env.unwrapped
    assert isinstance(inner, VisGymEnv) and inner.env_id == "fetch_pick_and_place"
    assert inner.max_steps == 30
