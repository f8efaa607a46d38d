"""Limits first: the sizes and counts a trainer request may carry, checked on arrival.

Every check raises INVALID_ARGUMENT naming the field, before any file is read, model
loaded or trajectory judged. The caps on a run's shape are constants (far above what a
run on one device can use, far below what would exhaust the server); the capacity caps
an operator sizes (runs, trajectories per message, tokens per trajectory, dataset bytes)
are settings.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from gantry.core.errors import InvalidArgument
from gantry.core.limits import check_bytes, check_count, check_id
from gantry.proto.trainer.v1 import trainer_pb2
from gantry.trainer.settings import TrainerSettings

MAX_STEPS = 10_000_000  # max_steps, checkpoint/publish intervals, warmup_steps
MAX_BATCH_SIZE = 8192  # batch_size, micro_batch_size (sequences per optimiser step)
MAX_SEQ_LEN = 131_072  # max_seq_len (tokens per training sequence)
MAX_MICRO_BATCH_TOKENS = 16_777_216  # micro_batch_tokens (padded tokens per pass)
MAX_GROUP_SIZE = 1024  # grpo.group_size
MAX_SEEDS = 100_000  # data.episodes.seeds
MAX_TURNS = 10_000  # data.episodes.max_turns, turns of one submitted trajectory
MAX_DISPLAY_NAME_BYTES = 1024


@dataclass(frozen=True)
class Capacity:
    """The caps an operator sizes (the TrainerSettings fields of the same names)."""

    max_runs: int
    max_active_runs: int
    max_trajectories_per_message: int
    max_tokens_per_trajectory: int
    max_buffered_trajectories: int
    max_dataset_bytes: int
    max_world_size: int = 1

    @classmethod
    def from_settings(cls, settings: TrainerSettings) -> Capacity:
        return cls(
            max_runs=settings.max_runs,
            max_active_runs=settings.max_active_runs,
            max_trajectories_per_message=settings.max_trajectories_per_message,
            max_tokens_per_trajectory=settings.max_tokens_per_trajectory,
            max_buffered_trajectories=settings.max_buffered_trajectories,
            max_dataset_bytes=settings.max_dataset_bytes,
            max_world_size=settings.max_world_size,
        )


def check_finite(value: float, *, field: str) -> None:
    if not math.isfinite(value):
        raise InvalidArgument.for_field(field, "must be a finite number")


def check_start_request(request: trainer_pb2.StartRunRequest) -> None:
    """StartRun's sizes and counts (its meaning is checked by validate_config)."""
    check_id(request.request_id, field="request_id")
    check_bytes(request.display_name, field="display_name", limit=MAX_DISPLAY_NAME_BYTES)
    config = request.config
    for name in ("max_steps", "checkpoint_interval", "publish_interval"):
        check_count(getattr(config, name), field=f"config.{name}", limit=MAX_STEPS)
    check_count(
        config.optimizer.warmup_steps, field="config.optimizer.warmup_steps", limit=MAX_STEPS
    )
    for name in ("batch_size", "micro_batch_size"):
        check_count(getattr(config, name), field=f"config.{name}", limit=MAX_BATCH_SIZE)
    check_count(config.max_seq_len, field="config.max_seq_len", limit=MAX_SEQ_LEN)
    check_count(
        config.micro_batch_tokens, field="config.micro_batch_tokens", limit=MAX_MICRO_BATCH_TOKENS
    )
    optimizer = config.optimizer
    for name in ("learning_rate", "weight_decay", "max_grad_norm"):
        check_finite(getattr(optimizer, name), field=f"config.optimizer.{name}")
    grpo = config.grpo
    check_count(grpo.group_size, field="config.grpo.group_size", limit=MAX_GROUP_SIZE)
    for name in ("kl_coef", "clip_low", "clip_high", "importance_cap"):
        check_finite(getattr(grpo, name), field=f"config.grpo.{name}")
    episodes = config.data.episodes
    check_id(episodes.env_id, field="config.data.episodes.env_id")
    check_count(len(episodes.seeds), field="config.data.episodes.seeds", limit=MAX_SEEDS)
    check_count(episodes.max_turns, field="config.data.episodes.max_turns", limit=MAX_TURNS)


def check_trajectories(
    message: trainer_pb2.SubmitTrajectoriesRequest, *, max_count: int, max_tokens: int
) -> None:
    """One SubmitTrajectories message: how many trajectories, and how big each is."""
    check_id(message.run_id, field="run_id")
    check_count(len(message.trajectories), field="trajectories", limit=max_count)
    for i, trajectory in enumerate(message.trajectories):
        where = f"trajectories[{i}]"
        check_id(trajectory.id, field=f"{where}.id")
        check_id(trajectory.group_id, field=f"{where}.group_id")
        check_count(len(trajectory.turns), field=f"{where}.turns", limit=MAX_TURNS)
        tokens = sum(
            len(turn.prompt_token_ids) + len(turn.completion.token_ids) for turn in trajectory.turns
        )
        if tokens > max_tokens:
            raise InvalidArgument.for_field(
                f"{where}.turns",
                f"hold {tokens} token ids; the limit is {max_tokens} per trajectory "
                "(max_tokens_per_trajectory)",
            )
