"""One terminal episode: a sandbox built by the task's setup, the agent's shell, grading.

Actions are shell commands (text), observations their output and exit status; `submit`
ends the episode and runs the completion test, as do the step limit and the episode
timeout. The reward is the test's verdict (1.0 or 0.0).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from typing import Any

from gantry.core.errors import FailedPrecondition, Unavailable
from gantry.envfarm.family import BadAction, EpisodeLimits, Outcome, TaskEpisode
from gantry.envfarm.sandbox import (
    ExecResult,
    Sandbox,
    SandboxBackend,
    SandboxError,
    SandboxLimits,
    SandboxSpec,
)
from gantry.envfarm.terminal.grader import TestReport, run_test
from gantry.envfarm.terminal.shell import CommandResult, Shell
from gantry.envfarm.terminal.task import MAX_COMMAND_BYTES, TerminalTask
from gantry.proto.common.v1 import episode_pb2

log = logging.getLogger("gantry.envfarm.terminal")

FINISH = "submit"
START_ATTEMPTS = 3
SETUP_TIMEOUT_S = 60.0
METRIC = "completion_test"
# Text characters a command may hold besides printable ones.
ALLOWED_CONTROLS = frozenset("\t\n\r")


def shell_note(workspace: str) -> str:
    return (
        f"You are in a bash shell in {workspace}. Send one shell command per step; you "
        f"see its output and exit status. Send '{FINISH}' when the task is done."
    )


def check_command(action: str) -> None:
    """Refuse what is not a shell command: empty, over-long, binary garbage."""
    if not action.strip():
        raise BadAction(f"is empty: send a shell command, or {FINISH!r} when the task is done")
    size = len(action.encode("utf-8", "surrogatepass"))
    if size > MAX_COMMAND_BYTES:
        raise BadAction(f"is {size} bytes; a command holds at most {MAX_COMMAND_BYTES}")
    for offset, char in enumerate(action):
        code = ord(char)
        if (code < 32 and char not in ALLOWED_CONTROLS) or 127 <= code < 160:
            raise BadAction(
                f"holds the control character U+{code:04X} at offset {offset}; a command "
                "is text (tab and newline allowed)"
            )
        if 0xD800 <= code < 0xE000:
            raise BadAction(f"holds a lone surrogate at offset {offset}")
    if action.strip().startswith(FINISH + " "):
        raise BadAction(f"{FINISH!r} takes no answer: the completion test checks the sandbox")


def describe(result: CommandResult, step_timeout_s: float) -> str:
    """The observation of one command: its output, then a status line."""
    if result.timed_out:
        status = f"[timed out after {step_timeout_s:g}s; the shell was restarted in {result.cwd}]"
    elif result.exit_code is None:
        status = f"[the shell exited; a new shell was started in {result.cwd}]"
    else:
        status = f"[exit status {result.exit_code}]"
    output = result.output
    return f"{output}{'' if not output or output.endswith(chr(10)) else chr(10)}{status}"


class TerminalEpisode(TaskEpisode):
    finish_action = FINISH

    def __init__(
        self,
        task: TerminalTask,
        backend: Callable[[], SandboxBackend],
        *,
        max_steps: int | None = None,
        limits: EpisodeLimits | None = None,
        output_bytes: int = 16384,
        python: str = "python3",
    ) -> None:
        base = limits or EpisodeLimits(
            step_timeout_s=task.limits.step_timeout_s,
            episode_timeout_s=task.limits.episode_timeout_s,
            test_timeout_s=task.limits.test_timeout_s,
            memory_bytes=task.limits.memory_bytes,
            storage_bytes=task.limits.storage_bytes,
        )
        super().__init__(task.env_id, task.difficulty, max_steps or task.limits.max_steps, base)
        self.task = task
        self._backend = backend
        self.output_bytes = output_bytes
        self.python = python
        self.sandbox: Sandbox | None = None
        self.shell: Shell | None = None

    def check_action(self, action: str) -> None:
        check_command(action)

    def _spec(self) -> SandboxSpec:
        return SandboxSpec(
            limits=SandboxLimits(
                wall_seconds=max(self.limits.step_timeout_s, self.limits.test_timeout_s),
                cpu_seconds=max(1, math.ceil(self.limits.episode_timeout_s)),
                address_space_bytes=self.limits.memory_bytes,
                file_size_bytes=self.limits.storage_bytes,
            )
        )

    def _build(self) -> ExecResult:
        """A new sandbox with the setup run in it. A sandbox that dies while starting (its
        agent gone: no exit status) is replaced, up to START_ATTEMPTS times."""
        for attempt in range(1, START_ATTEMPTS + 1):
            self.close()
            try:
                self.sandbox = self._backend().create(self._spec())
                built = self.sandbox.exec(
                    ["bash", "-s"],
                    stdin=self.task.setup.encode(),
                    timeout_s=SETUP_TIMEOUT_S,
                    cwd=self.sandbox.workspace,
                )
            except SandboxError as exc:
                failure = str(exc)
            else:
                if built.exit_code is not None or built.timed_out:
                    return built
                failure = "the sandbox died during the setup"
            log.warning("%s: sandbox start %d failed: %s", self.env_id, attempt, failure)
        self.close()
        raise Unavailable(f"no sandbox for {self.env_id}: {failure}", retry_after_s=1.0)

    def _start(self, seed: int) -> episode_pb2.Observation:
        """A fresh sandbox built by the setup script (a fixed task ignores the seed)."""
        built = self._build()
        assert self.sandbox is not None
        if built.exit_code != 0:
            output = (built.stdout + built.stderr).decode("utf-8", "replace")[-500:]
            self.close()
            raise FailedPrecondition(
                f"the setup of {self.env_id} failed (exit {built.exit_code}): {output}",
                reason="TASK_SETUP_FAILED",
            )
        self.shell = Shell(self.sandbox, output_bytes=self.output_bytes)
        text = f"{self.task.instruction}\n\n{shell_note(self.sandbox.workspace)}"
        return episode_pb2.Observation(text=text)

    def _act(self, action: str) -> tuple[episode_pb2.Observation, str, dict[str, Any]]:
        assert self.shell is not None, "step before reset"
        try:
            result = self.shell.run(action, self.limits.step_timeout_s)
        except SandboxError as exc:  # no new shell could start: the sandbox itself is gone
            self.steps -= 1
            raise FailedPrecondition(
                f"the sandbox of this {self.env_id} session is gone ({exc}); Reset starts a "
                "new one",
                reason="SANDBOX_LOST",
            ) from exc
        info: dict[str, Any] = {
            "timed_out": result.timed_out,
            "truncated": result.truncated,
            "cwd": result.cwd,
        }
        if result.exit_code is not None:
            info["exit_code"] = result.exit_code
        feedback = "The command timed out." if result.timed_out else ""
        return (
            episode_pb2.Observation(text=describe(result, self.limits.step_timeout_s)),
            feedback,
            info,
        )

    def run_test(self, source: str) -> TestReport:
        assert self.sandbox is not None, "test before reset"
        return run_test(
            self.sandbox, source, timeout_s=self.limits.test_timeout_s, python=self.python
        )

    def _grade(self, answer: str) -> Outcome:
        # The shell is idle (the session lock is held) and what the agent left running
        # in the background is part of the state graded; the shell goes afterwards.
        report = self.run_test(self.task.completion_test)
        if self.shell is not None:
            self.shell.close()
        return Outcome(
            success=report.passed,
            score=1.0 if report.passed else 0.0,
            metric=METRIC,
            test_output=report.output,
            answer=answer,
            timed_out=report.timed_out,
        )

    def reference_solution(self) -> list[str]:
        return [*self.task.solution, FINISH]

    def initial_state(self) -> dict[str, Any]:
        return self.task.to_json()

    def close(self) -> None:
        if self.shell is not None:
            self.shell.close()
            self.shell = None
        if self.sandbox is not None:
            self.sandbox.close()
            self.sandbox = None
