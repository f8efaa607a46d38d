"""referring_dot_pointing: expressions are unambiguous, the latest mark decides, datasets."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image as PILImage

from gantry.envfarm.envs import make, referring_dot_pointing, solver_for
from gantry.envfarm.envs.base import run_plan
from gantry.envfarm.envs.referring_dot_pointing import ReferringDotPointing

Obj = dict[str, Any]
NOUN = r"(?:(small|large) )?(\w+) (\w+)"
SIDES = {"left of": ("x", -1), "right of": ("x", 1), "above": ("y", -1), "below": ("y", 1)}
EXTREME = {"leftmost": ("x", -1), "rightmost": ("x", 1), "topmost": ("y", -1), "lowest": ("y", 1)}


def fresh(difficulty: str = "easy", seed: int = 0) -> ReferringDotPointing:
    env = make("referring_dot_pointing", difficulty)
    assert isinstance(env, ReferringDotPointing)
    env.reset(seed=seed)
    return env


def _named(objects: list[Obj], size: str | None, color: str, shape: str) -> list[int]:
    return [
        k
        for k, o in enumerate(objects)
        if o["color"] == color and o["shape"] == shape and size in (None, o["size"])
    ]


def referents(expression: str, objects: list[Obj]) -> list[int]:
    """An independent reading of the expression: every object it could mean."""
    match = re.fullmatch(
        rf"the (?:(leftmost|rightmost|topmost|lowest) )?{NOUN}(?: (.+))?", expression
    )
    assert match, expression
    extreme, size, color, shape, rest = match.groups()
    found = _named(objects, size, color, shape)
    if extreme:
        axis, sign = EXTREME[extreme]
        best = max(sign * objects[k][axis] for k in found)
        found = [k for k in found if sign * objects[k][axis] == best]
    if rest:
        relation = re.fullmatch(r"(left of|right of|above|below) the (.+)", rest)
        assert relation, rest
        side, anchor_text = relation.groups()
        anchor = re.fullmatch(NOUN, anchor_text)
        assert anchor, anchor_text
        anchors = _named(objects, *anchor.groups())
        assert len(anchors) == 1, f"anchor {anchor_text!r} is ambiguous"
        axis, sign = SIDES[side]
        a = objects[anchors[0]]
        found = [k for k in found if sign * (objects[k][axis] - a[axis]) > 0]
    return found


@pytest.mark.parametrize("difficulty", ["easy", "hard"])
def test_every_expression_names_exactly_the_target(difficulty: str) -> None:
    kinds = set()
    for seed in range(80):
        env = fresh(difficulty, seed)
        assert referents(env.expression, env.objects) == [env.target], (seed, env.expression)
        kinds.add("relation" if any(s in env.expression for s in SIDES) else "other")
        kinds.add("extreme" if any(s in env.expression for s in EXTREME) else "other")
    assert kinds == {"relation", "extreme", "other"}


def test_hard_adds_distractors() -> None:
    easy = [len(fresh("easy", s).objects) for s in range(30)]
    hard = [len(fresh("hard", s).objects) for s in range(30)]
    assert min(easy) >= 5 and max(easy) <= 7
    assert min(hard) >= 8 and max(hard) <= 11


def test_hard_is_documented_as_a_gantry_extension() -> None:
    # VisGym has one setting (reproduced by easy); hard must say it is Gantry's own.
    assert "VisGym" in ReferringDotPointing.levels["easy"]
    assert "extension" in ReferringDotPointing.levels["hard"]
    assert "not in VisGym" in ReferringDotPointing.levels["hard"]
    assert "extension" in ReferringDotPointing.description
    assert "Gantry extension" in (referring_dot_pointing.__doc__ or "")


def test_text_mode_does_not_give_the_target_away() -> None:
    # No object inventory: neither the target's position nor any object's shows in text.
    for difficulty in ("easy", "hard"):
        for seed in range(40):
            env = fresh(difficulty, 900_000 + seed)
            text = env.render_text()
            assert text.splitlines()[0] == f"Point at {env.expression}."
            assert "visible only in the image" in text
            numbers = [float(n) for n in re.findall(r"\d*\.\d+", text)]
            assert numbers == []  # no coordinates before the agent marks anything
            for obj in env.objects:
                assert f"{obj['x']:.2f}" not in text and f"{obj['y']:.2f}" not in text
            x0, y0, x1, y1 = env.box
            assert f"{(x0 + x1) / 2:.2f}, {(y0 + y1) / 2:.2f}" not in text
    env = fresh("easy", 2)
    env.transition("('mark', 0.25, 0.5)")
    assert env.render_text().splitlines()[-1] == "Latest mark: (0.25, 0.50)"


def test_the_latest_mark_decides() -> None:
    env = fresh(seed=3)
    x0, y0, x1, y1 = env.box
    inside = f"('mark', {(x0 + x1) / 2}, {(y0 + y1) / 2})"
    outside = f"('mark', {min(x1 + 0.01, 1.0) if x1 < 0.99 else x0 - 0.01}, {y0})"
    assert not env.goal_reached()
    _, _, _, info = env.transition(inside)
    assert info["env_feedback"].startswith("Marked (") and env.goal_reached()
    env.transition(outside)
    assert not env.goal_reached()
    env.transition(inside)
    reward, terminated, _, _ = env.transition("stop")
    assert terminated and reward == 1.0


@pytest.mark.parametrize(
    ("action", "message"),
    [
        ("('mark', 1.2, 0.5)", "x must be between 0.0 and 1.0"),
        ("('mark', 0.5)", "usage: ('mark', x, y)"),
        ("('mark', 0.5, 'top')", "y must be a number"),
        ("('point', 0.5, 0.5)", "unknown action 'point'"),
    ],
)
def test_invalid_marks(action: str, message: str) -> None:
    env = fresh()
    _, _, _, info = env.transition(action)
    assert info["valid_action"] is False and message in info["env_feedback"]
    assert env.marks == []


def test_list_spelling_and_image_changes_after_a_mark() -> None:
    env = fresh(seed=5)
    before = env.render_image()
    env.transition("('mark', [0.5, 0.5])")
    assert env.marks == [[0.5, 0.5]]
    assert (env.render_image() != before).any()


def test_both_strategies_mark_inside_the_box() -> None:
    solver = solver_for("referring_dot_pointing")
    for seed in range(20):
        env = fresh("hard", seed)
        for strategy in solver.strategies:
            plan = solver.solve(env, strategy)
            assert len(plan) == 2
            assert run_plan(env.clone(), plan) == 1.0


def test_state_validation() -> None:
    env = fresh()
    state = env.export_state()
    with pytest.raises(ValueError, match="target"):
        env.reset(options={"state": {**state, "target": len(state["objects"])}})
    bad = [dict(o) for o in state["objects"]]
    bad[0]["shape"] = "cloud"
    with pytest.raises(ValueError, match="shape"):
        env.reset(options={"state": {**state, "objects": bad}})


def test_dataset_mode(tmp_path: Path) -> None:
    pixels = np.full((50, 80, 3), 200, np.uint8)
    pixels[10:20, 50:70] = (0, 0, 255)
    PILImage.fromarray(pixels).save(tmp_path / "desk.png")
    entry = {"image": "desk.png", "expression": "the blue box", "box": [0.625, 0.2, 0.875, 0.4]}
    (tmp_path / "annotations.json").write_text(json.dumps([entry]))
    env = make("referring_dot_pointing", "easy", dataset_path=tmp_path)
    assert isinstance(env, ReferringDotPointing)
    env.reset(seed=0)
    assert env.expression == "the blue box" and env.box == [0.625, 0.2, 0.875, 0.4]
    image = env.render_image()
    assert image.shape == (336, 336, 3)
    assert tuple(image[int(0.3 * 336), int(0.75 * 336)]) == (0, 0, 255)  # stretched, not cropped
    assert run_plan(env, solver_for("referring_dot_pointing").solve(env)) == 1.0
    with pytest.raises(ValueError, match="x0 < x1"):
        env.reset(options={"state": {**env.initial_state(), "box": [0.5, 0.2, 0.4, 0.3]}})
