"""Task families: environments that are fixed tasks played in a sandbox.

VisGym environments draw a state from a seed and plan from any state. Terminal
(Endless Terminals) and notebook (DSGym) environments are different: each environment is
one fixed task ("terminal/<suite>/<task>", "dsgym/<task>"), played in its own sandbox with
text actions, graded once at the end (a finish action, the step limit or the episode
timeout) into an `Outcome`, and solved by a fixed reference solution. A family offers its
catalogue and makes `TaskEpisode`s; the servicer serves them through the same sessions,
Step/StepBatch, Solve, ExportState and ExportDemonstrations as VisGym environments.

A family plugs in by subclassing `TaskFamily` and `TaskEpisode`; the service lists its
families in `Families` (ListEnvironments, routing by id prefix).
"""

from __future__ import annotations

import time
from abc import ABC, abstractmethod
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

from gantry.envfarm.envs.base import Difficulty
from gantry.proto.common.v1 import episode_pb2
from gantry.proto.envfarm.v1 import envfarm_pb2

REFERENCE = "reference"  # the one solver strategy of a fixed task


class BadAction(ValueError):
    """An action refused before it runs (binary garbage, over-long, malformed): the
    servicer answers INVALID_ARGUMENT naming the action field; no step is taken."""


class UnknownTask(KeyError):
    """An id under a family's prefix that names no task (NOT_FOUND)."""


@dataclass(frozen=True)
class Outcome:
    """The graded end of an episode (EpisodeOutcome on the wire)."""

    success: bool
    score: float
    metric: str
    test_output: str = ""
    answer: str = ""
    timed_out: bool = False

    def to_proto(self) -> envfarm_pb2.EpisodeOutcome:
        return envfarm_pb2.EpisodeOutcome(
            success=self.success,
            score=self.score,
            metric=self.metric,
            test_output=self.test_output,
            answer=self.answer,
            test_timed_out=self.timed_out,
        )


@dataclass
class TaskStep:
    """One step's result; `outcome` is set on the step that ends the episode."""

    observation: episode_pb2.Observation
    reward: float = 0.0
    terminated: bool = False
    truncated: bool = False
    feedback: str = ""
    info: dict[str, Any] = field(default_factory=dict)
    outcome: Outcome | None = None


@dataclass
class EpisodeLimits:
    """Limits in effect for one episode (ResourceLimits on the wire)."""

    step_timeout_s: float
    episode_timeout_s: float
    test_timeout_s: float
    memory_bytes: int
    storage_bytes: int
    cpus: float = 1.0

    def to_proto(self) -> envfarm_pb2.ResourceLimits:
        limits = envfarm_pb2.ResourceLimits(
            cpus=self.cpus, memory_bytes=self.memory_bytes, storage_bytes=self.storage_bytes
        )
        limits.step_timeout.FromNanoseconds(int(self.step_timeout_s * 1e9))
        limits.episode_timeout.FromNanoseconds(int(self.episode_timeout_s * 1e9))
        limits.test_timeout.FromNanoseconds(int(self.test_timeout_s * 1e9))
        return limits

    def override(self, wire: envfarm_pb2.ResourceLimits) -> EpisodeLimits:
        """These limits with the fields a client set (non-zero) taken from `wire`,
        never above these (the task's limits are the ceiling)."""

        def seconds(name: str, current: float) -> float:
            if not wire.HasField(name):
                return current
            value = getattr(wire, name).ToNanoseconds() / 1e9
            return min(value, current) if value > 0 else current

        return EpisodeLimits(
            step_timeout_s=seconds("step_timeout", self.step_timeout_s),
            episode_timeout_s=seconds("episode_timeout", self.episode_timeout_s),
            test_timeout_s=seconds("test_timeout", self.test_timeout_s),
            memory_bytes=min(wire.memory_bytes or self.memory_bytes, self.memory_bytes),
            storage_bytes=min(wire.storage_bytes or self.storage_bytes, self.storage_bytes),
            cpus=min(wire.cpus or self.cpus, self.cpus),
        )


class TaskEpisode(ABC):
    """One live task in its sandbox. Calls are serialised by the session's lock and run in
    worker threads. Subclasses write `_start`, `_act`, `_grade` and the rest; this base
    counts steps, recognises the finish action and ends the episode (graded) at the finish
    action, the step limit or the episode timeout."""

    finish_action: ClassVar[str]

    def __init__(
        self, env_id: str, difficulty: Difficulty, max_steps: int, limits: EpisodeLimits
    ) -> None:
        self.env_id = env_id
        self.difficulty = difficulty
        self.max_steps = max_steps
        self.limits = limits
        self.steps = 0
        self.done = False
        self._started = time.monotonic()
        self._last_obs = episode_pb2.Observation()

    # ----- what a family writes -----
    @abstractmethod
    def check_action(self, action: str) -> None:
        """Raise BadAction for an action that must not run; cheap (no sandbox work)."""

    @abstractmethod
    def _start(self, seed: int) -> episode_pb2.Observation:
        """(Re)build the task's initial state; the first observation."""

    @abstractmethod
    def _act(self, action: str) -> tuple[episode_pb2.Observation, str, dict[str, Any]]:
        """Run one (non-finish) action: observation, feedback, info."""

    @abstractmethod
    def _grade(self, answer: str) -> Outcome:
        """Grade the episode now (the finish action's answer, "" when none)."""

    @abstractmethod
    def reference_solution(self) -> list[str]:
        """The task's deterministic reference solution, ending with the finish action."""

    @abstractmethod
    def initial_state(self) -> dict[str, Any]:
        """The task as JSON (ExportState); self-contained."""

    @abstractmethod
    def close(self) -> None:
        """Free the sandbox; idempotent."""

    # ----- the shared episode logic -----
    def finish_answer(self, action: str) -> str | None:
        """The answer when `action` is the finish action (bare or followed by an answer)."""
        text = action.strip()
        if text == self.finish_action:
            return ""
        if text.startswith(self.finish_action + " "):
            return text[len(self.finish_action) + 1 :].strip()
        return None

    def reset(self, seed: int) -> episode_pb2.Observation:
        self.steps, self.done = 0, False
        self._last_obs = self._start(seed)
        self._started = time.monotonic()
        return self._last_obs

    def observation(self) -> episode_pb2.Observation:
        return self._last_obs

    def step(self, action: str) -> TaskStep:
        self.steps += 1
        answer = self.finish_answer(action)
        if answer is not None:
            return self._end(answer, self._last_obs, "", {}, terminated=True)
        obs, feedback, info = self._act(action)
        self._last_obs = obs
        out_of_time = time.monotonic() - self._started > self.limits.episode_timeout_s
        if self.steps >= self.max_steps or out_of_time:
            why = "episode timeout" if out_of_time else "step limit"
            note = f"{feedback} " if feedback else ""
            return self._end("", obs, f"{note}Episode over ({why}).", info, terminated=False)
        return TaskStep(observation=obs, feedback=feedback, info=info)

    def _end(
        self,
        answer: str,
        obs: episode_pb2.Observation,
        feedback: str,
        info: dict[str, Any],
        *,
        terminated: bool,
    ) -> TaskStep:
        outcome = self._grade(answer)
        self.done = True
        verdict = "passed" if outcome.success else "failed"
        return TaskStep(
            observation=obs,
            reward=1.0 if outcome.success else 0.0,
            terminated=terminated,
            truncated=not terminated,
            feedback=f"{feedback} The task {verdict}.".strip(),
            info={**info, "success": outcome.success, "score": outcome.score},
            outcome=outcome,
        )


@dataclass
class DemoTurn:
    observation: episode_pb2.Observation
    action: str
    feedback: str


@dataclass
class TaskDemonstration:
    """The reference solution played from a fresh episode (ExportDemonstrations)."""

    instructions: str
    turns: list[DemoTurn]
    final_reward: float

    @property
    def succeeded(self) -> bool:
        return self.final_reward == 1.0


class TaskFamily(ABC):
    """A catalogue of fixed tasks of one kind, and the episodes that play them."""

    kind: ClassVar[int]  # envfarm_pb2.EnvironmentKind
    prefix: ClassVar[str]  # wire ids start with it, e.g. "terminal/"

    @abstractmethod
    def ids(self) -> list[str]:
        """Wire ids of the tasks, sorted."""

    @abstractmethod
    def environment(self, env_id: str) -> envfarm_pb2.Environment:
        """The catalogue entry; raises UnknownTask."""

    @abstractmethod
    def make(
        self,
        env_id: str,
        *,
        max_steps: int | None,
        limits: envfarm_pb2.ResourceLimits,
        state: dict[str, Any] | None = None,
    ) -> TaskEpisode:
        """A new episode (not yet reset; the sandbox may start lazily). `state` is a task
        previously exported by ExportState (instead of the catalogue's). Raises
        UnknownTask, or ValueError for a state that is not a task of this family."""

    def close(self) -> None:  # noqa: B027 - most families hold nothing to free
        """Free what the family holds (pools, generators)."""

    def owns(self, env_id: str) -> bool:
        return env_id.startswith(self.prefix)

    def demonstrate(self, env_id: str, seed: int) -> TaskDemonstration:
        """Play the reference solution from a fresh episode of `env_id`."""
        episode = self.make(env_id, max_steps=None, limits=envfarm_pb2.ResourceLimits())
        try:
            obs = episode.reset(seed)
            turns: list[DemoTurn] = []
            reward = 0.0
            for action in episode.reference_solution():
                result = episode.step(action)
                turns.append(DemoTurn(obs, action, result.feedback))
                obs, reward = result.observation, result.reward
                if result.terminated or result.truncated:
                    break
            return TaskDemonstration(self.environment(env_id).instructions, turns, reward)
        finally:
            episode.close()


class Families:
    """The families a server hosts, found by id prefix."""

    def __init__(self, families: Iterable[TaskFamily] = ()) -> None:
        self.all: Sequence[TaskFamily] = tuple(families)

    def find(self, env_id: str) -> TaskFamily | None:
        return next((f for f in self.all if f.owns(env_id)), None)

    def listing(self, kind: int, id_prefix: str) -> list[tuple[str, TaskFamily]]:
        """(id, family) of every task matching the ListEnvironments filters."""
        return [
            (env_id, family)
            for family in self.all
            if kind in (envfarm_pb2.ENVIRONMENT_KIND_UNSPECIFIED, family.kind)
            # a prefix outside the family's never builds its catalogue (notebook: seconds)
            and (family.prefix.startswith(id_prefix) or id_prefix.startswith(family.prefix))
            for env_id in family.ids()
            if env_id.startswith(id_prefix)
        ]

    def close(self) -> None:
        for family in self.all:
            family.close()
