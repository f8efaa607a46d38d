"""The services as real processes, wired to each other, shared by the security tests.

The same peer wiring as `gantry up` (rollout dials envfarm, trainer dials rollout, ...), so
fuzzed requests that pass validation reach real peers.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections import Counter, defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from gantry.core.testing.process import ServiceProcess, spawn_service

TOKEN = "security-suite-token"
# Tallies of fuzz outcomes: service -> status code name -> count.
FUZZ_TOTALS: dict[str, Counter[str]] = defaultdict(Counter)


def _environment(name: str, stack: Stack) -> dict[str, str]:
    """The settings each service starts with; naming a peer starts that peer first."""
    shared = str(stack.shared)
    if name == "envfarm":
        return {"GANTRY_ENVFARM_MAX_GENERATED_TASKS": "3"}
    if name == "rollout":
        return {
            "GANTRY_ROLLOUT_ENVFARM_TARGET": stack.target("envfarm"),
            "GANTRY_ROLLOUT_MAX_BATCH_SIZE": "8",
        }
    if name == "trainer":
        return {
            "GANTRY_TRAINER_ROLLOUT_TARGET": stack.target("rollout"),
            "GANTRY_TRAINER_DATASETS_ROOT": shared,
            "GANTRY_TRAINER_TORCH_THREADS": "1",
        }
    if name == "retrieval":
        return {"GANTRY_RETRIEVAL_DATASETS_ROOT": shared}
    if name == "verifier":
        return {
            "GANTRY_VERIFIER_ROLLOUT_TARGET": stack.target("rollout"),
            "GANTRY_VERIFIER_ENVFARM_TARGET": stack.target("envfarm"),
            "GANTRY_VERIFIER_RETRIEVAL_TARGET": stack.target("retrieval"),
            # Requests that pass validation reach the tiny judge: keep each call short.
            "GANTRY_VERIFIER_JUDGE_ATTEMPTS": "1",
            "GANTRY_VERIFIER_JUDGE_TEXT_CHARS": "8",
            "GANTRY_VERIFIER_MAX_PROMPT_CHARS": "500",
        }
    if name == "vla":
        return {"GANTRY_VLA_TORCH_THREADS": "1"}
    if name == "video":
        return {
            "GANTRY_VIDEO_INPUT_ROOT": shared,
            "GANTRY_VIDEO_DEFAULT_STEPS": "2",
            "GANTRY_VIDEO_MAX_STEPS": "4",
            "GANTRY_VIDEO_MAX_FRAMES": "9",
            "GANTRY_VIDEO_MAX_WIDTH": "64",
            "GANTRY_VIDEO_MAX_HEIGHT": "64",
        }
    return {}  # pruner


@dataclass
class Stack:
    """Services as real processes, each started on first use (with its peers) and kept for
    the session: the fuzz tests use all of them, the transport tests two."""

    shared: Path
    token: str = TOKEN
    processes: dict[str, ServiceProcess] = field(default_factory=dict)
    exits: contextlib.ExitStack = field(default_factory=contextlib.ExitStack)

    def service(self, name: str) -> ServiceProcess:
        if name not in self.processes:
            env = _environment(name, self)
            self.processes[name] = self.exits.enter_context(
                spawn_service(f"gantry.{name}", name, token=TOKEN, env=env, startup_timeout_s=180)
            )
        return self.processes[name]

    def target(self, name: str) -> str:
        return self.service(name).target


@pytest.fixture(scope="session")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    running = Stack(shared=tmp_path_factory.mktemp("shared"))
    with running.exits:
        yield running


@pytest.fixture(scope="session")
def fuzz_totals() -> dict[str, Counter[str]]:
    return FUZZ_TOTALS


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if not FUZZ_TOTALS:
        return
    terminalreporter.section("fuzz: replies by status code")
    for service in sorted(FUZZ_TOTALS):
        counts = FUZZ_TOTALS[service]
        line = ", ".join(f"{code} {n}" for code, n in counts.most_common())
        terminalreporter.write_line(f"{service}: {sum(counts.values())} calls: {line}")
    report = os.environ.get("GANTRY_FUZZ_REPORT")
    if report:
        Path(report).write_text(
            json.dumps({s: dict(c) for s, c in sorted(FUZZ_TOTALS.items())}, indent=2)
        )
