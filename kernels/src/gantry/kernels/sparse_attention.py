"""Block-sparse attention (SALAD's sparse branch): 3D local windows plus top-k blocks.

Semantics (the torch reference defines them; the Triton kernels must match):

* ``q, k, v`` are [B, H, N, D]; tokens are cut into consecutive **blocks** of
  ``block_size`` tokens (the last block may be shorter: a ragged edge, never padded with
  real keys). Query block ``i`` attends to every key of the key blocks ``j`` with
  ``mask[b, h, i, j]`` true, with the usual softmax scaling ``1/sqrt(D)``; keys outside
  the selected blocks get zero weight. All-true masks are exactly dense attention.
* :func:`select_blocks` builds the mask: key blocks inside a 3D local window around the
  query block (video tokens in raster (frame, row, column) order) are always kept, and the
  rest of the budget ``ceil((1 - sparsity) * n_blocks)`` goes to the key blocks whose
  mean key scores highest against the query block's mean query (SLA's top-k rule).
  When the window alone exceeds the budget, the budget wins (highest-scoring window blocks).

The Triton forward is a flash-attention loop over each query block's selected key blocks
(online softmax, saving the log-sum-exp); the backward recomputes probabilities from it:
one kernel per query block for dQ, one per key block (over the query blocks that selected
it) for dK and dV, so no atomics are needed.
"""

from __future__ import annotations

import math
from typing import Any

import torch

from gantry.kernels._common import HAS_TRITON, Backend, cdiv, resolve_backend, tl, triton

__all__ = [
    "block_sparse_attention",
    "block_sparse_attention_ref",
    "dense_token_mask",
    "select_blocks",
    "window_block_mask",
]


def _check_qkv(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> None:
    if q.dim() != 4 or q.shape != k.shape or q.shape != v.shape:
        raise ValueError(
            f"q, k, v must share one [B, H, N, D] shape, got {tuple(q.shape)}, "
            f"{tuple(k.shape)}, {tuple(v.shape)}"
        )


def _check_mask(mask: torch.Tensor, q: torch.Tensor, block_size: int) -> None:
    b, h, n, _ = q.shape
    nb = cdiv(n, block_size)
    if mask.dtype != torch.bool or tuple(mask.shape) != (b, h, nb, nb):
        raise ValueError(
            f"mask must be bool [{b}, {h}, {nb}, {nb}] for N={n} and block_size={block_size}, "
            f"got {mask.dtype} {tuple(mask.shape)}"
        )
    if not bool(mask.any(dim=-1).all()):
        raise ValueError("every query block must select at least one key block")


# ---- block selection (shared by both backends) ----------------------------------------------


def window_block_mask(
    grid: tuple[int, int, int], block_size: int, window: tuple[int, int, int]
) -> torch.Tensor:
    """[n_blocks, n_blocks] bool: key blocks within a 3D window of each query block.

    ``grid`` is (frames, rows, columns) of the token raster; ``window`` the full extent in
    tokens along each axis. Two blocks are neighbours when, along every axis, the ranges of
    their tokens' coordinates come within ``window // 2`` of each other.
    """
    t, h, w = grid
    n = t * h * w
    idx = torch.arange(n)
    coords = torch.stack([idx // (h * w), (idx // w) % h, idx % w], dim=1)
    nb = cdiv(n, block_size)
    pad = nb * block_size - n
    lo = torch.cat([coords, coords[-1:].expand(pad, 3)]).view(nb, block_size, 3).amin(1)
    hi = torch.cat([coords, coords[-1:].expand(pad, 3)]).view(nb, block_size, 3).amax(1)
    reach = torch.tensor([max(x, 1) // 2 for x in window])
    # Interval distance per axis: 0 when they overlap.
    gap = torch.clamp(torch.maximum(lo[:, None] - hi[None], lo[None] - hi[:, None]), min=0)
    return (gap <= reach).all(dim=-1)


def _block_means(x: torch.Tensor, block_size: int) -> torch.Tensor:
    b, h, n, d = x.shape
    nb = cdiv(n, block_size)
    padded = torch.nn.functional.pad(x.float(), (0, 0, 0, nb * block_size - n))
    sums = padded.view(b, h, nb, block_size, d).sum(3)
    counts = torch.full((nb,), float(block_size), device=x.device)
    counts[-1] = n - (nb - 1) * block_size
    return sums / counts[:, None]


def select_blocks(
    q: torch.Tensor,
    k: torch.Tensor,
    *,
    block_size: int,
    sparsity: float,
    window: torch.Tensor | None = None,
) -> torch.Tensor:
    """The [B, H, nb, nb] block mask: the window first, then top-k by pooled scores."""
    _check_qkv(q, k, k)
    if not 0.0 <= sparsity < 1.0:
        raise ValueError(f"sparsity must be in [0, 1), got {sparsity}")
    b, h, n, _ = q.shape
    nb = cdiv(n, block_size)
    keep = min(nb, max(1, math.ceil((1.0 - sparsity) * nb - 1e-9)))
    if keep == nb:
        return torch.ones(b, h, nb, nb, dtype=torch.bool, device=q.device)
    scores = _block_means(q, block_size) @ _block_means(k, block_size).transpose(-1, -2)
    if window is not None:
        if tuple(window.shape) != (nb, nb):
            raise ValueError(f"window must be [{nb}, {nb}], got {tuple(window.shape)}")
        # Window blocks rank above every scored block, best-scoring first among themselves.
        bonus = window.to(q.device, torch.float32) * (scores.abs().amax() * 4 + 1)
        scores = scores + bonus
    top = scores.topk(keep, dim=-1).indices
    mask = torch.zeros(b, h, nb, nb, dtype=torch.bool, device=q.device)
    return mask.scatter_(-1, top, True)


def dense_token_mask(mask: torch.Tensor, n: int, block_size: int) -> torch.Tensor:
    """The block mask expanded to a [B, H, N, N] token mask."""
    full = mask.repeat_interleave(block_size, dim=-2).repeat_interleave(block_size, dim=-1)
    return full[..., :n, :n]


# ---- torch reference ------------------------------------------------------------------------


def block_sparse_attention_ref(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, mask: torch.Tensor, block_size: int
) -> torch.Tensor:
    """Masked softmax attention in float32 (float64 for float64 inputs); differentiable."""
    _check_qkv(q, k, v)
    _check_mask(mask, q, block_size)
    work = torch.float64 if q.dtype == torch.float64 else torch.float32
    scale = 1.0 / math.sqrt(q.shape[-1])
    scores = (q.to(work) @ k.to(work).transpose(-1, -2)) * scale
    scores = scores.masked_fill(~dense_token_mask(mask, q.shape[2], block_size), float("-inf"))
    return (scores.softmax(dim=-1) @ v.to(work)).to(q.dtype)


# ---- Triton kernels -------------------------------------------------------------------------

if HAS_TRITON:

    @triton.jit  # type: ignore[untyped-decorator]
    def _fwd_kernel(
        q_ptr: Any,
        k_ptr: Any,
        v_ptr: Any,
        o_ptr: Any,
        lse_ptr: Any,
        idx_ptr: Any,
        cnt_ptr: Any,
        n_tokens: Any,
        n_blocks: Any,
        scale: Any,
        BLOCK: tl.constexpr,
        HEAD_DIM: tl.constexpr,
    ) -> None:
        qb = tl.program_id(0)
        bh = tl.program_id(1)
        base = bh * n_tokens * HEAD_DIM
        offs_m = qb * BLOCK + tl.arange(0, BLOCK)
        offs_d = tl.arange(0, HEAD_DIM)
        row_ok = offs_m < n_tokens
        q = tl.load(
            q_ptr + base + offs_m[:, None] * HEAD_DIM + offs_d[None, :],
            mask=row_ok[:, None],
            other=0.0,
        )
        m_i = tl.full([BLOCK], float("-inf"), tl.float32)
        l_i = tl.zeros([BLOCK], tl.float32)
        acc = tl.zeros([BLOCK, HEAD_DIM], tl.float32)
        row = bh * n_blocks + qb
        count = tl.load(cnt_ptr + row)
        for j in range(0, count):
            kb = tl.load(idx_ptr + row * n_blocks + j)
            offs_n = kb * BLOCK + tl.arange(0, BLOCK)
            col_ok = offs_n < n_tokens
            kv_off = base + offs_n[:, None] * HEAD_DIM + offs_d[None, :]
            k = tl.load(k_ptr + kv_off, mask=col_ok[:, None], other=0.0)
            v = tl.load(v_ptr + kv_off, mask=col_ok[:, None], other=0.0)
            s = tl.dot(q, tl.trans(k)).to(tl.float32) * scale
            s = tl.where(col_ok[None, :], s, float("-inf"))
            m_new = tl.maximum(m_i, tl.max(s, 1))
            p = tl.exp(s - m_new[:, None])
            alpha = tl.exp(m_i - m_new)
            l_i = l_i * alpha + tl.sum(p, 1)
            acc = acc * alpha[:, None] + tl.dot(p.to(v.dtype), v).to(tl.float32)
            m_i = m_new
        out = acc / l_i[:, None]
        tl.store(
            o_ptr + base + offs_m[:, None] * HEAD_DIM + offs_d[None, :],
            out.to(o_ptr.dtype.element_ty),
            mask=row_ok[:, None],
        )
        tl.store(lse_ptr + bh * n_tokens + offs_m, m_i + tl.log(l_i), mask=row_ok)

    @triton.jit  # type: ignore[untyped-decorator]
    def _bwd_dq_kernel(
        q_ptr: Any,
        k_ptr: Any,
        v_ptr: Any,
        do_ptr: Any,
        lse_ptr: Any,
        delta_ptr: Any,
        dq_ptr: Any,
        idx_ptr: Any,
        cnt_ptr: Any,
        n_tokens: Any,
        n_blocks: Any,
        scale: Any,
        BLOCK: tl.constexpr,
        HEAD_DIM: tl.constexpr,
    ) -> None:
        qb = tl.program_id(0)
        bh = tl.program_id(1)
        base = bh * n_tokens * HEAD_DIM
        offs_m = qb * BLOCK + tl.arange(0, BLOCK)
        offs_d = tl.arange(0, HEAD_DIM)
        row_ok = offs_m < n_tokens
        q_off = base + offs_m[:, None] * HEAD_DIM + offs_d[None, :]
        q = tl.load(q_ptr + q_off, mask=row_ok[:, None], other=0.0)
        do = tl.load(do_ptr + q_off, mask=row_ok[:, None], other=0.0)
        lse = tl.load(lse_ptr + bh * n_tokens + offs_m, mask=row_ok, other=0.0)
        delta = tl.load(delta_ptr + bh * n_tokens + offs_m, mask=row_ok, other=0.0)
        dq = tl.zeros([BLOCK, HEAD_DIM], tl.float32)
        row = bh * n_blocks + qb
        count = tl.load(cnt_ptr + row)
        for j in range(0, count):
            kb = tl.load(idx_ptr + row * n_blocks + j)
            offs_n = kb * BLOCK + tl.arange(0, BLOCK)
            col_ok = offs_n < n_tokens
            kv_off = base + offs_n[:, None] * HEAD_DIM + offs_d[None, :]
            k = tl.load(k_ptr + kv_off, mask=col_ok[:, None], other=0.0)
            v = tl.load(v_ptr + kv_off, mask=col_ok[:, None], other=0.0)
            s = tl.dot(q, tl.trans(k)).to(tl.float32) * scale
            p = tl.where(col_ok[None, :], tl.exp(s - lse[:, None]), 0.0)
            dp = tl.dot(do, tl.trans(v)).to(tl.float32)
            ds = p * (dp - delta[:, None])
            dq += tl.dot(ds.to(k.dtype), k).to(tl.float32) * scale
        tl.store(dq_ptr + q_off, dq.to(dq_ptr.dtype.element_ty), mask=row_ok[:, None])

    @triton.jit  # type: ignore[untyped-decorator]
    def _bwd_dkdv_kernel(
        q_ptr: Any,
        k_ptr: Any,
        v_ptr: Any,
        do_ptr: Any,
        lse_ptr: Any,
        delta_ptr: Any,
        dk_ptr: Any,
        dv_ptr: Any,
        idx_ptr: Any,
        cnt_ptr: Any,
        n_tokens: Any,
        n_blocks: Any,
        scale: Any,
        BLOCK: tl.constexpr,
        HEAD_DIM: tl.constexpr,
    ) -> None:
        kb = tl.program_id(0)
        bh = tl.program_id(1)
        base = bh * n_tokens * HEAD_DIM
        offs_n = kb * BLOCK + tl.arange(0, BLOCK)
        offs_d = tl.arange(0, HEAD_DIM)
        col_ok = offs_n < n_tokens
        kv_off = base + offs_n[:, None] * HEAD_DIM + offs_d[None, :]
        k = tl.load(k_ptr + kv_off, mask=col_ok[:, None], other=0.0)
        v = tl.load(v_ptr + kv_off, mask=col_ok[:, None], other=0.0)
        dk = tl.zeros([BLOCK, HEAD_DIM], tl.float32)
        dv = tl.zeros([BLOCK, HEAD_DIM], tl.float32)
        row = bh * n_blocks + kb
        count = tl.load(cnt_ptr + row)
        for i in range(0, count):
            qb = tl.load(idx_ptr + row * n_blocks + i)
            offs_m = qb * BLOCK + tl.arange(0, BLOCK)
            row_ok = offs_m < n_tokens
            q_off = base + offs_m[:, None] * HEAD_DIM + offs_d[None, :]
            q = tl.load(q_ptr + q_off, mask=row_ok[:, None], other=0.0)
            do = tl.load(do_ptr + q_off, mask=row_ok[:, None], other=0.0)
            lse = tl.load(lse_ptr + bh * n_tokens + offs_m, mask=row_ok, other=0.0)
            delta = tl.load(delta_ptr + bh * n_tokens + offs_m, mask=row_ok, other=0.0)
            s = tl.dot(q, tl.trans(k)).to(tl.float32) * scale
            p = tl.where(row_ok[:, None], tl.exp(s - lse[:, None]), 0.0)
            dv += tl.dot(tl.trans(p.to(do.dtype)), do).to(tl.float32)
            dp = tl.dot(do, tl.trans(v)).to(tl.float32)
            ds = p * (dp - delta[:, None])
            dk += tl.dot(tl.trans(ds.to(q.dtype)), q).to(tl.float32) * scale
        tl.store(dk_ptr + kv_off, dk.to(dk_ptr.dtype.element_ty), mask=col_ok[:, None])
        tl.store(dv_ptr + kv_off, dv.to(dv_ptr.dtype.element_ty), mask=col_ok[:, None])


def _index_lists(mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Row-wise lists of selected column ids (padded) and their counts, as int32."""
    b, h, nb, _ = mask.shape
    flat = mask.reshape(b * h, nb, nb)
    # A stable sort puts selected columns first, in increasing order.
    order = torch.sort((~flat).to(torch.int8), dim=-1, stable=True).indices
    return order.to(torch.int32).contiguous(), flat.sum(-1).to(torch.int32).contiguous()


class _BlockSparseAttention(torch.autograd.Function):
    @staticmethod
    def forward(
        ctx: Any,
        q: torch.Tensor,
        k: torch.Tensor,
        v: torch.Tensor,
        mask: torch.Tensor,
        block_size: int,
    ) -> torch.Tensor:
        b, h, n, d = q.shape
        nb = cdiv(n, block_size)
        q3, k3, v3 = (x.reshape(b * h, n, d).contiguous() for x in (q, k, v))
        out = torch.empty_like(q3)
        lse = torch.empty(b * h, n, dtype=torch.float32, device=q.device)
        idx, cnt = _index_lists(mask)
        scale = 1.0 / math.sqrt(d)
        _fwd_kernel[(nb, b * h)](
            q3, k3, v3, out, lse, idx, cnt, n, nb, scale, BLOCK=block_size, HEAD_DIM=d
        )
        ctx.save_for_backward(q3, k3, v3, out, lse, mask)
        ctx.block_size = block_size
        return out.view(b, h, n, d)

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor | None, ...]:
        q3, k3, v3, out, lse, mask = ctx.saved_tensors
        block_size: int = ctx.block_size
        b, h, nb, _ = mask.shape
        bh, n, d = q3.shape
        do = grad.reshape(bh, n, d).contiguous()
        delta = (do.float() * out.float()).sum(-1).contiguous()
        dq, dk, dv = torch.empty_like(q3), torch.empty_like(k3), torch.empty_like(v3)
        scale = 1.0 / math.sqrt(d)
        idx, cnt = _index_lists(mask)
        idx_t, cnt_t = _index_lists(mask.transpose(-1, -2))
        _bwd_dq_kernel[(nb, bh)](
            q3, k3, v3, do, lse, delta, dq, idx, cnt, n, nb, scale, BLOCK=block_size, HEAD_DIM=d
        )
        _bwd_dkdv_kernel[(nb, bh)](
            q3,
            k3,
            v3,
            do,
            lse,
            delta,
            dk,
            dv,
            idx_t,
            cnt_t,
            n,
            nb,
            scale,
            BLOCK=block_size,
            HEAD_DIM=d,
        )
        shape = (b, h, n, d)
        return dq.view(shape), dk.view(shape), dv.view(shape), None, None


def block_sparse_attention(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    mask: torch.Tensor,
    block_size: int,
    *,
    backend: Backend = "auto",
) -> torch.Tensor:
    """Attention restricted to the selected key blocks: Triton on CUDA, the reference elsewhere.

    The Triton path needs ``block_size`` and the head dimension to be powers of two >= 16.
    """
    _check_qkv(q, k, v)
    _check_mask(mask, q, block_size)
    if resolve_backend(backend, q, k, v) == "torch":
        return block_sparse_attention_ref(q, k, v, mask, block_size)
    d = q.shape[-1]
    for name, value in (("block_size", block_size), ("head dim", d)):
        if value < 16 or value & (value - 1):
            raise ValueError(f"the Triton kernel needs {name} a power of two >= 16, got {value}")
    out: torch.Tensor = _BlockSparseAttention.apply(q, k, v, mask, block_size)  # type: ignore[no-untyped-call]
    return out
