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
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from torch import nn

from gantry.kernels.fp8_linear import (
    DEFAULT_TARGETS,
    FP8Config,
    FP8Linear,
    convert_linear_layers,
    set_fp8_enabled,
)

__all__ = ["RECIPES", "Precision", "PrecisionRecipe", "Role", "get_recipe"]

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
