"""The TrainerService RPCs: limits, then validation, then the run manager does the work.

Order of checks on arrival: sizes and counts (limits.py), then paths and peers (every
client-named path through the storage roots, every rollout target through the
configured peers), then capacity, and only then any reading of data.
"""

from __future__ import annotations

import asyncio
import contextvars
import math
import secrets
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from google.longrunning import operations_proto_pb2 as operations_pb2
from google.protobuf import duration_pb2

from gantry.core.errors import (
    FailedPrecondition,
    FieldViolation,
    InvalidArgument,
    NotFound,
    ResourceExhausted,
    Unavailable,
    Unimplemented,
    echo,
)
from gantry.core.limits import check_id
from gantry.core.operations import OperationStore
from gantry.core.paging import Page
from gantry.core.peers import Peers
from gantry.core.server import Runtime
from gantry.models.checkpoint import check_checkpoint_dir
from gantry.models.errors import ModelLoadError
from gantry.proto.trainer.v1 import trainer_pb2, trainer_pb2_grpc
from gantry.trainer import checkpoints, data, grpo, limits
from gantry.trainer.limits import Capacity
from gantry.trainer.master import ATTN_IMPLEMENTATIONS, TRAIN_DTYPES
from gantry.trainer.model import MODEL_NAMES, SCHEDULES
from gantry.trainer.orchestrator import RETRY_AFTER_S, RunOrchestrator
from gantry.trainer.paths import Roots
from gantry.trainer.runs import TERMINAL, RunManager, RunRecord
from gantry.trainer.training import DEFAULT_BATCH, DEFAULT_MAX_SEQ_LEN, extra_options

DEFAULT_PAGE = 50
MAX_PAGE = 1000
DEFAULT_LR = 1e-5
DEFAULT_GROUP_SIZE = 8
# config.extra.trainable_layers beyond any real model's depth is a typo, not a request.
MAX_LAYERS = 1024


def _require(problems: list[FieldViolation]) -> None:
    if problems:
        raise InvalidArgument(
            "; ".join(f"{p.field}: {p.description}" for p in problems), violations=problems
        )


def _whole_number(value: object, *, limit: int) -> bool:
    """A Struct number (always a float on the wire) that is an integer in [0, limit]."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return False
    return float(value).is_integer() and 0 <= value <= limit


def _check_paths(
    config: trainer_pb2.RunConfig, roots: Roots, peers: Peers, verifier_peers: Peers
) -> None:
    """Every path and target a StartRun config names: inside its root, or configured.

    PERMISSION_DENIED naming the field otherwise, before anything is opened or dialled.
    """
    if config.base_model.strip() and config.base_model not in MODEL_NAMES:
        model = Path(roots.base_model(config.base_model))
        try:
            check_checkpoint_dir(model)
        except ModelLoadError as exc:
            raise InvalidArgument.for_field(
                "config.base_model", f"{echo(config.base_model)} is not a model: {exc.reason}"
            ) from exc
    if config.data.WhichOneof("source") == "dataset_uri":
        roots.dataset(config.data.dataset_uri)
    if config.output_uri:
        roots.output(config.output_uri)
    if config.rollout_target:
        peers.resolve(config.rollout_target, field="config.rollout_target")
    if config.data.verifier_target:
        verifier_peers.resolve(config.data.verifier_target, field="config.data.verifier_target")


def validate_config(
    config: trainer_pb2.RunConfig,
    roots: Roots,
    peers: Peers,
    verifier_peers: Peers | None = None,
) -> trainer_pb2.RunConfig:
    """Check a StartRun config; return a copy with the documented defaults filled in.

    `peers` are the rollout peers; `verifier_peers` those config.data.verifier_target
    may name (none configured by default)."""
    method = config.WhichOneof("method")
    if method == "ppo":
        raise Unimplemented(
            "PPO (config.ppo) is not implemented by this trainer; use config.sft or config.grpo"
        )
    extra = extra_options(config)  # NaN/inf refused here
    recipe = str(extra.get("precision_recipe", ""))
    train_dtype = extra.get("train_dtype", "")
    attn = extra.get("attn_implementation", "")
    checkpointing = extra.get("gradient_checkpointing", False)
    trainable_layers = extra.get("trainable_layers", 0)
    _check_paths(config, roots, peers, verifier_peers or Peers("verifier"))
    default_rollout_target = peers.default
    problems: list[FieldViolation] = []
    if not config.base_model.strip():
        problems.append(FieldViolation("config.base_model", "is required (a local HF path)"))
    if method is None:
        problems.append(FieldViolation("config.method", "set exactly one of sft, grpo, ppo"))
    source = config.data.WhichOneof("source")
    if source is None:
        problems.append(FieldViolation("config.data", "set dataset_uri or submitted"))
    elif source == "episodes":
        if method != "grpo":
            problems.append(FieldViolation("config.data.episodes", "is a GRPO data source"))
        if not config.data.episodes.env_id:
            problems.append(
                FieldViolation("config.data.episodes.env_id", "is required, e.g. 'maze_2d'")
            )
        if not (config.rollout_target or default_rollout_target):
            problems.append(
                FieldViolation("config.rollout_target", "the episodes source needs rollout")
            )
    elif method == "sft" and source != "dataset_uri":
        problems.append(FieldViolation("config.data.dataset_uri", "SFT needs a dataset"))
    elif method == "grpo" and source not in ("submitted", "episodes"):
        problems.append(
            FieldViolation("config.data.submitted", "GRPO needs submitted=true or episodes")
        )
    elif source == "submitted" and not config.data.submitted:
        problems.append(FieldViolation("config.data.submitted", "must be true when set"))
    if config.data.verifier_target and (method != "grpo" or source != "submitted"):
        problems.append(
            FieldViolation(
                "config.data.verifier_target",
                "scores submitted GRPO trajectories (data.submitted=true); episodes already "
                "carry envfarm's reward",
            )
        )
    for name in (
        "batch_size",
        "micro_batch_size",
        "max_seq_len",
        "publish_interval",
        "micro_batch_tokens",
    ):
        if getattr(config, name) < 0:
            problems.append(FieldViolation(f"config.{name}", "must be >= 0 (0 = default)"))
    for name in ("max_steps", "checkpoint_interval"):
        if getattr(config, name) < 0:
            problems.append(FieldViolation(f"config.{name}", "must be >= 0"))
    batch = config.batch_size or DEFAULT_BATCH
    micro = config.micro_batch_size or batch
    if micro > batch or batch % micro:
        problems.append(
            FieldViolation("config.micro_batch_size", f"must divide batch_size ({batch})")
        )
    if config.publish_interval > 0 and not (config.rollout_target or default_rollout_target):
        problems.append(FieldViolation("config.rollout_target", "publish_interval needs it"))
    opt = config.optimizer
    if not (math.isfinite(opt.learning_rate) and opt.learning_rate >= 0):
        problems.append(FieldViolation("config.optimizer.learning_rate", "must be >= 0"))
    if opt.weight_decay < 0 or opt.warmup_steps < 0 or opt.max_grad_norm < 0:
        problems.append(
            FieldViolation("config.optimizer", "weight_decay, warmup_steps, max_grad_norm >= 0")
        )
    if opt.lr_schedule and opt.lr_schedule not in SCHEDULES:
        problems.append(
            FieldViolation("config.optimizer.lr_schedule", f"must be one of {SCHEDULES}")
        )
    if recipe and recipe not in ("bf16", "fp8-naive", "fp8-jet"):
        problems.append(
            FieldViolation("config.extra.precision_recipe", "bf16, fp8-naive or fp8-jet")
        )
    if train_dtype != "" and not (isinstance(train_dtype, str) and train_dtype in TRAIN_DTYPES):
        problems.append(
            FieldViolation("config.extra.train_dtype", f"one of {', '.join(TRAIN_DTYPES)}")
        )
    if not isinstance(checkpointing, bool):
        problems.append(FieldViolation("config.extra.gradient_checkpointing", "true or false"))
    if not _whole_number(trainable_layers, limit=MAX_LAYERS):
        problems.append(
            FieldViolation(
                "config.extra.trainable_layers",
                f"a whole number of decoder layers, 0 (all parameters) to {MAX_LAYERS}",
            )
        )
    if attn != "" and not (isinstance(attn, str) and attn in ATTN_IMPLEMENTATIONS):
        problems.append(
            FieldViolation(
                "config.extra.attn_implementation", f"one of {', '.join(ATTN_IMPLEMENTATIONS)}"
            )
        )
    if method == "grpo":
        g = config.grpo
        if g.group_size < 0 or g.max_staleness < 0 or g.kl_coef < 0:
            problems.append(
                FieldViolation("config.grpo", "group_size, max_staleness, kl_coef must be >= 0")
            )
        if not (0 <= g.clip_low < 1):
            problems.append(FieldViolation("config.grpo.clip_low", "must be in [0, 1)"))
        if g.clip_high and g.clip_high < (g.clip_low or grpo.DEFAULT_CLIP):
            problems.append(FieldViolation("config.grpo.clip_high", "must be >= clip_low"))
        if g.off_policy_correction not in trainer_pb2.OffPolicyCorrection.values():
            problems.append(FieldViolation("config.grpo.off_policy_correction", "NONE, TIS or MIS"))
        if g.HasField("importance_cap") and not g.importance_cap > 1:
            problems.append(FieldViolation("config.grpo.importance_cap", "must be > 1"))
    _require(problems)
    accepted = trainer_pb2.RunConfig()
    accepted.CopyFrom(config)
    accepted.batch_size = batch
    accepted.micro_batch_size = micro
    accepted.max_seq_len = config.max_seq_len or DEFAULT_MAX_SEQ_LEN
    accepted.optimizer.learning_rate = opt.learning_rate or DEFAULT_LR
    accepted.optimizer.lr_schedule = opt.lr_schedule or "constant"
    if not config.HasField("seed"):
        accepted.seed = secrets.randbelow(2**31)
    if method == "sft" and not config.sft.HasField("assistant_only_loss"):
        accepted.sft.assistant_only_loss = True
    if method == "grpo":
        g = accepted.grpo
        g.group_size = g.group_size or DEFAULT_GROUP_SIZE
        g.clip_low = g.clip_low or grpo.DEFAULT_CLIP
        g.clip_high = g.clip_high or g.clip_low
        if not g.HasField("scale_advantages"):
            g.scale_advantages = True
        if source == "episodes":
            # Fresh weights for rollout after every step unless told otherwise.
            accepted.publish_interval = config.publish_interval or 1
            if batch % g.group_size:
                raise InvalidArgument.for_field(
                    "config.batch_size",
                    f"must be a multiple of grpo.group_size ({g.group_size}) with the "
                    "episodes source, so that every batch holds whole groups",
                )
    return accepted


def check_dataset(roots: Roots, uri: str, max_bytes: int) -> None:
    """Blocking: read the dataset once so that bad data fails StartRun, not the run."""
    try:
        data.read_conversations(roots.dataset(uri), root=roots.datasets.path, max_bytes=max_bytes)
    except data.DataError as exc:
        raise InvalidArgument.for_field(exc.field, exc.message) from exc


class TrainerServicer(trainer_pb2_grpc.TrainerServiceServicer):
    def __init__(
        self,
        *,
        runtime: Runtime,
        orchestrator: RunOrchestrator,
        runs: RunManager,
        operations: OperationStore,
        roots: Roots,
        rollout_peers: Peers,
        capacity: Capacity,
    ) -> None:
        self.runtime = runtime
        self.orchestrator = orchestrator
        self.runs = runs
        self.operations = operations
        self.roots = roots
        self.rollout_peers = rollout_peers
        self.capacity = capacity
        self.by_request_id: dict[str, str] = {}

    def _record(self, run_id: str, field: str = "run_id") -> RunRecord:
        if not run_id:
            raise InvalidArgument.for_field(field, "is required")
        check_id(run_id, field=field)
        record = self.runs.get(run_id)
        if record is None:
            raise NotFound(
                f"run {echo(run_id)} not found", resource_type="run", resource_name=run_id
            )
        return record

    def _check_world_size(self, config: trainer_pb2.RunConfig) -> None:
        """Ranks a run may ask for: up to max_world_size, one multi-process run at a time
        (a process holds one process group)."""
        size, most = config.world_size, self.capacity.max_world_size
        if size < 0 or size > most:
            raise InvalidArgument.for_field(
                "config.world_size",
                f"must lie in 0..{most} (this trainer's max_world_size); got {size}",
            )
        if size > 1 and any(
            r.run.config.world_size > 1 and r.run.state not in TERMINAL
            for r in list(self.runs.records.values())
        ):
            raise ResourceExhausted(
                "a multi-process run is already training on this trainer's ranks: retry "
                "when it ends",
                retry_after_s=30,
                reason="RANKS_BUSY",
            )

    def _check_capacity(self) -> None:
        capacity = self.capacity
        runs = self.runs
        if len(runs.records) >= capacity.max_runs:
            raise ResourceExhausted(
                f"the trainer holds {len(runs.records)} runs, its limit (max_runs); an "
                "operator must remove finished runs from <data_dir>/runs or raise max_runs",
                reason="TOO_MANY_RUNS",
            )
        active = runs.active()
        if active >= capacity.max_active_runs:
            raise ResourceExhausted(
                f"{active} runs are active; the limit is max_active_runs "
                f"({capacity.max_active_runs}): retry when one ends",
                retry_after_s=30,
                reason="TOO_MANY_ACTIVE_RUNS",
            )

    async def StartRun(
        self, request: trainer_pb2.StartRunRequest, context: Any
    ) -> operations_pb2.Operation:
        limits.check_start_request(request)
        if request.request_id and request.request_id in self.by_request_id:
            existing = self._record(self.by_request_id[request.request_id])
            return self.operations.get(existing.run.operation_name)
        config = validate_config(
            request.config, self.roots, self.rollout_peers, self.orchestrator.verifier_peers
        )
        self._check_world_size(config)
        self._check_capacity()
        if config.WhichOneof("method") == "sft":
            await self.runtime.run_blocking(
                check_dataset,
                self.roots,
                config.data.dataset_uri,
                self.capacity.max_dataset_bytes,
            )
        self._check_capacity()  # again: other calls may have started runs meanwhile
        self._check_world_size(config)
        record = await self.runtime.run_blocking(self.runs.create, request.display_name, config)
        if request.request_id:
            self.by_request_id[request.request_id] = record.run.id
        run = self.orchestrator.launch(record, resume=False)
        return self.operations.get(run.operation_name)

    async def GetRun(
        self, request: trainer_pb2.GetRunRequest, context: Any
    ) -> trainer_pb2.GetRunResponse:
        return trainer_pb2.GetRunResponse(run=self._record(request.run_id).snapshot())

    async def ListRuns(
        self, request: trainer_pb2.ListRunsRequest, context: Any
    ) -> trainer_pb2.ListRunsResponse:
        wanted = set(request.states)
        # The filter defines the list: a token is only good with the same set of states.
        scope = "states=" + ",".join(str(s) for s in sorted(wanted))
        page = Page.from_request(request, default_size=DEFAULT_PAGE, max_size=MAX_PAGE, scope=scope)
        runs = [
            r.snapshot() for r in self.runs.newest_first() if not wanted or r.run.state in wanted
        ]
        return trainer_pb2.ListRunsResponse(
            runs=runs[page.start : page.stop], next_page_token=page.next_token(len(runs))
        )

    async def CancelRun(
        self, request: trainer_pb2.CancelRunRequest, context: Any
    ) -> trainer_pb2.CancelRunResponse:
        record = self._record(request.run_id)
        run = await self.runtime.run_blocking(self.orchestrator.cancel, record)
        return trainer_pb2.CancelRunResponse(run=run)

    async def SubmitTrajectories(
        self, request_iterator: AsyncIterator[trainer_pb2.SubmitTrajectoriesRequest], context: Any
    ) -> trainer_pb2.SubmitTrajectoriesResponse:
        record: RunRecord | None = None
        reply = trainer_pb2.SubmitTrajectoriesResponse()
        capacity = self.capacity
        async for message in request_iterator:
            limits.check_trajectories(
                message,
                max_count=capacity.max_trajectories_per_message,
                max_tokens=capacity.max_tokens_per_trajectory,
            )
            if record is None:
                record = self._record(message.run_id)
                if not record.run.config.data.submitted:
                    raise FailedPrecondition(
                        f"run {record.run.id} does not take submitted trajectories "
                        "(its config.data is not submitted=true)"
                    )
            elif message.run_id and message.run_id != record.run.id:
                raise InvalidArgument.for_field("run_id", "must not change within a stream")
            if record.run.state in TERMINAL:
                raise FailedPrecondition(
                    f"run {record.run.id} is {trainer_pb2.RunState.Name(record.run.state)}"
                )
            accepted, rejected = await self.runtime.run_blocking(
                record.intake,
                list(message.trajectories),
                capacity.max_buffered_trajectories,
                context.time_remaining(),  # the verifier hook's calls end with this one
            )
            reply.rejected.extend(rejected)
            reply.accepted_count += accepted
        if record is None:
            raise InvalidArgument.for_field("run_id", "is required (no message was sent)")
        reply.buffered_count = record.buffered()
        return reply

    async def StreamRunMetrics(
        self, request: trainer_pb2.StreamRunMetricsRequest, context: Any
    ) -> AsyncIterator[trainer_pb2.StreamRunMetricsResponse]:
        record = self._record(request.run_id)
        if request.since_step < 0:
            raise InvalidArgument.for_field("since_step", "must be >= 0")
        next_step = max(1, request.since_step)
        draining = self.runtime.draining
        while True:
            changed = self.orchestrator.event(record.run.id)
            with record.lock:
                state = record.run.state
                fresh = [m for m in record.metrics if m.step >= next_step]
            for metrics in fresh:
                yield trainer_pb2.StreamRunMetricsResponse(metrics=metrics, state=state)
                next_step = metrics.step + 1
            if not request.follow or state in TERMINAL:
                return
            if draining.is_set():
                # SIGTERM: end the stream now, not at the grace period; the run resumes on
                # the next start and the client continues from since_step.
                raise Unavailable(
                    f"the trainer is shutting down; run {record.run.id} continues after the "
                    f"restart: call again with since_step={next_step}",
                    retry_after_s=RETRY_AFTER_S,
                    reason="DRAINING",
                )
            await _first(changed, draining)

    async def ListCheckpoints(
        self, request: trainer_pb2.ListCheckpointsRequest, context: Any
    ) -> trainer_pb2.ListCheckpointsResponse:
        record = self._record(request.run_id)
        # One run's checkpoints: a token from another run's list is refused.
        page = Page.from_request(
            request, default_size=DEFAULT_PAGE, max_size=MAX_PAGE, scope=f"run={record.run.id}"
        )
        found = await self.runtime.run_blocking(
            checkpoints.list_checkpoints, record.checkpoint_root
        )
        return trainer_pb2.ListCheckpointsResponse(
            checkpoints=found[page.start : page.stop], next_page_token=page.next_token(len(found))
        )

    async def PublishWeights(
        self, request: trainer_pb2.PublishWeightsRequest, context: Any
    ) -> trainer_pb2.PublishWeightsResponse:
        record = self._record(request.run_id)
        check_id(request.checkpoint_id, field="checkpoint_id")
        # Resolved before anything is read or dialled; PERMISSION_DENIED for an address
        # the operator did not configure (the bearer token goes nowhere else).
        targets = self.orchestrator.replica_targets(record, request.rollout_target)
        if request.checkpoint_id:
            checkpoint = await self.runtime.run_blocking(
                checkpoints.find, record.checkpoint_root, request.checkpoint_id
            )
        else:
            checkpoint = await self.runtime.run_blocking(
                self.orchestrator.live_or_latest_checkpoint, record
            )
        uri_only = request.transfer == trainer_pb2.WEIGHT_TRANSFER_URI
        # The executor thread runs the publish in this call's context: its span is a child.
        done = await self.runtime.run_blocking(
            contextvars.copy_context().run,
            self.orchestrator.push,
            record,
            checkpoint,
            targets,
            uri_only,
        )
        elapsed = duration_pb2.Duration()
        elapsed.FromNanoseconds(int(done.seconds * 1e9))
        return trainer_pb2.PublishWeightsResponse(
            policy_version=done.policy_version,
            checkpoint=checkpoint,
            duration=elapsed,
            replicas=done.replicas,
        )


async def _first(*events: asyncio.Event) -> None:
    """Wait until any of `events` is set."""
    waiters = [asyncio.ensure_future(event.wait()) for event in events]
    try:
        await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for waiter in waiters:
            waiter.cancel()
