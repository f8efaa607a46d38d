"""The file-read middleware, driven by a scripted agent loop."""

from __future__ import annotations

import ast
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from gantry.core.client import sync_channel
from gantry.core.testing.threaded import serve_in_thread
from gantry.pruner.middleware import GrpcBackend, LocalBackend, PruningReader
from gantry.pruner.pruner import Pruner
from gantry.pruner.scoring import LexicalScorer
from gantry.pruner.service import DEMO_CODE, PrunerService
from gantry.pruner.settings import PrunerSettings

TOKEN = "middleware-token"


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    (tmp_path / "tools.py").write_text(DEMO_CODE)
    (tmp_path / "NOTES.md").write_text("Short note: retries live in tools.py.\n")
    return tmp_path


@dataclass
class Step:
    path: str
    goal_hint: str | None


class ScriptedAgent:
    """Replays a fixed list of file reads through a tool and records what it saw."""

    def __init__(self, tool: PruningReader, script: list[Step]) -> None:
        self.tool, self.script = tool, script
        self.observations: list[str] = []

    def run(self) -> list[str]:
        for step in self.script:
            self.observations.append(self.tool(step.path, goal_hint=step.goal_hint))
        return self.observations


def make_reader(root: Path) -> Callable[[str], str]:
    def read_file(path: str) -> str:
        return (root / path).read_text()

    return read_file


SCRIPT = [
    Step("NOTES.md", "where are retries?"),  # short output: untouched
    Step("tools.py", None),  # no goal hint: untouched
    Step("tools.py", "how are failed calls retried?"),  # pruned
    Step("tools.py", "   "),  # blank hint: untouched
]


def _check_loop(observations: list[str], raw: str, notes: str) -> None:
    assert observations[0] == notes
    assert observations[1] == raw
    assert observations[3] == raw
    pruned = observations[2]
    assert pruned != raw and len(pruned) < len(raw)
    assert "def retry" in pruned and "(filtered" in pruned
    ast.parse(pruned)


def test_agent_loop_through_the_grpc_service(repo: Path) -> None:
    settings = PrunerSettings(
        host="127.0.0.1", port=0, metrics_port=0, auth_token=TOKEN, log_json=False, scorer="lexical"
    )
    with (
        serve_in_thread(PrunerService(settings)) as running,
        sync_channel(f"127.0.0.1:{running.port}", token=TOKEN) as channel,
    ):
        tool = PruningReader(make_reader(repo), GrpcBackend(channel))
        observations = ScriptedAgent(tool, SCRIPT).run()
    _check_loop(observations, DEMO_CODE, (repo / "NOTES.md").read_text())
    assert (tool.stats.calls, tool.stats.pruned, tool.stats.passed, tool.stats.errors) == (
        4,
        1,
        3,
        0,
    )
    assert tool.stats.chars_out < tool.stats.chars_in


def test_agent_loop_in_process(repo: Path) -> None:
    tool = PruningReader(make_reader(repo), LocalBackend(Pruner(LexicalScorer())))
    observations = ScriptedAgent(tool, SCRIPT).run()
    _check_loop(observations, DEMO_CODE, (repo / "NOTES.md").read_text())


class Exploding:
    def prune(self, text: str, goal_hint: str, language: str) -> str:
        raise RuntimeError("pruner crashed")


def test_pruner_errors_pass_the_raw_output(repo: Path) -> None:
    tool = PruningReader(make_reader(repo), Exploding())
    observations = ScriptedAgent(tool, SCRIPT).run()
    assert observations == [
        (repo / "NOTES.md").read_text(),
        DEMO_CODE,
        DEMO_CODE,
        DEMO_CODE,
    ]
    assert tool.stats.errors == 1


def test_unreachable_service_passes_the_raw_output(repo: Path) -> None:
    with sync_channel("127.0.0.1:1", token=TOKEN) as channel:  # nothing listens there
        tool = PruningReader(make_reader(repo), GrpcBackend(channel, timeout_s=1.0))
        assert tool("tools.py", goal_hint="retries") == DEMO_CODE
    assert tool.stats.errors == 1


def test_language_comes_from_the_path(repo: Path) -> None:
    seen: list[str] = []

    class Recorder:
        def prune(self, text: str, goal_hint: str, language: str) -> str:
            seen.append(language)
            return text[:10]

    tool = PruningReader(make_reader(repo), Recorder(), min_chars=10)
    tool("tools.py", goal_hint="x")
    tool(path="NOTES.md", goal_hint="x")
    assert seen == ["python", "markdown"]
