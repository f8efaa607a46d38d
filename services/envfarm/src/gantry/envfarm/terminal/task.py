"""The terminal task format (Endless Terminals).

A task is: an instruction for the agent; privileged ground truth (never shown to it); a
setup script that builds the initial state in the sandbox workspace; an initial-state test
(passes once setup ran); a completion test (passes once the task is done); a reference
solution (shell commands); and per-task limits. Tests are pytest files of plain `test_*`
functions with `assert`s, run with the workspace as the working directory.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

Difficulty = Literal["easy", "hard"]

ID_RE = re.compile(r"^[a-z0-9][a-z0-9_-]{0,62}$")
MAX_SCRIPT_BYTES = 64 << 10  # setup script, each test
MAX_INSTRUCTION_BYTES = 8 << 10
MAX_SOLUTION_COMMANDS = 64
MAX_COMMAND_BYTES = 16 << 10


@dataclass(frozen=True)
class TaskLimits:
    max_steps: int = 30
    step_timeout_s: float = 10.0
    test_timeout_s: float = 20.0
    episode_timeout_s: float = 600.0
    memory_bytes: int = 1 << 30
    storage_bytes: int = 64 << 20


@dataclass(frozen=True)
class TerminalTask:
    id: str  # unique within its suite
    suite: str
    category: str
    difficulty: Difficulty
    instruction: str
    truth: dict[str, Any]
    setup: str  # bash, run in the workspace
    initial_test: str  # pytest source
    completion_test: str  # pytest source
    solution: tuple[str, ...]  # shell commands (without the final "submit")
    limits: TaskLimits = TaskLimits()
    knobs: dict[str, str] = field(default_factory=dict)
    seed: int = 0
    source: str = "template"

    @property
    def env_id(self) -> str:
        return f"terminal/{self.suite}/{self.id}"

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["solution"] = list(self.solution)
        return data

    @classmethod
    def from_json(cls, data: Any) -> TerminalTask:
        """A task from untrusted JSON; ValueError names what is wrong."""
        if not isinstance(data, dict):
            raise ValueError("a terminal task is a JSON object")
        known = {
            "id", "suite", "category", "difficulty", "instruction", "truth", "setup",
            "initial_test", "completion_test", "solution", "limits", "knobs", "seed", "source",
        }  # fmt: skip
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"unknown task fields: {', '.join(unknown[:5])}")

        def text(name: str, limit: int, pattern: re.Pattern[str] | None = None) -> str:
            value = data.get(name)
            if not isinstance(value, str) or not value:
                raise ValueError(f"task field {name!r} must be a non-empty string")
            if len(value.encode()) > limit:
                raise ValueError(f"task field {name!r} is longer than {limit} bytes")
            if pattern is not None and not pattern.match(value):
                raise ValueError(f"task field {name!r} must match {pattern.pattern}")
            return value

        difficulty = data.get("difficulty")
        if difficulty not in ("easy", "hard"):
            raise ValueError("task field 'difficulty' must be 'easy' or 'hard'")
        solution = data.get("solution")
        if (
            not isinstance(solution, list)
            or not 1 <= len(solution) <= MAX_SOLUTION_COMMANDS
            or not all(
                isinstance(c, str) and 0 < len(c.encode()) <= MAX_COMMAND_BYTES for c in solution
            )
        ):
            raise ValueError(
                f"task field 'solution' must list 1..{MAX_SOLUTION_COMMANDS} non-empty commands"
            )
        truth = data.get("truth", {})
        knobs = data.get("knobs", {})
        if not isinstance(truth, dict) or not isinstance(knobs, dict):
            raise ValueError("task fields 'truth' and 'knobs' must be JSON objects")
        return cls(
            id=text("id", 63, ID_RE),
            suite=text("suite", 63, ID_RE),
            category=text("category", 63, ID_RE),
            difficulty=difficulty,
            instruction=text("instruction", MAX_INSTRUCTION_BYTES),
            truth=truth,
            setup=text("setup", MAX_SCRIPT_BYTES),
            initial_test=text("initial_test", MAX_SCRIPT_BYTES),
            completion_test=text("completion_test", MAX_SCRIPT_BYTES),
            solution=tuple(solution),
            limits=_limits(data.get("limits", {})),
            knobs={str(k): str(v)[:64] for k, v in list(knobs.items())[:32]},
            seed=_int(data.get("seed", 0), "seed", 0, (1 << 64) - 1),
            source=str(data.get("source", "import"))[:64],
        )


def _int(value: Any, name: str, low: int, high: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise ValueError(f"task field {name!r} must be an integer in [{low}, {high}]")
    return value


def _number(value: Any, name: str, low: float, high: float) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not low <= value <= high:
        raise ValueError(f"task field {name!r} must be a number in [{low}, {high}]")
    return float(value)


def _limits(data: Any) -> TaskLimits:
    if not isinstance(data, dict):
        raise ValueError("task field 'limits' must be a JSON object")
    base = TaskLimits()
    return TaskLimits(
        max_steps=_int(data.get("max_steps", base.max_steps), "limits.max_steps", 1, 1000),
        step_timeout_s=_number(
            data.get("step_timeout_s", base.step_timeout_s), "limits.step_timeout_s", 0.1, 600
        ),
        test_timeout_s=_number(
            data.get("test_timeout_s", base.test_timeout_s), "limits.test_timeout_s", 0.1, 600
        ),
        episode_timeout_s=_number(
            data.get("episode_timeout_s", base.episode_timeout_s),
            "limits.episode_timeout_s",
            1,
            86400,
        ),
        memory_bytes=_int(
            data.get("memory_bytes", base.memory_bytes), "limits.memory_bytes", 1 << 24, 1 << 36
        ),
        storage_bytes=_int(
            data.get("storage_bytes", base.storage_bytes), "limits.storage_bytes", 1 << 16, 1 << 34
        ),
    )
