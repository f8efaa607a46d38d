"""The labelled meta-evaluation set, built through envfarm's gRPC API.

Every item is a VisGym task with a symbolic text mode (maze_2d, sliding_block), an agent
answer (the actions it took, claiming the goal) and the trajectory envfarm produced for
those actions. Each task is used twice: once with a correct solver plan, once with one
injected failure (failures.py), the kinds taking turns. The label is executable ground
truth: the plan is replayed in a fresh envfarm session and the item is correct exactly
when the episode ends with VisGym's success reward. Nothing is stored: the same seed and
envfarm build give the same items.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from dataclasses import dataclass, field

import grpc

from gantry.proto.common.v1 import episode_pb2
from gantry.proto.envfarm.v1 import envfarm_pb2, envfarm_pb2_grpc
from gantry.verifier.metaeval import failures

# (env id, difficulty, solver strategies); each has a symbolic text observation.
FAMILIES = (
    ("visgym/maze_2d", "easy", ("bfs", "right_hand")),
    ("visgym/maze_2d", "hard", ("bfs", "right_hand")),
    ("visgym/sliding_block", "easy", ("astar", "greedy")),
)
_DIFFICULTY = {"easy": episode_pb2.DIFFICULTY_EASY, "hard": episode_pb2.DIFFICULTY_HARD}
# What the agent saw: the text board only. envfarm's feedback ("Task completed.") and the
# rewards would state the label outright; only the executable check may read them.
_SETTINGS = episode_pb2.EpisodeSettings(observation_mode=episode_pb2.OBSERVATION_MODE_TEXT)
SUCCESS_REWARD = 1.0
THOUGHT = "Next action of my plan."
WRONG_SOURCE_OFFSET = 1_000_003  # the seed of the board the wrong-source agent looked at


@dataclass(frozen=True)
class Step:
    """One replayed step: the action and what envfarm answered (the reward is the label's
    source, kept for checking the set, never shown to a judge)."""

    action: str
    observation: str
    reward: float
    terminated: bool
    truncated: bool
    action_valid: bool


@dataclass(frozen=True)
class Item:
    """One labelled answer. `correct` is envfarm's verdict on the replay."""

    id: str
    env_id: str
    difficulty: str
    seed: int
    max_steps: int
    task: str
    answer: str
    steps: tuple[Step, ...]
    injected: str  # "none" or a failures.KINDS key
    correct: bool
    failure_class: str = field(default="")  # FailureClass name for injected items

    @property
    def actions(self) -> list[str]:
        return [step.action for step in self.steps]


def _task_text(env: envfarm_pb2.Environment, max_steps: int, observation: str) -> str:
    return (
        f"{env.description.strip()}\n"
        f"Actions: {env.action_grammar.strip()}\n"
        f"You have at most {max_steps} steps.\n"
        f"Initial observation:\n{observation.strip()}\n"
        "Act until the goal is met, then answer with the actions you took."
    )


def answer_text(actions: list[str]) -> str:
    """What the agent answers: the goal claimed, and its actions in order."""
    return "Goal reached. Actions: " + "; ".join(actions)


class Builder:
    """Builds items against one envfarm server (a channel from gantry.core.client)."""

    def __init__(self, channel: grpc.Channel, *, timeout_s: float = 120.0) -> None:
        self.stub = envfarm_pb2_grpc.EnvFarmServiceStub(channel)
        self.timeout_s = timeout_s
        self._envs: dict[str, envfarm_pb2.Environment] = {}

    def environment(self, env_id: str) -> envfarm_pb2.Environment:
        if env_id not in self._envs:
            listed = self.stub.ListEnvironments(
                envfarm_pb2.ListEnvironmentsRequest(id_prefix=env_id), timeout=self.timeout_s
            )
            self._envs.update({e.id: e for e in listed.environments})
        return self._envs[env_id]

    def max_steps(self, env_id: str, difficulty: str) -> int:
        levels = self.environment(env_id).difficulties
        return next(d.max_steps for d in levels if d.difficulty == _DIFFICULTY[difficulty])

    def _session(
        self, env_id: str, difficulty: str, seed: int
    ) -> envfarm_pb2.CreateSessionResponse:
        return self.stub.CreateSession(
            envfarm_pb2.CreateSessionRequest(
                env_id=env_id, difficulty=_DIFFICULTY[difficulty], seed=seed, settings=_SETTINGS
            ),
            timeout=self.timeout_s,
        )

    def _close(self, session_id: str) -> None:
        self.stub.CloseSession(
            envfarm_pb2.CloseSessionRequest(session_id=session_id), timeout=self.timeout_s
        )

    def solve(
        self, env_id: str, difficulty: str, seed: int, strategy: str, detours: int
    ) -> list[str]:
        created = self._session(env_id, difficulty, seed)
        try:
            solved = self.stub.Solve(
                envfarm_pb2.SolveRequest(
                    session_id=created.session.id, strategy=strategy, detour_count=detours
                ),
                timeout=self.timeout_s,
            )
            return list(solved.actions)
        finally:
            self._close(created.session.id)

    def replay(
        self, env_id: str, difficulty: str, seed: int, plan: list[str]
    ) -> tuple[str, int, list[Step]]:
        """(initial observation, step limit, steps) of `plan` from the seed's start; the
        replay ends where the episode does."""
        created = self._session(env_id, difficulty, seed)
        steps: list[Step] = []
        try:
            for action in plan:
                result = self.stub.Step(
                    envfarm_pb2.StepRequest(session_id=created.session.id, action=action),
                    timeout=self.timeout_s,
                ).result
                steps.append(
                    Step(
                        action=action,
                        observation=result.observation.text,
                        reward=result.reward,
                        terminated=result.terminated,
                        truncated=result.truncated,
                        action_valid=result.action_valid,
                    )
                )
                if result.terminated or result.truncated:
                    break
        finally:
            self._close(created.session.id)
        return created.observation.text, created.session.max_steps, steps

    def item(
        self, env_id: str, difficulty: str, seed: int, plan: list[str], injected: str, index: int
    ) -> Item:
        observation, max_steps, steps = self.replay(env_id, difficulty, seed, plan)
        correct = bool(steps) and steps[-1].terminated and steps[-1].reward >= SUCCESS_REWARD
        return Item(
            id=f"{index:04d}-{env_id.rpartition('/')[2]}-{difficulty}-{seed}-{injected}",
            env_id=env_id,
            difficulty=difficulty,
            seed=seed,
            max_steps=max_steps,
            task=_task_text(self.environment(env_id), max_steps, observation),
            answer=answer_text([s.action for s in steps]),
            steps=tuple(steps),
            injected=injected,
            correct=correct,
            failure_class=failures.KINDS.get(injected, ""),
        )

    def inject(
        self,
        kind: str,
        env_id: str,
        difficulty: str,
        seed: int,
        plan: list[str],
        max_steps: int,
        rng: random.Random,
    ) -> list[str]:
        if kind == "wrong_source":
            return self.solve(env_id, difficulty, seed + WRONG_SOURCE_OFFSET, "", 0)
        if kind == "reasoning_slip":
            return failures.reasoning_slip(plan, rng)
        if kind == "misread_instruction":
            return failures.misread_instruction(plan, rng)
        if kind == "format_error":
            return failures.format_error(plan, rng)
        if kind == "step_limit":
            return failures.step_limit(plan, max_steps)
        raise ValueError(f"unknown failure kind {kind!r}")


def build(channel: grpc.Channel, count: int, *, seed: int = 0) -> list[Item]:
    """`count` items (rounded up to an even number): half correct, half failed, each
    failure kind in turn; tasks whose injection happens to still succeed are skipped so
    that every failed item is wrong on replay."""
    return list(_generate(Builder(channel), count, seed))


def _generate(builder: Builder, count: int, seed: int) -> Iterator[Item]:
    rng = random.Random(seed)
    kinds = list(failures.KINDS)
    made = 0
    task_seed = seed * 100_000
    while made < count:
        env_id, difficulty, strategies = FAMILIES[(made // 2) % len(FAMILIES)]
        task_seed += 1
        kind = kinds[(made // 2) % len(kinds)]
        strategy = rng.choice(strategies)
        detours = rng.choice((0, 0, 1, 2))
        try:
            good = builder.solve(env_id, difficulty, task_seed, strategy, detours)
        except grpc.RpcError as exc:
            if exc.code() == grpc.StatusCode.FAILED_PRECONDITION:  # plan does not fit
                continue
            raise
        base = builder.solve(env_id, difficulty, task_seed, strategies[0], 0)
        max_steps = builder.max_steps(env_id, difficulty)
        bad_plan = builder.inject(kind, env_id, difficulty, task_seed, base, max_steps, rng)
        bad = builder.item(env_id, difficulty, task_seed, bad_plan, kind, made + 1)
        if bad.correct:
            continue  # the injection did not break this task; another task takes its turn
        correct = builder.item(env_id, difficulty, task_seed, good, "none", made)
        if not correct.correct:
            raise RuntimeError(f"envfarm's own plan failed on replay: {correct.id}")
        yield correct
        yield bad
        made += 2
