"""The policy being trained: loading, the precision recipe, optimiser and schedule."""

from __future__ import annotations

import copy
import inspect
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from gantry.kernels.fp8_linear import forget_quantized_weights
from gantry.models import names
from gantry.models.loading import CausalLM, load_causal_lm
from gantry.proto.trainer.v1 import trainer_pb2
from gantry.trainer import sharding
from gantry.trainer.master import (
    DEFAULT_TRAIN_DTYPE,
    TRAIN_DTYPES,
    MasterAdamW,
    gradients_for_clipping,
)
from gantry.trainer.vision import is_vision_model

# base_model names: "tiny" (the tiny random Qwen3, development and tests) and the packaged
# real models ("smollm2-135m-instruct"), resolved by gantry.models.names.
TINY_MODEL = names.TINY_MODEL
MODEL_NAMES = names.MODEL_NAMES
SCHEDULES = ("constant", "cosine", "linear")


def resolve_model_path(base_model: str) -> str:
    return names.resolve_model_path(base_model.removeprefix("file://"))


def resolve_device(device: str) -> torch.device:
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def load_policy(
    base_model: str,
    recipe: str,
    device: torch.device | None = None,
    train_dtype: str = DEFAULT_TRAIN_DTYPE,
    attn_implementation: str = "",
) -> tuple[CausalLM, list[str]]:
    """The policy in its working dtype with the trainer-side recipe.

    `train_dtype` "bfloat16": BF16 weights, the dtype rollout serves, with float32 masters
    in the optimiser (`gantry.trainer.master`); "float32": float32 weights that are their
    own masters (the BF16 recipes then autocast the forward to BF16); "auto" (default):
    the checkpoint's dtype, as rollout's `dtype=auto` loads it (float16 becomes BF16).
    `attn_implementation` ("sdpa", "eager"; "" keeps the model's) should be the rollout's:
    with "eager" on both sides the CPU forwards agree bit for bit (docs/trainer.md).
    Returns the bundle and the names of the layers whose forward/backward run FP8.
    """
    from gantry.kernels.recipes import get_recipe

    if train_dtype not in TRAIN_DTYPES:
        raise ValueError(f"train_dtype {train_dtype!r}: expected one of {TRAIN_DTYPES}")
    dtype = train_dtype
    path = resolve_model_path(base_model)
    if is_vision_model(path):  # a VLM: trained on image episodes (gantry.trainer.vision)
        from gantry.models.loading import load_vlm

        bundle: Any = load_vlm(path, dtype=dtype)
    else:
        bundle = load_causal_lm(path, dtype=dtype)
    if any(p.dtype not in (torch.float32, torch.bfloat16) for p in bundle.model.parameters()):
        bundle.model.to(torch.bfloat16)  # float16 would need loss scaling
    if device is not None:
        bundle.model.to(device)  # type: ignore[arg-type]
    if attn_implementation:
        bundle.model.set_attn_implementation(attn_implementation)
    layers = get_recipe(recipe).apply(bundle.model, "trainer")
    bundle.model.train(True)
    return bundle, layers


def frozen_copy(model: nn.Module) -> nn.Module:
    """The reference model for the KL penalty: the policy as it is now, never updated."""
    ref = copy.deepcopy(model).train(False)
    for p in ref.parameters():
        p.requires_grad_(False)
    return ref


def checkpoint_activations(model: Any) -> None:
    """Recompute each decoder layer's activations in the backward pass instead of keeping
    them: ~1/3 more compute for memory that no longer grows with depth."""
    enable = getattr(model, "activation_checkpointing_enable", None)
    if enable is not None:  # the newer transformers name
        enable(activation_checkpointing_kwargs={"use_reentrant": False})
    else:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})


def train_last_layers(model: Any, count: int) -> None:
    """Partial unfreezing: only the last `count` decoder layers and the final norm train;
    the embeddings, the earlier layers, the output layer and any vision tower stay frozen.

    The backward pass then stops at the first trainable layer (nothing below it needs a
    gradient) and AdamW holds state for those layers alone. `count` must lie in
    [1, number of decoder layers]; ValueError names the model's layer count otherwise."""
    decoder = model.get_decoder()
    layers = getattr(decoder, "layers", None)
    if not isinstance(layers, nn.ModuleList):
        raise ValueError(f"trainable_layers: {type(model).__name__} has no decoder layer list")
    if not 1 <= count <= len(layers):
        raise ValueError(
            f"trainable_layers {count}: the model has {len(layers)} decoder layers "
            f"(use 1..{len(layers)}, or 0 for all parameters)"
        )
    for p in model.parameters():
        p.requires_grad_(False)
    trained = [*layers[len(layers) - count :]]
    norm = getattr(decoder, "norm", None)
    if isinstance(norm, nn.Module):
        trained.append(norm)
    for module in trained:
        for p in module.parameters():
            p.requires_grad_(True)


_KEEPS_LOGITS: dict[type, bool] = {}


def _keeps_logits(model: nn.Module) -> bool:
    kind = type(model)
    if kind not in _KEEPS_LOGITS:
        _KEEPS_LOGITS[kind] = "logits_to_keep" in inspect.signature(model.forward).parameters
    return _KEEPS_LOGITS[kind]


def scored_logits(model: nn.Module, inputs: dict[str, torch.Tensor], scored: torch.Tensor) -> Any:
    """The logits that predict the scored targets, [N, V], one row per True of `scored`.

    `scored` [B, L-1] marks the (shifted) targets a loss is taken on; row-major order, as
    `targets[scored]`. Only those positions go through the output layer: a batch of
    32 × 430-token turn sequences with SmolLM2's 49k vocabulary would otherwise hold
    [B, L, V] float logits and their log-softmax and gradients (2.7 GB each) for ~20 scored
    tokens per row. Models without `logits_to_keep` compute all positions, then select.
    """
    keep = torch.nn.functional.pad(scored, (0, 1))  # position j's logits predict target j
    if _keeps_logits(model):
        logits = model(**inputs, logits_to_keep=keep).logits
        if logits.dim() == 2:
            return logits
    else:
        logits = model(**inputs).logits
    return logits[keep]


@dataclass(frozen=True)
class OptimizerSpec:
    learning_rate: float
    weight_decay: float
    warmup_steps: int
    schedule: str
    max_grad_norm: float

    @classmethod
    def from_proto(cls, config: trainer_pb2.OptimizerConfig) -> OptimizerSpec:
        return cls(
            learning_rate=config.learning_rate,
            weight_decay=config.weight_decay,
            warmup_steps=config.warmup_steps,
            schedule=config.lr_schedule or "constant",
            max_grad_norm=config.max_grad_norm,
        )


def lr_factor(spec: OptimizerSpec, total_steps: int) -> Callable[[int], float]:
    """Multiplier of the peak LR at 0-based scheduler step `k` (the k+1-th optimiser step)."""

    def factor(k: int) -> float:
        step = k + 1
        if spec.warmup_steps and step <= spec.warmup_steps:
            return step / spec.warmup_steps
        if spec.schedule == "constant" or total_steps <= spec.warmup_steps:
            return 1.0
        progress = min(1.0, (step - spec.warmup_steps) / (total_steps - spec.warmup_steps))
        if spec.schedule == "linear":
            return max(0.0, 1.0 - progress)
        return 0.5 * (1.0 + math.cos(math.pi * progress))

    return factor


def build_optimizer(
    model: nn.Module, spec: OptimizerSpec, total_steps: int
) -> tuple[torch.optim.AdamW, torch.optim.lr_scheduler.LambdaLR]:
    """AdamW; over float32 master copies (`MasterAdamW`) when the weights are lower
    precision."""
    params = [p for p in model.parameters() if p.requires_grad]
    low = any(p.dtype != torch.float32 for p in params)
    kind = MasterAdamW if low else torch.optim.AdamW
    optimizer = kind(params, lr=spec.learning_rate, weight_decay=spec.weight_decay)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lr_factor(spec, total_steps))
    return optimizer, scheduler


def clip_and_step(
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    scheduler: torch.optim.lr_scheduler.LRScheduler,
    max_grad_norm: float,
) -> tuple[float, float]:
    """Clip (when max_grad_norm > 0), step, advance the schedule; return (grad norm, lr).

    Under `MasterAdamW` the norm and the clipping are over the float32 gradients."""
    params = gradients_for_clipping(model, optimizer)
    limit = max_grad_norm if max_grad_norm > 0 else float("inf")
    norm = sharding.clip_grad_norm(params, limit)  # over every rank's shards
    lr = float(optimizer.param_groups[0]["lr"])
    optimizer.step()
    forget_quantized_weights(model)  # FSDP2's gathered weights can hide the change
    scheduler.step()
    optimizer.zero_grad(set_to_none=True)
    return norm, lr
