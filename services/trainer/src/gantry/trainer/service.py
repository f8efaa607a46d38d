"""The trainer service: training runs as long-running operations, resumed after restarts."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from collections.abc import Sequence
from typing import Any, ClassVar

import grpc

from gantry.core.errors import (
    Cancelled,
    FailedPrecondition,
    GantryError,
    error_from_status,
    status_from_exception,
)
from gantry.core.errors import Unavailable as UnavailableError
from gantry.core.operations import OperationStore
from gantry.core.peers import Peers
from gantry.core.precision import recipe_name
from gantry.core.server import Service
from gantry.core.settings import ServiceSettings
from gantry.proto.trainer.v1 import trainer_pb2, trainer_pb2_grpc
from gantry.trainer import checkpoints
from gantry.trainer.paths import Roots
from gantry.trainer.publish import Published, PublishFailed, Retry, publish
from gantry.trainer.runs import TERMINAL, RunManager, RunRecord
from gantry.trainer.settings import TrainerSettings
from gantry.trainer.training import extra_options

log = logging.getLogger("gantry.trainer")
SERVICE_NAME = trainer_pb2.DESCRIPTOR.services_by_name["TrainerService"].full_name
# What a client told to come back (rollout unreachable, trainer restarting) should wait.
RETRY_AFTER_S = 5.0


class _Operations(OperationStore):
    """Knows when the server is shutting down, so that cancelling a run's operation on
    shutdown leaves the run to resume, while a client's CancelOperation cancels it."""

    closing = False

    async def close(self) -> None:
        self.closing = True
        await super().close()


def run_recipe(config: trainer_pb2.RunConfig) -> str:
    return recipe_name(config.precision, str(extra_options(config).get("precision_recipe", "")))


class TrainerService(Service[TrainerSettings]):
    name: ClassVar[str] = "trainer"
    settings_type: ClassVar[type[ServiceSettings]] = TrainerSettings

    def __init__(self, settings: TrainerSettings) -> None:
        super().__init__(settings)
        self.operations: _Operations = _Operations(prefix=f"{self.name}/operations")
        self.roots = Roots.from_settings(settings)
        self.rollout_peers = Peers("rollout", settings.rollout_target, settings.rollout_peers)
        self.runs = RunManager(
            self.roots,
            self.publish_from_worker,
            settings.device,
            max_dataset_bytes=settings.max_dataset_bytes,
        )
        # Set with `draining` (SIGTERM): publish retries stop waiting, workers checkpoint.
        self.stopping = threading.Event()
        self._events: dict[str, asyncio.Event] = {}
        self._loop: asyncio.AbstractEventLoop | None = None
        self._drain_watch: asyncio.Task[None] | None = None

    def add_to_server(self, server: grpc.aio.Server) -> Sequence[str]:
        from gantry.trainer.servicer import TrainerServicer

        trainer_pb2_grpc.add_TrainerServiceServicer_to_server(TrainerServicer(self), server)
        return [SERVICE_NAME]

    async def start(self) -> None:
        import torch

        if self.settings.torch_threads:
            torch.set_num_threads(self.settings.torch_threads)
        if self.settings.deterministic:
            torch.use_deterministic_algorithms(True, warn_only=True)
        self._loop = asyncio.get_running_loop()
        self._drain_watch = asyncio.create_task(self._checkpoint_on_drain())
        for record in await self.run_blocking(self.runs.load):
            log.info("resuming run %s", record.run.id)
            self.launch(record, resume=True)

    async def _checkpoint_on_drain(self) -> None:
        """SIGTERM: runs checkpoint during the grace period, not after it."""
        await self.draining.wait()
        log.info("draining: running runs checkpoint and stop; they resume on the next start")
        self.stopping.set()
        self.runs.request_stop()

    async def stop(self) -> None:
        self.stopping.set()
        if self._drain_watch is not None:
            self._drain_watch.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._drain_watch
        await self.run_blocking(self.runs.stop_all)

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

    # ----- change notification (worker threads -> event loop) -----
    def event(self, run_id: str) -> asyncio.Event:
        if run_id not in self._events:
            self._events[run_id] = asyncio.Event()
        return self._events[run_id]

    def _fire(self, run_id: str) -> None:
        old = self._events.pop(run_id, None)
        if old is not None:
            old.set()

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
        if refused is not None:
            record.set_state(trainer_pb2.RUN_STATE_FAILED, error=status_from_exception(refused))
            return record.snapshot()
        record.save()
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

    def _job(self, record: RunRecord) -> Any:
        async def job(handle: Any) -> trainer_pb2.Run:
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

    def push(
        self, record: RunRecord, checkpoint: trainer_pb2.Checkpoint, target: str, uri_only: bool
    ) -> Published:
        """Blocking: stream (or point rollout to) a checkpoint; remember the version map."""
        # The weights come from the run's own checkpoint folder, whatever a stored uri says.
        checkpoint = checkpoints.find(record.checkpoint_root, checkpoint.id)
        try:
            done = publish(
                target,
                self.settings.resolved_rollout_token(),
                checkpoint,
                run_recipe(record.run.config),
                record.run.id,
                uri_only=uri_only,
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
        trainer = record.trainer
        if trainer is not None:
            with record.model_lock:
                trainer.position.versions[done.policy_version] = int(checkpoint.policy_version)
        with record.lock:
            record.versions[done.policy_version] = int(checkpoint.policy_version)
        log.info(
            "published %s of run %s to %s as rollout version %d in %.2fs (%d attempts)",
            checkpoint.id,
            record.run.id,
            target,
            done.policy_version,
            done.seconds,
            done.attempts,
        )
        return done

    def publish_from_worker(self, record: RunRecord) -> None:
        """publish_interval: called on the run's worker thread after a step."""
        worker = self.runs.workers[record.run.id]
        try:
            target = self.rollout_target(record)
            self.push(record, worker.checkpoint_live(), target, uri_only=False)
        except GantryError as exc:
            log.warning("publishing run %s failed; training continues: %s", record.run.id, exc)
        except Exception:
            log.exception("publishing run %s failed; training continues", record.run.id)

    @classmethod
    def demo_call(cls, channel: grpc.Channel) -> str:
        stub = trainer_pb2_grpc.TrainerServiceStub(channel)
        runs = stub.ListRuns(trainer_pb2.ListRunsRequest(page_size=5))
        states = [trainer_pb2.RunState.Name(r.state).removeprefix("RUN_STATE_") for r in runs.runs]
        return f"{len(runs.runs)} recent runs" + (f": {', '.join(states)}" if states else "")
