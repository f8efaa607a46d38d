"""Adaptive token merging (Memory-V2V): low-importance tokens merged, not dropped.

Semantics (the torch reference defines them):

* ``x`` [B, M, C] tokens, ``importance`` [B, M] (e.g. attention each token received) and
  ``weight`` [B, M] > 0 (a learned per-token merge weight). The ``keep`` most important
  tokens stay (in their original order); every other token goes to the kept token it is
  most similar to (cosine similarity).
* Kept slot ``i`` becomes the weighted mean ``(x_i + Σ_j w_j x_j) / (1 + Σ_j w_j)`` over
  the tokens ``j`` merged into it: a kept token has weight 1, so with all merge weights
  near zero this is plain dropping, and larger learned weights blend more context in.

:func:`plan_merge` (torch, both backends) picks the kept tokens and destinations;
:func:`merge_tokens` does the weighted scatter-mean: Triton on CUDA (atomic adds into
the kept slots), the reference elsewhere. Its backward goes through the reference.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from gantry.kernels._common import HAS_TRITON, Backend, cdiv, resolve_backend, tl, triton

__all__ = ["MergePlan", "merge_tokens", "merge_tokens_ref", "plan_merge"]

TOKEN_BLOCK = 16


@dataclass(frozen=True)
class MergePlan:
    """Where each token goes: ``kept`` [B, keep] source ids, ``dest`` [B, M] slot ids."""

    kept: torch.Tensor
    dest: torch.Tensor
    is_kept: torch.Tensor


def plan_merge(x: torch.Tensor, importance: torch.Tensor, keep: int) -> MergePlan:
    """Keep the ``keep`` most important tokens; send the rest to their most similar kept one."""
    b, m, _ = x.shape
    if importance.shape != (b, m):
        raise ValueError(f"importance must be [{b}, {m}], got {tuple(importance.shape)}")
    if not 1 <= keep <= m:
        raise ValueError(f"keep must be in [1, {m}], got {keep}")
    kept = importance.topk(keep, dim=1).indices.sort(dim=1).values
    unit = torch.nn.functional.normalize(x.float(), dim=-1)
    sim = unit @ torch.gather(unit, 1, kept[..., None].expand(-1, -1, x.shape[-1])).transpose(1, 2)
    dest = sim.argmax(dim=-1)
    is_kept = torch.zeros(b, m, dtype=torch.bool, device=x.device)
    is_kept.scatter_(1, kept, True)
    slots = torch.arange(keep, device=x.device).expand(b, keep)
    dest = dest.scatter(1, kept, slots)  # a kept token is its own destination
    return MergePlan(kept, dest, is_kept)


def _check(x: torch.Tensor, weight: torch.Tensor, plan: MergePlan) -> None:
    if x.dim() != 3 or weight.shape != x.shape[:2] or plan.dest.shape != x.shape[:2]:
        raise ValueError("x must be [B, M, C] with weight and plan.dest [B, M]")


def merge_tokens_ref(x: torch.Tensor, weight: torch.Tensor, plan: MergePlan) -> torch.Tensor:
    """[B, keep, C] weighted means (float32 work; differentiable in x and weight)."""
    _check(x, weight, plan)
    b, _, c = x.shape
    keep = plan.kept.shape[1]
    w = torch.where(plan.is_kept, torch.ones_like(weight.float()), weight.float())
    num = torch.zeros(b, keep, c, device=x.device).scatter_add(
        1, plan.dest[..., None].expand(-1, -1, c), x.float() * w[..., None]
    )
    den = torch.zeros(b, keep, device=x.device).scatter_add(1, plan.dest, w)
    return (num / den[..., None]).to(x.dtype)


if HAS_TRITON:

    @triton.jit  # type: ignore[untyped-decorator]
    def _scatter_kernel(
        x_ptr: Any,
        w_ptr: Any,
        dest_ptr: Any,
        num_ptr: Any,
        den_ptr: Any,
        n_tokens: Any,
        n_slots: Any,
        BLOCK: tl.constexpr,
        CHANNELS: tl.constexpr,
    ) -> None:
        tb = tl.program_id(0)
        b = tl.program_id(1)
        offs = tb * BLOCK + tl.arange(0, BLOCK)
        ok = offs < n_tokens
        offs_c = tl.arange(0, CHANNELS)
        x = tl.load(
            x_ptr + (b * n_tokens + offs[:, None]) * CHANNELS + offs_c[None, :],
            mask=ok[:, None],
            other=0.0,
        ).to(tl.float32)
        w = tl.load(w_ptr + b * n_tokens + offs, mask=ok, other=0.0)
        dest = tl.load(dest_ptr + b * n_tokens + offs, mask=ok, other=0)
        slot = (b * n_slots + dest[:, None]) * CHANNELS + offs_c[None, :]
        tl.atomic_add(num_ptr + slot, x * w[:, None], mask=ok[:, None])
        tl.atomic_add(den_ptr + b * n_slots + dest, w, mask=ok)


class _MergeTokens(torch.autograd.Function):
    @staticmethod
    def forward(ctx: Any, x: torch.Tensor, weight: torch.Tensor, plan: MergePlan) -> torch.Tensor:
        ctx.save_for_backward(x, weight)
        ctx.plan = plan
        b, m, c = x.shape
        keep = plan.kept.shape[1]
        w = torch.where(plan.is_kept, torch.ones_like(weight.float()), weight.float())
        num = torch.zeros(b, keep, c, dtype=torch.float32, device=x.device)
        den = torch.zeros(b, keep, dtype=torch.float32, device=x.device)
        dest = plan.dest.to(torch.int32).contiguous()
        _scatter_kernel[(cdiv(m, TOKEN_BLOCK), b)](
            x.contiguous(), w.contiguous(), dest, num, den, m, keep, BLOCK=TOKEN_BLOCK, CHANNELS=c
        )
        return (num / den[..., None]).to(x.dtype)

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor | None, ...]:
        x, weight = ctx.saved_tensors
        with torch.enable_grad():
            xs, ws = x.detach().requires_grad_(True), weight.detach().requires_grad_(True)
            out = merge_tokens_ref(xs, ws, ctx.plan)
            dx, dw = torch.autograd.grad(out, (xs, ws), grad)
        return dx, dw, None


def merge_tokens(
    x: torch.Tensor, weight: torch.Tensor, plan: MergePlan, *, backend: Backend = "auto"
) -> torch.Tensor:
    """Weighted scatter-mean of tokens into their kept slots (channels a power of two)."""
    _check(x, weight, plan)
    if resolve_backend(backend, x, weight) == "torch":
        return merge_tokens_ref(x, weight, plan)
    c = x.shape[-1]
    if c & (c - 1):
        raise ValueError(f"the Triton kernel needs channels a power of two, got {c}")
    out: torch.Tensor = _MergeTokens.apply(x, weight, plan)  # type: ignore[no-untyped-call]
    return out
