"""Precision recipes: which forward the rollout and the trainer run (Jet-RL, 2601.14243).

=============  ===============  ==================  =========================================
recipe         rollout forward  training forward    what it is
=============  ===============  ==================  =========================================
``bf16``       BF16             BF16                the baseline; on-policy
``fp8-naive``  FP8              BF16                FP8 rollout, BF16 training: the paper's
                                                    failing baseline (off-policy mismatch)
``fp8-jet``    FP8              FP8 (same recipe)   one precision flow for both: on-policy
=============  ===============  ==================  =========================================

"FP8" means :class:`~gantry.kernels.fp8_linear.FP8Linear` on the attention and MLP
projections (128×128 weight blocks, 1×128 activation groups, E4M3) with the recipe's
:class:`~gantry.kernels.fp8_linear.FP8Config`; embeddings, norms and ``lm_head`` stay in
the model dtype. Under ``fp8-jet`` the trainer's backward also runs FP8 (per-group
quantized gradients); the forward numbers equal the rollout's because both quantize the
same BF16 weights with the same deterministic recipe, without calibration.

"BF16" in the **trainer** role means BF16 compute. Over BF16 weights (the trainer keeps
float32 master copies in its optimiser, ``gantry.trainer.master``) the forward is the
rollout's own BF16 forward and nothing here changes it. Over float32 weights (a float32
checkpoint, or a trainer run with ``train_dtype=float32``) the BF16 roles run it under
``torch.autocast(dtype=bfloat16)`` (matmuls and linear layers in BF16, reductions
autocast keeps in float32) so a float32 checkpoint never trains in float32 and an FP8
speedup is never measured against the wrong baseline; FP8 trainer roles over float32
weights run float32 outside the FP8 projections. The rollout role runs in whatever dtype
its engine loaded.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

import torch
from torch import nn

from gantry.kernels.fp8_linear import (
    DEFAULT_TARGETS,
    FP8Config,
    FP8Linear,
    convert_linear_layers,
    set_fp8_enabled,
)

__all__ = ["RECIPES", "Precision", "PrecisionRecipe", "Role", "get_recipe", "set_bf16_compute"]

Role = Literal["rollout", "trainer"]
Precision = Literal["bf16", "fp8"]


@dataclass(frozen=True, slots=True)
class PrecisionRecipe:
    name: str
    rollout: Precision
    trainer: Precision
    description: str
    fp8: FP8Config = field(default_factory=FP8Config)

    @property
    def on_policy(self) -> bool:
        """True when rollout and training forwards compute the same numbers."""
        return self.rollout == self.trainer

    def precision(self, role: Role) -> Precision:
        if role == "rollout":
            return self.rollout
        if role == "trainer":
            return self.trainer
        raise ValueError(f"unknown role {role!r}: expected 'rollout' or 'trainer'")

    def apply(
        self, model: nn.Module, role: Role, *, targets: tuple[str, ...] = DEFAULT_TARGETS
    ) -> list[str]:
        """Make ``model`` run this recipe's forward for ``role``, in place.

        FP8 roles convert the target projections to :class:`FP8Linear` (or re-enable
        layers converted earlier); BF16 roles switch converted layers off. Returns the
        names of the layers that run FP8 (empty for a BF16 role).
        """
        fp8 = self.precision(role) == "fp8"
        weights32 = any(p.dtype == torch.float32 for p in model.parameters())
        set_bf16_compute(model, role == "trainer" and not fp8 and weights32)
        already = [n for n, m in model.named_modules() if isinstance(m, FP8Linear)]
        if not fp8:
            set_fp8_enabled(model, False)
            return []
        converted = convert_linear_layers(model, config=self.fp8, targets=targets)
        for module in model.modules():
            if isinstance(module, FP8Linear):
                module.config = self.fp8
                module.enabled = True
        return sorted(already + converted)


_AUTOCAST_HOOKS = "_gantry_bf16_hooks"
_AUTOCAST_STACK = "_gantry_bf16_contexts"


def _enter_bf16(module: nn.Module, args: Any) -> None:
    param = next(module.parameters(), None)
    device = param.device.type if param is not None else "cpu"
    ctx = torch.autocast(device_type=device, dtype=torch.bfloat16)
    ctx.__enter__()  # type: ignore[no-untyped-call]
    module.__dict__.setdefault(_AUTOCAST_STACK, []).append(ctx)


def _exit_bf16(module: nn.Module, args: Any, output: Any) -> None:
    stack = module.__dict__.get(_AUTOCAST_STACK)
    if stack:
        stack.pop().__exit__(None, None, None)


def set_bf16_compute(model: nn.Module, enabled: bool) -> None:
    """Run ``model``'s forward in BF16 (autocast) over its own (float32) parameters, or not.

    Hooks rather than a wrapped ``forward``: they travel with ``copy.deepcopy`` (the KL
    reference model) and always exit the autocast region, even when the forward raises.
    Idempotent.
    """
    hooks = model.__dict__.pop(_AUTOCAST_HOOKS, None)
    if hooks is not None:
        for handle in hooks:
            handle.remove()
    if enabled:
        model.__dict__[_AUTOCAST_HOOKS] = (
            model.register_forward_pre_hook(_enter_bf16),
            model.register_forward_hook(_exit_bf16, always_call=True),
        )


def bf16_compute(model: nn.Module) -> bool:
    """Whether ``model``'s forward runs under BF16 autocast (see :func:`set_bf16_compute`)."""
    return _AUTOCAST_HOOKS in model.__dict__


RECIPES: dict[str, PrecisionRecipe] = {
    r.name: r
    for r in (
        PrecisionRecipe("bf16", "bf16", "bf16", "BF16 rollout and training"),
        PrecisionRecipe(
            "fp8-naive", "fp8", "bf16", "FP8 rollout, BF16 training (off-policy baseline)"
        ),
        PrecisionRecipe("fp8-jet", "fp8", "fp8", "FP8 rollout and FP8 training, one flow"),
    )
}


def get_recipe(name: str) -> PrecisionRecipe:
    try:
        return RECIPES[name]
    except KeyError:
        raise ValueError(
            f"unknown precision recipe {name!r}: expected one of {sorted(RECIPES)}"
        ) from None
