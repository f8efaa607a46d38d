"""mental_rotation_3d_object: tolerances, asymmetric objects, OBJ meshes, rendering."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from gantry.envfarm.envs import make, solver_for
from gantry.envfarm.envs.base import run_plan
from gantry.envfarm.envs.mental_rotation_3d_object import (
    DIRECTIONS,
    MentalRotation3DObject,
    parse_obj,
)
from gantry.envfarm.envs.solid import axis_rotation, rotation_json

# An asymmetric wedge: three differently coloured groups.
WEDGE = """# a test mesh
v 0 0 0
v 2 0 0
v 0 1 0
v 0 0 0.5
usemtl first
f 1 3 2
f 1 2 4
usemtl second
f 1/1 4/1 3/1
usemtl third
f -3 -2 -1
"""


def fresh(difficulty: str = "easy", seed: int = 0, **kwargs: object) -> MentalRotation3DObject:
    env = make("mental_rotation_3d_object", difficulty, **kwargs)
    assert isinstance(env, MentalRotation3DObject)
    env.reset(seed=seed)
    return env


@pytest.mark.parametrize(
    ("action", "message"),
    [
        ("('rotate', [1, 2, 3, 4])", "usage: ('rotate', [a, b, c])"),
        ("('rotate', [-181, 0, 0])", "the x angle must be between -180 and 180"),
        ("('rotate', 0, 'up', 0)", "the y angle must be a number"),
        ("('flip', 1, 2, 3)", "unknown action 'flip'"),
    ],
)
def test_invalid_actions_explain_themselves(action: str, message: str) -> None:
    env = fresh()
    before = env.export_state()
    _, _, _, info = env.transition(action)
    assert info["valid_action"] is False and message in info["env_feedback"]
    assert env.export_state() == before


@pytest.mark.parametrize(("degrees", "easy", "hard"), [(4, True, True), (10, True, False)])
def test_tolerance_differs_between_difficulties(degrees: int, easy: bool, hard: bool) -> None:
    for difficulty, expected in (("easy", easy), ("hard", hard)):
        env = fresh(difficulty, 5)
        near = axis_rotation(0, degrees) @ env.target
        env.reset(options={"state": env.export_state() | {"rotation": rotation_json(near)}})
        assert env.error() == pytest.approx(degrees)
        assert env.goal_reached() is expected
    env = fresh("easy", 5)
    _, _, _, info = env.transition("('rotate', [0, 0, 10])")
    assert info["env_feedback"] == "Rotated by 0 degrees about x, 0 about y and 10 about z."


def test_procedural_objects_are_asymmetric_and_start_far_away() -> None:
    for seed in range(40):
        env = fresh("hard", seed)
        parts = env.model["parts"]
        colors = [tuple(p["color"]) for p in parts] + [tuple(env.model["body"]["color"])]
        assert len(set(colors)) == len(colors)
        assert len({DIRECTIONS[p["direction"]][0] for p in parts}) >= 2
        assert env.error() >= 45


def test_hard_plans_land_within_a_degree() -> None:
    solver = solver_for("mental_rotation_3d_object")
    for seed in range(20):
        env = fresh("hard", seed)
        for action in solver.solve(env)[:-1]:
            env.transition(action)
        assert env.error() < 1.0


def test_state_validation_rejects_symmetric_or_bad_objects() -> None:
    env = fresh()
    state = env.export_state()
    model = state["object"]
    same = model | {"parts": [p | {"color": model["body"]["color"]} for p in model["parts"]]}
    with pytest.raises(ValueError, match="distinct colours"):
        env.reset(options={"state": state | {"object": same}})
    line = model | {"parts": [model["parts"][0] | {"direction": d} for d in ("+x", "-x")]}
    line["parts"][1] = line["parts"][1] | {"color": [1, 2, 3]}
    with pytest.raises(ValueError, match="at least two axes"):
        env.reset(options={"state": state | {"object": line}})


def test_parse_obj_handles_slashes_negative_indices_and_materials() -> None:
    vertices, faces, colors = parse_obj(WEDGE)
    assert vertices.shape == (4, 3)
    assert faces == [(0, 2, 1), (0, 1, 3), (0, 3, 2), (1, 2, 3)]
    assert colors[0] == colors[1] != colors[2] != colors[3]
    with pytest.raises(ValueError, match="missing vertex"):
        parse_obj("v 0 0 0\nv 1 0 0\nf 1 2 5\n")
    with pytest.raises(ValueError, match="no faces"):
        parse_obj("v 0 0 0\n")


def test_dataset_mode_loads_obj_meshes(tmp_path: Path) -> None:
    (tmp_path / "wedge.obj").write_text(WEDGE)
    (tmp_path / "readme.txt").write_text("not a mesh")
    env = fresh("hard", 2, dataset_path=tmp_path)
    assert env.model == {"mesh": "wedge.obj"}
    image = env.render_image()
    assert image.shape == (190, 336, 3) and image[:, 168:].std() > 5
    assert "+x extreme" in env.render_text()
    assert run_plan(env, solver_for("mental_rotation_3d_object").solve(env)) == 1.0
    with pytest.raises(ValueError, match="invalid state"):
        env.reset(options={"state": env.export_state() | {"object": {"mesh": "../wedge.obj"}}})


def test_image_and_text_change_after_a_rotation() -> None:
    env = fresh(seed=4)
    image, text = env.render_image(), env.render_text()
    env.transition("('rotate', [25, 0, 0])")
    after = env.render_image()
    assert not np.array_equal(image[:, 168:], after[:, 168:])
    assert np.array_equal(image[:, :168], after[:, :168])
    assert text != env.render_text() and text.isascii()
