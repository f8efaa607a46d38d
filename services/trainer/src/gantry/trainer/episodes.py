"""The `episodes` data source: the trainer pulls GRPO groups from rollout's StreamEpisodes.

One feeder thread per run keeps a continuous StreamEpisodes call open
(`episodes_per_seed` = the run's group size), holds each finished trajectory until its
whole group has arrived, and then passes the group through the same intake as
SubmitTrajectories (validation, staleness, the fsynced log). Releasing whole groups keeps
a group inside one batch when batch_size is a multiple of group_size, so the advantage
normalisation sees every member. The feeder pauses reading while the run's buffer is
full, which bounds how far ahead rollout generates.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

import grpc

from gantry.core.client import sync_channel
from gantry.proto.common.v1 import trajectory_pb2
from gantry.proto.rollout.v1 import rollout_pb2, rollout_pb2_grpc
from gantry.proto.trainer.v1 import trainer_pb2
from gantry.trainer.runs import TERMINAL, RunRecord

log = logging.getLogger("gantry.trainer.episodes")
RETRY_S = 2.0


def stream_request(config: trainer_pb2.RunConfig) -> rollout_pb2.StreamEpisodesRequest:
    source = config.data.episodes
    grpo = config.grpo
    spec = rollout_pb2.EpisodeSpec(
        env_id=source.env_id,
        difficulty=source.difficulty,
        seeds=source.seeds,
        episodes_per_seed=grpo.group_size,
        settings=source.settings,
        sampling=grpo.sampling,
        max_turns=source.max_turns,
        concurrency=config.batch_size,
        system_prompt=source.system_prompt,
    )
    # Rollout's 0 means unbounded; the trainer's 0 means on-policy: let rollout drop
    # episodes more than one version behind, the trainer's intake rejects the rest.
    return rollout_pb2.StreamEpisodesRequest(
        spec=spec, max_staleness=max(1, grpo.max_staleness), continuous=True
    )


class EpisodeFeeder:
    def __init__(
        self, record: RunRecord, target: str, token: str | None, max_buffered: int
    ) -> None:
        self.record = record
        self.target = target
        self.token = token
        # Read ahead as many batches as the run tolerates versions of lag (at least one, so
        # rollout works while the trainer steps): a buffered episode ages one version per
        # step it waits, so deeper buffers would only hand the steps staler data.
        ahead = max(1, record.run.config.grpo.max_staleness)
        self.limit = min(max_buffered, ahead * record.run.config.batch_size)
        self.group_size = record.run.config.grpo.group_size
        self._stopping = threading.Event()
        self._call: Any = None
        self._thread = threading.Thread(
            target=self._run, name=f"episodes-{record.run.id}", daemon=True
        )
        self.received = 0
        self.errors = 0

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stopping.set()
        call = self._call
        if call is not None:
            call.cancel()

    def _done(self) -> bool:
        record = self.record
        return (
            self._stopping.is_set()
            or record.stop_requested
            or record.cancel_requested
            or record.run.state in TERMINAL
        )

    def _run(self) -> None:
        while not self._done():
            try:
                self._stream()
            except grpc.RpcError as exc:
                if self._done():
                    return
                log.warning(
                    "StreamEpisodes from %s for run %s failed (%s); retrying",
                    self.target,
                    self.record.run.id,
                    exc.code(),
                )
                self._stopping.wait(RETRY_S)

    def _stream(self) -> None:
        request = stream_request(self.record.run.config)
        pending: dict[str, list[trajectory_pb2.Trajectory]] = {}
        # gRPC's own retries off: this loop retries the stream itself (see publish.py).
        with sync_channel(
            self.target, token=self.token, default_timeout_s=None, retry=None
        ) as channel:
            self._call = rollout_pb2_grpc.RolloutServiceStub(channel).StreamEpisodes(request)
            for message in self._call:
                if self._done():
                    self._call.cancel()
                    return
                if message.HasField("error"):
                    self.errors += 1
                    log.warning("episode failed: %s", message.error.status.message)
                    continue
                trajectory = message.trajectory
                self.received += 1
                group = pending.setdefault(trajectory.group_id, [])
                group.append(trajectory)
                if len(group) < self.group_size:
                    continue
                _, rejected = self.record.intake(pending.pop(trajectory.group_id), 10**9)
                for item in rejected:
                    log.info("episode %s not used: %s", item.trajectory_id, item.reason)
                while self.record.buffered() >= self.limit and not self._done():
                    time.sleep(0.05)
