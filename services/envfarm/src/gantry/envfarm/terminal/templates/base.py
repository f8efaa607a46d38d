"""What a template returns, and helpers to write setup scripts and tests."""

from __future__ import annotations

import random
import shlex
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from gantry.envfarm.terminal.task import Difficulty


@dataclass(frozen=True)
class Draft:
    instruction: str
    truth: dict[str, Any]
    setup: str
    initial_test: str
    completion_test: str
    solution: tuple[str, ...]
    knobs: dict[str, str] = field(default_factory=dict)


Template = Callable[[random.Random, Difficulty], Draft]

WORDS = (
    "alpha", "bravo", "cedar", "delta", "ember", "falcon", "granite", "harbor", "indigo",
    "juniper", "kestrel", "lumen", "maple", "nimbus", "onyx", "pebble", "quartz", "raven",
    "sierra", "tundra", "umber", "violet", "willow", "xenon", "yarrow", "zephyr",
)  # fmt: skip


def words(rng: random.Random, count: int) -> list[str]:
    """`count` distinct words (suffixed with a number when the list runs out)."""
    chosen = rng.sample(WORDS, min(count, len(WORDS)))
    while len(chosen) < count:
        chosen.append(f"{rng.choice(WORDS)}{len(chosen)}")
    return chosen


def write_files(files: Mapping[str, str], mode: str = "644") -> str:
    """Bash lines that create `files` (path -> text) with `mode`."""
    lines = []
    for path, text in files.items():
        folder = path.rsplit("/", 1)[0] if "/" in path else ""
        if folder:
            lines.append(f"mkdir -p {shlex.quote(folder)}")
        lines.append(f"printf '%s' {shlex.quote(text)} > {shlex.quote(path)}")
        lines.append(f"chmod {mode} {shlex.quote(path)}")
    return "\n".join(lines) + "\n"


def script(*parts: str) -> str:
    return "set -eu\n" + "".join(p if p.endswith("\n") else p + "\n" for p in parts)


MODULES = ("os", "stat", "json", "csv", "gzip", "tarfile", "sqlite3", "subprocess", "time")


def test_file(constants: Mapping[str, Any], body: str) -> str:
    """A pytest file: imports, the task's constants (as Python literals), then `body`."""
    used = [m for m in MODULES if f"{m}." in body]  # imports cost the grader's start time
    head = f"import {', '.join(used)}\n\n" if used else ""
    consts = "".join(f"{name} = {value!r}\n" for name, value in constants.items())
    return head + consts + "\n" + body.strip() + "\n"


def read_helper() -> str:
    return (
        "def read(path):\n    with open(path, encoding='utf-8') as f:\n        return f.read()\n\n"
    )
