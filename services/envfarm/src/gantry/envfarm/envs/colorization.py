"""colorization: undo a hue rotation and a saturation change applied to a picture.

VisGym shows a photo whose colours were altered; the agent rotates the hue (degrees in
[-360, 360]) and changes the saturation ([-255, 255]) until the colours look right. Its
"accuracy radius" (11 easy, 16 hard) is the success tolerance, as in VisGym's code: the
colour distance d = sqrt((2 * dh)^2 + ds^2), with dh the hue error in degrees (wrapped to
(-180, 180]) and ds the saturation error (0-255 scale), must be at most

    radius / circle_size * 0.3 * sqrt(360^2 + 255^2 + 255^2),  circle_size = 20

(the circle size of VisGym's evaluation config): 84.1 easy, 122.3 hard, i.e. a hue error
alone of up to 42 degrees (easy) or 61 degrees (hard). The larger radius is the hard
level's, so, exactly as in the paper, hard is the more lenient tolerance (VisGym's two
levels differ in nothing else; Gantry's hard also has the longer step limit). Gantry keeps
the paper's numbers rather than invert them.

The episode starts, like VisGym's (a random hue and saturation), from a random error: the
hue rotation uniform over the circle and the saturation offset uniform in [-120, 120] (the
cap keeps the picture's colours), redrawn until d is at least 1.25 tolerances, so the
start is never restored or borderline.

The colour change is HSV arithmetic on the original: hue + dh, and saturation + ds
tapered for near-grey pixels (so greys stay grey and labels stay readable), clipped to
0-255. It is always recomputed from the original, so clipping never loses information.

Because a procedural scene has no "true" colours a viewer knows, every picture carries a
reference strip along its bottom: six patches labelled with the hue they have in the
original (red, yellow, green, cyan, blue, magenta, all at saturation 170 of 255). The
strip is altered with the picture. The procedural picture is a landscape with
semantically coloured parts (sky, sun, hills, house, trees, flowers). Dataset mode
(`dataset_path`): a directory of PNG/JPEG/BMP/WebP photos; each episode picks one,
centre-cropped above the same reference strip.
"""

from __future__ import annotations

import colorsys
import json
import math
from functools import lru_cache
from typing import Any, ClassVar

import numpy as np
from PIL import Image as PILImage
from PIL import ImageDraw

from gantry.envfarm.envs.actions import Action, ActionError, expect_args, expect_int
from gantry.envfarm.envs.base import IMAGE_LONG_SIDE, Image, JsonState, Solver, VisGymEnv
from gantry.envfarm.envs.picture import (
    ascii_art,
    check_color,
    check_number,
    dataset_file,
    gradient,
    image_files,
    load_fitted,
)
from gantry.envfarm.envs.render import Color, font

SIZE = IMAGE_LONG_SIDE
STRIP = 46  # reference strip height
SCENE_HEIGHT = SIZE - STRIP
HUE_WEIGHT = 2.0  # VisGym weighs a degree of hue twice a unit of saturation
RADIUS = {"easy": 11, "hard": 16}  # VisGym's accuracy radius per level
CIRCLE_SIZE = 20  # VisGym's evaluation config
MAX_DISTANCE = math.sqrt(360**2 + 255**2 + 255**2)
TOLERANCE = {level: r / CIRCLE_SIZE * 0.3 * MAX_DISTANCE for level, r in RADIUS.items()}
MAX_START_SATURATION = 120
MIN_START_ERROR = 1.25  # in tolerances: a start is never restored or borderline
GREY_TAPER = 48.0  # pixels below this saturation get a proportionally smaller change
REFERENCE: tuple[tuple[str, int], ...] = (
    ("red", 0),
    ("yellow", 60),
    ("green", 120),
    ("cyan", 180),
    ("blue", 240),
    ("magenta", 300),
)
REFERENCE_SATURATION = 170
LABEL_COLOR: Color = (40, 40, 40)
# Recent renders and original pictures in HSV, by picture key (kept small).
_RENDERS: dict[tuple[str, int, int], Image] = {}
_HSV: dict[str, Image] = {}


def wrap(degrees: int) -> int:
    """The same angle in (-180, 180]."""
    wrapped = (degrees + 180) % 360 - 180
    return 180 if wrapped == -180 else wrapped


def color_distance(hue: float, saturation: float) -> float:
    """VisGym's colour distance for a hue error (degrees) and a saturation error (0-255)."""
    return math.hypot(HUE_WEIGHT * hue, saturation)


def hsv_color(hue: float, saturation: float, value: float) -> Color:
    """hue in degrees, saturation and value in [0, 1]."""
    r, g, b = colorsys.hsv_to_rgb((hue % 360) / 360, saturation, value)
    return round(r * 255), round(g * 255), round(b * 255)


def recolor(pixels: Image, hue: int, saturation: int) -> Image:
    """`pixels` with their hue turned by `hue` degrees and saturation shifted."""
    if hue == 0 and saturation == 0:
        return pixels.copy()
    return recolor_hsv(np.asarray(PILImage.fromarray(pixels).convert("HSV")), hue, saturation)


def recolor_hsv(original_hsv: Image, hue: int, saturation: int) -> Image:
    """`recolor` from the picture's HSV array (cached by the caller), returning RGB."""
    hsv = original_hsv.astype(np.float32)
    hsv[..., 0] = (hsv[..., 0] + hue * 256.0 / 360.0) % 256.0
    taper = np.minimum(1.0, hsv[..., 1] / GREY_TAPER)
    hsv[..., 1] = np.clip(hsv[..., 1] + saturation * taper, 0, 255)
    hsv = np.round(hsv)
    hsv[..., 0] %= 256.0
    shifted = PILImage.fromarray(hsv.astype(np.uint8), "HSV")
    return np.asarray(shifted.convert("RGB"), dtype=np.uint8)


# ----- the procedural landscape -----
def _jitter(
    rng: np.random.Generator, hue: float, sat: tuple[float, float], val: float
) -> list[int]:
    color = hsv_color(
        hue + float(rng.uniform(-12, 12)),
        float(rng.uniform(*sat)),
        min(1.0, val + float(rng.uniform(-0.08, 0.08))),
    )
    return list(color)


def sample_scene(rng: np.random.Generator) -> JsonState:
    """A landscape whose parts have the colours people expect (blue sky, green grass)."""
    horizon = int(rng.integers(150, 190))
    house_x = int(rng.integers(30, 200))
    trees = []
    for _ in range(int(rng.integers(1, 4))):
        x = int(rng.integers(20, SIZE - 20))
        if abs(x - (house_x + 45)) > 60:
            trees.append(
                {
                    "x": x,
                    "height": int(rng.integers(50, 90)),
                    "canopy": _jitter(rng, 115, (0.55, 0.8), 0.6),
                }
            )
    flowers = [
        {
            "x": int(rng.integers(8, SIZE - 8)),
            "y": int(rng.integers(horizon + 50, SCENE_HEIGHT - 8)),
            "color": _jitter(rng, float(rng.choice([0, 50, 280, 320])), (0.6, 0.9), 0.95),
        }
        for _ in range(int(rng.integers(5, 12)))
    ]
    return {
        "sky": [_jitter(rng, 215, (0.55, 0.75), 0.85), _jitter(rng, 200, (0.2, 0.35), 0.97)],
        "sun": {
            "x": int(rng.integers(40, SIZE - 40)),
            "y": int(rng.integers(30, 80)),
            "color": _jitter(rng, 48, (0.7, 0.9), 1.0),
        },
        "horizon": horizon,
        "hills": [_jitter(rng, 100, (0.45, 0.65), 0.55), _jitter(rng, 120, (0.55, 0.8), 0.75)],
        "house": {
            "x": house_x,
            "wall": _jitter(rng, 35, (0.25, 0.45), 0.92),
            "roof": _jitter(rng, 5, (0.7, 0.85), 0.75),
        },
        "trees": trees,
        "flowers": flowers,
    }


def check_scene(scene: Any) -> JsonState:
    if not isinstance(scene, dict):
        raise ValueError("scene must be an object")
    for color in (*scene["sky"], *scene["hills"]):
        check_color(color, "sky/hill colour")
    if len(scene["sky"]) != 2 or len(scene["hills"]) != 2:
        raise ValueError("sky and hills each need two colours")
    check_number(scene["horizon"], "horizon", 60, SCENE_HEIGHT - 60)
    check_number(scene["sun"]["x"], "sun x", 0, SIZE)
    check_number(scene["sun"]["y"], "sun y", 0, SCENE_HEIGHT)
    check_color(scene["sun"]["color"], "sun colour")
    check_number(scene["house"]["x"], "house x", 0, SIZE - 90)
    check_color(scene["house"]["wall"], "house wall")
    check_color(scene["house"]["roof"], "house roof")
    for tree in scene["trees"]:
        check_number(tree["x"], "tree x", 0, SIZE)
        check_number(tree["height"], "tree height", 20, 120)
        check_color(tree["canopy"], "tree canopy")
    for flower in scene["flowers"]:
        check_number(flower["x"], "flower x", 0, SIZE)
        check_number(flower["y"], "flower y", 0, SCENE_HEIGHT)
        check_color(flower["color"], "flower colour")
    return scene


def _draw_scene(scene: JsonState) -> PILImage.Image:
    sky_top, sky_bottom = (tuple(c) for c in scene["sky"])
    image = PILImage.fromarray(gradient(SCENE_HEIGHT, SIZE, sky_top, sky_bottom))
    draw = ImageDraw.Draw(image)
    sun = scene["sun"]
    draw.ellipse(
        (sun["x"] - 24, sun["y"] - 24, sun["x"] + 24, sun["y"] + 24), fill=tuple(sun["color"])
    )
    horizon = scene["horizon"]
    for k, color in enumerate(scene["hills"]):
        base = horizon + 30 * k
        wave = [
            (x, base - (28 - 12 * k) * math.sin(x / (55 + 30 * k) + 2 * k))
            for x in range(0, SIZE + 8, 8)
        ]
        draw.polygon([*wave, (SIZE, SCENE_HEIGHT), (0, SCENE_HEIGHT)], fill=tuple(color))
    _draw_house(draw, scene["house"], horizon + 45)
    for tree in scene["trees"]:
        ground = horizon + 40
        x, top = tree["x"], horizon + 40 - tree["height"]
        draw.rectangle((x - 5, top + 20, x + 5, ground), fill=(110, 72, 40))
        draw.ellipse(
            (x - 24, top - 10, x + 24, top + 36), fill=tuple(tree["canopy"]), outline=(40, 60, 30)
        )
    for flower in scene["flowers"]:
        x, y = flower["x"], flower["y"]
        draw.ellipse(
            (x - 6, y - 6, x + 6, y + 6), fill=tuple(flower["color"]), outline=(60, 60, 60)
        )
        draw.ellipse((x - 2, y - 2, x + 2, y + 2), fill=(250, 215, 60))
    return image


def _draw_house(draw: ImageDraw.ImageDraw, house: JsonState, ground: int) -> None:
    x = house["x"]
    draw.rectangle(
        (x, ground - 60, x + 90, ground), fill=tuple(house["wall"]), outline=(60, 50, 40)
    )
    draw.polygon(
        [(x - 10, ground - 60), (x + 45, ground - 100), (x + 100, ground - 60)],
        fill=tuple(house["roof"]),
        outline=(60, 30, 30),
    )
    draw.rectangle((x + 36, ground - 34, x + 54, ground), fill=(100, 66, 40))
    draw.rectangle(
        (x + 10, ground - 48, x + 28, ground - 30), fill=(150, 200, 235), outline=(60, 60, 60)
    )
    draw.rectangle(
        (x + 62, ground - 48, x + 80, ground - 30), fill=(150, 200, 235), outline=(60, 60, 60)
    )


@lru_cache(maxsize=1)
def _strip() -> Image:
    """Reference patches with their original hue names (recoloured with the picture)."""
    image = PILImage.new("RGB", (SIZE, STRIP), (232, 232, 232))
    draw = ImageDraw.Draw(image)
    width = SIZE / len(REFERENCE)
    label_font = font(12)
    for k, (name, hue) in enumerate(REFERENCE):
        x0 = k * width + 5
        color = hsv_color(hue, REFERENCE_SATURATION / 255, 0.9)
        draw.rectangle((x0, 4, x0 + width - 10, 26), fill=color, outline=LABEL_COLOR)
        draw.text((x0 + (width - 10) / 2, 30), name, fill=LABEL_COLOR, font=label_font, anchor="mt")
    return np.asarray(image, dtype=np.uint8)


@lru_cache(maxsize=32)
def _procedural(key: str) -> Image:
    return np.asarray(_draw_scene(json.loads(key)), dtype=np.uint8)


class Colorization(VisGymEnv):
    env_id: ClassVar[str] = "colorization"
    description: ClassVar[str] = (
        "A picture whose colours were altered: its hue was rotated and its saturation "
        "changed. Restore the original colours. The strip at the bottom shows six patches "
        "labelled with their original hue (red, yellow, green, cyan, blue, magenta, each "
        "at saturation 170 of 255); they were altered with the picture. Restored means "
        "sqrt((2 * hue error in degrees)^2 + (saturation error)^2) is within the level's "
        "tolerance: 84 (easy, VisGym's accuracy radius 11) or 122 (hard, radius 16)."
    )
    action_grammar: ClassVar[str] = (
        "('rotate', D) turns the hue by integer D degrees in [-360, 360]; ('saturate', S) "
        "adds integer S in [-255, 255] to the saturation (0-255 scale); 'stop'"
    )
    action_examples: ClassVar[tuple[str, ...]] = ("('rotate', 40)", "('saturate', -30)", "stop")
    levels: ClassVar[dict[str, str]] = {
        "easy": "accuracy radius 11: restored within colour distance 84 (hue alone: 42 degrees)",
        "hard": "accuracy radius 16: restored within colour distance 122 (hue alone: 61 "
        "degrees); as in VisGym, the more lenient tolerance",
    }

    picture: JsonState
    hue: int
    saturation: int

    def _sample_state(self, rng: np.random.Generator) -> JsonState:
        if self.dataset_path is not None:
            names = image_files(self.dataset_path)
            picture: JsonState = {"image": names[int(rng.integers(len(names)))]}
        else:
            picture = {"scene": sample_scene(rng)}
        least = MIN_START_ERROR * TOLERANCE[self.difficulty]
        while True:
            hue = wrap(int(rng.integers(-179, 181)))
            saturation = int(rng.integers(-MAX_START_SATURATION, MAX_START_SATURATION + 1))
            if color_distance(hue, saturation) >= least:
                return {"picture": picture, "hue": hue, "saturation": saturation}

    def _load_state(self, state: JsonState) -> None:
        picture = state["picture"]
        if not isinstance(picture, dict):
            raise ValueError("picture must be an object")
        if "image" in picture:
            dataset_file(self.dataset_path, picture["image"])
            picture = {"image": picture["image"]}
        else:
            picture = {"scene": check_scene(picture["scene"])}
        hue, saturation = state["hue"], state["saturation"]
        if isinstance(hue, bool) or not isinstance(hue, int) or wrap(hue) != hue:
            raise ValueError("hue must be an integer in (-180, 180]")
        if isinstance(saturation, bool) or not isinstance(saturation, int):
            raise ValueError("saturation must be an integer")
        if not -255 <= saturation <= 255:
            raise ValueError("saturation must be in [-255, 255]")
        self.picture, self.hue, self.saturation = picture, hue, saturation

    def _state(self) -> JsonState:
        return {"picture": self.picture, "hue": self.hue, "saturation": self.saturation}

    def _apply(self, action: Action) -> str:
        usage = "('rotate', degrees) or ('saturate', amount)"
        if action.name not in ("rotate", "saturate"):
            raise ActionError(f"unknown action {action.name!r}; use {usage} or 'stop'")
        args = action.args
        if len(args) == 1 and isinstance(args[0], tuple) and len(args[0]) == 1:
            args = args[0]  # ('rotate', [30])
        (value,) = expect_args(Action(action.name, args), 1, f"('{action.name}', number)")
        if action.name == "rotate":
            degrees = expect_int(value, "the hue rotation", -360, 360)
            self.hue = wrap(self.hue + degrees)
            return f"Hue rotated by {degrees} degrees."
        amount = expect_int(value, "the saturation change", -255, 255)
        wanted = self.saturation + amount
        self.saturation = max(-255, min(255, wanted))
        if wanted != self.saturation:
            return f"Saturation changed by {amount}; it cannot go further."
        return f"Saturation changed by {amount}."

    def error(self) -> float:
        """The remaining colour distance in tolerances of this level (restored when <= 1)."""
        return color_distance(self.hue, self.saturation) / TOLERANCE[self.difficulty]

    def goal_reached(self) -> bool:
        return self.error() <= 1.0

    # ----- rendering -----
    def original(self) -> Image:
        """The unaltered picture with its reference strip."""
        if "image" in self.picture:
            path = dataset_file(self.dataset_path, self.picture["image"])
            scene = load_fitted(path, SCENE_HEIGHT, SIZE)
        else:
            scene = _procedural(json.dumps(self.picture["scene"], sort_keys=True))
        return np.concatenate([scene, _strip()], axis=0)

    def render_image(self) -> Image:
        if self.hue == 0 and self.saturation == 0:
            return self.original()  # exact: no lossy trip through HSV
        key = (self._picture_key(), self.hue, self.saturation)
        if key not in _RENDERS:
            if len(_RENDERS) >= 16:  # a small cache: clones re-render the same state
                del _RENDERS[next(iter(_RENDERS))]
            hsv = _HSV.get(key[0])
            if hsv is None:
                if len(_HSV) >= 16:
                    del _HSV[next(iter(_HSV))]
                hsv = _HSV[key[0]] = np.asarray(PILImage.fromarray(self.original()).convert("HSV"))
            _RENDERS[key] = recolor_hsv(hsv, self.hue, self.saturation)
        return _RENDERS[key].copy()

    def _picture_key(self) -> str:
        if "image" in self.picture:
            path = dataset_file(self.dataset_path, self.picture["image"])
            return f"{path.resolve()}:{path.stat().st_mtime_ns}"
        return json.dumps(self.picture["scene"], sort_keys=True)

    def render_text(self) -> str:
        lines = [
            "The colours of a picture were altered (hue rotated, saturation changed). "
            "Restore them. Colours below are as currently shown.",
            "Reference patches (label = original hue at saturation 170 of 255):",
        ]
        for name, hue in REFERENCE:
            shown = self._shown(hsv_color(hue, REFERENCE_SATURATION / 255, 0.9))
            lines.append(f"  patch '{name}': {_hex(shown)}")
        if "image" in self.picture:
            shown_image = self.render_image()[:SCENE_HEIGHT]
            lines.append("Picture luminance (dark to light ' .:-=+*#%@'):")
            lines.append(ascii_art(shown_image, 32, 12))
            lines.append("Picture colours, 4x4 blocks (row 0 is the top):")
            rows = SCENE_HEIGHT // 4
            blocks = shown_image[: 4 * rows].reshape(4, rows, 4, SIZE // 4, 3).mean(axis=(1, 3))
            for row in blocks:
                lines.append("  " + " ".join(_hex(tuple(int(v) for v in cell)) for cell in row))
            return "\n".join(lines)
        lines.append("Picture parts:")
        for name, color in _scene_parts(self.picture["scene"]):
            lines.append(f"  {name}: {_hex(self._shown(color))}")
        return "\n".join(lines)

    def _shown(self, color: Any) -> tuple[int, ...]:
        """One colour as currently shown (the image's HSV arithmetic, without PIL)."""
        h, s, v = colorsys.rgb_to_hsv(*(c / 255 for c in color))
        s255 = s * 255
        s255 = min(255.0, max(0.0, s255 + self.saturation * min(1.0, s255 / GREY_TAPER)))
        rgb = colorsys.hsv_to_rgb((h + self.hue / 360) % 1.0, s255 / 255, v)
        return tuple(round(c * 255) for c in rgb)


def _scene_parts(scene: JsonState) -> list[tuple[str, list[int]]]:
    parts = [("sky (top)", scene["sky"][0]), ("sky (horizon)", scene["sky"][1])]
    parts += [("sun", scene["sun"]["color"]), ("far hill", scene["hills"][0])]
    parts += [("near hill", scene["hills"][1]), ("house wall", scene["house"]["wall"])]
    parts.append(("house roof", scene["house"]["roof"]))
    parts += [(f"tree {k + 1} leaves", t["canopy"]) for k, t in enumerate(scene["trees"])]
    parts += [(f"flower {k + 1}", f["color"]) for k, f in enumerate(scene["flowers"])]
    return parts


def _hex(color: tuple[int, ...] | list[int]) -> str:
    return "#{:02x}{:02x}{:02x}".format(*color)


class ColorizationSolver(Solver):
    """`direct`: undo the hue, then the saturation. `saturation_first`: the other order."""

    strategies: ClassVar[tuple[str, ...]] = ("direct", "saturation_first")

    def plan(self, env: VisGymEnv, strategy: str) -> list[str]:
        assert isinstance(env, Colorization)
        steps = []
        if env.hue:
            steps.append(f"('rotate', {-env.hue})")
        if env.saturation:
            steps.append(f"('saturate', {-env.saturation})")
        return steps[::-1] if strategy == "saturation_first" else steps

    def detour(self, env: VisGymEnv, rng: np.random.Generator) -> str:
        assert isinstance(env, Colorization)
        if rng.random() < 0.5:
            return f"('rotate', {int(rng.choice([-1, 1])) * int(rng.integers(10, 61))})"
        amount = int(rng.choice([-1, 1])) * int(rng.integers(5, 31))
        return f"('saturate', {amount})"


ENTRY = (Colorization, ColorizationSolver())
