"""Run orchestration: each run's worker and long-running operation, cancel, publishing.

Publishing reaches every rollout replica (gantry.trainer.replicas) at once, records which
replica acknowledged which version in the run (Run.replicas), and records the published
weights for replicas that start later.

`RunOrchestrator` sits between the RPCs and the run manager: it starts a run's worker
thread (and its episode feeder) together with the operation a client polls, turns the
worker's state changes into asyncio events for waiting calls, pushes weights to rollout,
and on SIGTERM has every worker checkpoint so the run resumes on the next start.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import grpc
from opentelemetry import context as otel_context

from gantry.core.errors import (
    Cancelled,
    FailedPrecondition,
    GantryError,
    error_from_status,
    status_from_exception,
)
from gantry.core.errors import Unavailable as UnavailableError
from gantry.core.operations import OperationHandle, OperationStore
from gantry.core.peers import Peers
from gantry.core.precision import recipe_name
from gantry.core.server import Runtime
from gantry.core.tracing import stage
from gantry.proto.trainer.v1 import trainer_pb2
from gantry.trainer import checkpoints
from gantry.trainer.paths import Roots
from gantry.trainer.publish import Published, PublishFailed, Retry, publish
from gantry.trainer.ranks import RankSettings
from gantry.trainer.replicas import configured_replicas, expand, latest_version, record_published
from gantry.trainer.runs import TERMINAL, RunManager, RunRecord
from gantry.trainer.settings import TrainerSettings
from gantry.trainer.training import extra_options
from gantry.trainer.verifier_rewards import REPORTS, VerifierRewards

log = logging.getLogger("gantry.trainer")
# What a client told to come back (rollout unreachable, trainer restarting) should wait.
RETRY_AFTER_S = 5.0
MAX_PARALLEL_PUBLISHES = 8  # replicas streamed to at the same time


@dataclass(frozen=True)
class Delivery:
    """One publish to every target: the highest acknowledged version, the wall time, and
    each replica's answer."""

    policy_version: int
    seconds: float
    replicas: list[trainer_pb2.ReplicaWeights]


def replica_weights(
    target: str, outcome: Published | GantryError, checkpoint: trainer_pb2.Checkpoint
) -> trainer_pb2.ReplicaWeights:
    replica = trainer_pb2.ReplicaWeights(target=target)
    if isinstance(outcome, GantryError):
        replica.error.CopyFrom(outcome.to_status())
        return replica
    replica.policy_version = outcome.policy_version
    replica.run_policy_version = int(checkpoint.policy_version)
    replica.checkpoint_id = checkpoint.id
    replica.acknowledge_time.GetCurrentTime()
    replica.seconds = outcome.seconds
    return replica


class RunOperations(OperationStore):
    """Knows when the server is shutting down, so that cancelling a run's operation on
    shutdown leaves the run to resume, while a client's CancelOperation cancels it."""

    closing = False

    async def close(self) -> None:
        self.closing = True
        await super().close()


def run_recipe(config: trainer_pb2.RunConfig) -> str:
    return recipe_name(config.precision, str(extra_options(config).get("precision_recipe", "")))


class RunOrchestrator:
    """Starts, watches, cancels and publishes runs; checkpoints them on drain."""

    def __init__(
        self,
        *,
        settings: TrainerSettings,
        roots: Roots,
        rollout_peers: Peers,
        operations: RunOperations,
        runtime: Runtime,
        verifier_peers: Peers | None = None,
    ) -> None:
        self.settings = settings
        self.rollout_peers = rollout_peers
        # Checked here, at start: every replica entry is a configured rollout peer.
        self.replicas = configured_replicas(rollout_peers, settings.rollout_replicas)
        self.published_dir = settings.resolved_published_dir()
        self._published_lock = threading.Lock()
        self.verifier_peers = verifier_peers or Peers("verifier")
        self.operations = operations
        self.runtime = runtime
        self.runs = RunManager(
            roots,
            self.publish_from_worker,
            settings.device,
            max_dataset_bytes=settings.max_dataset_bytes,
            tensorboard=settings.tensorboard,
            ranks=RankSettings(
                max_world_size=settings.max_world_size,
                placement=settings.ranks,
                host=settings.rendezvous_host,
                port=settings.rendezvous_port,
                timeout_s=settings.rank_timeout_s,
                restarts=settings.rank_restarts,
            ),
        )
        # Set with `draining` (SIGTERM): publish retries stop waiting, workers checkpoint.
        self.stopping = threading.Event()
        self._events: dict[str, asyncio.Event] = {}
        self._loop: asyncio.AbstractEventLoop | None = None
        self._drain_watch: asyncio.Task[None] | None = None

    # ----- lifecycle (called by the service) -----
    async def start(self) -> None:
        """Resume the runs that were active when the process stopped; watch for drain."""
        self._loop = asyncio.get_running_loop()
        self._drain_watch = asyncio.create_task(self._checkpoint_on_drain())
        for record in await self.runtime.run_blocking(self.runs.load):
            log.info("resuming run %s", record.run.id)
            self.launch(record, resume=True)

    async def _checkpoint_on_drain(self) -> None:
        """SIGTERM: runs checkpoint during the grace period, not after it."""
        await self.runtime.draining.wait()
        log.info("draining: running runs checkpoint and stop; they resume on the next start")
        self.stopping.set()
        self.runs.request_stop()

    async def stop(self) -> None:
        self.stopping.set()
        if self._drain_watch is not None:
            self._drain_watch.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._drain_watch
        await self.runtime.run_blocking(self.runs.stop_all)

    # ----- peers -----
    def rollout_target(self, record: RunRecord, requested: str = "") -> str:
        """The configured rollout address to dial for `record`: the request's choice, else
        the run's config.rollout_target (checked again: run.json may predate the
        settings), else the default. PERMISSION_DENIED for anything not configured."""
        if requested:
            return self.rollout_peers.resolve(requested, field="rollout_target")
        return self.rollout_peers.resolve(
            record.run.config.rollout_target, field="config.rollout_target"
        )

    def _verifier_rewards(self, record: RunRecord) -> VerifierRewards:
        """The run's reward hook, at its configured verifier (checked again, as above)."""
        settings = self.settings
        target = self.verifier_peers.resolve(
            record.run.config.data.verifier_target, field="config.data.verifier_target"
        )
        return VerifierRewards(
            target,
            token=settings.resolved_verifier_token(),
            timeout_s=settings.verifier_timeout_s,
            batch_size=settings.verifier_batch_size,
            reports=record.dir / REPORTS,
            mode=settings.verifier_mode,
            judge=settings.verifier_judge,
        )

    # ----- change notification (worker threads -> event loop) -----
    def event(self, run_id: str) -> asyncio.Event:
        """Set at the run's next change (a step, a state); wait on a fresh one each time."""
        if run_id not in self._events:
            self._events[run_id] = asyncio.Event()
        return self._events[run_id]

    def _fire(self, run_id: str) -> None:
        old = self._events.pop(run_id, None)
        if old is not None:
            old.set()

    # ----- runs -----
    def launch(self, record: RunRecord, *, resume: bool) -> trainer_pb2.Run:
        """Start the run's worker and its operation; return the run as started."""
        loop = self._loop or asyncio.get_running_loop()
        run_id = record.run.id

        def changed() -> None:
            loop.call_soon_threadsafe(self._fire, run_id)

        record.listeners.append(changed)
        target = ""
        refused: GantryError | None = None
        if record.run.config.data.HasField("episodes"):
            try:
                target = self.rollout_target(record)
            except GantryError as exc:  # a persisted run whose rollout is no longer configured
                refused = exc
        operation = self.operations.start(self._job(record), metadata=record.metadata())
        with record.lock:
            record.run.operation_name = operation.name
        if refused is None and record.run.config.data.verifier_target:
            try:
                record.rewards = self._verifier_rewards(record)
            except GantryError as exc:  # a persisted run whose verifier is gone
                refused = exc
        if refused is not None:
            record.set_state(trainer_pb2.RUN_STATE_FAILED, error=status_from_exception(refused))
            return record.snapshot()
        record.save()
        # The worker's step spans join the trace of the call that started (or resumed) it.
        record.trace_context = otel_context.get_current()
        self.runs.start(record, resume=resume)
        if record.run.config.data.HasField("episodes"):
            from gantry.trainer.episodes import EpisodeFeeder

            record.feeder = EpisodeFeeder(
                record,
                target,
                self.settings.resolved_rollout_token(),
                self.settings.max_buffered_trajectories,
            )
            record.feeder.start()
        return record.snapshot()

    def _job(self, record: RunRecord) -> Callable[[OperationHandle], Awaitable[trainer_pb2.Run]]:
        async def job(handle: OperationHandle) -> trainer_pb2.Run:
            try:
                while True:
                    changed = self.event(record.run.id)
                    handle.set_metadata(record.metadata())
                    snapshot = record.snapshot()
                    if snapshot.state in TERMINAL:
                        break
                    await changed.wait()
            except asyncio.CancelledError:
                if not self.operations.closing:
                    self.cancel(record)
                raise
            if snapshot.state == trainer_pb2.RUN_STATE_FAILED:
                raise error_from_status(snapshot.error)
            if snapshot.state == trainer_pb2.RUN_STATE_CANCELLED:
                raise Cancelled(f"run {snapshot.id} was cancelled at step {snapshot.step}")
            return snapshot

        return job

    def cancel(self, record: RunRecord) -> trainer_pb2.Run:
        """Blocking. Ask the worker to checkpoint and stop; CANCELLED at once if none runs."""
        with record.wake:
            if record.run.state not in TERMINAL:
                record.cancel_requested = True
                record.wake.notify_all()
                if record.thread is None or not record.thread.is_alive():
                    record.set_state(trainer_pb2.RUN_STATE_CANCELLED)
                else:
                    record.set_state(trainer_pb2.RUN_STATE_CANCELLING)
        return record.snapshot()

    # ----- publishing -----
    def live_or_latest_checkpoint(self, record: RunRecord) -> trainer_pb2.Checkpoint:
        """Blocking. The live weights saved as a checkpoint, or the latest checkpoint."""
        worker = self.runs.workers.get(record.run.id)
        if worker is not None and record.trainer is not None:
            try:
                return worker.checkpoint_live()
            except RuntimeError:
                pass  # finished meanwhile: fall through to the latest checkpoint
        found = checkpoints.list_checkpoints(record.checkpoint_root)
        if not found:
            raise FailedPrecondition(f"run {record.run.id} has no weights to publish yet")
        return found[0]

    def replica_targets(self, record: RunRecord, requested: str = "") -> list[str]:
        """Where a publish goes: the one target a request names; else every configured
        replica when `rollout_replicas` is set; else the run's rollout target."""
        if requested or not self.replicas:
            return [self.rollout_target(record, requested)]
        return list(self.replicas)

    def push(
        self,
        record: RunRecord,
        checkpoint: trainer_pb2.Checkpoint,
        targets: list[str],
        uri_only: bool,
    ) -> Delivery:
        """Blocking: stream (or point) a checkpoint to every target at once; record which
        replica acknowledged which version. Fails only when none acknowledged."""
        # The weights come from the run's own checkpoint folder, whatever a stored uri says.
        checkpoint = checkpoints.find(record.checkpoint_root, checkpoint.id)
        started = time.perf_counter()
        expanded = [expand(target) for target in targets]
        addresses = list(dict.fromkeys(a for e in expanded for a in e.targets))
        with record.lock:
            known = {r.target: r.policy_version for r in record.run.replicas}
        # One number for the whole fleet: replicas serve max(current + 1, version).
        version = 1 + max(
            [latest_version(self.published_dir), *(known.get(a, 0) for a in addresses)]
        )
        with stage(
            "trainer.publish",
            run_id=record.run.id,
            checkpoint_id=checkpoint.id,
            step=int(checkpoint.step),
            uri_only=uri_only,
            replicas=len(addresses),
        ):
            outcomes: list[Published | GantryError] = []
            if addresses:
                with ThreadPoolExecutor(
                    max_workers=min(len(addresses), MAX_PARALLEL_PUBLISHES),
                    thread_name_prefix="trainer-publish",
                ) as pool:
                    outcomes = list(
                        pool.map(
                            lambda a: self._publish_one(record, checkpoint, a, uri_only, version),
                            addresses,
                        )
                    )
        replicas = [
            replica_weights(address, outcome, checkpoint)
            for address, outcome in zip(addresses, outcomes, strict=True)
        ]
        for entry in expanded:
            if entry.error:  # a headless Service name that did not resolve
                unresolved = UnavailableError(entry.error, retry_after_s=RETRY_AFTER_S)
                replicas.append(replica_weights(entry.entry, unresolved, checkpoint))
        acked = [o for o in outcomes if isinstance(o, Published)]
        self._remember(record, checkpoint, replicas, acked)
        if not acked:
            failures = [o for o in outcomes if isinstance(o, GantryError)]
            raise (
                failures[0]
                if failures
                else UnavailableError(
                    "no rollout replica to publish to: "
                    + "; ".join(e.error for e in expanded if e.error),
                    retry_after_s=RETRY_AFTER_S,
                )
            )
        top = max(p.policy_version for p in acked)
        # Only the default fleet's weights are recorded: a publish to one named peer (which
        # may serve another model) must not become what every replica starts from.
        if targets == (self.replicas or [self.rollout_peers.default]):
            try:
                self._record_published(record, checkpoint, top)
            except OSError as exc:
                log.warning("could not record the publish for late replicas: %s", exc)
        seconds = time.perf_counter() - started
        log.info(
            "published %s of run %s to %d of %d replicas as rollout version %d in %.2fs",
            checkpoint.id,
            record.run.id,
            len(acked),
            len(replicas),
            top,
            seconds,
        )
        return Delivery(top, seconds, replicas)

    def _publish_one(
        self,
        record: RunRecord,
        checkpoint: trainer_pb2.Checkpoint,
        target: str,
        uri_only: bool,
        version: int,
    ) -> Published | GantryError:
        try:
            return self._publish(record, checkpoint, target, uri_only, version)
        except GantryError as exc:
            log.warning("publishing run %s to %s failed: %s", record.run.id, target, exc.message)
            return exc
        except Exception as exc:  # a bug must not hide the other replicas' answers
            log.exception("publishing run %s to %s failed", record.run.id, target)
            return FailedPrecondition(f"publishing to rollout at {target} failed: {exc}")

    def _remember(
        self,
        record: RunRecord,
        checkpoint: trainer_pb2.Checkpoint,
        replicas: list[trainer_pb2.ReplicaWeights],
        acked: list[Published],
    ) -> None:
        """The version map (rollout version -> the run's) and the run's replica table."""
        ours = int(checkpoint.policy_version)
        trainer = record.trainer
        if trainer is not None and acked:
            with record.model_lock:
                for done in acked:
                    trainer.position.versions[done.policy_version] = ours
        with record.lock:
            for done in acked:
                record.versions[done.policy_version] = ours
            table = {r.target: r for r in record.run.replicas}
            for replica in replicas:
                previous = table.get(replica.target)
                if replica.HasField("error") and previous is not None:
                    # A failure keeps what the replica last acknowledged (it still holds it).
                    kept = trainer_pb2.ReplicaWeights()
                    kept.CopyFrom(previous)
                    kept.error.CopyFrom(replica.error)
                    kept.seconds = replica.seconds
                    replica = kept
                table[replica.target] = replica
            del record.run.replicas[:]
            record.run.replicas.extend(table[t] for t in sorted(table))
        record.save()
        record.notify()

    def _record_published(
        self, record: RunRecord, checkpoint: trainer_pb2.Checkpoint, version: int
    ) -> None:
        with self._published_lock:
            if version <= latest_version(self.published_dir):
                return  # a newer publish (another run) was recorded meanwhile
            record_published(
                self.published_dir,
                Path(checkpoint.uri),
                policy_version=version,
                run_id=record.run.id,
                checkpoint_id=checkpoint.id,
                run_policy_version=int(checkpoint.policy_version),
            )

    def _publish(
        self,
        record: RunRecord,
        checkpoint: trainer_pb2.Checkpoint,
        target: str,
        uri_only: bool,
        version: int = 0,
    ) -> Published:
        """One publish with retries; its failure as the error a client should see."""
        try:
            return publish(
                target,
                self.settings.resolved_rollout_token(),
                checkpoint,
                run_recipe(record.run.config),
                record.run.id,
                uri_only=uri_only,
                version=version,
                retry=Retry(attempts=self.settings.publish_attempts),
                stop=self.stopping,
            )
        except PublishFailed as exc:
            error, tries = exc.error, f"{exc.attempts} attempt{'s' if exc.attempts > 1 else ''}"
            if exc.stopped:
                raise UnavailableError(
                    f"the trainer is shutting down; publishing to rollout at {target} stopped "
                    f"after {tries}: {error.message}",
                    retry_after_s=RETRY_AFTER_S,
                ) from exc
            if error.code == grpc.StatusCode.UNAVAILABLE:
                raise UnavailableError(
                    f"rollout at {target} is unavailable ({tries}): {error.message}",
                    retry_after_s=RETRY_AFTER_S,
                ) from exc
            raise FailedPrecondition(
                f"rollout at {target} refused the weights ({error.code.name}): {error.message}"
            ) from exc

    def publish_from_worker(self, record: RunRecord) -> None:
        """publish_interval: called on the run's worker thread after a step."""
        worker = self.runs.workers[record.run.id]
        try:
            targets = self.replica_targets(record)
            self.push(record, worker.checkpoint_live(), targets, uri_only=False)
        except GantryError as exc:
            log.warning("publishing run %s failed; training continues: %s", record.run.id, exc)
        except Exception:
            log.exception("publishing run %s failed; training continues", record.run.id)
