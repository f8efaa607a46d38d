"""counting: marks, undo, guesses, difficulty ranges and the dataset mode."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
from PIL import Image as PILImage

from gantry.envfarm.envs import make, solver_for
from gantry.envfarm.envs.base import run_plan
from gantry.envfarm.envs.counting import COUNTS, Counting, plural


def fresh(difficulty: str = "easy", seed: int = 0) -> Counting:
    env = make("counting", difficulty)
    assert isinstance(env, Counting)
    env.reset(seed=seed)
    return env


@pytest.mark.parametrize(
    ("action", "message"),
    [
        ("('mark', 1.5, 0.2)", "x must be between 0.0 and 1.0"),
        ("('mark', 0.2)", "usage: ('mark', x, y)"),
        ("('mark', 'left', 0.2)", "x must be a number"),
        ("('guess', 3.5)", "the guess must be an integer"),
        ("('guess', -1)", "the guess must be between 0"),
        ("('guess', 'seven')", "the guess must be an integer"),
        ("('undo', 1)", "usage: ('undo',)"),
        ("('count', 3)", "unknown action 'count'"),
    ],
)
def test_invalid_actions_explain_themselves(action: str, message: str) -> None:
    env = fresh()
    _, _, _, info = env.transition(action)
    assert info["valid_action"] is False
    assert message in info["env_feedback"]
    assert env.marks == [] and env.guess is None


def test_mark_spellings_and_undo() -> None:
    env = fresh()
    assert env.transition("('mark', 0.25, 0.5)")[3]["env_feedback"] == (
        "Placed mark 1 at (0.25, 0.50)."
    )
    env.transition("('mark', [0.75, 1])")
    assert env.marks == [[0.25, 0.5], [0.75, 1.0]]
    assert env.transition("('undo',)")[3]["env_feedback"] == "Removed mark 2."
    env.transition("undo")
    _, _, _, info = env.transition("('undo',)")
    assert info["valid_action"] is True and info["env_feedback"] == "There is no mark to undo."


def test_guess_feedback_and_reward_follow_the_latest_guess() -> None:
    env = fresh(seed=4)
    wrong, right = env.count + 1, env.count
    # A guess is recorded, never judged: the feedback is the same for right and wrong.
    assert env.transition(f"('guess', {wrong})")[3]["env_feedback"] == (
        f"Recorded your guess of {wrong}."
    )
    assert not env.goal_reached()
    assert env.transition(f"('guess', {right})")[3]["env_feedback"] == (
        f"Recorded your guess of {right}."
    )
    assert env.goal_reached()
    env.transition(f"('guess', {wrong})")  # a later wrong guess replaces the right one
    reward, terminated, _, _ = env.transition("stop")
    assert terminated and reward == 0.0
    env = fresh(seed=4)
    assert run_plan(env, [f"('guess', {right})", "('mark', 0.5, 0.5)", "stop"]) == 1.0


def test_feedback_never_tells_a_blind_agent_the_count() -> None:
    # Guessing 0, 1, 2, ... must not reveal which guess was right: every guess of an
    # episode gets feedback that differs only in the guessed number.
    for difficulty in ("easy", "hard"):
        env = fresh(difficulty, 7)
        replies = set()
        for n in range(COUNTS[difficulty][1] + 1):
            feedback = env.transition(f"('guess', {n})")[3]["env_feedback"]
            if env.done:
                break  # the step limit's note is appended to the last one
            replies.add(feedback.replace(str(n), "N"))
        assert replies == {"Recorded your guess of N."}


def test_text_mode_does_not_give_the_count_away() -> None:
    # VisGym's counting has no text mode; the text carries the question and the agent's
    # own marks, never the objects (their list made counting a reading task).
    for difficulty in ("easy", "hard"):
        for seed in range(40):
            env = fresh(difficulty, 900_000 + seed)
            text = env.render_text()
            lines = text.splitlines()
            assert lines[0] == f"Question: how many {plural(env.category)} are there?"
            assert "visible only in the image" in text
            assert env.category not in "\n".join(lines[1:])  # named only in the question
            for obj in env.objects:
                assert f"{obj['x']:.3f}" not in text and f"{obj['x']:.2f}" not in text
            digits = [int(n) for n in re.findall(r"\d+", text)]
            assert env.count not in digits
            assert len(text) < 200  # no scene inventory, however many objects there are
    env = fresh("easy", 3)
    env.transition("('mark', 0.25, 0.5)")
    env.transition("('guess', 4)")
    assert env.render_text().splitlines()[-2:] == ["Marks: 1: (0.25, 0.50)", "Last guess: 4"]


def test_counts_and_distractors_follow_the_difficulty() -> None:
    counts: dict[str, list[int]] = {"easy": [], "hard": []}
    categories: dict[str, list[int]] = {"easy": [], "hard": []}
    for difficulty in ("easy", "hard"):
        for seed in range(60):
            env = fresh(difficulty, seed)
            counts[difficulty].append(env.count)
            kinds = {(o["color"], o["shape"]) for o in env.objects}
            categories[difficulty].append(len(kinds))
            low, high = COUNTS[difficulty]
            assert low <= env.count <= high
    assert max(counts["easy"]) <= 20 < max(counts["hard"])
    assert min(counts["easy"]) < 5 <= min(counts["hard"])
    assert set(categories["easy"]) == {3} and set(categories["hard"]) == {5}


def test_target_category_is_named_and_objects_do_not_overlap() -> None:
    env = fresh("hard", 11)
    assert f"how many {env.category}s" in env.render_text()
    objects = env.objects
    for k, a in enumerate(objects):
        for b in objects[k + 1 :]:
            assert np.hypot(a["x"] - b["x"], a["y"] - b["y"]) > a["r"] + b["r"]


def test_marks_change_the_image_and_undo_restores_it() -> None:
    env = fresh(seed=2)
    before = env.render_image()
    env.transition("('mark', 0.5, 0.5)")
    marked = env.render_image()
    assert (marked != before).any()
    env.transition("('undo',)")
    assert (env.render_image() == before).all()


def test_mark_then_guess_marks_each_target_only_when_it_fits() -> None:
    solver = solver_for("counting")
    for seed in range(40):
        env = fresh("hard", seed)
        plan = solver.solve(env, "mark_then_guess")
        marks = [a for a in plan if a.startswith("('mark'")]
        if env.count + 2 <= env.max_steps:
            assert len(marks) == env.count and len(plan) == env.count + 2
        else:
            assert plan == [f"('guess', {env.count})", "stop"]
        assert run_plan(env, plan) == 1.0


def test_invalid_states_are_rejected() -> None:
    env = fresh()
    state = env.export_state()
    with pytest.raises(ValueError, match="no object of category"):
        env.reset(options={"state": {**state, "category": "pink cloud"}})
    with pytest.raises(ValueError, match="guess"):
        env.reset(options={"state": {**state, "guess": "7"}})
    with pytest.raises(ValueError, match="dataset"):
        env.reset(
            options={
                "state": {
                    "category": "cat",
                    "image": "a.png",
                    "points": [],
                    "marks": [],
                    "guess": None,
                }
            }
        )


def _dataset(root: Path) -> Path:
    entries = []
    for name, count in (("few.png", 3), ("many.png", 25)):
        pixels = np.zeros((40, 60, 3), np.uint8)
        points = []
        for k in range(count):
            x, y = (k % 10) * 6 + 3, (k // 10) * 13 + 6
            pixels[y - 2 : y + 3, x - 2 : x + 3] = (255, 0, 0)
            points.append([x / 60, y / 40])
        PILImage.fromarray(pixels).save(root / name)
        entries.append({"image": name, "category": "red dot", "points": points})
    (root / "annotations.json").write_text(json.dumps(entries))
    return root


def test_dataset_mode_draws_real_images_and_prefers_fitting_counts(tmp_path: Path) -> None:
    root = _dataset(tmp_path)
    for difficulty, expected in (("easy", "few.png"), ("hard", "many.png")):
        env = make("counting", difficulty, dataset_path=root)
        assert isinstance(env, Counting)
        env.reset(seed=1)
        assert env.image == expected and env.objects == []
        image = env.render_image()
        assert image.shape == (336, 336, 3)
        assert image[..., 0].max() > 200  # the red dots of the real image are there
        assert "red dot" in env.render_text()
        plan = solver_for("counting").solve(env)
        assert run_plan(env, plan) == 1.0


def test_dataset_states_cannot_escape_the_dataset(tmp_path: Path) -> None:
    (tmp_path / "data").mkdir()
    root = _dataset(tmp_path / "data")
    (tmp_path / "secret.png").write_bytes((root / "few.png").read_bytes())
    env = make("counting", "easy", dataset_path=root)
    env.reset(seed=0)
    state = env.export_state()
    with pytest.raises(ValueError, match="not a file inside the dataset"):
        env.reset(options={"state": {**state, "image": "../secret.png"}})
