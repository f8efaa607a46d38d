"""The run manager: persisted runs, one worker thread each, resume after a restart.

`<data_dir>/runs/<id>/` holds
  run.json            the Run message, rewritten atomically on every state change
  metrics.jsonl       one StepMetrics per line, appended after each step
  trajectories.log    submitted trajectories, length-prefixed protos, fsynced before the
                      SubmitTrajectories reply (nothing acknowledged is lost)
  checkpoints/        see checkpoints.py

and, unless turned off, TensorBoard event files go to the outputs root
(tensorboard_log.py).

A run that was RUNNING when the process died resumes from its latest checkpoint: the
metrics after that step are dropped and recomputed from the restored data position
(SFT cursor, index into the trajectory log), so every step appears exactly once.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import struct
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from google.protobuf import json_format
from opentelemetry import context as otel_context

from gantry.core.errors import (
    FailedPrecondition,
    GantryError,
    InvalidArgument,
    echo,
    status_from_exception,
)
from gantry.core.storage import write_atomically
from gantry.core.tracing import stage
from gantry.proto.common.v1 import trajectory_pb2
from gantry.proto.trainer.v1 import trainer_pb2
from gantry.trainer import checkpoints, data, grpo, tensorboard_log
from gantry.trainer.model import resolve_device
from gantry.trainer.paths import Roots, inside
from gantry.trainer.ranks import RankFailure, RankGroup, RankSettings
from gantry.trainer.tensorboard_log import TensorBoardLog
from gantry.trainer.training import Trainer

if TYPE_CHECKING:
    from gantry.trainer.episodes import EpisodeFeeder
    from gantry.trainer.verifier_rewards import VerifierRewards

log = logging.getLogger("gantry.trainer.runs")

State = trainer_pb2.RunState
TERMINAL = (
    trainer_pb2.RUN_STATE_SUCCEEDED,
    trainer_pb2.RUN_STATE_FAILED,
    trainer_pb2.RUN_STATE_CANCELLED,
)
ACTIVE = (
    trainer_pb2.RUN_STATE_PENDING,
    trainer_pb2.RUN_STATE_RUNNING,
    trainer_pb2.RUN_STATE_CANCELLING,
)
_LENGTH = struct.Struct("<I")


class TrajectoryLog:
    """Append-only log of submitted trajectories (length-prefixed serialized protos)."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def append(self, trajectories: list[trajectory_pb2.Trajectory]) -> None:
        with self.path.open("ab") as fh:
            for trajectory in trajectories:
                raw = trajectory.SerializeToString()
                fh.write(_LENGTH.pack(len(raw)) + raw)
            fh.flush()
            os.fsync(fh.fileno())

    def read(self) -> list[trajectory_pb2.Trajectory]:
        if not self.path.exists():
            return []
        raw = self.path.read_bytes()
        out, offset = [], 0
        while offset + _LENGTH.size <= len(raw):
            (size,) = _LENGTH.unpack_from(raw, offset)
            end = offset + _LENGTH.size + size
            if end > len(raw):
                break  # a torn tail from a crash mid-append was never acknowledged
            out.append(trajectory_pb2.Trajectory.FromString(raw[offset + _LENGTH.size : end]))
            offset = end
        return out


class RunRecord:
    """One run: its persisted message, metrics, trajectory buffer and worker controls."""

    def __init__(self, directory: Path, run: trainer_pb2.Run, roots: Roots) -> None:
        self.dir = directory
        self.run = run
        self.roots = roots
        self.lock = threading.RLock()  # guards run, metrics, buffer
        self.save_lock = threading.Lock()  # one run.json writer at a time, newest state last
        self.wake = threading.Condition(self.lock)  # worker waits for data / cancel / stop
        self.model_lock = threading.Lock()  # held while the weights change or are saved
        self.metrics: list[trainer_pb2.StepMetrics] = []
        self.trajectories = TrajectoryLog(directory / "trajectories.log")
        self.submitted: list[trajectory_pb2.Trajectory] = []  # the whole log, in order
        self.cancel_requested = False
        self.stop_requested = False
        self.trainer: Trainer | None = None
        self.group: RankGroup | None = None  # ranks of a multi-process run while it trains
        self.feeder: EpisodeFeeder | None = None  # the episodes source's reader
        self.rewards: VerifierRewards | None = None  # config.data.verifier_target's hook
        self.thread: threading.Thread | None = None
        self.listeners: list[Callable[[], None]] = []
        self.consumed = 0  # submitted trajectories already trained on
        self.versions: dict[int, int] = {}  # rollout policy version -> this run's version
        self.trace_context: otel_context.Context | None = None  # where the run was launched

    @property
    def checkpoint_root(self) -> Path:
        """The run's own checkpoint folder: `<run>/checkpoints`, or its `output_uri`
        resolved inside the outputs root (checked on every use: run.json may be old)."""
        output = self.run.config.output_uri
        return self.roots.output(output) if output else self.dir / "checkpoints"

    @property
    def tensorboard_dir(self) -> Path:
        """`tensorboard/` in the run's output_uri folder, else `<outputs
        root>/tensorboard/<run id>`: all inside the outputs root, one folder per run."""
        output = self.run.config.output_uri
        if output:
            return self.roots.output(output) / tensorboard_log.DIRECTORY
        assert self.roots.outputs.path is not None
        return self.roots.outputs.path / tensorboard_log.DIRECTORY / self.run.id

    # ----- trajectories in -----
    def judge(self, trajectory: trajectory_pb2.Trajectory) -> str | None:
        """Why a trajectory cannot join this run's buffer, or None."""
        trainer = self.trainer
        reason = grpo.invalid_reason(trajectory, trainer.vocab_size if trainer else None)
        if reason is not None:
            return reason
        limit = self.run.config.grpo.max_staleness
        with self.lock:
            current = self.run.policy_version
            produced = self.versions.get(trajectory.policy_version, 0)
        lag = current - produced
        if lag > limit:
            return (
                f"stale: policy_version {trajectory.policy_version} is {lag} versions behind "
                f"the run's {current}; max_staleness is {limit}"
            )
        return None

    def buffered(self) -> int:
        with self.lock:
            return max(0, len(self.submitted) - self.consumed)

    def intake(
        self,
        trajectories: list[trajectory_pb2.Trajectory],
        max_buffered: int,
        time_left_s: float | None = None,
    ) -> tuple[int, list[trainer_pb2.RejectedTrajectory]]:
        """Blocking: judge, score through the verifier hook (when the run has one, within
        the caller's `time_left_s`), append the accepted ones durably, then wake the worker.

        Returns (accepted count, rejections with reasons).
        """
        accepted: list[trajectory_pb2.Trajectory] = []
        rejected = []
        room = max_buffered - self.buffered()
        for trajectory in trajectories:
            reason = self.judge(trajectory)
            if reason is None and len(accepted) >= room:
                reason = "buffer full: wait for the run to consume trajectories"
            if reason is None:
                accepted.append(trajectory)
            else:
                rejected.append(
                    trainer_pb2.RejectedTrajectory(trajectory_id=trajectory.id, reason=reason)
                )
        if accepted and self.rewards is not None:
            scored = []
            outcomes = self.rewards.score(accepted, time_left_s=time_left_s)
            for outcome, original in zip(outcomes, accepted, strict=True):
                if outcome.trajectory is not None:
                    scored.append(outcome.trajectory)
                else:
                    rejected.append(
                        trainer_pb2.RejectedTrajectory(
                            trajectory_id=original.id, reason=outcome.reason or "refused"
                        )
                    )
            accepted = scored
        if accepted:
            # Durable before acknowledged: a crash after the reply loses nothing.
            self.trajectories.append(accepted)
            with self.wake:
                self.submitted.extend(accepted)
                self.wake.notify_all()
        return len(accepted), rejected

    # ----- persistence -----
    def save(self) -> None:
        # Serialise and write under one lock, so the last write holds the newest state;
        # write_atomically gives every write its own temp file.
        with self.save_lock:
            with self.lock:
                text = json_format.MessageToJson(self.run)
            write_atomically(self.dir / "run.json", text)

    def append_metrics(self, metrics: trainer_pb2.StepMetrics) -> None:
        line = json.dumps(json_format.MessageToDict(metrics))
        with (self.dir / "metrics.jsonl").open("a") as fh:
            fh.write(line + "\n")
            fh.flush()
            os.fsync(fh.fileno())
        with self.lock:
            self.metrics.append(metrics)

    def load_metrics(self, up_to_step: int) -> None:
        """Read metrics.jsonl, keeping steps <= up_to_step, and rewrite it that way."""
        path = self.dir / "metrics.jsonl"
        kept: list[trainer_pb2.StepMetrics] = []
        if path.exists():
            for line in path.read_text().splitlines():
                with contextlib.suppress(json.JSONDecodeError, json_format.ParseError):
                    m = json_format.ParseDict(json.loads(line), trainer_pb2.StepMetrics())
                    if m.step <= up_to_step and (not kept or m.step == kept[-1].step + 1):
                        kept.append(m)
        write_atomically(
            path, "".join(json.dumps(json_format.MessageToDict(m)) + "\n" for m in kept)
        )
        self.metrics = kept

    def notify(self) -> None:
        for listener in list(self.listeners):
            listener()

    def snapshot(self) -> trainer_pb2.Run:
        group = self.group
        with self.lock:
            copy = trainer_pb2.Run()
            copy.CopyFrom(self.run)
        if group is not None:
            del copy.ranks[:]
            copy.ranks.extend(group.statuses())
        return copy

    def set_state(self, state: int, **fields: Any) -> None:
        with self.lock:
            self.run.state = state  # type: ignore[assignment]
            if state in TERMINAL:
                self.run.end_time.GetCurrentTime()
            for name, value in fields.items():
                getattr(self.run, name).CopyFrom(value)
            self.wake.notify_all()
        self.save()
        self.notify()

    def metadata(self) -> trainer_pb2.StartRunMetadata:
        with self.lock:
            run = self.run
            meta = trainer_pb2.StartRunMetadata(
                run_id=run.id,
                state=run.state,
                step=run.step,
                total_steps=run.total_steps,
                progress=run.step / run.total_steps if run.total_steps else 0.0,
                latest_metrics=run.latest_metrics,
                replicas=run.replicas,
            )
            if run.HasField("start_time"):
                meta.start_time.CopyFrom(run.start_time)
            return meta


class Worker:
    """Trains one run on its own thread until done, cancelled or the service stops."""

    def __init__(
        self,
        record: RunRecord,
        *,
        resume: bool,
        publish: Callable[[RunRecord], None],
        device: str = "cpu",
        max_dataset_bytes: int | None = None,
        tensorboard: bool = True,
        ranks: RankSettings | None = None,
    ) -> None:
        self.record = record
        self.ranks = ranks or RankSettings()
        self.device = device
        self.resume = resume
        self.publish = publish
        self.max_dataset_bytes = max_dataset_bytes
        self.tensorboard = tensorboard
        self.board: TensorBoardLog | None = None

    def _checkpoint(self, trainer: Trainer) -> trainer_pb2.Checkpoint:
        record = self.record
        root = record.checkpoint_root
        step = trainer.position.step
        meta = trainer_pb2.Checkpoint(
            id=checkpoints.checkpoint_id(step),
            run_id=record.run.id,
            step=step,
            policy_version=trainer.position.policy_version,
            precision=record.run.config.precision,
        )
        if record.metrics:
            meta.metrics.CopyFrom(record.metrics[-1])
        meta.create_time.GetCurrentTime()
        with record.model_lock:
            saved = checkpoints.save(root, meta, trainer.write_checkpoint)
        with record.lock:
            record.run.latest_checkpoint.CopyFrom(saved)
        record.save()
        return saved

    def _has_checkpoint_at(self, step: int) -> bool:
        latest = self.record.run.latest_checkpoint
        return self.record.run.HasField("latest_checkpoint") and latest.step == step

    def _next_trajectories(self, trainer: Trainer) -> list[trajectory_pb2.Trajectory] | None:
        """The next batch_size submitted trajectories; None when woken to stop/cancel."""
        record = self.record
        with record.wake:
            while True:
                if record.cancel_requested or record.stop_requested:
                    return None
                start = trainer.position.consumed
                if len(record.submitted) - start >= trainer.batch_size:
                    return record.submitted[start : start + trainer.batch_size]
                record.wake.wait(timeout=1.0)

    def run(self) -> None:
        record = self.record
        # OpenTelemetry's context stays on its thread: bring the launching call's here.
        context = record.trace_context
        token = otel_context.attach(context) if context is not None else None
        try:
            self._train()
        except Exception as exc:
            log.exception("run %s failed", record.run.id)
            if isinstance(exc, data.DataError):  # the dataset or config, not the trainer
                exc = InvalidArgument.for_field(exc.field, exc.message)
            status = status_from_exception(exc)
            if not isinstance(exc, GantryError):
                status.message = f"{type(exc).__name__}: {exc}"
            record.set_state(trainer_pb2.RUN_STATE_FAILED, error=status)
        finally:
            record.trainer = None
            if record.feeder is not None:
                record.feeder.stop()
            self._close_board()
            if token is not None:
                otel_context.detach(token)

    def _open_board(self, trainer: Trainer) -> None:
        """The run's TensorBoard writer; a resumed run purges the steps it recomputes."""
        if not self.tensorboard:
            return
        purge = trainer.position.step + 1 if self.resume else None
        try:
            self.board = TensorBoardLog(
                self.record.tensorboard_dir, trainer.method, purge_step=purge
            )
        except OSError as exc:
            log.warning("run %s: no TensorBoard events (%s)", self.record.run.id, exc)

    def _write_board(self, metrics: trainer_pb2.StepMetrics) -> None:
        if self.board is None:
            return
        try:
            self.board.write(metrics)
        except OSError as exc:  # a full disk loses the charts, not the run
            log.warning("run %s: TensorBoard events stop (%s)", self.record.run.id, exc)
            self._close_board()

    def _close_board(self) -> None:
        board, self.board = self.board, None
        if board is not None:
            with contextlib.suppress(OSError):
                board.close()

    def _trainer(self) -> Trainer:
        """The run's Trainer, with every path of its (possibly persisted) config checked
        against the storage roots again."""
        record = self.record
        config = trainer_pb2.RunConfig()
        config.CopyFrom(record.run.config)
        roots = record.roots
        config.base_model = roots.base_model(config.base_model)
        conversations = None
        if config.WhichOneof("method") == "sft":
            dataset = roots.dataset(config.data.dataset_uri)
            conversations = data.read_conversations(
                dataset, root=roots.datasets.path, max_bytes=self.max_dataset_bytes
            )
        group = self._join_ranks(config)
        return Trainer(
            config, int(config.seed), self.device, conversations=conversations, group=group
        )

    def _join_ranks(self, config: trainer_pb2.RunConfig) -> RankGroup | None:
        """A multi-process run's ranks, joined (rank 0 is this thread); None for one."""
        if config.world_size <= 1:
            return None
        settings = self.ranks
        group = RankGroup(
            config.world_size,
            resolve_device(self.device),
            placement=settings.placement,
            host=settings.host,
            port=settings.port,
            timeout_s=settings.timeout_s,
            log_dir=self.record.dir / "ranks",
        )
        self.record.group = group
        try:
            group.start()
        except Exception as exc:
            raise RankFailure(f"the ranks did not join: {group.failed_rank() or exc}") from exc
        return group

    def _train(self) -> None:
        """Train, restarting a multi-process run's ranks from its latest checkpoint when one
        of them fails (at most `restarts` times in a row without a new checkpoint)."""
        failures = 0
        last_step = -1
        while True:
            try:
                ended = self._train_once()
                self._leave_ranks()  # before the state: GetRun then shows them exited
                if ended is not None:
                    self.record.set_state(ended)
                return
            except Exception as exc:
                group = self.record.group
                if group is None:
                    raise
                failure = _rank_failure(exc, group)
                if failure is None:
                    raise
                step = self.record.run.latest_checkpoint.step
                failures = failures + 1 if step == last_step else 1
                last_step = step
                if failures > self.ranks.restarts or self.record.cancel_requested:
                    raise RankFailure(
                        f"{failure.message}; gave up after {failures - 1} restart(s) from "
                        f"checkpoint step {step}: the run's checkpoints are intact, start a run "
                        "from its latest one"
                    ) from exc
                log.warning(
                    "run %s: %s; restarting the ranks from step %d (%d/%d)",
                    self.record.run.id,
                    failure,
                    step,
                    failures,
                    self.ranks.restarts,
                )
                self.resume = True
            finally:
                self._leave_ranks()

    def _leave_ranks(self) -> None:
        """Close the ranks; their last statuses stay in the run (run.json) for GetRun."""
        record = self.record
        group = record.group
        if group is None:
            return
        group.close(
            clean=not group.failed_rank()
            and not any(s.state == trainer_pb2.RANK_STATE_FAILED for s in group.statuses())
        )
        with record.lock:
            del record.run.ranks[:]
            record.run.ranks.extend(group.statuses())
            record.group = None
        record.save()

    def _train_once(self) -> int | None:
        """Train until done (SUCCEEDED), cancelled (CANCELLED) or stopped (None: the run
        stays RUNNING and resumes on the next start); returns the state to set."""
        record = self.record
        ckpt_root = record.checkpoint_root
        trainer = self._trainer()
        checkpoints.clean_temporaries(ckpt_root)
        latest = checkpoints.list_checkpoints(ckpt_root)
        if self.resume and latest:
            trainer.restore(Path(latest[0].uri))
            with record.lock:
                record.run.latest_checkpoint.CopyFrom(latest[0])
        record.load_metrics(trainer.position.step)
        with record.lock:
            record.trainer = trainer
            record.versions = dict(trainer.position.versions)
            record.consumed = trainer.position.consumed
            record.run.step = trainer.position.step
            record.run.policy_version = trainer.position.policy_version
            record.run.total_steps = trainer.total_steps
            if record.metrics:
                record.run.latest_metrics.CopyFrom(record.metrics[-1])
            else:
                record.run.ClearField("latest_metrics")
            if not record.run.HasField("start_time"):
                record.run.start_time.GetCurrentTime()
            state = (
                trainer_pb2.RUN_STATE_CANCELLING
                if record.cancel_requested
                else trainer_pb2.RUN_STATE_RUNNING
            )
        record.set_state(state)
        self._open_board(trainer)
        log.info("run %s training from step %d", record.run.id, trainer.position.step)
        interval = record.run.config.checkpoint_interval
        while True:
            if record.stop_requested:  # service shutdown: save, stay RUNNING, resume later
                if not self._has_checkpoint_at(trainer.position.step):
                    self._checkpoint(trainer)
                return None
            if record.cancel_requested:
                if not self._has_checkpoint_at(trainer.position.step):
                    self._checkpoint(trainer)
                return trainer_pb2.RUN_STATE_CANCELLED
            if trainer.total_steps and trainer.position.step >= trainer.total_steps:
                break
            batch = None
            if trainer.method != "sft":
                batch = self._next_trajectories(trainer)
                if batch is None:
                    continue
            metrics = self._step(trainer, batch)
            record.append_metrics(metrics)
            self._write_board(metrics)
            with record.lock:
                record.run.step = trainer.position.step
                record.run.policy_version = trainer.position.policy_version
                record.run.latest_metrics.CopyFrom(metrics)
            checkpointed = bool(interval) and trainer.position.step % interval == 0
            if checkpointed:
                self._checkpoint(trainer)
            else:
                record.save()
            if self._publish_due(trainer.position.step, checkpointed):
                self.publish(record)
            record.notify()
        if not self._has_checkpoint_at(trainer.position.step):
            self._checkpoint(trainer)
            if self._publish_due(trainer.position.step, checkpointed=True):
                self.publish(record)
        return trainer_pb2.RUN_STATE_SUCCEEDED

    def _step(
        self, trainer: Trainer, batch: list[trajectory_pb2.Trajectory] | None
    ) -> trainer_pb2.StepMetrics:
        """One optimiser step: SFT on the next examples, or GRPO on `batch`."""
        record = self.record
        with stage(
            "trainer.step",
            run_id=record.run.id,
            step=trainer.position.step + 1,
            method=trainer.method,
        ) as span:
            with record.model_lock:
                if batch is None:
                    metrics = trainer.sft_step()
                else:
                    metrics = trainer.grpo_step(batch)
                    trainer.position.consumed += len(batch)
            if batch is not None:
                with record.lock:
                    record.consumed = trainer.position.consumed
            span.set_attribute("loss", metrics.loss)
            return metrics

    def _publish_due(self, step: int, checkpointed: bool) -> bool:
        """publish_interval N: every N-th step; 0: with each checkpoint, when the run has
        a rollout_target (the service's default target does not count)."""
        config = self.record.run.config
        if config.publish_interval:
            return step % config.publish_interval == 0
        return checkpointed and bool(config.rollout_target)

    def checkpoint_live(self) -> trainer_pb2.Checkpoint:
        """A checkpoint of the live weights (PublishWeights without checkpoint_id)."""
        trainer = self.record.trainer
        if trainer is None:
            raise RuntimeError("the run is not training")
        if self._has_checkpoint_at(trainer.position.step):
            return self.record.snapshot().latest_checkpoint
        return self._checkpoint(trainer)


class RunManager:
    def __init__(
        self,
        roots: Roots,
        publish: Callable[[RunRecord], None],
        device: str = "cpu",
        *,
        max_dataset_bytes: int | None = None,
        tensorboard: bool = True,
        ranks: RankSettings | None = None,
    ) -> None:
        assert roots.runs.path is not None
        self.ranks = ranks
        self.roots = roots
        self.root = roots.runs.path
        self.device = device
        self.max_dataset_bytes = max_dataset_bytes
        self.tensorboard = tensorboard
        self.root.mkdir(parents=True, exist_ok=True)
        self.records: dict[str, RunRecord] = {}
        self.workers: dict[str, Worker] = {}
        self.publish = publish
        self.lock = threading.Lock()

    def load(self) -> list[RunRecord]:
        """Read every persisted run; return those that must resume."""
        to_resume = []
        for directory in sorted(self.root.iterdir()):
            path = directory / "run.json"
            if directory.is_symlink() or not path.is_file():
                continue
            try:
                run = json_format.Parse(path.read_text(), trainer_pb2.Run())
            except (OSError, ValueError) as exc:  # json_format.ParseError is a ValueError
                log.error("skipping %s: unreadable run.json (%s)", directory.name, exc)
                continue
            if run.id != directory.name:
                log.error("skipping %s: its run.json names run %r", directory.name, run.id)
                continue
            record = RunRecord(directory, run, self.roots)
            record.submitted = record.trajectories.read()
            if run.state in ACTIVE:
                if run.state == trainer_pb2.RUN_STATE_CANCELLING:
                    record.cancel_requested = True
                to_resume.append(record)
            else:
                record.load_metrics(run.step)
            self.records[run.id] = record
        return to_resume

    def create(self, display_name: str, config: trainer_pb2.RunConfig) -> RunRecord:
        run_id = f"run-{time.strftime('%Y%m%d-%H%M%S')}-{uuid.uuid4().hex[:8]}"
        directory = self.root / run_id
        run = trainer_pb2.Run(
            id=run_id,
            display_name=display_name,
            config=config,
            state=trainer_pb2.RUN_STATE_PENDING,
        )
        run.create_time.GetCurrentTime()
        record = RunRecord(directory, run, self.roots)
        with self.lock:
            if config.output_uri:
                self._claim_output(record)
            directory.mkdir(parents=True)
            record.save()
            self.records[run_id] = record
        return record

    def _claim_output(self, record: RunRecord) -> None:
        """A run's output_uri becomes its own folder: new or empty, not another run's, not
        inside <data_dir>/runs nor <outputs root>/tensorboard. The trainer replaces and
        cleans up in it freely after."""
        output = record.checkpoint_root
        uri = record.run.config.output_uri
        taken = [
            other.run.id
            for other in self.records.values()
            if other.run.config.output_uri and _same_folder(other, output)
        ]
        assert self.roots.outputs.path is not None
        boards = self.roots.outputs.path / tensorboard_log.DIRECTORY
        if taken or inside(output, self.root) or inside(output, boards):
            if taken:
                why = f"run {taken[0]} writes there"
            elif inside(output, self.root):
                why = "it lies inside the runs folder"
            else:
                why = "the outputs root's tensorboard/ folder holds runs' TensorBoard events"
            raise FailedPrecondition(
                f"config.output_uri: {echo(uri)} cannot hold this run's checkpoints: {why}; "
                "name a new folder inside the outputs root",
                reason="OUTPUT_IN_USE",
                metadata={"field": "config.output_uri"},
            )
        if output.exists() and (not output.is_dir() or any(output.iterdir())):
            raise FailedPrecondition(
                f"config.output_uri: {echo(uri)} already holds files; name a new folder "
                "(each run writes its checkpoints into a folder of its own)",
                reason="OUTPUT_IN_USE",
                metadata={"field": "config.output_uri"},
            )
        output.mkdir(parents=True, exist_ok=True)

    def start(self, record: RunRecord, *, resume: bool) -> None:
        worker = Worker(
            record,
            resume=resume,
            publish=self.publish,
            device=self.device,
            max_dataset_bytes=self.max_dataset_bytes,
            tensorboard=self.tensorboard,
            ranks=self.ranks,
        )
        thread = threading.Thread(target=worker.run, name=f"trainer-{record.run.id}", daemon=True)
        record.thread = thread
        self.workers[record.run.id] = worker
        thread.start()

    def get(self, run_id: str) -> RunRecord | None:
        return self.records.get(run_id)

    def newest_first(self) -> list[RunRecord]:
        return sorted(
            self.records.values(),
            key=lambda r: (r.run.create_time.ToNanoseconds(), r.run.id),
            reverse=True,
        )

    def active(self) -> int:
        return sum(1 for r in list(self.records.values()) if r.run.state not in TERMINAL)

    def request_stop(self) -> None:
        """Service draining: every worker checkpoints at its current step and exits, runs
        stay RUNNING (to resume on the next start). Returns at once."""
        for record in list(self.records.values()):
            with record.wake:
                record.stop_requested = True
                record.wake.notify_all()
            if record.feeder is not None:
                record.feeder.stop()

    def stop_all(self, timeout_s: float = 60.0) -> None:
        """Service shutdown: request_stop, then wait for the workers' checkpoints."""
        self.request_stop()
        deadline = time.monotonic() + timeout_s
        for record in self.records.values():
            if record.thread is not None:
                record.thread.join(max(0.0, deadline - time.monotonic()))


def _rank_failure(exc: BaseException, group: RankGroup) -> RankFailure | None:
    """`exc` as a rank failure (a rank died, or a collective broke), or None."""
    if isinstance(exc, RankFailure):
        return exc
    dead = group.failed_rank(wait_s=2.0)
    if dead:
        return RankFailure(f"{dead} ({type(exc).__name__}: {exc})")
    import torch.distributed as dist

    text = str(exc).lower()
    lost = ("connection closed", "connection reset", "timed out", "timeout", "broken pipe")
    if isinstance(exc, dist.DistNetworkError | dist.DistStoreError) or any(w in text for w in lost):
        group.mark_failed(f"{type(exc).__name__}: {exc}")
        return RankFailure(f"lost contact with a rank: {type(exc).__name__}: {exc}")
    return None


def _same_folder(record: RunRecord, folder: Path) -> bool:
    try:
        return record.checkpoint_root == folder
    except GantryError:  # a persisted output_uri outside today's outputs root
        return False
