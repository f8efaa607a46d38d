"""mental_rotation_3d_cube: rotation actions, conventions, symmetric shapes, cube counts."""

from __future__ import annotations

import numpy as np
import pytest

from gantry.envfarm.envs import make, solver_for
from gantry.envfarm.envs.base import run_plan
from gantry.envfarm.envs.mental_rotation_3d_cube import MentalRotation3DCube, symmetries
from gantry.envfarm.envs.solid import (
    axis_rotation,
    euler_angles,
    euler_matrix,
    random_rotation,
    rotation_json,
)


def fresh(difficulty: str = "easy", seed: int = 0) -> MentalRotation3DCube:
    env = make("mental_rotation_3d_cube", difficulty)
    assert isinstance(env, MentalRotation3DCube)
    env.reset(seed=seed)
    return env


@pytest.mark.parametrize(
    ("action", "message"),
    [
        ("('rotate', [10, 20])", "usage: ('rotate', [a, b, c])"),
        ("('rotate', [0, 181, 0])", "the y angle must be between -180 and 180"),
        ("('rotate', ['x', 0, 0])", "the x angle must be a number"),
        ("('rotate', 0, 0, -200)", "the z angle must be between -180 and 180"),
        ("('spin', [0, 0, 0])", "unknown action 'spin'"),
    ],
)
def test_invalid_actions_explain_themselves(action: str, message: str) -> None:
    env = fresh()
    before = env.export_state()
    _, _, _, info = env.transition(action)
    assert info["valid_action"] is False and message in info["env_feedback"]
    assert env.export_state() == before


def test_both_spellings_turn_about_the_viewer_axes() -> None:
    env = fresh(seed=3)
    start = env.rotation.copy()
    _, _, _, info = env.transition("('rotate', [0, 0, 90])")
    assert info["env_feedback"] == "Rotated by 0 degrees about x, 0 about y and 90 about z."
    assert np.allclose(env.rotation, axis_rotation(2, 90) @ start)
    env.transition("('rotate', 30, -20, 0)")
    assert np.allclose(env.rotation, euler_matrix(30, -20, 0) @ axis_rotation(2, 90) @ start)
    # Right-handed: +90 about z carries the right-pointing x axis to up (y).
    assert np.allclose(axis_rotation(2, 90) @ [1, 0, 0], [0, 1, 0])


def test_euler_angles_invert_euler_matrix() -> None:
    rng = np.random.default_rng(0)
    for _ in range(200):
        rotation = random_rotation(rng)
        a, b, c = euler_angles(rotation)
        assert -90 <= b <= 90
        assert np.allclose(euler_matrix(a, b, c), rotation, atol=1e-9)
    assert np.allclose(
        euler_matrix(*euler_angles(euler_matrix(10, 90, 25))), euler_matrix(10, 90, 25)
    )


def test_cube_counts_follow_the_difficulty() -> None:
    for difficulty, count in (("easy", 4), ("hard", 6)):
        for seed in range(30):
            env = fresh(difficulty, seed)
            assert len(env.cells) == count
            assert env.error() >= 45


def test_symmetric_shapes_accept_every_identical_view() -> None:
    env = fresh()
    target = env.target
    square = [[0, 0, 0], [1, 0, 0], [0, 1, 0], [1, 1, 0]]  # 8 symmetries of a 2x2 square
    quarter = target @ axis_rotation(2, 90)  # turned a quarter about the square's normal
    state = env.export_state() | {"cubes": square, "rotation": rotation_json(quarter)}
    env.reset(options={"state": state})
    assert len(symmetries(env.cells)) == 8
    assert env.goal_reached() and env.error() < 1e-6
    ell = [[0, 0, 0], [1, 0, 0], [2, 0, 0], [0, 1, 0]]
    env.reset(options={"state": state | {"cubes": ell}})
    assert len(symmetries(env.cells)) == 1
    assert not env.goal_reached() and env.error() == pytest.approx(90)


def test_plans_land_within_a_degree() -> None:
    solver = solver_for("mental_rotation_3d_cube")
    for seed in range(20):
        env = fresh("hard", seed)
        for action in solver.solve(env, "axis_by_axis")[:-1]:
            env.transition(action)
        assert env.error() < 1.0
    env = fresh("hard", 1)
    assert run_plan(env, solver.solve(env)) == 1.0


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"cubes": [[0, 0, 0], [2, 0, 0]]}, "face-connected"),
        ({"cubes": [[0, 0, 0], [0, 0, 0]]}, "distinct"),
        ({"rotation": [[1, 0, 0], [0, 1, 0], [0, 0, -1]]}, "not a rotation"),
        ({"target": [[2, 0, 0], [0, 1, 0], [0, 0, 1]]}, "not a rotation"),
    ],
)
def test_bad_states_are_rejected(change: dict[str, object], message: str) -> None:
    env = fresh()
    with pytest.raises(ValueError, match=message):
        env.reset(options={"state": env.export_state() | change})


def test_image_changes_after_a_rotation() -> None:
    env = fresh(seed=2)
    before = env.render_image()
    assert before.shape == (190, 336, 3)
    env.transition("('rotate', [0, 40, 0])")
    after = env.render_image()
    assert not np.array_equal(before[:, 168:], after[:, 168:])
    assert np.array_equal(before[:, :168], after[:, :168])
