"""FP8 linear layer (Jet-RL's precision flow) and the converter for HF models.

Forward ``Y = X · Wᵀ (+ b)``: W quantized per 128×128 block (E4M3), X per 1×128 group
(E4M3), one FP8 GEMM. Backward: the incoming gradient dY (BF16 in a BF16 model) is
quantized per 1×128 group (E4M3 by default, E5M2 optional) for both backward GEMMs:

* dgrad ``dX = dY · W`` uses the transposed FP8 weight written by the forward's weight
  quantization (no second pass over W); dX is returned in dY's dtype, so the gradient that
  travels between layers stays BF16;
* wgrad ``dW = dYᵀ · X`` quantizes dYᵀ and Xᵀ in 1×128 groups along the token dimension,
  accumulates in float32 and returns dW in the master weight's dtype (float32 or BF16).

The layer stores only its master parameters (``weight``, ``bias``: same names and shapes
as ``nn.Linear``, so state dicts, optimizers and weight publishing are unchanged); FP8
codes are recomputed from the current weights whenever they change (no calibration step):
the layer caches its quantized weight, keyed by the weight's storage and version counter.
Training and inference quantize the weight through one function
(:func:`quantize_weight_operands`), so the forward's codes do not depend on grad mode.

Dims that are not multiples of 128 are handled by ragged edge blocks/groups (see
:mod:`gantry.kernels.fp8_quant`); nothing is padded in memory.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, replace
from typing import Any

import torch
from torch import nn

from gantry.kernels._common import BLOCK, Backend, FP8Format, fp8_dtype
from gantry.kernels.fp8_gemm import fp8_gemm
from gantry.kernels.fp8_quant import (
    Quantized,
    quantize_activation,
    quantize_weight_with_transpose,
)

__all__ = [
    "DEFAULT_TARGETS",
    "FP8Config",
    "FP8Linear",
    "FP8LinearFunction",
    "convert_linear_layers",
    "forget_quantized_weights",
    "fp8_linear",
    "fp8_linear_ref",
    "quantize_weight_operands",
    "set_fp8_enabled",
    "transpose_blocks",
]

#: Linear layers the converter swaps by default: attention and MLP projections of
#: Llama/Qwen-style decoders. Embeddings, norms and ``lm_head`` are never converted.
DEFAULT_TARGETS: tuple[str, ...] = (
    "q_proj",
    "k_proj",
    "v_proj",
    "o_proj",
    "gate_proj",
    "up_proj",
    "down_proj",
)
_NEVER = re.compile(r"(^|\.)(lm_head|embed_tokens|embed_out|wte|wpe)$")


@dataclass(frozen=True, slots=True)
class FP8Config:
    """How an FP8 linear layer quantizes.

    ``weight_cast``: the master weight is rounded to this dtype before quantization
    (``None`` quantizes the master directly). With the default BF16, a trainer holding
    float32 masters and a rollout engine holding the published BF16 copy produce the same
    FP8 weight codes, which is what makes their forwards identical under ``fp8-jet``.
    """

    weight_format: FP8Format = "e4m3"
    activation_format: FP8Format = "e4m3"
    grad_format: FP8Format = "e4m3"
    weight_cast: torch.dtype | None = torch.bfloat16
    backend: Backend = "auto"

    def __post_init__(self) -> None:
        for fmt in (self.weight_format, self.activation_format, self.grad_format):
            fp8_dtype(fmt)
        if self.weight_cast is not None and not self.weight_cast.is_floating_point:
            raise ValueError(f"weight_cast must be a float dtype, got {self.weight_cast}")

    def weight_source(self, weight: torch.Tensor) -> torch.Tensor:
        w = weight.detach()
        return w if self.weight_cast is None else w.to(self.weight_cast)


#: A layer's FP8 weight operands: ``W`` [N, K] for the forward and ``Wᵀ`` [K, N] for dgrad.
WeightOperands = tuple[Quantized, Quantized | None]


def quantize_weight_operands(weight: torch.Tensor, config: FP8Config) -> WeightOperands:
    """The one way an FP8 linear layer quantizes its weight, with or without autograd.

    Training, rollout and the cached inference path all call this, so a forward's weight
    codes cannot depend on grad mode (one function, one layout, one kernel).
    """
    src = config.weight_source(weight)
    wq, wq_t = quantize_weight_with_transpose(src, config.weight_format, backend=config.backend)
    return wq, wq_t


def transpose_blocks(q: Quantized) -> Quantized:
    """``Wᵀ`` from quantized ``W``: square blocks make it the transposed codes and scales."""
    return Quantized(q.data.t().contiguous(), q.scale.t().contiguous(), q.block_rows)


def _out_dtype(x: torch.Tensor) -> torch.dtype:
    return x.dtype if x.dtype in (torch.bfloat16, torch.float16, torch.float32) else torch.float32


class FP8LinearFunction(torch.autograd.Function):
    """Autograd function: FP8 forward, FP8 dgrad and wgrad, BF16 gradient transport."""

    @staticmethod
    def forward(
        ctx: Any,
        x: torch.Tensor,
        weight: torch.Tensor,
        bias: torch.Tensor | None,
        config: FP8Config,
        cached: WeightOperands | None = None,
    ) -> torch.Tensor:
        k = x.shape[-1]
        x2 = x.reshape(-1, k)
        need_grad = ctx.needs_input_grad[0] or ctx.needs_input_grad[1]
        wq, wq_t = cached if cached is not None else quantize_weight_operands(weight, config)
        xq = quantize_activation(x2, config.activation_format, backend=config.backend)
        y = fp8_gemm(xq, wq, out_dtype=_out_dtype(x), backend=config.backend)
        if bias is not None:
            y = y + bias.to(y.dtype)
        if need_grad:
            if wq_t is None:  # a cache filled under no_grad: transpose the same codes
                wq_t = transpose_blocks(wq)
            ctx.save_for_backward(x2, wq_t.data, wq_t.scale)
            ctx.config = config
            ctx.x_shape = x.shape
            ctx.x_dtype = x.dtype
            ctx.w_dtype = weight.dtype
            ctx.b_dtype = None if bias is None else bias.dtype
        return y.reshape(*x.shape[:-1], y.shape[-1])

    @staticmethod
    def backward(ctx: Any, *grads: torch.Tensor) -> tuple[torch.Tensor | None, ...]:
        (dy,) = grads
        x2, wt_data, wt_scale = ctx.saved_tensors
        config: FP8Config = ctx.config
        dy2 = dy.reshape(-1, dy.shape[-1])
        dx = dw = db = None
        if ctx.needs_input_grad[0]:
            gq = quantize_activation(dy2, config.grad_format, backend=config.backend)
            wq_t = Quantized(wt_data, wt_scale, BLOCK)
            dx2 = fp8_gemm(gq, wq_t, out_dtype=_out_dtype(dy), backend=config.backend)
            dx = dx2.to(ctx.x_dtype).reshape(ctx.x_shape)
        if ctx.needs_input_grad[1]:
            gq_t = quantize_activation(
                dy2, config.grad_format, transpose=True, backend=config.backend
            )
            xq_t = quantize_activation(
                x2, config.activation_format, transpose=True, backend=config.backend
            )
            dw = fp8_gemm(gq_t, xq_t, out_dtype=torch.float32, backend=config.backend).to(
                ctx.w_dtype
            )
        if ctx.b_dtype is not None and ctx.needs_input_grad[2]:
            db = dy2.float().sum(0).to(ctx.b_dtype)
        return dx, dw, db, None, None


def fp8_linear(
    x: torch.Tensor,
    weight: torch.Tensor,
    bias: torch.Tensor | None = None,
    config: FP8Config | None = None,
) -> torch.Tensor:
    """Functional FP8 linear: ``x · weightᵀ + bias`` with the FP8 precision flow."""
    out = FP8LinearFunction.apply(  # type: ignore[no-untyped-call]
        x, weight, bias, config or FP8Config()
    )
    assert isinstance(out, torch.Tensor)
    return out


def fp8_linear_ref(
    x: torch.Tensor,
    weight: torch.Tensor,
    bias: torch.Tensor | None = None,
    config: FP8Config | None = None,
) -> torch.Tensor:
    """Same forward numbers through the torch reference kernels (any device)."""
    cfg = config or FP8Config()
    return fp8_linear(x, weight, bias, replace(cfg, backend="torch"))


class FP8Linear(nn.Module):
    """Drop-in ``nn.Linear`` replacement running the FP8 precision flow.

    ``enabled = False`` makes it an ordinary linear layer (same parameters), so one module
    tree can serve both sides of a precision recipe.
    """

    in_features: int
    out_features: int

    def __init__(
        self,
        in_features: int,
        out_features: int,
        bias: bool = True,
        *,
        config: FP8Config | None = None,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__()
        self.in_features = in_features
        self.out_features = out_features
        self.config = config or FP8Config()
        self.enabled = True
        self.weight = nn.Parameter(
            torch.empty(out_features, in_features, device=device, dtype=dtype)
        )
        self.bias: nn.Parameter | None
        if bias:
            self.bias = nn.Parameter(torch.zeros(out_features, device=device, dtype=dtype))
        else:
            self.register_parameter("bias", None)
        nn.init.kaiming_uniform_(self.weight, a=5**0.5)
        self._cache_key: tuple[int, int, torch.dtype, torch.device] | None = None
        self._cache: WeightOperands | None = None

    @classmethod
    def from_linear(cls, linear: nn.Linear, config: FP8Config | None = None) -> FP8Linear:
        """Wrap ``linear``'s own parameters (shared, not copied)."""
        layer = cls.__new__(cls)
        nn.Module.__init__(layer)
        layer.in_features = linear.in_features
        layer.out_features = linear.out_features
        layer.config = config or FP8Config()
        layer.enabled = True
        layer.weight = linear.weight  # type: ignore[assignment]  # a Parameter
        layer.bias = linear.bias  # type: ignore[assignment]
        layer._cache_key = None
        layer._cache = None
        return layer

    def _weight_operands(self, need_t: bool) -> WeightOperands:
        """This layer's quantized weight, recomputed only when the weight changes.

        Inference keeps ``W`` alone (the cache costs 1 byte per weight); a training forward
        also keeps ``Wᵀ`` for its backward, so micro-batches of one optimiser step share one
        quantization. Both come from :func:`quantize_weight_operands`.
        """
        w = self.weight
        key = (w.data_ptr(), w._version, w.dtype, w.device)
        stale = self._cache is None or self._cache_key != key
        if stale or (need_t and self._cache is not None and self._cache[1] is None):
            wq, wq_t = quantize_weight_operands(w, self.config)
            self._cache = (wq, wq_t if need_t else None)
            self._cache_key = key
        assert self._cache is not None
        return self._cache

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.enabled:
            bias = None if self.bias is None else self.bias.to(x.dtype)
            return nn.functional.linear(x, self.weight.to(x.dtype), bias)
        grad = torch.is_grad_enabled() and (x.requires_grad or self.weight.requires_grad)
        out = FP8LinearFunction.apply(  # type: ignore[no-untyped-call]
            x, self.weight, self.bias, self.config, self._weight_operands(need_t=grad)
        )
        assert isinstance(out, torch.Tensor)
        return out

    def extra_repr(self) -> str:
        c = self.config
        return (
            f"in_features={self.in_features}, out_features={self.out_features}, "
            f"bias={self.bias is not None}, enabled={self.enabled}, weight={c.weight_format}, "
            f"act={c.activation_format}, grad={c.grad_format}"
        )


def convert_linear_layers(
    model: nn.Module,
    *,
    config: FP8Config | None = None,
    targets: Iterable[str] = DEFAULT_TARGETS,
) -> list[str]:
    """Swap the ``nn.Linear`` layers whose last name component is in ``targets`` for
    :class:`FP8Linear` (sharing their parameters), in place. Returns the converted names.

    ``lm_head`` and embeddings are never converted, whatever ``targets`` says; norms and
    other modules are not ``nn.Linear`` and are left alone.
    """
    wanted = set(targets)
    cfg = config or FP8Config()
    swaps: list[tuple[nn.Module, str, str, nn.Linear]] = []
    for name, module in model.named_modules():
        for child_name, child in module.named_children():
            full = f"{name}.{child_name}" if name else child_name
            if type(child) is nn.Linear and child_name in wanted and not _NEVER.search(full):
                swaps.append((module, child_name, full, child))
    for parent, child_name, _, child in swaps:
        setattr(parent, child_name, FP8Linear.from_linear(child, cfg))
    return [full for _, _, full, _ in swaps]


def forget_quantized_weights(model: nn.Module) -> None:
    """Drop every :class:`FP8Linear`'s cached quantized weight; call after the weights change.

    The cache notices in-place updates of a plain parameter (its version counter), but not
    a sharded one: FSDP2 gathers each step's new weight into a buffer that may sit at the
    same address with the same version, and the old codes would be served again."""
    for module in model.modules():
        if isinstance(module, FP8Linear):
            module._cache_key = None
            module._cache = None


def set_fp8_enabled(model: nn.Module, enabled: bool) -> int:
    """Turn the FP8 path of every :class:`FP8Linear` in ``model`` on or off; returns how many."""
    count = 0
    for module in model.modules():
        if isinstance(module, FP8Linear):
            module.enabled = enabled
            count += 1
    return count
