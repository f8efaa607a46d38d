"""The terminal family: Endless-Terminals tasks in the envfarm catalogue."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from gantry.core.errors import FailedPrecondition
from gantry.envfarm.family import REFERENCE, EpisodeLimits, TaskFamily
from gantry.envfarm.sandbox import SandboxBackend, SandboxUnavailable
from gantry.envfarm.terminal.episode import FINISH, TerminalEpisode
from gantry.envfarm.terminal.suite import PREFIX, SuiteStore
from gantry.envfarm.terminal.task import MAX_COMMAND_BYTES, TerminalTask
from gantry.proto.common.v1 import episode_pb2
from gantry.proto.envfarm.v1 import envfarm_pb2

INSTRUCTIONS = (
    "You operate a bash shell in a sandbox to complete a task stated in the first "
    "observation. Each action is one shell command (it may span lines); you see its output "
    f"and exit status. The shell keeps its state between commands. Send '{FINISH}' when "
    "the task is done: a hidden test then checks the sandbox, and the reward is 1 if it "
    "passes, else 0."
)
GRAMMAR = (
    f"One bash command per action (multi-line allowed, at most {MAX_COMMAND_BYTES} bytes of "
    f"text: no control characters other than tab and newline); '{FINISH}' ends the episode."
)
_DIFFICULTY = {"easy": episode_pb2.DIFFICULTY_EASY, "hard": episode_pb2.DIFFICULTY_HARD}


def environment(task: TerminalTask) -> envfarm_pb2.Environment:
    limits = EpisodeLimits(
        step_timeout_s=task.limits.step_timeout_s,
        episode_timeout_s=task.limits.episode_timeout_s,
        test_timeout_s=task.limits.test_timeout_s,
        memory_bytes=task.limits.memory_bytes,
        storage_bytes=task.limits.storage_bytes,
    )
    knobs = ", ".join(f"{k}={v}" for k, v in sorted(task.knobs.items()))
    return envfarm_pb2.Environment(
        id=task.env_id,
        kind=envfarm_pb2.ENVIRONMENT_KIND_TERMINAL,
        description=task.instruction,
        instructions=INSTRUCTIONS,
        action_grammar=GRAMMAR,
        action_examples=["ls -la", "cat README.md", FINISH],
        difficulties=[
            envfarm_pb2.DifficultyLevel(
                difficulty=_DIFFICULTY[task.difficulty],
                max_steps=task.limits.max_steps,
                description=f"{task.category} ({knobs})",
            )
        ],
        observation_modes=[episode_pb2.OBSERVATION_MODE_TEXT],
        supports_text_feedback=True,
        has_solver=True,
        solver_strategies=[REFERENCE],
        limits=limits.to_proto(),
        finish_action=FINISH,
        finish_action_format=f"'{FINISH}' alone (no answer: the completion test checks the "
        "sandbox's state)",
        seed_semantics=envfarm_pb2.SEED_SEMANTICS_FIXED_TASK,
        solver_kind=envfarm_pb2.SOLVER_KIND_REFERENCE,
        task=envfarm_pb2.TaskMetadata(
            suite=task.suite,
            category=task.category,
            type=envfarm_pb2.TASK_TYPE_SHELL,
            metric="completion_test",
            higher_is_better=True,
            knobs=task.knobs,
            generation_seed=task.seed,
            source=task.source,
        ),
    )


def _probe(backend: SandboxBackend, attempts: int = 3) -> None:
    """Probe, retrying a failure once or twice (a sandbox start can fail transiently)."""
    for attempt in range(attempts):
        try:
            backend.probe()
            return
        except SandboxUnavailable:
            if attempt == attempts - 1:
                raise


class TerminalFamily(TaskFamily):
    kind = envfarm_pb2.ENVIRONMENT_KIND_TERMINAL
    prefix = PREFIX

    def __init__(
        self,
        suites: SuiteStore,
        backend: Callable[[], SandboxBackend],
        *,
        output_bytes: int = 16384,
        python: str = "python3",
    ) -> None:
        self.suites = suites
        self._make_backend = backend
        self._backend: SandboxBackend | None = None
        self._lock = threading.Lock()
        self.output_bytes = output_bytes
        self.python = python

    def backend(self) -> SandboxBackend:
        """The sandbox backend, probed on first use."""
        with self._lock:
            if self._backend is None:
                backend = self._make_backend()
                try:
                    _probe(backend)
                except SandboxUnavailable as exc:
                    raise FailedPrecondition(
                        f"terminal tasks need a sandbox and the {backend.name} backend cannot "
                        f"run here: {exc}",
                        reason="SANDBOX_UNAVAILABLE",
                    ) from exc
                self._backend = backend
            return self._backend

    def ids(self) -> list[str]:
        return self.suites.ids()

    def environment(self, env_id: str) -> envfarm_pb2.Environment:
        return environment(self.suites.get(env_id))

    def make(
        self,
        env_id: str,
        *,
        max_steps: int | None,
        limits: envfarm_pb2.ResourceLimits,
        state: dict[str, Any] | None = None,
    ) -> TerminalEpisode:
        task = self.suites.get(env_id)
        if state is not None:
            loaded = TerminalTask.from_json(state)
            if loaded.env_id != env_id:
                raise ValueError(f"is the task {loaded.env_id}, not {env_id}")
            task = loaded
        episode = TerminalEpisode(
            task,
            self.backend,
            max_steps=max_steps,
            output_bytes=self.output_bytes,
            python=self.python,
        )
        episode.limits = episode.limits.override(limits)
        return episode
