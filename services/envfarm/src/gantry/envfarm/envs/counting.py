"""counting: count the objects of one named category in a cluttered scene.

VisGym asks for the number of instances of an LVIS category in a photo; the agent may
mark points on the image (each mark is drawn as a numbered dot, a counting aid), undo the
last mark, and guess a number. Gantry renders a procedural stand-in: shapes of several
categories (a category is a colour plus a shape, e.g. "red triangle") scattered without
overlap on a textured background; distractor categories share the target's colour or
shape so the category has to be read carefully. The target has 2-20 instances (easy) or
5-30 (hard, with more distractors).

The goal is met when the latest guess equals the true count; `stop` then earns the reward.
A guess is only recorded, never judged (as in VisGym, whose feedback is "Action executed
successfully."): a correct/incorrect verdict would let an agent that sees nothing try
2, 3, 4, ... and win within the step limit. Marks never affect the goal.

Text mode: VisGym's counting has no text rendering (its render modes are RGB only; its
text-mode runs cover maze_2d, sliding_block, matchstick_equation and patch_reassembly).
Listing the objects would turn counting into reading, so the text observation carries only
what VisGym gives as text: the question, plus the agent's own marks and last guess. The
objects are visible only in the image; text-only sessions are a baseline, not a solvable
task.

Dataset mode (`dataset_path`): a directory with images and `annotations.json`, a list of
`{"image": "street.jpg", "category": "car", "points": [[x, y], ...]}` where each point is
one instance's centre in [0,1]² image coordinates (0,0 top-left). Images are stretched to
336×336, so points and marks share coordinates. Entries whose count lies in the
difficulty's range are preferred; if none does, every entry is used.
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np
from PIL import Image as PILImage
from PIL import ImageDraw

from gantry.envfarm.envs.actions import Action, ActionError, expect_args, expect_float, expect_int
from gantry.envfarm.envs.base import MAX_STEPS, Image, JsonState, Solver, VisGymEnv
from gantry.envfarm.envs.render import BLACK, WHITE, font, to_array
from gantry.envfarm.envs.scenes import (
    COLORS,
    SHAPES,
    background_array,
    check_background,
    check_choice,
    check_number,
    check_point,
    check_unit,
    dataset_file,
    draw_shape,
    load_annotations,
    load_image,
    sample_background,
)

SIZE = 336
COUNTS = {"easy": (2, 20), "hard": (5, 30)}
# Distractor categories and instances per distractor category.
DISTRACTORS = {"easy": (2, (1, 5)), "hard": (4, (2, 6))}
RADIUS = (0.026, 0.04)  # normalised object radius: 9-13 px
CAPTION_HEIGHT = 0.08  # the top band holds the question; objects stay below it
MAX_MARKS = 60
MAX_GUESS = 999
MARK_COLOR = (250, 250, 250)


def category_name(color: str, shape: str) -> str:
    return f"{color} {shape}"


def plural(name: str) -> str:
    return name + "es" if name.endswith(("s", "x", "ch", "sh")) else name + "s"


def _distractor_categories(
    color: str, shape: str, count: int, rng: np.random.Generator
) -> list[tuple[str, str]]:
    """Half the distractors share the target's colour or shape (confusable), the rest not."""
    confusable = [(c, shape) for c in COLORS if c != color] + [
        (color, s) for s in SHAPES if s != shape
    ]
    other = [(c, s) for c in COLORS for s in SHAPES if c != color and s != shape]
    picked: list[tuple[str, str]] = []
    for k in range(count):
        pool = confusable if k % 2 == 0 else other
        choices = [item for item in pool if item not in picked]
        picked.append(choices[int(rng.integers(len(choices)))])
    return picked


def _place(radii: list[float], rng: np.random.Generator) -> list[tuple[float, float]] | None:
    """Non-overlapping centres below the caption band, or None if the scene is too full."""
    placed: list[tuple[float, float, float]] = []
    for r in radii:
        for _ in range(300):
            x = float(rng.uniform(r + 0.01, 1 - r - 0.01))
            y = float(rng.uniform(CAPTION_HEIGHT + r + 0.01, 1 - r - 0.01))
            if all((x - px) ** 2 + (y - py) ** 2 >= (r + pr + 0.012) ** 2 for px, py, pr in placed):
                placed.append((x, y, r))
                break
        else:
            return None
    return [(x, y) for x, y, _ in placed]


class Counting(VisGymEnv):
    env_id: ClassVar[str] = "counting"
    description: ClassVar[str] = (
        "A scene of objects of several categories. Count the objects of the category named "
        "in the question. You may mark objects (marks appear as numbered dots), undo the last "
        "mark, and guess the count (a guess is recorded, not judged). Coordinates "
        "are fractions of the image: (0, 0) is the top-left corner, (1, 1) the bottom-right. "
        "The objects are shown only in the image: text mode gives the question and your marks."
    )
    action_grammar: ClassVar[str] = (
        "('mark', x, y) with x, y in [0, 1]; ('undo',) removes the last mark; "
        "('guess', n) with n an integer count; 'stop'"
    )
    action_examples: ClassVar[tuple[str, ...]] = (
        "('mark', 0.25, 0.6)",
        "('undo',)",
        "('guess', 7)",
        "stop",
    )
    levels: ClassVar[dict[str, str]] = {
        "easy": "2-20 target objects, 2 distractor categories",
        "hard": "5-30 target objects, 4 distractor categories",
    }

    category: str
    objects: list[JsonState]  # procedural: {"color", "shape", "x", "y", "r", "angle"}
    background: JsonState | None
    image: str | None  # dataset mode: image file relative to dataset_path
    points: list[list[float]]  # centres of the target instances
    marks: list[list[float]]
    guess: int | None

    # ----- state -----
    def _sample_state(self, rng: np.random.Generator) -> JsonState:
        if self.dataset_path is not None:
            return self._sample_dataset(rng)
        low, high = COUNTS[self.difficulty]
        n_categories, (d_low, d_high) = DISTRACTORS[self.difficulty]
        while True:
            color = list(COLORS)[int(rng.integers(len(COLORS)))]
            shape = SHAPES[int(rng.integers(len(SHAPES)))]
            kinds = [(color, shape)] * int(rng.integers(low, high + 1))
            for item in _distractor_categories(color, shape, n_categories, rng):
                kinds += [item] * int(rng.integers(d_low, d_high + 1))
            order = rng.permutation(len(kinds))  # interleave categories in drawing order
            kinds = [kinds[int(k)] for k in order]
            radii = [round(float(rng.uniform(*RADIUS)), 4) for _ in kinds]
            centres = _place(radii, rng)
            if centres is not None:
                break
        objects = [
            {
                "color": c,
                "shape": s,
                "x": round(x, 4),
                "y": round(y, 4),
                "r": r,
                # Only a small tilt: a freely rotated square would read as a diamond.
                "angle": round(float(rng.uniform(-0.3, 0.3)), 3),
            }
            for (c, s), (x, y), r in zip(kinds, centres, radii, strict=True)
        ]
        return {
            "category": category_name(color, shape),
            "objects": objects,
            "background": sample_background(rng),
            "marks": [],
            "guess": None,
        }

    def _sample_dataset(self, rng: np.random.Generator) -> JsonState:
        assert self.dataset_path is not None
        entries = load_annotations(self.dataset_path)
        low, high = COUNTS[self.difficulty]
        fitting = [
            e
            for e in entries
            if isinstance(e, dict)
            and isinstance(e.get("points"), list)
            and low <= len(e["points"]) <= high
        ]
        entry = (fitting or entries)[int(rng.integers(len(fitting or entries)))]
        if not isinstance(entry, dict):
            raise ValueError("each annotation must be an object")
        return {
            "category": entry.get("category"),
            "image": entry.get("image"),
            "points": entry.get("points"),
            "marks": [],
            "guess": None,
        }

    def _load_state(self, state: JsonState) -> None:
        category = state["category"]
        if not isinstance(category, str) or not category.strip() or not category.isprintable():
            raise ValueError("category must be a non-empty printable string")
        marks = state["marks"]
        if not isinstance(marks, list) or len(marks) > MAX_MARKS:
            raise ValueError(f"marks must be a list of at most {MAX_MARKS} points")
        guess = state["guess"]
        if guess is not None and (
            not isinstance(guess, int) or isinstance(guess, bool) or not 0 <= guess <= MAX_GUESS
        ):
            raise ValueError(f"guess must be null or an integer in [0, {MAX_GUESS}]")
        if "objects" in state:
            self._load_scene(category, state["objects"], state["background"])
        else:
            dataset_file(self.dataset_path, state["image"])  # validates before we keep it
            points = state["points"]
            if not isinstance(points, list) or len(points) > 500:
                raise ValueError("points must be a list of at most 500 [x, y] centres")
            self.objects, self.background, self.image = [], None, state["image"]
            self.points = [check_point(p, "point") for p in points]
        self.category = category
        self.marks = [check_point(m, "mark") for m in marks]
        self.guess = guess

    def _load_scene(self, category: str, objects: Any, background: Any) -> None:
        if not isinstance(objects, list) or not 1 <= len(objects) <= 200:
            raise ValueError("objects must be a list of 1-200 objects")
        checked: list[JsonState] = []
        for obj in objects:
            r = check_number(obj["r"], "object r", 0.005, 0.2)
            checked.append(
                {
                    "color": check_choice(obj["color"], COLORS, "object color"),
                    "shape": check_choice(obj["shape"], SHAPES, "object shape"),
                    "x": check_unit(obj["x"], "object x"),
                    "y": check_unit(obj["y"], "object y"),
                    "r": r,
                    "angle": check_number(obj["angle"], "object angle", -10.0, 10.0),
                }
            )
        self.objects, self.background, self.image = checked, check_background(background), None
        self.points = [
            [o["x"], o["y"]] for o in checked if category_name(o["color"], o["shape"]) == category
        ]
        if not self.points:
            raise ValueError(f"no object of category {category!r}")

    def _state(self) -> JsonState:
        common = {"category": self.category, "marks": self.marks, "guess": self.guess}
        if self.image is not None:
            return {"image": self.image, "points": self.points, **common}
        return {"objects": self.objects, "background": self.background, **common}

    @property
    def count(self) -> int:
        return len(self.points)

    # ----- actions -----
    def _apply(self, action: Action) -> str:
        if action.name == "mark":
            x, y = expect_args(action, 2, "('mark', x, y) with x, y in [0, 1]")
            point = [expect_float(x, "x", 0.0, 1.0), expect_float(y, "y", 0.0, 1.0)]
            if len(self.marks) >= MAX_MARKS:
                return f"Cannot place more than {MAX_MARKS} marks; undo some first."
            self.marks.append(point)
            return f"Placed mark {len(self.marks)} at ({point[0]:.2f}, {point[1]:.2f})."
        if action.name == "undo":
            expect_args(action, 0, "('undo',)")
            if not self.marks:
                return "There is no mark to undo."
            self.marks.pop()
            return f"Removed mark {len(self.marks) + 1}."
        if action.name == "guess":
            (value,) = expect_args(action, 1, "('guess', n) with n an integer")
            self.guess = expect_int(value, "the guess", 0, MAX_GUESS)
            return f"Recorded your guess of {self.guess}."
        raise ActionError(
            f"unknown action {action.name!r}; use ('mark', x, y), ('undo',), ('guess', n) or 'stop'"
        )

    def goal_reached(self) -> bool:
        return self.guess == self.count

    # ----- rendering -----
    def render_image(self) -> Image:
        if self.image is not None:
            pixels = load_image(dataset_file(self.dataset_path, self.image), SIZE, SIZE)
            picture = PILImage.fromarray(pixels)
        else:
            assert self.background is not None
            picture = PILImage.fromarray(background_array(self.background, SIZE, SIZE))
        draw = ImageDraw.Draw(picture)
        for obj in self.objects:
            radius = obj["r"] * SIZE
            color = COLORS[obj["color"]]
            draw_shape(
                draw, obj["shape"], color, obj["x"] * SIZE, obj["y"] * SIZE, radius, obj["angle"]
            )
        if self.image is None:
            self._draw_caption(draw)
        self._draw_marks(draw)
        return to_array(picture)

    def _draw_caption(self, draw: ImageDraw.ImageDraw) -> None:
        band = int(CAPTION_HEIGHT * SIZE)
        draw.rectangle((0, 0, SIZE, band), fill=(32, 36, 44))
        text = f"How many {plural(self.category)}?"
        if self.guess is not None:
            text += f"   last guess: {self.guess}"
        draw.text((8, band // 2), text, fill=WHITE, font=font(16), anchor="lm")

    def _draw_marks(self, draw: ImageDraw.ImageDraw) -> None:
        # A small dot with its number beside it, so the marked object stays visible.
        small = font(11)
        for number, (x, y) in enumerate(self.marks, start=1):
            cx, cy = x * SIZE, y * SIZE
            draw.ellipse((cx - 3, cy - 3, cx + 3, cy + 3), fill=MARK_COLOR, outline=BLACK)
            label = (cx + 5, cy - 13, cx + 5 + 7 * len(str(number)) + 3, cy - 1)
            draw.rectangle(label, fill=MARK_COLOR, outline=BLACK)
            draw.text((label[0] + 2, label[1] + 1), str(number), fill=BLACK, font=small)

    def render_text(self) -> str:
        # The question and the agent's own actions only: the scene is perceived in the image.
        marks = ", ".join(f"{k}: ({x:.2f}, {y:.2f})" for k, (x, y) in enumerate(self.marks, 1))
        return "\n".join(
            [
                f"Question: how many {plural(self.category)} are there?",
                "The objects are visible only in the image.",
                f"Marks: {marks or 'none'}",
                f"Last guess: {'none' if self.guess is None else self.guess}",
            ]
        )


def reading_order(points: list[list[float]]) -> list[list[float]]:
    """Top-to-bottom bands, left-to-right within a band: the way a person scans."""
    return sorted(points, key=lambda p: (round(p[1] / 0.1), p[0]))


class CountingSolver(Solver):
    """`direct_guess`: guess the true count at once.

    `mark_then_guess`: undo earlier marks, mark every target in reading order, then guess;
    when those actions would not fit the difficulty's step limit it guesses directly.
    """

    strategies: ClassVar[tuple[str, ...]] = ("direct_guess", "mark_then_guess")

    def plan(self, env: VisGymEnv, strategy: str) -> list[str]:
        assert isinstance(env, Counting)
        guess = f"('guess', {env.count})"
        if strategy == "direct_guess":
            return [guess]
        undo = ["('undo',)"] * len(env.marks)
        marks = [f"('mark', {x:.4f}, {y:.4f})" for x, y in reading_order(env.points)]
        actions = [*undo, *marks, guess]
        if len(actions) + 1 > MAX_STEPS[env.difficulty] or len(marks) > MAX_MARKS:
            return [guess]
        return actions

    def detour(self, env: VisGymEnv, rng: np.random.Generator) -> str:
        assert isinstance(env, Counting)
        if env.marks and rng.random() < 0.3:
            return "('undo',)"
        if rng.random() < 0.3:
            return f"('guess', {env.count + 1 + int(rng.integers(3))})"
        x, y = rng.uniform(0.05, 0.95, size=2)
        return f"('mark', {x:.3f}, {y:.3f})"


ENTRY = (Counting, CountingSolver())
