"""The trainer service: training runs as long-running operations, resumed after restarts."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from typing import Any, ClassVar

import grpc

from gantry.core.errors import Cancelled, FailedPrecondition, error_from_status, from_rpc_error
from gantry.core.errors import Unavailable as UnavailableError
from gantry.core.operations import OperationStore
from gantry.core.precision import recipe_name
from gantry.core.server import Service
from gantry.core.settings import ServiceSettings
from gantry.proto.trainer.v1 import trainer_pb2, trainer_pb2_grpc
from gantry.trainer import checkpoints
from gantry.trainer.publish import Published, publish
from gantry.trainer.runs import TERMINAL, RunManager, RunRecord
from gantry.trainer.settings import TrainerSettings
from gantry.trainer.training import extra_options

log = logging.getLogger("gantry.trainer")
SERVICE_NAME = trainer_pb2.DESCRIPTOR.services_by_name["TrainerService"].full_name


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
        self.runs = RunManager(
            settings.resolved_data_dir() / "runs", self.publish_from_worker, settings.device
        )
        self._events: dict[str, asyncio.Event] = {}
        self._loop: asyncio.AbstractEventLoop | None = None

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
        for record in await self.run_blocking(self.runs.load):
            log.info("resuming run %s", record.run.id)
            self.launch(record, resume=True)

    async def stop(self) -> None:
        await self.run_blocking(self.runs.stop_all)

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
        operation = self.operations.start(self._job(record), metadata=record.metadata())
        with record.lock:
            record.run.operation_name = operation.name
        record.save()
        self.runs.start(record, resume=resume)
        if record.run.config.data.HasField("episodes"):
            from gantry.trainer.episodes import EpisodeFeeder

            target = record.run.config.rollout_target or self.settings.rollout_target
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
        try:
            done = publish(
                target,
                self.settings.resolved_rollout_token(),
                checkpoint,
                run_recipe(record.run.config),
                record.run.id,
                uri_only=uri_only,
            )
        except grpc.RpcError as exc:
            error = from_rpc_error(exc)
            if error.code == grpc.StatusCode.UNAVAILABLE:
                raise UnavailableError(f"rollout at {target} is unavailable: {error}") from exc
            raise FailedPrecondition(f"rollout at {target} refused the weights: {error}") from exc
        trainer = record.trainer
        if trainer is not None:
            with record.model_lock:
                trainer.position.versions[done.policy_version] = int(checkpoint.policy_version)
        with record.lock:
            record.versions[done.policy_version] = int(checkpoint.policy_version)
        log.info(
            "published %s of run %s to %s as rollout version %d in %.2fs",
            checkpoint.id,
            record.run.id,
            target,
            done.policy_version,
            done.seconds,
        )
        return done

    def publish_from_worker(self, record: RunRecord) -> None:
        """publish_interval: called on the run's worker thread after a step."""
        worker = self.runs.workers[record.run.id]
        target = record.run.config.rollout_target or self.settings.rollout_target
        try:
            self.push(record, worker.checkpoint_live(), target, uri_only=False)
        except Exception:
            log.exception(
                "publishing run %s to %s failed; training continues", record.run.id, target
            )

    @classmethod
    def demo_call(cls, channel: grpc.Channel) -> str:
        stub = trainer_pb2_grpc.TrainerServiceStub(channel)
        runs = stub.ListRuns(trainer_pb2.ListRunsRequest(page_size=5))
        states = [trainer_pb2.RunState.Name(r.state).removeprefix("RUN_STATE_") for r in runs.runs]
        return f"{len(runs.runs)} recent runs" + (f": {', '.join(states)}" if states else "")
