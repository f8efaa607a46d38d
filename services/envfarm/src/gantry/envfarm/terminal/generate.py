"""GenerateTasks and DeleteTaskSuite: the Endless-Terminals pipeline as an Operation.

Per task: propose (a template drawn from the request's seed, or a model-written task
repaired until it builds), validate in a sandbox (initial state fails the completion
test, the reference solution passes it), then, when asked, the solvability filter: the
rollout peer plays the task `solve_attempts` times through this server and the task is
kept if it was solved at least `min_solved` times. Kept tasks join the suite as they pass
(the filter needs them reachable); tasks the filter drops leave it again.
"""

from __future__ import annotations

import dataclasses
import random
import secrets
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

from google.longrunning import operations_proto_pb2 as operations_pb2
from google.protobuf import timestamp_pb2

from gantry.core.client import aio_channel
from gantry.core.errors import (
    AlreadyExists,
    FailedPrecondition,
    InvalidArgument,
    NotFound,
    ResourceExhausted,
    echo,
)
from gantry.core.limits import check_bytes
from gantry.core.operations import OperationHandle, OperationStore
from gantry.core.peers import Peers
from gantry.core.server import Runtime
from gantry.envfarm.sandbox import SandboxBackend
from gantry.envfarm.terminal.family import TerminalFamily
from gantry.envfarm.terminal.llm import (
    OpenAIEndpoint,
    RolloutEndpoint,
    TextEndpoint,
    propose_and_build,
)
from gantry.envfarm.terminal.suite import derive_seed, template_task
from gantry.envfarm.terminal.task import ID_RE, Difficulty, TerminalTask
from gantry.envfarm.terminal.templates import CATEGORIES
from gantry.envfarm.terminal.validate import validate
from gantry.proto.common.v1 import episode_pb2, sampling_pb2
from gantry.proto.envfarm.v1 import envfarm_pb2
from gantry.proto.rollout.v1 import rollout_pb2, rollout_pb2_grpc

DEFAULT_ATTEMPTS = 16
MAX_ATTEMPTS = 64
DEFAULT_BUILD_ITERATIONS = 5
MAX_BUILD_ITERATIONS = 20
Stage = envfarm_pb2.TaskPipelineStage


@dataclass(frozen=True)
class GeneratorPeers:
    """Where model-written tasks and the solvability filter may reach (operator config)."""

    generators: Peers = field(default_factory=lambda: Peers("generator"))
    rollout: Peers = field(default_factory=lambda: Peers("rollout"))
    model: str = ""
    api_key: str | None = None
    token: str | None = None  # for gRPC peers (rollout)


@dataclass(frozen=True)
class Plan:
    suite: str
    count: int
    categories: list[str]
    difficulty: Difficulty | None
    seed: int
    endpoint: TextEndpoint | None
    build_iterations: int
    solver: str | None  # rollout address when the filter is on
    attempts: int
    min_solved: int
    sampling: sampling_pb2.SamplingParams
    limits: envfarm_pb2.ResourceLimits


class TaskSuites:
    """The servicer's GenerateTasks/DeleteTaskSuite for the terminal family."""

    def __init__(
        self,
        family: TerminalFamily,
        operations: OperationStore,
        runtime: Runtime,
        *,
        max_tasks: int,
        peers: GeneratorPeers,
        max_jobs: int = 2,
    ) -> None:
        self.family = family
        self.operations = operations
        self.runtime = runtime
        self.max_tasks = max_tasks
        self.peers = peers
        self.max_jobs = max_jobs
        self._running: set[str] = set()

    # ----- request checks (before any work) -----
    def _plan(self, request: envfarm_pb2.GenerateTasksRequest) -> Plan:
        suite = request.suite_name
        if not suite:
            raise InvalidArgument.for_field("suite_name", "is required, e.g. 'shell-v1'")
        check_bytes(suite, field="suite_name", limit=63)
        if not ID_RE.match(suite):
            raise InvalidArgument.for_field(
                "suite_name", "use lowercase letters, digits, '-' and '_' (start alphanumeric)"
            )
        if self.family.suites.builtin(suite):
            raise InvalidArgument.for_field("suite_name", f"{suite!r} is a built-in suite")
        if self.family.suites.exists(suite) or suite in self._running:
            raise AlreadyExists(
                f"suite {suite!r} exists (or is being generated); delete it first",
                resource_type="task_suite",
                resource_name=suite,
            )
        if not 1 <= request.num_tasks <= self.max_tasks:
            raise InvalidArgument.for_field("num_tasks", f"must be between 1 and {self.max_tasks}")
        if len(request.categories) > len(CATEGORIES):
            raise InvalidArgument.for_field("categories", f"at most {len(CATEGORIES)} entries")
        for i, category in enumerate(request.categories):
            if category not in CATEGORIES:
                raise InvalidArgument.for_field(
                    f"categories[{i}]",
                    f"unknown category {echo(category)}; known: {', '.join(sorted(CATEGORIES))}",
                )
        categories = sorted(set(request.categories)) or sorted(CATEGORIES)
        if request.mode not in envfarm_pb2.TaskGenerationMode.values():
            raise InvalidArgument.for_field("mode", f"unknown TaskGenerationMode {request.mode}")
        difficulty: Difficulty | None
        if request.difficulty == episode_pb2.DIFFICULTY_UNSPECIFIED:
            difficulty = None
        elif request.difficulty == episode_pb2.DIFFICULTY_EASY:
            difficulty = "easy"
        elif request.difficulty == episode_pb2.DIFFICULTY_HARD:
            difficulty = "hard"
        else:
            raise InvalidArgument.for_field(
                "difficulty", f"unknown difficulty {request.difficulty}"
            )
        _check_limits(request.limits)
        endpoint = None
        iterations = request.max_build_iterations or DEFAULT_BUILD_ITERATIONS
        if not 0 <= request.max_build_iterations <= MAX_BUILD_ITERATIONS:
            raise InvalidArgument.for_field(
                "max_build_iterations", f"must be between 0 and {MAX_BUILD_ITERATIONS}"
            )
        if request.mode == envfarm_pb2.TASK_GENERATION_MODE_MODEL:
            target = self.peers.generators.resolve(
                request.generator_target, field="generator_target"
            )
            endpoint = self._endpoint(target, request)
        elif request.generator_target:
            raise InvalidArgument.for_field(
                "generator_target", "applies to TASK_GENERATION_MODE_MODEL only"
            )
        solver = None
        attempts = request.solve_attempts or DEFAULT_ATTEMPTS
        min_solved = request.min_solved or 1
        if request.solvability_filter:
            if not 1 <= attempts <= MAX_ATTEMPTS:
                raise InvalidArgument.for_field(
                    "solve_attempts", f"must be between 1 and {MAX_ATTEMPTS} (0 = 16)"
                )
            if not 1 <= min_solved <= attempts:
                raise InvalidArgument.for_field(
                    "min_solved", f"must be between 1 and solve_attempts ({attempts})"
                )
            solver = self.peers.rollout.resolve(request.solver_target, field="solver_target")
        seed = request.seed if request.HasField("seed") else secrets.randbits(63)
        return Plan(
            suite, request.num_tasks, categories, difficulty, seed, endpoint, iterations,
            solver, attempts, min_solved, request.generator_sampling, request.limits,
        )  # fmt: skip

    def _endpoint(self, target: str, request: envfarm_pb2.GenerateTasksRequest) -> TextEndpoint:
        if target.startswith(("http://", "https://")):
            return OpenAIEndpoint(
                target,
                api_key=self.peers.api_key,
                model=self.peers.model,
                sampling=request.generator_sampling,
                run=self.runtime.run_blocking,
            )
        return RolloutEndpoint(
            target,
            token=self.peers.token,
            model=self.peers.model,
            sampling=request.generator_sampling,
        )

    # ----- the RPCs -----
    async def generate(self, request: envfarm_pb2.GenerateTasksRequest) -> operations_pb2.Operation:
        plan = self._plan(request)
        if len(self._running) >= self.max_jobs:
            raise ResourceExhausted(
                f"{len(self._running)} suites are being generated (the most this server runs "
                "at once); retry when one is done",
                retry_after_s=10.0,
            )
        backend = self.family.backend  # fails now (FAILED_PRECONDITION) when none can run
        await self.runtime.run_blocking(backend)
        start = timestamp_pb2.Timestamp()
        start.GetCurrentTime()
        self._running.add(plan.suite)

        async def job(handle: OperationHandle) -> envfarm_pb2.GenerateTasksResponse:
            try:
                return await self._run(plan, handle, start)
            except BaseException:  # cancelled or failed: no half-made suite is left behind
                if self.family.suites.exists(plan.suite):
                    self.family.suites.delete(plan.suite)
                raise
            finally:
                self._running.discard(plan.suite)

        metadata = envfarm_pb2.GenerateTasksMetadata(
            stage=envfarm_pb2.TASK_PIPELINE_STAGE_PROPOSING, start_time=start
        )
        return self.operations.start(job, metadata=metadata)

    async def delete(
        self, request: envfarm_pb2.DeleteTaskSuiteRequest
    ) -> envfarm_pb2.DeleteTaskSuiteResponse:
        suite = request.suite_name
        if not suite:
            raise InvalidArgument.for_field("suite_name", "is required")
        check_bytes(suite, field="suite_name", limit=63)
        if self.family.suites.builtin(suite):
            raise FailedPrecondition(f"{suite!r} is a built-in suite and cannot be deleted")
        if suite in self._running:
            raise FailedPrecondition(
                f"suite {suite!r} is being generated; cancel its operation first"
            )
        try:
            removed = await self.runtime.run_blocking(self.family.suites.delete, suite)
        except KeyError:
            raise NotFound(
                f"no generated suite {echo(suite)}",
                resource_type="task_suite",
                resource_name=suite[:63],
            ) from None
        return envfarm_pb2.DeleteTaskSuiteResponse(suite_name=suite, env_ids=removed)

    # ----- the pipeline -----
    async def _run(
        self, plan: Plan, handle: OperationHandle, start: timestamp_pb2.Timestamp
    ) -> envfarm_pb2.GenerateTasksResponse:
        meta = envfarm_pb2.GenerateTasksMetadata(start_time=start)
        rejected: Counter[str] = Counter()
        kept: list[TerminalTask] = []
        rng = random.Random(plan.seed)
        backend: Callable[[], SandboxBackend] = self.family.backend

        def publish(stage: int, done: int) -> None:
            meta.stage = stage  # type: ignore[assignment]
            meta.rejected_count = sum(rejected.values())
            meta.kept_count = len(kept)
            meta.progress = done / plan.count
            handle.set_metadata(meta)

        for index in range(plan.count):
            category = rng.choice(plan.categories)
            difficulty: Difficulty = plan.difficulty or ("hard" if index % 2 else "easy")
            seed = derive_seed(plan.suite, plan.seed, index)
            publish(envfarm_pb2.TASK_PIPELINE_STAGE_PROPOSING, index)
            if plan.endpoint is None:
                task: TerminalTask | None = template_task(
                    plan.suite, category, index, seed, difficulty
                )
            else:
                publish(envfarm_pb2.TASK_PIPELINE_STAGE_BUILDING, index)
                built = await propose_and_build(
                    plan.endpoint,
                    suite=plan.suite,
                    task_id=f"{category}-{index:03d}",
                    category=category,
                    difficulty=difficulty,
                    seed=seed,
                    max_iterations=plan.build_iterations,
                    backend=backend,
                    run=self.runtime.run_blocking,
                    python=self.family.python,
                )
                task = built.task
            meta.proposed_count += 1
            if task is None:
                rejected["build_failed"] += 1
                continue
            task = with_limits(task, plan.limits)
            publish(envfarm_pb2.TASK_PIPELINE_STAGE_TESTING, index)
            verdict = await self.runtime.run_blocking(validate, task, backend, self.family.python)
            if verdict.reason in ("", "trivial", "reference_failed"):
                meta.built_count += 1
            if not verdict.ok:
                rejected[verdict.reason] += 1
                continue
            meta.tested_count += 1
            kept.append(task)
            self.family.suites.add(plan.suite, kept)
        if plan.solver is not None and kept:
            publish(envfarm_pb2.TASK_PIPELINE_STAGE_FILTERING, plan.count)
            kept = await self._filter(plan, kept, rejected)
            if kept:
                self.family.suites.add(plan.suite, kept)
            else:
                self.family.suites.delete(plan.suite)
        publish(envfarm_pb2.TASK_PIPELINE_STAGE_DONE, plan.count)
        return envfarm_pb2.GenerateTasksResponse(
            suite_name=plan.suite,
            env_ids=sorted(t.env_id for t in kept),
            rejected_count=sum(rejected.values()),
            rejected_by_reason=dict(rejected),
        )

    async def _filter(
        self, plan: Plan, tasks: list[TerminalTask], rejected: Counter[str]
    ) -> list[TerminalTask]:
        """Keep the tasks the solver peer solves at least `min_solved` times."""
        assert plan.solver is not None
        solvable = []
        async with aio_channel(plan.solver, token=self.peers.token, default_timeout_s=None) as ch:
            stub = rollout_pb2_grpc.RolloutServiceStub(ch)
            for task in tasks:
                spec = rollout_pb2.EpisodeSpec(
                    env_id=task.env_id,
                    seeds=[task.seed],
                    episodes_per_seed=plan.attempts,
                    settings=episode_pb2.EpisodeSettings(
                        observation_mode=episode_pb2.OBSERVATION_MODE_TEXT
                    ),
                    sampling=plan.sampling,
                )
                response = await stub.RunEpisodes(rollout_pb2.RunEpisodesRequest(spec=spec))
                solved = sum(1 for t in response.trajectories if t.final_reward >= 1.0)
                if solved >= plan.min_solved:
                    solvable.append(task)
                else:
                    rejected["unsolvable"] += 1
        return solvable


def with_limits(task: TerminalTask, wire: envfarm_pb2.ResourceLimits) -> TerminalTask:
    """`task` with the request's limits (fields left at 0 keep the task's own)."""

    def seconds(name: str, current: float) -> float:
        value = getattr(wire, name).ToNanoseconds() / 1e9 if wire.HasField(name) else 0
        return value if value > 0 else current

    limits = dataclasses.replace(
        task.limits,
        step_timeout_s=seconds("step_timeout", task.limits.step_timeout_s),
        test_timeout_s=seconds("test_timeout", task.limits.test_timeout_s),
        episode_timeout_s=seconds("episode_timeout", task.limits.episode_timeout_s),
        memory_bytes=wire.memory_bytes or task.limits.memory_bytes,
        storage_bytes=wire.storage_bytes or task.limits.storage_bytes,
    )
    return dataclasses.replace(task, limits=limits)


def _check_limits(limits: envfarm_pb2.ResourceLimits) -> None:
    if not limits.cpus >= 0 or limits.cpus != limits.cpus:
        raise InvalidArgument.for_field("limits.cpus", "must be a finite number >= 0")
    for name in ("memory_bytes", "storage_bytes"):
        if getattr(limits, name) < 0:
            raise InvalidArgument.for_field(f"limits.{name}", "must be >= 0")
    for name in ("step_timeout", "episode_timeout", "test_timeout"):
        if limits.HasField(name) and getattr(limits, name).ToNanoseconds() < 0:
            raise InvalidArgument.for_field(f"limits.{name}", "must not be negative")
