"""Terminal tasks: the seeded suite, the task format, and validation in a real sandbox.

Validating all 210 built-in tasks is `make validate-terminal`; here one task per category
goes through the full validation, and broken tasks are shown to be rejected for the
right reason.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import os
from collections import Counter
from pathlib import Path

import pytest

from gantry.core.errors import FailedPrecondition
from gantry.envfarm.family import UnknownTask
from gantry.envfarm.sandbox import SandboxBackend, make_backend
from gantry.envfarm.sandbox.testing import reachable_root
from gantry.envfarm.sessions import SessionManager
from gantry.envfarm.terminal.episode import TerminalEpisode
from gantry.envfarm.terminal.suite import SuiteStore, core_suite, derive_seed, template_task
from gantry.envfarm.terminal.task import TerminalTask
from gantry.envfarm.terminal.templates import CATEGORIES
from gantry.envfarm.terminal.validate import (
    BUILD_FAILED,
    INITIAL_TEST_FAILED,
    REFERENCE_FAILED,
    TRIVIAL,
    validate,
)


@pytest.fixture(scope="module")
def backend(tmp_path_factory: pytest.TempPathFactory) -> SandboxBackend:
    backend = make_backend("bubblewrap", root=reachable_root(tmp_path_factory.mktemp("bwrap")))
    backend.probe()
    return backend


def test_the_core_suite_has_200_tasks_over_8_categories_reproducibly() -> None:
    suite = core_suite()
    per_category = Counter(t.category for t in suite)
    assert len(suite) >= 200 and len(per_category) >= 8
    assert min(per_category.values()) >= 20
    assert len({t.env_id for t in suite}) == len(suite)
    assert {(t.category, t.difficulty) for t in suite} == {
        (c, d) for c in CATEGORIES for d in ("easy", "hard")
    }
    again = core_suite()
    assert [t.to_json() for t in again] == [t.to_json() for t in suite]  # seeds alone
    distinct = {(t.setup, t.completion_test) for t in suite}
    assert len(distinct) == len(suite)  # seeds give distinct tasks


def test_difficulty_knobs_change_the_task() -> None:
    for category in CATEGORIES:
        seed = derive_seed("knobs", category)
        easy = template_task("t", category, 0, seed, "easy")
        hard = template_task("t", category, 0, seed, "hard")
        assert easy.knobs != hard.knobs, category
        assert easy.completion_test != hard.completion_test, category


def test_tasks_round_trip_through_json_and_refuse_bad_fields() -> None:
    task = core_suite(1)[0]
    assert TerminalTask.from_json(json.loads(json.dumps(task.to_json()))) == task
    for broken, says in [
        ({**task.to_json(), "solution": []}, "solution"),
        ({**task.to_json(), "difficulty": "medium"}, "difficulty"),
        ({**task.to_json(), "id": "../escape"}, "'id'"),
        ({**task.to_json(), "setup": "x" * 70000}, "'setup'"),
        ({**task.to_json(), "limits": {"max_steps": 0}}, "limits.max_steps"),
        ({**task.to_json(), "extra": 1}, "unknown task fields"),
        ([], "JSON object"),
    ]:
        with pytest.raises(ValueError, match=says):
            TerminalTask.from_json(broken)


@pytest.mark.slow
def test_one_task_per_category_validates_in_the_sandbox(backend: SandboxBackend) -> None:
    hard = [t for t in core_suite(2) if t.difficulty == "hard"]
    assert len(hard) == len(CATEGORIES)
    for task in hard:
        verdict = validate(task, lambda: backend)
        assert verdict.ok, (task.env_id, verdict.reason, verdict.detail)


def test_validation_rejects_broken_tasks_for_the_right_reason(backend: SandboxBackend) -> None:
    task = template_task("t", "config_files", 0, 7, "easy")
    broken = {
        BUILD_FAILED: dataclasses.replace(task, setup="exit 3\n"),
        INITIAL_TEST_FAILED: dataclasses.replace(
            task, initial_test="def test_x():\n    assert False\n"
        ),
        TRIVIAL: dataclasses.replace(task, completion_test="def test_x():\n    pass\n"),
        REFERENCE_FAILED: dataclasses.replace(task, solution=("echo not the fix",)),
    }
    for reason, bad in broken.items():
        verdict = validate(bad, lambda: backend)
        assert verdict.reason == reason, (reason, verdict.detail)
    assert validate(task, lambda: backend).ok


def test_a_worker_checked_before_its_exec_still_passes(backend: SandboxBackend) -> None:
    """`cmd &` forks a shell that execs the worker a moment later; a grader that reads
    /proc/PID/cmdline in between saw the shell (a flaky REFERENCE_FAILED on a loaded CI
    machine). Here the exec is 1 s late on purpose; the check waits for it."""
    task = template_task("t", "processes", 0, 11, "easy")
    worker, pidfile = task.truth["worker"], task.truth["pidfile"]
    late = f"(sleep 1; exec {worker}) > /dev/null 2>&1 & echo $! > {pidfile}"
    verdict = validate(dataclasses.replace(task, solution=(late,)), lambda: backend)
    assert verdict.ok, (verdict.reason, verdict.detail)


def _exists(path: str) -> bool:
    return os.path.exists(path)


def test_an_expired_session_frees_its_sandbox(backend: SandboxBackend) -> None:
    async def scenario() -> tuple[str, bool, bool]:
        sessions = SessionManager(max_sessions=4, idle_timeout_s=0.05, lifetime_s=60)
        episode = TerminalEpisode(template_task("t", "git", 0, 5, "easy"), lambda: backend)
        episode.reset(0)
        assert episode.sandbox is not None
        folder = str(getattr(episode.sandbox, "host_workspace", ""))
        sessions.add(episode.env_id, episode, 0, None, None)
        alive = _exists(folder)
        await asyncio.sleep(0.1)
        assert sessions.reap() and not len(sessions)
        for _ in range(100):  # closed off the loop
            if episode.sandbox is None and not _exists(folder):
                break
            await asyncio.sleep(0.05)
        return folder, alive, _exists(folder)

    folder, alive_before, exists_after = asyncio.run(scenario())
    assert folder and alive_before and not exists_after


def test_generated_suites_persist_in_their_folder(tmp_path: Path) -> None:
    tasks = [template_task("mine", "git", i, derive_seed("p", i), "easy") for i in range(2)]
    store = SuiteStore(core_suite(1), folder=tmp_path)
    store.add("mine", tasks)
    reloaded = SuiteStore(core_suite(1), folder=tmp_path)
    assert reloaded.tasks("mine") == tasks
    assert "terminal/mine/git-001" in reloaded.ids()
    with pytest.raises(ValueError, match="built-in"):
        reloaded.delete("core")
    assert reloaded.delete("mine") == ["terminal/mine/git-000", "terminal/mine/git-001"]
    assert not list(tmp_path.glob("*.json"))
    with pytest.raises(UnknownTask):
        reloaded.get("terminal/mine/git-000")
    (tmp_path / "broken.json").write_text("[{]")  # a damaged file is skipped, not fatal
    assert SuiteStore(folder=tmp_path).ids() == []


def test_a_lost_sandbox_fails_the_step_cleanly_and_reset_recovers(
    backend: SandboxBackend,
) -> None:
    episode = TerminalEpisode(template_task("t", "sqlite", 0, 9, "easy"), lambda: backend)
    try:
        episode.reset(0)
        assert episode.sandbox is not None
        episode.step("ls")
        episode.sandbox.close()  # the sandbox dies under the session
        with pytest.raises(FailedPrecondition, match="Reset starts a new one"):
            episode.step("ls")
        assert episode.steps == 1  # the refused step is not counted
        episode.reset(0)
        assert "shop.db" in episode.step("ls").observation.text
    finally:
        episode.close()
