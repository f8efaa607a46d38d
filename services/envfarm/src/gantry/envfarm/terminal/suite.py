"""Task suites: the built-in seeded suite and generated ones.

The built-in suite `core` is drawn from the templates by seeds alone (no stored files):
`TASKS_PER_CATEGORY` tasks per category, alternating easy and hard, task `i` of a
category drawn from its `i`-th template (cycling) with a seed hashed from the suite,
category and index. Generated suites (GenerateTasks) live in memory and, when the
operator configures a folder, in one JSON file each, so they survive restarts.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import random
import threading
from collections.abc import Iterable
from pathlib import Path

from gantry.envfarm.family import UnknownTask
from gantry.envfarm.terminal.task import Difficulty, TaskLimits, TerminalTask
from gantry.envfarm.terminal.templates import CATEGORIES

log = logging.getLogger("gantry.envfarm.terminal")

CORE = "core"
TASKS_PER_CATEGORY = 21
PREFIX = "terminal/"
LIMITS = {"easy": TaskLimits(max_steps=30), "hard": TaskLimits(max_steps=50)}


def derive_seed(*parts: object) -> int:
    digest = hashlib.sha256("/".join(str(p) for p in parts).encode()).digest()
    return int.from_bytes(digest[:8], "big") >> 1


def template_task(
    suite: str, category: str, index: int, seed: int, difficulty: Difficulty
) -> TerminalTask:
    """Task `index` of `category`, drawn from its templates with `seed`."""
    templates = CATEGORIES[category]
    template = templates[index % len(templates)]
    draft = template(random.Random(seed), difficulty)
    return TerminalTask(
        id=f"{category}-{index:03d}",
        suite=suite,
        category=category,
        difficulty=difficulty,
        instruction=draft.instruction,
        truth=draft.truth,
        setup=draft.setup,
        initial_test=draft.initial_test,
        completion_test=draft.completion_test,
        solution=draft.solution,
        limits=LIMITS[difficulty],
        knobs=draft.knobs,
        seed=seed,
        source=f"template:{template.__name__}",
    )


def core_suite(per_category: int = TASKS_PER_CATEGORY) -> list[TerminalTask]:
    return [
        template_task(
            CORE, category, i, derive_seed(CORE, category, i), "hard" if i % 2 else "easy"
        )
        for category in sorted(CATEGORIES)
        for i in range(per_category)
    ]


class SuiteStore:
    """Suites by name; thread-safe. Built-in suites cannot be replaced or deleted."""

    def __init__(self, builtin: Iterable[TerminalTask] = (), folder: Path | None = None) -> None:
        self._lock = threading.Lock()
        self._suites: dict[str, dict[str, TerminalTask]] = {}
        self._builtin: set[str] = set()
        self._ids: list[str] | None = None
        for task in builtin:
            self._suites.setdefault(task.suite, {})[task.id] = task
            self._builtin.add(task.suite)
        self.folder = folder
        if folder is not None:
            self._load(folder)

    def _load(self, folder: Path) -> None:
        for path in sorted(folder.glob("*.json")):
            try:
                tasks = [TerminalTask.from_json(t) for t in json.loads(path.read_text())]
            except (OSError, ValueError) as exc:
                log.warning("skipping the suite file %s: %s", path, exc)
                continue
            if tasks and tasks[0].suite not in self._builtin:
                self._suites[tasks[0].suite] = {t.id: t for t in tasks}

    def builtin(self, suite: str) -> bool:
        return suite in self._builtin

    def exists(self, suite: str) -> bool:
        with self._lock:
            return suite in self._suites

    def ids(self) -> list[str]:
        with self._lock:
            if self._ids is None:
                self._ids = sorted(t.env_id for s in self._suites.values() for t in s.values())
            return self._ids

    def get(self, env_id: str) -> TerminalTask:
        suite, _, task_id = env_id.removeprefix(PREFIX).partition("/")
        with self._lock:
            task = self._suites.get(suite, {}).get(task_id)
        if task is None or not env_id.startswith(PREFIX):
            raise UnknownTask(env_id)
        return task

    def tasks(self, suite: str) -> list[TerminalTask]:
        with self._lock:
            return list(self._suites.get(suite, {}).values())

    def add(self, suite: str, tasks: list[TerminalTask]) -> None:
        with self._lock:
            if suite in self._builtin:
                raise ValueError(f"{suite!r} is a built-in suite")
            self._suites[suite] = {t.id: t for t in tasks}
            self._ids = None
        if self.folder is not None:
            self.folder.mkdir(parents=True, exist_ok=True)
            tmp = self.folder / f".{suite}.json.tmp"
            tmp.write_text(json.dumps([t.to_json() for t in tasks]))
            os.replace(tmp, self.folder / f"{suite}.json")

    def delete(self, suite: str) -> list[str]:
        """Remove a generated suite; its env ids. KeyError when there is none."""
        with self._lock:
            if suite in self._builtin:
                raise ValueError(f"{suite!r} is a built-in suite")
            removed = self._suites.pop(suite)
            self._ids = None
        if self.folder is not None:
            (self.folder / f"{suite}.json").unlink(missing_ok=True)
        return sorted(t.env_id for t in removed.values())
