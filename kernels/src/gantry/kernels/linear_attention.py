"""Linear attention (SALAD's global branch): ``φ(Q)(φ(K)ᵀV) / (φ(Q)·Σφ(K))``.

Semantics (the torch reference defines them): ``q, k, v`` are [B, H, N, D]; the feature map
``φ`` is a softmax over the head dimension (SLA's choice; ``"elu"`` gives elu+1), so
features are positive and every denominator is > 0. Attention is non-causal: each query
sees the sums over all N keys, which costs O(N·D²) instead of O(N²·D).

The Triton forward runs in two passes per (batch, head): one program accumulates the
[D, D] state ``φ(K)ᵀV`` and the [D] normaliser ``Σφ(K)`` over token blocks, then one
program per query block applies them. The backward goes through the reference (its cost
is linear in N as well), recomputed from the saved inputs.
"""

from __future__ import annotations

from typing import Any, Literal

import torch

from gantry.kernels._common import HAS_TRITON, Backend, cdiv, resolve_backend, tl, triton

__all__ = ["FeatureMap", "feature_map", "linear_attention", "linear_attention_ref"]

FeatureMap = Literal["softmax", "elu"]
TOKEN_BLOCK = 32


def feature_map(x: torch.Tensor, kind: FeatureMap = "softmax") -> torch.Tensor:
    """φ(x), computed in float32 (positive entries)."""
    if kind == "softmax":
        return x.float().softmax(dim=-1)
    if kind == "elu":
        return torch.nn.functional.elu(x.float()) + 1.0
    raise ValueError(f"unknown feature map {kind!r}: expected 'softmax' or 'elu'")


def _check(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> None:
    if q.dim() != 4 or q.shape != k.shape or q.shape != v.shape:
        raise ValueError(
            f"q, k, v must share one [B, H, N, D] shape, got {tuple(q.shape)}, "
            f"{tuple(k.shape)}, {tuple(v.shape)}"
        )


def _normalized(fq: torch.Tensor, fk: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    state = fk.transpose(-1, -2) @ v  # [B, H, D, D]
    norm = fk.sum(dim=2)  # [B, H, D]
    return (fq @ state) / (fq * norm[:, :, None, :]).sum(-1, keepdim=True)


def linear_attention_ref(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, kind: FeatureMap = "softmax"
) -> torch.Tensor:
    """Reference in float32 (float64 for float64 inputs); differentiable."""
    _check(q, k, v)
    work = torch.float64 if q.dtype == torch.float64 else torch.float32
    fq, fk = feature_map(q, kind).to(work), feature_map(k, kind).to(work)
    return _normalized(fq, fk, v.to(work)).to(q.dtype)


if HAS_TRITON:

    @triton.jit  # type: ignore[untyped-decorator]
    def _state_kernel(
        fk_ptr: Any,
        v_ptr: Any,
        state_ptr: Any,
        norm_ptr: Any,
        n_tokens: Any,
        BLOCK: tl.constexpr,
        HEAD_DIM: tl.constexpr,
    ) -> None:
        bh = tl.program_id(0)
        base = bh * n_tokens * HEAD_DIM
        offs_d = tl.arange(0, HEAD_DIM)
        state = tl.zeros([HEAD_DIM, HEAD_DIM], tl.float32)
        norm = tl.zeros([HEAD_DIM], tl.float32)
        for start in range(0, n_tokens, BLOCK):
            offs_n = start + tl.arange(0, BLOCK)
            ok = offs_n < n_tokens
            off = base + offs_n[:, None] * HEAD_DIM + offs_d[None, :]
            fk = tl.load(fk_ptr + off, mask=ok[:, None], other=0.0)
            v = tl.load(v_ptr + off, mask=ok[:, None], other=0.0)
            state += tl.dot(tl.trans(fk), v.to(fk.dtype))
            norm += tl.sum(fk, 0)
        out = bh * HEAD_DIM * HEAD_DIM + offs_d[:, None] * HEAD_DIM + offs_d[None, :]
        tl.store(state_ptr + out, state)
        tl.store(norm_ptr + bh * HEAD_DIM + offs_d, norm)

    @triton.jit  # type: ignore[untyped-decorator]
    def _apply_kernel(
        fq_ptr: Any,
        state_ptr: Any,
        norm_ptr: Any,
        o_ptr: Any,
        n_tokens: Any,
        BLOCK: tl.constexpr,
        HEAD_DIM: tl.constexpr,
    ) -> None:
        qb = tl.program_id(0)
        bh = tl.program_id(1)
        base = bh * n_tokens * HEAD_DIM
        offs_m = qb * BLOCK + tl.arange(0, BLOCK)
        offs_d = tl.arange(0, HEAD_DIM)
        ok = offs_m < n_tokens
        off = base + offs_m[:, None] * HEAD_DIM + offs_d[None, :]
        fq = tl.load(fq_ptr + off, mask=ok[:, None], other=1.0)
        state = tl.load(
            state_ptr + bh * HEAD_DIM * HEAD_DIM + offs_d[:, None] * HEAD_DIM + offs_d[None, :]
        )
        norm = tl.load(norm_ptr + bh * HEAD_DIM + offs_d)
        num = tl.dot(fq, state)
        den = tl.sum(fq * norm[None, :], 1)
        tl.store(o_ptr + off, (num / den[:, None]).to(o_ptr.dtype.element_ty), mask=ok[:, None])


def _triton_forward(fq: torch.Tensor, fk: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    b, h, n, d = fq.shape
    fq3, fk3 = fq.reshape(b * h, n, d).contiguous(), fk.reshape(b * h, n, d).contiguous()
    v3 = v.reshape(b * h, n, d).float().contiguous()
    state = torch.empty(b * h, d, d, dtype=torch.float32, device=fq.device)
    norm = torch.empty(b * h, d, dtype=torch.float32, device=fq.device)
    out = torch.empty(b * h, n, d, dtype=torch.float32, device=fq.device)
    _state_kernel[(b * h,)](fk3, v3, state, norm, n, BLOCK=TOKEN_BLOCK, HEAD_DIM=d)
    _apply_kernel[(cdiv(n, TOKEN_BLOCK), b * h)](
        fq3, state, norm, out, n, BLOCK=TOKEN_BLOCK, HEAD_DIM=d
    )
    return out.view(b, h, n, d)


class _LinearAttention(torch.autograd.Function):
    @staticmethod
    def forward(
        ctx: Any, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, kind: FeatureMap
    ) -> torch.Tensor:
        ctx.save_for_backward(q, k, v)
        ctx.kind = kind
        return _triton_forward(feature_map(q, kind), feature_map(k, kind), v).to(q.dtype)

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor | None, ...]:
        q, k, v = ctx.saved_tensors
        with torch.enable_grad():
            qs, ks, vs = (x.detach().requires_grad_(True) for x in (q, k, v))
            out = linear_attention_ref(qs, ks, vs, ctx.kind)
            dq, dk, dv = torch.autograd.grad(out, (qs, ks, vs), grad)
        return dq, dk, dv, None


def linear_attention(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    kind: FeatureMap = "softmax",
    *,
    backend: Backend = "auto",
) -> torch.Tensor:
    """Linear attention: Triton on CUDA, the reference elsewhere (head dim a power of two)."""
    _check(q, k, v)
    if resolve_backend(backend, q, k, v) == "torch":
        return linear_attention_ref(q, k, v, kind)
    d = q.shape[-1]
    if d < 16 or d & (d - 1):
        raise ValueError(f"the Triton kernel needs the head dim a power of two >= 16, got {d}")
    out: torch.Tensor = _LinearAttention.apply(q, k, v, kind)  # type: ignore[no-untyped-call]
    return out
