"""One run's training state and its optimiser steps (SFT and GRPO), on the worker thread.

`Trainer` owns the policy, the optimiser and the data position. `sft_step` and
`grpo_step` each do one optimiser step over a batch with gradient accumulation over
micro-batches (the loss is normalised by the batch's target tokens, so accumulation
gives the same gradient as one big batch) and return the step's metrics.

In a multi-process run (a process group is up, `gantry.trainer.ranks`) every rank builds
the same Trainer, the policy is sharded with FSDP2 (`gantry.trainer.sharding`) and each
step's batch, which every rank holds whole, is split: rank r takes items r, r+W, ...
Advantages and the token normaliser come from the whole batch, so the summed gradient is
the one-process gradient whatever the world size. Every rank runs as many forwards as the
busiest one (an idle rank runs a zero-weight forward: FSDP's collectives must pair up).
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import torch

from gantry.core.limits import struct_to_python
from gantry.core.precision import recipe_name
from gantry.kernels.fp8_linear import forget_quantized_weights
from gantry.models.loading import CausalLM
from gantry.proto.common.v1 import trajectory_pb2
from gantry.proto.trainer.v1 import trainer_pb2
from gantry.trainer import checkpoints, data, grpo, sharding, verifier_rewards, vision
from gantry.trainer.master import DEFAULT_TRAIN_DTYPE, MasterAdamW
from gantry.trainer.model import (
    OptimizerSpec,
    build_optimizer,
    checkpoint_activations,
    clip_and_step,
    frozen_copy,
    load_policy,
    resolve_device,
    scored_logits,
    train_last_layers,
)
from gantry.trainer.ranks import Command, RankGroup, encode_setup, encode_trajectories

DEFAULT_BATCH = 8
DEFAULT_MAX_SEQ_LEN = 2048


def extra_options(config: trainer_pb2.RunConfig) -> dict[str, Any]:
    """`config.extra` as plain data; NaN/inf and deep nesting are INVALID_ARGUMENT."""
    return struct_to_python(config.extra, field="config.extra") if config.HasField("extra") else {}


@dataclass
class Position:
    """Where the run is; saved in every checkpoint."""

    step: int = 0
    policy_version: int = 0
    cursor: int = 0  # SFT examples consumed
    consumed: int = 0  # submitted trajectories consumed (index into the run's log)
    versions: dict[int, int] = field(default_factory=dict)  # rollout version -> ours


class Trainer:
    def __init__(
        self,
        config: trainer_pb2.RunConfig,
        seed: int,
        device: str = "cpu",
        *,
        conversations: list[list[data.Message]] | None = None,
        group: RankGroup | None = None,
    ) -> None:
        """`conversations`: the SFT data, already read (the service reads it inside the
        datasets root); None reads `config.data.dataset_uri` as given (tools, benchmarks).
        `group`: rank 0 of a multi-process run, which tells the other ranks each step."""
        self.group = group
        if group is not None:
            if conversations is None and config.WhichOneof("method") == "sft":
                conversations = data.read_conversations(config.data.dataset_uri)
            group.send(Command.SETUP, encode_setup(config, seed, conversations))
        self.config = config
        self.seed = seed
        self.method = config.WhichOneof("method") or ""
        extra = extra_options(config)
        self.recipe = recipe_name(config.precision, str(extra.get("precision_recipe", "")))
        self.train_dtype = str(extra.get("train_dtype", "") or DEFAULT_TRAIN_DTYPE)
        torch.manual_seed(seed)
        self.bundle: CausalLM
        self.device = resolve_device(device)
        self.bundle, self.fp8_layers = load_policy(
            config.base_model,
            self.recipe,
            self.device,
            self.train_dtype,
            str(extra.get("attn_implementation", "")),
        )
        self.model = self.bundle.model
        if extra.get("gradient_checkpointing") is True:
            checkpoint_activations(self.model)
        if extra.get("trainable_layers"):  # validated as a whole number by the servicer
            train_last_layers(self.model, int(extra["trainable_layers"]))
        self.tokenizer = self.bundle.tokenizer
        weight = self.model.get_input_embeddings().weight  # type: ignore[operator]
        assert isinstance(weight, torch.Tensor)
        self.vocab_size = int(weight.shape[0])  # token ids must lie below it
        pad = self.tokenizer.pad_token_id
        self.pad_id = int(pad if pad is not None else 0)
        # Vision-language policies: images back into pixel_values (gantry.trainer.vision).
        self.image_slots = vision.ImageSlots.of(self.model)
        processor = getattr(self.bundle, "processor", None)
        self.pixels = None if processor is None else partial(vision.pixel_values, processor)
        self.batch_size = config.batch_size or DEFAULT_BATCH
        self.micro = config.micro_batch_size or self.batch_size
        self.max_seq_len = config.max_seq_len or DEFAULT_MAX_SEQ_LEN
        self.examples: list[data.Example] = []
        if self.method == "sft":
            sft = config.sft
            if conversations is None:
                conversations = data.read_conversations(config.data.dataset_uri)
            self.examples = data.build_examples(
                self.tokenizer,
                conversations,
                max_seq_len=self.max_seq_len,
                assistant_only=sft.assistant_only_loss
                if sft.HasField("assistant_only_loss")
                else True,
                packing=sft.packing,
            )
        self.total_steps = int(config.max_steps)
        if not self.total_steps and self.method == "sft":
            self.total_steps = math.ceil(len(self.examples) / self.batch_size)
        self.order = data.DataOrder(max(1, len(self.examples)), seed)
        self.position = Position()
        self.reference: torch.nn.Module | None = None
        if self.method == "grpo" and config.grpo.kl_coef > 0:
            self.reference = frozen_copy(self.model)
        self.rank, self.world_size = sharding.rank(), sharding.world_size()
        if self.world_size > 1:
            sharding.shard(self.model)
            if self.reference is not None:
                sharding.shard(self.reference)
        # Built after sharding: AdamW must hold the sharded parameters.
        spec = OptimizerSpec.from_proto(config.optimizer)
        self.optimizer, self.scheduler = build_optimizer(self.model, spec, self.total_steps)
        self.max_grad_norm = spec.max_grad_norm

    # ----- state -----
    def state(self) -> dict[str, Any]:
        """Schedule, RNG and data position (the weights and AdamW state are in the shards)."""
        p = self.position
        return {
            "scheduler": self.scheduler.state_dict(),
            "rng": checkpoints.rng_state(),
            "step": p.step,
            "policy_version": p.policy_version,
            "cursor": p.cursor,
            "consumed": p.consumed,
            "versions": dict(p.versions),
        }

    def _announce(self, command: Command, payload: bytes = b"") -> None:
        """Rank 0: tell the other ranks to take the same collective step now."""
        if self.group is not None:
            self.group.send(command, payload)

    def write_checkpoint(self, directory: Path) -> None:
        """Every rank writes its shards (DCP); rank 0 then writes the whole model as an HF
        directory (rollout's and users' export) and the trainer state. A collective."""
        self._announce(Command.CHECKPOINT, str(directory).encode())
        sharding.save_sharded(self.model, self.optimizer, directory / checkpoints.SHARDS_DIR)
        weights = sharding.full_state_dict(self.model)
        if self.rank == 0:
            self.model.save_pretrained(str(directory), state_dict=weights)  # type: ignore[operator]
            self.tokenizer.save_pretrained(str(directory))
            torch.save(self.state(), directory / checkpoints.STATE_FILE)

    def restore(self, checkpoint_dir: Path) -> None:
        """Weights, optimiser, schedule, RNG and data position of a checkpoint written by any
        number of ranks (DCP reshards on load)."""
        self._announce(Command.RESTORE, str(checkpoint_dir).encode())
        shards = checkpoint_dir / checkpoints.SHARDS_DIR
        state = checkpoints.load_state(checkpoint_dir)
        if shards.is_dir():
            sharding.load_sharded(self.model, self.optimizer, shards)
        else:
            self._restore_single_process(checkpoint_dir, state)
        forget_quantized_weights(self.model)
        self.scheduler.load_state_dict(state["scheduler"])
        checkpoints.restore_rng(state["rng"])
        self.position = Position(
            step=state["step"],
            policy_version=state["policy_version"],
            cursor=state["cursor"],
            consumed=state["consumed"],
            versions={int(k): int(v) for k, v in state["versions"].items()},
        )
        self.order.cursor = self.position.cursor

    def _restore_single_process(self, checkpoint_dir: Path, state: dict[str, Any]) -> None:
        """A checkpoint from before sharded checkpoints: weights in model.safetensors and the
        optimiser inside trainer_state.pt; only a one-process run can take it back."""
        from safetensors.torch import load_file

        if self.world_size > 1 or "optimizer" not in state:
            raise checkpoints.unreadable(
                checkpoint_dir,
                f"has no {checkpoints.SHARDS_DIR}/ to resume {self.world_size} ranks",
            )
        weights = load_file(str(checkpoint_dir / "model.safetensors"), device=str(self.device))
        _missing, unexpected = self.model.load_state_dict(weights, strict=False)
        if unexpected:
            raise ValueError(f"checkpoint has unknown tensors: {unexpected[:3]}")
        self.optimizer.load_state_dict(state["optimizer"])
        if isinstance(self.optimizer, MasterAdamW):  # its weights were the float32 masters
            params = dict(self.model.named_parameters())
            self.optimizer.set_masters({params[k]: v for k, v in weights.items() if k in params})

    # ----- steps -----
    def _finish(self, metrics: trainer_pb2.StepMetrics, tokens: int, started: float) -> None:
        norm, lr = clip_and_step(self.model, self.optimizer, self.scheduler, self.max_grad_norm)
        self.position.step += 1
        self.position.policy_version += 1
        metrics.step = self.position.step
        metrics.policy_version = self.position.policy_version
        metrics.grad_norm = norm
        metrics.learning_rate = lr
        elapsed = time.perf_counter() - started
        metrics.tokens_per_second = tokens / max(elapsed, 1e-9)
        metrics.extra["step_seconds"] = elapsed
        metrics.time.GetCurrentTime()

    def _padded(self, chunks: list[Any]) -> list[tuple[Any, float]]:
        """`chunks` with weight 1, then (None, 0) until this rank has as many forwards as the
        busiest rank: the caller runs those on the batch's first item with zero weight."""
        count = int(sharding.max_over_ranks(len(chunks)))
        return [(c, 1.0) for c in chunks] + [(None, 0.0)] * (count - len(chunks))

    def sft_step(self) -> trainer_pb2.StepMetrics:
        self._announce(Command.SFT_STEP)
        started = time.perf_counter()
        batch = [self.examples[i] for i in self.order.take(self.batch_size)]
        self.position.cursor = self.order.cursor
        targets = sum(max(0, sum(1 for x in e.labels[1:] if x != data.IGNORE)) for e in batch)
        mine = sharding.share(batch, self.rank, self.world_size)
        chunks = [mine[s : s + self.micro] for s in range(0, len(mine), self.micro)]
        total_loss = 0.0
        tokens = 0
        for chunk, weight in self._padded(chunks):
            part = {
                k: v.to(self.device)
                for k, v in data.collate(chunk or batch[:1], self.pad_id).items()
            }
            labels = part["labels"][:, 1:]
            scored = labels != data.IGNORE
            inputs = {k: part[k] for k in ("input_ids", "attention_mask")}
            logits = scored_logits(self.model, inputs, scored)
            loss_sum = torch.nn.functional.cross_entropy(
                logits.float(), labels[scored], reduction="sum"
            )
            (loss_sum * (weight / max(targets, 1))).backward()  # type: ignore[no-untyped-call]
            total_loss += weight * float(loss_sum.detach())
            tokens += int(weight * int(part["attention_mask"].sum()))
        total_loss, summed_tokens = sharding.sum_over_ranks([total_loss, tokens])
        metrics = trainer_pb2.StepMetrics(loss=total_loss / max(targets, 1))
        self._finish(metrics, int(summed_tokens), started)
        return metrics

    def _ref_logprobs(self, batch: grpo.Batch) -> torch.Tensor | None:
        if self.reference is None:
            return None
        with torch.no_grad():
            return grpo.policy_logprobs(self.reference, batch)[0]

    def grpo_step(
        self, trajectories: Sequence[trajectory_pb2.Trajectory]
    ) -> trainer_pb2.StepMetrics:
        self._announce(Command.GRPO_STEP, encode_trajectories(trajectories))
        started = time.perf_counter()
        cfg = self.config.grpo
        clip_low = cfg.clip_low or grpo.DEFAULT_CLIP
        clip_high = cfg.clip_high or clip_low
        scale = cfg.scale_advantages if cfg.HasField("scale_advantages") else True
        items = grpo.sequences(
            trajectories,
            scale_advantages=scale,
            max_len=self.max_seq_len,
            vocab_size=self.vocab_size,
            slots=self.image_slots,
        )
        turns = sum(len(t.turns) for t in trajectories)
        total = float(sum(s.completion_len for s in items))  # the loss's denominator
        trained = grpo.with_signal(items, cfg.kl_coef)
        trained_tokens = float(sum(s.completion_len for s in trained))
        correction = grpo.correction_name(cfg.off_policy_correction)
        cap = cfg.importance_cap if cfg.HasField("importance_cap") else grpo.DEFAULT_IMPORTANCE_CAP
        sums = {"loss": 0.0, "clipped": 0.0, "kl": 0.0, "entropy": 0.0, "mismatch": 0.0}
        sums.update(weight=0.0, weight_max=0.0, corrected=0.0)
        tokens = 0
        # All micro-batches see the weights of the start of the step (one update per batch),
        # so the logprob mismatch below is rollout vs trainer on identical weights.
        padded = 0
        mine = sharding.share(trained, self.rank, self.world_size)
        chunks = list(grpo.micro_batches(mine, self.micro, self.config.micro_batch_tokens))
        for chunk, weight in self._padded(chunks):
            batch = grpo.collate(chunk or trained[:1], self.pad_id, self.pixels).to(self.device)
            logprobs, entropy = grpo.policy_logprobs(self.model, batch)
            terms = grpo.ppo_clip_loss(
                logprobs,
                batch.old_logprobs,
                batch.advantages,
                batch.loss_mask,
                clip_low=clip_low,
                clip_high=clip_high,
                total_tokens=total,
                ref_logprobs=self._ref_logprobs(batch),
                kl_coef=cfg.kl_coef,
                entropy=entropy,
                correction=correction,
                importance_cap=cap,
            )
            (terms.loss * weight).backward()  # type: ignore[no-untyped-call]
            if not weight:
                continue  # a forward to pair FSDP's collectives, not data
            padded += batch.input_ids.numel()
            sums["loss"] += float(terms.loss.detach())
            sums["weight"] += terms.weight_sum
            sums["weight_max"] = max(sums["weight_max"], terms.weight_max)
            sums["corrected"] += terms.corrected
            sums["clipped"] += terms.clipped
            sums["kl"] += terms.kl_sum
            sums["entropy"] += terms.entropy_sum
            sums["mismatch"] += terms.mismatch_sum
            tokens += int(batch.attention_mask.sum())
        keys = sorted(k for k in sums if k != "weight_max")
        for key, value in zip(keys, sharding.sum_over_ranks([sums[k] for k in keys]), strict=True):
            sums[key] = value
        sums["weight_max"] = sharding.max_over_ranks(sums["weight_max"])
        summed_tokens, summed_padded = sharding.sum_over_ranks([tokens, padded])
        tokens, padded = int(summed_tokens), int(summed_padded)
        rewards = torch.tensor([t.final_reward for t in trajectories], dtype=torch.float64)
        lag = [
            self.position.policy_version - self.position.versions.get(t.policy_version, 0)
            for t in trajectories
        ]
        n = max(trained_tokens, 1.0)  # per-token statistics are over the tokens trained on
        metrics = trainer_pb2.StepMetrics(
            loss=sums["loss"],
            reward_mean=float(rewards.mean()),
            reward_std=float(rewards.std(unbiased=False)),
            kl=sums["kl"] / n,
            entropy=sums["entropy"] / n,
            staleness_mean=sum(lag) / len(lag),
        )
        metrics.extra["clip_fraction"] = sums["clipped"] / n
        metrics.extra["logprob_mismatch"] = sums["mismatch"] / n
        if correction != "none":
            metrics.extra["is_weight_mean"] = sums["weight"] / n
            metrics.extra["is_weight_max"] = sums["weight_max"]
            kind = "truncated" if correction == "tis" else "masked"
            metrics.extra[f"is_{kind}_fraction"] = sums["corrected"] / n
        metrics.extra["completion_tokens"] = total
        metrics.extra["trajectories"] = float(len(trajectories))
        metrics.extra["skipped_turns"] = float(turns - len(items))
        metrics.extra["zero_advantage_turns"] = float(len(items) - len(trained))
        # Intake refuses trajectories past max_staleness; waiting in the buffer they can age
        # further. Counted here; TIS/MIS weight them by how far their sampler was.
        limit = max(cfg.max_staleness, 0)
        metrics.extra["stale_fraction"] = sum(v > limit for v in lag) / max(len(lag), 1)
        # Share of the forward passes' positions that were padding.
        metrics.extra["padding_fraction"] = 1.0 - tokens / padded if padded else 0.0
        metrics.extra.update(verifier_rewards.step_metrics(trajectories))
        self._finish(metrics, tokens, started)
        return metrics
