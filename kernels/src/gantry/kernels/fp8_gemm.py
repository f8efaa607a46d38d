"""FP8 GEMM with block/group scales: ``C = dequant(A) · dequant(B)ᵀ``.

Operands are :class:`~gantry.kernels.fp8_quant.Quantized` tensors, both K-major:
``A`` [M, K] and ``B`` [N, K], each with scales per 128 elements of K and per 1 or 128
rows (1×128 groups for activations/gradients, 128×128 blocks for weights). The three GEMMs
of a linear layer map onto it:

* forward  ``Y  = X · Wᵀ``:   A = X (groups),        B = W  (blocks)
* dgrad    ``dX = dY · W``:   A = dY (groups),       B = Wᵀ (blocks, transposed copy)
* wgrad    ``dW = dYᵀ · X``:  A = dYᵀ (groups on M), B = Xᵀ (groups on M)

Semantics (reference): for each 128-wide K slice, the dot product of the FP8 codes, scaled
by ``sA[m] · sB[n]``, summed over the slices in K order. The reference computes each
slice's code dot product in float64, where it is exact for E4M3 operands (products of
4-bit significands, 128 of them, need < 53 bits), so no summation order (no BLAS blocking,
no M) can change it; the slice sums and scales are then applied elementwise in a fixed
order. Its result for a row therefore depends only on that row's codes and scales: it is
**batch-invariant by construction**. The Triton kernel computes the same sum with the FP8
tensor-core product (float32 accumulation) per slice; it agrees with the reference up to
float32 rounding, and is batch-invariant because its tile configuration depends only on N
and K (never on M) and each output element is reduced by one program in K order (no
split-K).

Backends and selection (``backend=``):

* ``auto`` (the default; what :class:`~gantry.kernels.fp8_linear.FP8Linear` uses): the
  Triton kernel on CUDA, the reference elsewhere. The choice depends on the device only:
  never on M, on alignment, on grad mode or on an earlier failure.
* ``triton``: the Triton kernel (CUDA, or CPU under ``TRITON_INTERPRET=1``); its tile
  configuration comes from :func:`gemm_config` (N, K only).
* ``torch``: the reference, any device.
* ``scaled_mm``: ``torch.nn.functional.scaled_mm`` with cuBLASLt's BlockWise1x128/128x128
  recipes (Hopper, CUDA ≥ 12.9), with A's rows padded to a multiple of 128 so cuBLASLt
  never sees a ragged M. Opt-in only: cuBLASLt's heuristics may still pick a different
  algorithm for a different M, so it is not guaranteed batch-invariant (benchmarks/
  gpu_checks.py measures it); ``auto`` never picks it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import torch

from gantry.kernels._common import (
    BLOCK,
    HAS_TRITON,
    backend_for_device,
    cdiv,
    interpreted,
    tl,
    triton,
)
from gantry.kernels.fp8_quant import Quantized

__all__ = ["GemmBackend", "GemmConfig", "fp8_gemm", "fp8_gemm_ref", "gemm_config", "select_backend"]

GemmBackend = Literal["auto", "triton", "triton_persistent", "torch", "scaled_mm"]


def _check(a: Quantized, b: Quantized, out_dtype: torch.dtype) -> None:
    if a.data.dim() != 2 or b.data.dim() != 2:
        raise ValueError("fp8_gemm operands must be 2-D")
    if a.shape[1] != b.shape[1]:
        raise ValueError(f"inner dimensions differ: A is {a.shape}, B is {b.shape} (B is [N, K])")
    for name, q in (("A", a), ("B", b)):
        if q.data.element_size() != 1 or not q.data.is_floating_point():
            raise ValueError(f"{name} must hold FP8 codes, got {q.data.dtype}")
        rows, cols = q.shape
        want = (cdiv(rows, q.block_rows), cdiv(cols, BLOCK))
        if tuple(q.scale.shape) != want or q.scale.dtype != torch.float32:
            raise ValueError(
                f"{name} scale must be float32 {want} for block_rows={q.block_rows}, "
                f"got {q.scale.dtype} {tuple(q.scale.shape)}"
            )
    if out_dtype not in (torch.float32, torch.bfloat16, torch.float16):
        raise ValueError(f"out_dtype must be float32, bfloat16 or float16, got {out_dtype}")


def fp8_gemm_ref(
    a: Quantized, b: Quantized, out_dtype: torch.dtype = torch.bfloat16
) -> torch.Tensor:
    """Reference: per 128-wide K slice, the exact float64 code dot product times the scales."""
    _check(a, b, out_dtype)
    (m, k), n = a.shape, b.shape[0]
    f64 = torch.float64
    qa, qb = a.data.to(f64), b.data.to(f64)
    sa = a.scale.to(f64).repeat_interleave(a.block_rows, 0)[:m]
    sb = b.scale.to(f64).repeat_interleave(b.block_rows, 0)[:n]
    out = torch.zeros(m, n, dtype=f64, device=a.data.device)
    for kb in range(cdiv(k, BLOCK)):
        ks = slice(kb * BLOCK, (kb + 1) * BLOCK)
        out += (qa[:, ks] @ qb[:, ks].t()) * sa[:, kb, None] * sb[None, :, kb]
    return out.to(out_dtype)


if HAS_TRITON:

    @triton.jit  # type: ignore[untyped-decorator]
    def _ordered_dot(
        a_ptr: tl.tensor,
        b_ptr: tl.tensor,
        rm: tl.tensor,
        rn: tl.tensor,
        m_ok: tl.tensor,
        n_ok: tl.tensor,
        k0: tl.tensor,
        K: tl.tensor,
        stride_am: tl.tensor,
        stride_ak: tl.tensor,
        stride_bn: tl.tensor,
        stride_bk: tl.tensor,
        BLOCK_M: tl.constexpr,
        BLOCK_N: tl.constexpr,
        BLOCK_K: tl.constexpr,
    ) -> tl.tensor:
        """One K slice's code dot product for the interpreter only: there tl.dot is numpy's
        float16->float32 matmul, whose rounding depends on the row's position in the tile
        (SIMD lanes); products summed along K in 16-wide chunks round every row alike."""
        part = tl.zeros((BLOCK_M, BLOCK_N), dtype=tl.float32)
        for kk in range(0, BLOCK_K, 16):
            ks = k0 + kk + tl.arange(0, 16)
            ks_ok = ks < K
            a16 = tl.load(
                a_ptr + rm[:, None] * stride_am + ks[None, :] * stride_ak,
                mask=m_ok[:, None] & ks_ok[None, :],
                other=0.0,
            ).to(tl.float32)
            b16 = tl.load(
                b_ptr + ks[:, None] * stride_bk + rn[None, :] * stride_bn,
                mask=ks_ok[:, None] & n_ok[None, :],
                other=0.0,
            ).to(tl.float32)
            part += tl.sum(a16[:, :, None] * b16[None, :, :], axis=1)
        return part

    @triton.jit  # type: ignore[untyped-decorator]
    def _fp8_gemm_kernel(
        a_ptr: tl.tensor,
        b_ptr: tl.tensor,
        c_ptr: tl.tensor,
        sa_ptr: tl.tensor,
        sb_ptr: tl.tensor,
        M: tl.tensor,
        N: tl.tensor,
        K: tl.tensor,
        stride_am: tl.tensor,
        stride_ak: tl.tensor,
        stride_bn: tl.tensor,
        stride_bk: tl.tensor,
        stride_cm: tl.tensor,
        stride_cn: tl.tensor,
        stride_sam: tl.tensor,
        stride_sbn: tl.tensor,
        A_ROWS: tl.constexpr,
        B_ROWS: tl.constexpr,
        BLOCK_M: tl.constexpr,
        BLOCK_N: tl.constexpr,
        BLOCK_K: tl.constexpr,
        GROUP_M: tl.constexpr,
        ORDERED_DOT: tl.constexpr,
    ) -> None:
        # Grouped launch order: GROUP_M row tiles share each column tile while it is in L2.
        pid = tl.program_id(0)
        n_m = tl.cdiv(M, BLOCK_M)
        n_n = tl.cdiv(N, BLOCK_N)
        per_group = GROUP_M * n_n
        first_m = (pid // per_group) * GROUP_M
        group_size = tl.minimum(n_m - first_m, GROUP_M)
        pid_m = first_m + (pid % per_group) % group_size
        pid_n = (pid % per_group) // group_size

        rm = pid_m * BLOCK_M + tl.arange(0, BLOCK_M)
        rn = pid_n * BLOCK_N + tl.arange(0, BLOCK_N)
        rk = tl.arange(0, BLOCK_K)
        m_ok = rm < M
        n_ok = rn < N
        sa_rows = sa_ptr + (rm // A_ROWS) * stride_sam
        sb_rows = sb_ptr + (rn // B_ROWS) * stride_sbn
        acc = tl.zeros((BLOCK_M, BLOCK_N), dtype=tl.float32)
        for kb in range(0, tl.cdiv(K, BLOCK_K)):
            k = kb * BLOCK_K + rk
            k_ok = k < K
            a = tl.load(
                a_ptr + rm[:, None] * stride_am + k[None, :] * stride_ak,
                mask=m_ok[:, None] & k_ok[None, :],
                other=0.0,
            )
            b = tl.load(
                b_ptr + k[:, None] * stride_bk + rn[None, :] * stride_bn,
                mask=k_ok[:, None] & n_ok[None, :],
                other=0.0,
            )
            sa = tl.load(sa_rows + kb, mask=m_ok, other=0.0)
            sb = tl.load(sb_rows + kb, mask=n_ok, other=0.0)
            if ORDERED_DOT:
                part = _ordered_dot(
                    a_ptr, b_ptr, rm, rn, m_ok, n_ok, kb * BLOCK_K, K,
                    stride_am, stride_ak, stride_bn, stride_bk, BLOCK_M, BLOCK_N, BLOCK_K,
                )  # fmt: skip
            else:
                part = tl.dot(a, b)
            acc += part * sa[:, None] * sb[None, :]
        tl.store(
            c_ptr + rm[:, None] * stride_cm + rn[None, :] * stride_cn,
            acc.to(c_ptr.dtype.element_ty),
            mask=m_ok[:, None] & n_ok[None, :],
        )

    @triton.jit  # type: ignore[untyped-decorator]
    def _fp8_gemm_persistent_kernel(
        a_desc: tl.tensor,
        b_desc: tl.tensor,
        a_ptr: tl.tensor,
        b_ptr: tl.tensor,
        c_ptr: tl.tensor,
        sa_ptr: tl.tensor,
        sb_ptr: tl.tensor,
        M: tl.tensor,
        N: tl.tensor,
        K: tl.tensor,
        stride_am: tl.tensor,
        stride_bn: tl.tensor,
        stride_cm: tl.tensor,
        stride_cn: tl.tensor,
        stride_sam: tl.tensor,
        stride_sbn: tl.tensor,
        A_ROWS: tl.constexpr,
        B_ROWS: tl.constexpr,
        BLOCK_M: tl.constexpr,
        BLOCK_N: tl.constexpr,
        BLOCK_K: tl.constexpr,
        GROUP_M: tl.constexpr,
        NUM_PROGRAMS: tl.constexpr,
        ORDERED_DOT: tl.constexpr,
    ) -> None:
        # Persistent: NUM_PROGRAMS programs (one per SM) walk the output tiles in grouped
        # order; operands arrive through TMA descriptors (zero-filled past the edges). Each
        # tile is still reduced by one program in K order, so rows do not depend on M.
        n_m = tl.cdiv(M, BLOCK_M)
        n_n = tl.cdiv(N, BLOCK_N)
        k_tiles = tl.cdiv(K, BLOCK_K)
        per_group = GROUP_M * n_n
        for tile in range(tl.program_id(0), n_m * n_n, NUM_PROGRAMS):
            first_m = (tile // per_group) * GROUP_M
            group_size = tl.minimum(n_m - first_m, GROUP_M)
            pid_m = first_m + (tile % per_group) % group_size
            pid_n = (tile % per_group) // group_size
            rm = pid_m * BLOCK_M + tl.arange(0, BLOCK_M)
            rn = pid_n * BLOCK_N + tl.arange(0, BLOCK_N)
            m_ok = rm < M
            n_ok = rn < N
            sa_rows = sa_ptr + (rm // A_ROWS) * stride_sam
            sb_rows = sb_ptr + (rn // B_ROWS) * stride_sbn
            acc = tl.zeros((BLOCK_M, BLOCK_N), dtype=tl.float32)
            for kb in range(0, k_tiles):
                sa = tl.load(sa_rows + kb, mask=m_ok, other=0.0)
                sb = tl.load(sb_rows + kb, mask=n_ok, other=0.0)
                if ORDERED_DOT:
                    part = _ordered_dot(
                        a_ptr, b_ptr, rm, rn, m_ok, n_ok, kb * BLOCK_K, K,
                        stride_am, 1, stride_bn, 1, BLOCK_M, BLOCK_N, BLOCK_K,
                    )  # fmt: skip
                else:
                    a = a_desc.load([pid_m * BLOCK_M, kb * BLOCK_K])
                    b = b_desc.load([pid_n * BLOCK_N, kb * BLOCK_K])
                    part = tl.dot(a, tl.trans(b))
                acc += part * sa[:, None] * sb[None, :]
            tl.store(
                c_ptr + rm[:, None] * stride_cm + rn[None, :] * stride_cn,
                acc.to(c_ptr.dtype.element_ty),
                mask=m_ok[:, None] & n_ok[None, :],
            )


@dataclass(frozen=True, slots=True)
class GemmConfig:
    """The Triton kernel's launch configuration; a function of N and K only."""

    block_m: int
    block_n: int
    num_warps: int
    num_stages: int
    group_m: int = 8


def gemm_config(n: int, k: int) -> GemmConfig:
    """Tile configuration for an [M, K] x [N, K] GEMM: one fixed class per (N, K), no M.

    Keeping M out of the choice is what makes a row's result independent of the batch it
    is computed in (decode with M = 1 and the trainer's padded M = 8192 run the same tile
    program over the same K slices). Small N gets narrower tiles so tiny models still
    launch more than one program per row block.
    """
    if n < 0 or k < 0:
        raise ValueError(f"bad GEMM shape N={n}, K={k}")
    if n <= 64:
        return GemmConfig(block_m=128, block_n=64, num_warps=4, num_stages=3)
    return GemmConfig(block_m=128, block_n=128, num_warps=8, num_stages=3)


def _gemm_triton(a: Quantized, b: Quantized, out_dtype: torch.dtype) -> torch.Tensor:
    m, k = a.shape
    n = b.shape[0]
    c = torch.empty(m, n, dtype=out_dtype, device=a.data.device)
    if m == 0 or n == 0:
        return c
    sa = a.scale.contiguous()
    sb = b.scale.contiguous()
    cfg = gemm_config(n, k)
    grid = (cdiv(m, cfg.block_m) * cdiv(n, cfg.block_n),)
    _fp8_gemm_kernel[grid](
        a.data,
        b.data,
        c,
        sa,
        sb,
        m,
        n,
        k,
        a.data.stride(0),
        a.data.stride(1),
        b.data.stride(0),
        b.data.stride(1),
        c.stride(0),
        c.stride(1),
        sa.stride(0),
        sb.stride(0),
        A_ROWS=a.block_rows,
        B_ROWS=b.block_rows,
        BLOCK_M=cfg.block_m,
        BLOCK_N=cfg.block_n,
        BLOCK_K=BLOCK,
        GROUP_M=cfg.group_m,
        ORDERED_DOT=interpreted(),
        num_warps=cfg.num_warps,
        num_stages=cfg.num_stages,
    )
    return c


def _recipe(q: Quantized) -> Any:
    st = torch.nn.functional.ScalingType
    return st.BlockWise128x128 if q.block_rows == BLOCK else st.BlockWise1x128


def _num_programs(device: torch.device) -> int:
    if device.type == "cuda":
        return int(torch.cuda.get_device_properties(device).multi_processor_count)
    return 4  # the interpreter: a few programs, each walking several tiles


def _gemm_triton_persistent(
    a: Quantized, b: Quantized, out_dtype: torch.dtype, ordered: bool | None = None
) -> torch.Tensor:
    """The persistent, TMA-fed variant (Hopper). Same tile config (N, K only), same per-tile
    K-ordered reduction as :func:`_gemm_triton`: only the launch order and the loads differ.
    ``ordered`` (tests): force the interpreter's ordered dot on or off (default: on there)."""
    from triton.tools.tensor_descriptor import TensorDescriptor

    m, k = a.shape
    n = b.shape[0]
    c = torch.empty(m, n, dtype=out_dtype, device=a.data.device)
    if m == 0 or n == 0:
        return c
    if k % 16 or a.data.stride(1) != 1 or b.data.stride(1) != 1:
        raise ValueError("the TMA kernel needs K-contiguous operands with K a multiple of 16")
    sa = a.scale.contiguous()
    sb = b.scale.contiguous()
    cfg = gemm_config(n, k)
    tiles = cdiv(m, cfg.block_m) * cdiv(n, cfg.block_n)
    programs = min(tiles, _num_programs(a.data.device))
    a_desc = TensorDescriptor.from_tensor(a.data, [cfg.block_m, BLOCK])
    b_desc = TensorDescriptor.from_tensor(b.data, [cfg.block_n, BLOCK])
    _fp8_gemm_persistent_kernel[(programs,)](
        a_desc,
        b_desc,
        a.data,
        b.data,
        c,
        sa,
        sb,
        m,
        n,
        k,
        a.data.stride(0),
        b.data.stride(0),
        c.stride(0),
        c.stride(1),
        sa.stride(0),
        sb.stride(0),
        A_ROWS=a.block_rows,
        B_ROWS=b.block_rows,
        BLOCK_M=cfg.block_m,
        BLOCK_N=cfg.block_n,
        BLOCK_K=BLOCK,
        GROUP_M=cfg.group_m,
        NUM_PROGRAMS=programs,
        ORDERED_DOT=interpreted() if ordered is None else ordered,
        num_warps=cfg.num_warps,
        num_stages=cfg.num_stages,
    )
    return c


def _pad_rows(q: Quantized) -> Quantized:
    """``q`` with its rows zero-padded to a multiple of 128 (scales too: zero codes times a
    zero scale add nothing), so every M reaches cuBLASLt as whole 128-row tiles."""
    rows = q.shape[0]
    extra = -rows % BLOCK
    if extra == 0:
        return q
    data = torch.nn.functional.pad(q.data.view(torch.uint8), (0, 0, 0, extra))
    srows = extra // q.block_rows if q.block_rows == 1 else 0
    scale = torch.nn.functional.pad(q.scale, (0, 0, 0, srows))
    return Quantized(data.view(q.data.dtype), scale, q.block_rows)


def _gemm_scaled_mm(a: Quantized, b: Quantized, out_dtype: torch.dtype) -> torch.Tensor:
    """``torch.nn.functional.scaled_mm`` with block-wise recipes (Hopper, CUDA ≥ 12.9).

    cuBLASLt wants the scale grids "outer-dim major" (the transpose of our row-major grids)
    and 128×128 grids padded to a multiple of 4 along K blocks.
    """
    if not a.data.is_cuda:
        raise RuntimeError("backend='scaled_mm' needs CUDA tensors")
    if a.block_rows == BLOCK and b.block_rows == BLOCK:
        raise ValueError("scaled_mm has no 128x128 x 128x128 recipe")
    m = a.shape[0]
    a = _pad_rows(a)

    def layout(q: Quantized) -> torch.Tensor:
        s = q.scale
        if q.block_rows == BLOCK:
            kb = s.shape[1]
            padded = torch.zeros(s.shape[0], cdiv(kb, 4) * 4, dtype=s.dtype, device=s.device)
            padded[:, :kb] = s
            return padded.t()
        return s.t().contiguous().t()

    sm = torch.nn.functional.scaled_mm
    out = sm(
        a.data,
        b.data.t(),
        layout(a),
        _recipe(a),
        layout(b),
        _recipe(b),
        output_dtype=out_dtype,
    )
    return out[:m]


def select_backend(backend: str, device: torch.device) -> str:
    """The implementation ``fp8_gemm`` runs for ``backend`` on ``device``.

    A function of the requested backend and the device type only: M, alignment, grad mode
    and the history of earlier calls cannot change it (batch invariance, docs/kernels.md).
    """
    if backend in ("scaled_mm", "triton_persistent"):
        return backend
    if backend not in ("auto", "triton", "torch"):
        raise ValueError(
            f"unknown backend {backend!r}: expected 'auto', 'triton', 'triton_persistent', "
            "'torch' or 'scaled_mm'"
        )
    return backend_for_device(backend, device.type == "cuda")


def fp8_gemm(
    a: Quantized,
    b: Quantized,
    *,
    out_dtype: torch.dtype = torch.bfloat16,
    backend: GemmBackend = "auto",
) -> torch.Tensor:
    """``dequant(A) · dequant(B)ᵀ`` for A [M, K], B [N, K] → [M, N] in ``out_dtype``."""
    _check(a, b, out_dtype)
    if a.data.device != b.data.device:
        raise ValueError(f"operands on different devices: {a.data.device}, {b.data.device}")
    chosen = select_backend(backend, a.data.device)
    if chosen == "scaled_mm":
        return _gemm_scaled_mm(a, b, out_dtype)
    if chosen == "triton_persistent":
        backend_for_device("triton", a.data.is_cuda)  # the same availability checks
        return _gemm_triton_persistent(a, b, out_dtype)
    if chosen == "torch":
        return fp8_gemm_ref(a, b, out_dtype)
    return _gemm_triton(a, b, out_dtype)
