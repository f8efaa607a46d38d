"""The agent-training loop over gRPC.

    demonstrations (envfarm) -> SFT (trainer) -> publish -> [episodes (rollout <-> envfarm)
    -> GRPO step (trainer) -> publish] x iterations -> held-out evaluation

`grpo.mode: async` replaces the bracket with one trainer run that streams its episodes
from rollout while it trains (rollout never waits for a step, the trainer never waits for a
whole batch of fresh rollouts) and publishes every `publish_interval` steps; trajectories
may lag up to `max_staleness` versions (LongCat's DORA, AReaL-style), and the loss can
correct for it (`off_policy_correction`).

Every stage reports to an `Observer` (the live terminal view, the report writer, the
TensorBoard writer) and is an OpenTelemetry span (`loop.<stage>`), so with tracing on a
whole run is one trace: each stage's calls, and what the services do for them, below it.
Seeds: demonstrations use [0, n), GRPO iterations the seeds after them, evaluation the
held-out range from `eval.seed_offset`, so the policy is never scored on a training seed.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from google.protobuf import struct_pb2

from gantry.core.precision import precision_message
from gantry.core.tracing import AttributeValue, stage
from gantry.loop import calls
from gantry.loop.config import LoopConfig, PolicyConfig, TaskConfig
from gantry.loop.stats import Success
from gantry.proto.common.v1 import precision_pb2, sampling_pb2
from gantry.proto.rollout.v1 import rollout_pb2
from gantry.proto.trainer.v1 import trainer_pb2

Record = dict[str, Any]
CORRECTIONS = {
    "none": trainer_pb2.OFF_POLICY_CORRECTION_NONE,
    "tis": trainer_pb2.OFF_POLICY_CORRECTION_TIS,
    "mis": trainer_pb2.OFF_POLICY_CORRECTION_MIS,
}


class Observer(Protocol):
    def stage(self, name: str, detail: str = "") -> None: ...

    def record(self, record: Record) -> None: ...


@dataclass
class LoopResult:
    """Success rates on held-out seeds, per stage label ("untrained", "sft", "grpo-3")."""

    success: dict[str, float] = field(default_factory=dict)
    # The same evaluations as counts (successes k of n episodes, all tasks together), for
    # the 95 % intervals in the report.
    evaluations: dict[str, Success] = field(default_factory=dict)
    sft_run: str = ""
    grpo_run: str = ""
    # Wall time of the GRPO stage, evaluations excluded (async training goes on during
    # them: compare modes with eval.every_iteration false).
    grpo_seconds: float = 0.0
    grpo_trajectories: int = 0  # trajectories the GRPO steps trained on

    @property
    def untrained(self) -> float:
        return self.success.get("untrained", 0.0)

    @property
    def final(self) -> float:
        return list(self.success.values())[-1] if self.success else 0.0


def precision(policy: PolicyConfig) -> tuple[precision_pb2.Precision, struct_pb2.Struct]:
    """RunConfig.precision and extra for the policy (fp8-naive is named in `extra`, and so
    are gradient checkpointing and partial unfreezing)."""
    extra = struct_pb2.Struct()
    if policy.precision == "fp8-naive":
        extra.update({"precision_recipe": "fp8-naive"})
    if policy.gradient_checkpointing:
        extra.update({"gradient_checkpointing": True})
    if policy.trainable_layers:
        extra.update({"trainable_layers": policy.trainable_layers})
    return precision_message(policy.precision), extra


def _metrics_record(stage: str, iteration: int, m: trainer_pb2.StepMetrics) -> Record:
    record: Record = {
        "stage": stage,
        "iteration": iteration,
        "step": m.step,
        "loss": m.loss,
        "tokens_per_second": m.tokens_per_second,
        "learning_rate": m.learning_rate,
        "grad_norm": m.grad_norm,
    }
    if stage == "grpo":
        record |= {
            "reward_mean": m.reward_mean,
            "kl": m.kl,
            "entropy": m.entropy,
            "staleness_mean": m.staleness_mean,
        }
    record |= dict(m.extra)
    return record


class TrainingLoop:
    def __init__(
        self,
        config: LoopConfig,
        stubs: calls.Stubs,
        *,
        base_model: str,
        data_dir: Path,
        trainer_data_dir: Path | None = None,
        rollout_for_trainer: str,
        observer: Observer,
    ) -> None:
        self.config = config
        self.stubs = stubs
        self.base_model = base_model
        self.data_dir = data_dir
        # The SFT file's path as the trainer sees it (the same unless it is remote).
        self.trainer_data_dir = trainer_data_dir or data_dir
        self.rollout_for_trainer = rollout_for_trainer
        self.observer = observer
        self.result = LoopResult()
        self._active_run = ""
        self._tag = uuid.uuid4().hex[:8]

    # ---- stages ---------------------------------------------------------------------------

    def run(self) -> LoopResult:
        try:
            with stage("loop.run", loop=self.config.name):
                dataset = self.demonstrations()
                self.evaluate("untrained", 0)
                checkpoint = self.sft(dataset)
                self.evaluate("sft", 0)
                if self.config.grpo.iterations:
                    self.grpo(checkpoint)
            return self.result
        finally:
            if self._active_run:
                calls.cancel(self.stubs, self._active_run)

    @contextmanager
    def _stage(self, name: str, detail: str, **attributes: AttributeValue) -> Iterator[None]:
        """One stage: shown by the observers, traced as the span `loop.<name>`."""
        self.observer.stage(name, detail)
        with stage(f"loop.{name}", **attributes):
            yield

    def demonstrations(self) -> str:
        n = self.config.sft.demonstrations
        out = self.data_dir / f"sft-{self._tag}.jsonl"
        for task in self.config.tasks:
            with self._stage(
                "demonstrations", f"{_name(task)}: {n} seeds", task=_name(task), seeds=n
            ):
                written = calls.export_demonstrations(
                    self.stubs,
                    task.env_id,
                    task.difficulty,
                    range(n),
                    out,
                    system_prompt=self.config.system_prompt,
                )
            self.observer.record(
                {"stage": "demonstrations", "task": _name(task), "examples": written}
            )
        return str(self.trainer_data_dir / out.name)

    def evaluate(self, label: str, iteration: int) -> float:
        cfg = self.config.eval
        rates = []
        k = n = 0
        for task in self.config.tasks:
            seeds = list(range(cfg.seed_offset, cfg.seed_offset + cfg.episodes))
            with self._stage(
                "evaluate",
                f"{label}: {_name(task)}, {cfg.episodes} seeds",
                label=label,
                task=_name(task),
                iteration=iteration,
            ):
                episodes = self._episodes(
                    task,
                    seeds,
                    group_size=1,
                    temperature=0.0,
                    record={"label": label},
                    stage="evaluate",
                    iteration=iteration,
                )
            if not episodes.trajectories:
                raise RuntimeError(
                    f"{label} evaluation: all {episodes.errors} episodes of {_name(task)} "
                    "failed, nothing to score (the services' logs say why)"
                )
            rates.append(episodes.success_rate)
            k, n = k + episodes.successes, n + len(episodes.trajectories)
        rate = sum(rates) / len(rates)
        self.result.success[label] = rate
        self.result.evaluations[label] = Success(k, n)
        return rate

    def sft(self, dataset: str) -> str:
        """Train on the demonstrations, publish to rollout; returns the final checkpoint."""
        cfg = self.config.sft
        mode, extra = precision(self.config.policy)
        run_config = trainer_pb2.RunConfig(
            base_model=self.base_model,
            sft=trainer_pb2.SftConfig(assistant_only_loss=True),
            data=trainer_pb2.DataSource(dataset_uri=dataset),
            optimizer=trainer_pb2.OptimizerConfig(
                learning_rate=cfg.learning_rate,
                warmup_steps=cfg.warmup_steps,
                lr_schedule="cosine",
                max_grad_norm=1.0,
            ),
            batch_size=cfg.batch_size,
            micro_batch_size=cfg.batch_size,
            max_steps=cfg.steps,
            precision=mode,
            seed=self.config.seed,
            extra=extra,
        )
        with self._stage("sft", f"{cfg.steps} steps", steps=cfg.steps):
            run_id = self._start(f"{self.config.name}-sft", run_config)
            self.result.sft_run = run_id
            self.observer.stage("sft", f"run {run_id}: {cfg.steps} steps")
            for metrics in calls.follow_run(self.stubs, run_id, until_step=cfg.steps):
                self.observer.record(_metrics_record("sft", 0, metrics))
            run = self._finish(run_id)
        self._publish(run_id, "sft", 0)
        return run.latest_checkpoint.uri

    def grpo(self, checkpoint: str) -> None:
        cfg = self.config.grpo
        mode, extra = precision(self.config.policy)
        per_iteration = cfg.seeds_per_iteration * cfg.group_size
        run_config = trainer_pb2.RunConfig(
            base_model=checkpoint,
            grpo=trainer_pb2.GrpoConfig(
                group_size=cfg.group_size,
                kl_coef=cfg.kl_coef,
                clip_low=cfg.clip_low,
                clip_high=cfg.clip_high,
                sampling=sampling_pb2.SamplingParams(
                    temperature=cfg.temperature, max_tokens=cfg.max_tokens
                ),
                max_staleness=0,
                off_policy_correction=CORRECTIONS[cfg.off_policy_correction],
                importance_cap=cfg.importance_cap,
            ),
            data=trainer_pb2.DataSource(submitted=True),
            optimizer=trainer_pb2.OptimizerConfig(
                learning_rate=cfg.learning_rate, max_grad_norm=1.0
            ),
            batch_size=per_iteration // cfg.steps_per_iteration,
            micro_batch_size=min(32, per_iteration // cfg.steps_per_iteration),
            micro_batch_tokens=cfg.micro_batch_tokens,
            max_steps=cfg.iterations * cfg.steps_per_iteration,
            precision=mode,
            checkpoint_interval=cfg.steps_per_iteration,
            seed=self.config.seed,
            extra=extra,
        )
        if cfg.mode == "async":
            self._grpo_async(run_config)
            return
        run_id = self._start(f"{self.config.name}-grpo", run_config)
        self.result.grpo_run = run_id
        for iteration in range(1, cfg.iterations + 1):
            with stage("loop.iteration", iteration=iteration, run_id=run_id):
                self._iteration(run_id, iteration)
        self._finish(run_id)
        self.result.grpo_trajectories = run_config.batch_size * int(run_config.max_steps)

    def _grpo_async(self, run_config: trainer_pb2.RunConfig) -> None:
        """One run fed by rollout's StreamEpisodes; evaluations run while it trains on."""
        cfg = self.config.grpo
        task = self.config.tasks[0]
        first_seed = self.config.sft.demonstrations
        run_config.data.CopyFrom(
            trainer_pb2.DataSource(
                episodes=trainer_pb2.EpisodeSource(
                    env_id=task.env_id,
                    difficulty=calls.DIFFICULTY[task.difficulty],
                    seeds=range(first_seed, first_seed + cfg.iterations * cfg.seeds_per_iteration),
                    max_turns=task.max_turns,
                    system_prompt=self.config.system_prompt,
                )
            )
        )
        run_config.rollout_target = self.rollout_for_trainer
        run_config.publish_interval = cfg.publish_interval
        run_config.grpo.max_staleness = cfg.max_staleness
        run_id = self._start(f"{self.config.name}-grpo-async", run_config)
        self.result.grpo_run = run_id
        for iteration in range(1, cfg.iterations + 1):
            target = iteration * cfg.steps_per_iteration
            of = f"iteration {iteration}/{cfg.iterations}"
            with self._stage("grpo", f"{of}: training on streamed episodes", iteration=iteration):
                started = time.perf_counter()
                for metrics in calls.follow_run(
                    self.stubs,
                    run_id,
                    since_step=target - cfg.steps_per_iteration + 1,
                    until_step=target,
                ):
                    self.observer.record(_metrics_record("grpo", iteration, metrics))
                self.result.grpo_seconds += time.perf_counter() - started
            if iteration == cfg.iterations or self.config.eval.every_iteration:
                # The trainer keeps training meanwhile: this scores whatever version rollout
                # serves now (at least this iteration's, published every publish_interval).
                self.evaluate(f"grpo-{iteration}", iteration)
        self._finish(run_id)
        self.result.grpo_trajectories = run_config.batch_size * int(run_config.max_steps)
        # The trainer published on its own; what rollout serves now is the evidence.
        info = self.stubs.rollout.GetModelInfo(rollout_pb2.GetModelInfoRequest(), timeout=30)
        self.observer.record(
            {
                "stage": "publish",
                "after": "grpo-async",
                "iteration": cfg.iterations,
                "policy_version": info.policy_version,
                "run_id": info.run_id,
            }
        )

    def _iteration(self, run_id: str, iteration: int) -> None:
        """Rollouts for every task, the GRPO steps on them, publish, evaluate."""
        cfg = self.config.grpo
        started = time.perf_counter()
        first_seed = self.config.sft.demonstrations + (iteration - 1) * cfg.seeds_per_iteration
        seeds = list(range(first_seed, first_seed + cfg.seeds_per_iteration))
        of = f"iteration {iteration}/{cfg.iterations}"
        for task in self.config.tasks:
            with self._stage(
                "rollouts",
                f"{of}: {_name(task)}, {len(seeds)} seeds x {cfg.group_size}",
                task=_name(task),
                iteration=iteration,
            ):
                episodes = self._episodes(
                    task,
                    seeds,
                    group_size=cfg.group_size,
                    temperature=cfg.temperature,
                    record={},
                    stage="rollouts",
                    iteration=iteration,
                )
                calls.submit(self.stubs, run_id, episodes.trajectories)
        with self._stage("grpo", f"{of}: training", iteration=iteration):
            target = iteration * cfg.steps_per_iteration
            since = target - cfg.steps_per_iteration + 1
            for metrics in calls.follow_run(
                self.stubs, run_id, since_step=since, until_step=target
            ):
                self.observer.record(_metrics_record("grpo", iteration, metrics))
        self._publish(run_id, "grpo", iteration)
        self.result.grpo_seconds += time.perf_counter() - started
        if iteration == cfg.iterations or self.config.eval.every_iteration:
            self.evaluate(f"grpo-{iteration}", iteration)

    # ---- helpers --------------------------------------------------------------------------

    def _episodes(
        self,
        task: TaskConfig,
        seeds: list[int],
        *,
        group_size: int,
        temperature: float,
        stage: str,
        iteration: int,
        record: Record,
    ) -> calls.Episodes:
        """Episodes through rollout, reported to the observer as one `stage` record
        (evaluations also carry the 95 % Wilson interval of their success rate)."""
        episodes = calls.run_episodes(
            self.stubs,
            task.env_id,
            task.difficulty,
            seeds,
            group_size=group_size,
            temperature=temperature,
            max_tokens=self.config.grpo.max_tokens,
            system_prompt=self.config.system_prompt,
            max_turns=task.max_turns,
        )
        self.observer.record(
            {
                "stage": stage,
                **record,
                "iteration": iteration,
                "task": _name(task),
                "success_rate": episodes.success_rate,
                "successes": episodes.successes,
                **(_interval(episodes) if stage == "evaluate" else {}),
                "mean_reward": episodes.mean_reward,
                "episodes": len(episodes.trajectories),
                "errors": episodes.errors,
                "tokens_per_second": episodes.tokens_per_second,
                "mean_turns": episodes.mean_turns,
                "mean_completion_tokens": episodes.mean_completion_tokens,
                "seconds": episodes.seconds,
            }
        )
        return episodes

    def _start(self, name: str, run_config: trainer_pb2.RunConfig) -> str:
        run_id = calls.start_run(self.stubs, name, run_config, request_id=f"{name}-{self._tag}")
        self._active_run = run_id
        return run_id

    def _finish(self, run_id: str) -> trainer_pb2.Run:
        deadline = time.monotonic() + 120.0
        run = calls.get_run(self.stubs, run_id)
        while run.state not in calls.TERMINAL and time.monotonic() < deadline:
            time.sleep(0.2)  # the last checkpoint is being written
            run = calls.get_run(self.stubs, run_id)
        if run.state != trainer_pb2.RUN_STATE_SUCCEEDED:
            state = trainer_pb2.RunState.Name(run.state)
            raise calls.RunFailed(f"trainer run {run_id} ended {state}: {run.error.message}")
        self._active_run = ""
        return run

    def _publish(self, run_id: str, after: str, iteration: int) -> None:
        # Runs carry no rollout_target, so the trainer publishes only when asked, here.
        with self._stage("publish", f"{after} weights -> rollout", iteration=iteration):
            started = time.perf_counter()
            response = calls.publish(self.stubs, run_id, self.rollout_for_trainer)
        self.observer.record(
            {
                "stage": "publish",
                "after": after,
                "iteration": iteration,
                "policy_version": response.policy_version,
                "seconds": time.perf_counter() - started,
            }
        )


def _interval(episodes: calls.Episodes) -> Record:
    low, high = Success(episodes.successes, len(episodes.trajectories)).interval
    return {"success_low": low, "success_high": high}


def _name(task: TaskConfig) -> str:
    return f"{task.env_id}/{task.difficulty}"
