"""FP8 GEMM with block/group scales: ``C = dequant(A) · dequant(B)ᵀ``.

Operands are :class:`~gantry.kernels.fp8_quant.Quantized` tensors, both K-major:
``A`` [M, K] and ``B`` [N, K], each with scales per 128 elements of K and per 1 or 128
rows (1×128 groups for activations/gradients, 128×128 blocks for weights). The three GEMMs
of a linear layer map onto it:

* forward  ``Y  = X · Wᵀ``:   A = X (groups),        B = W  (blocks)
* dgrad    ``dX = dY · W``:   A = dY (groups),       B = Wᵀ (blocks, transposed copy)
* wgrad    ``dW = dYᵀ · X``:  A = dYᵀ (groups on M), B = Xᵀ (groups on M)

Semantics (reference): dequantize both operands in float32 and multiply in float32. The
Triton kernel computes the same sum block by block: for each 128-wide K slice it takes the
FP8 tensor-core product (float32 accumulation) and adds it scaled by ``sA[m] · sB[n]``.
The two agree up to float32 summation order.

Backends: ``scaled_mm`` (``torch.nn.functional.scaled_mm`` with BlockWise1x128/128x128
recipes: Hopper, CUDA ≥ 12.9), ``triton`` and ``torch`` (the reference). ``auto`` picks
``scaled_mm`` on CUDA where it works for the operands' recipe and alignment (the faster
path on an H200, see docs/benchmarks.md), else the Triton kernel on CUDA, else the
reference.
"""

from __future__ import annotations

from typing import Any, Literal

import torch

from gantry.kernels._common import BLOCK, HAS_TRITON, cdiv, resolve_backend, tl, triton
from gantry.kernels.fp8_quant import Quantized

__all__ = ["GemmBackend", "fp8_gemm", "fp8_gemm_ref"]

GemmBackend = Literal["auto", "triton", "torch", "scaled_mm"]


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
    """Reference: float32 dequantize-then-matmul."""
    _check(a, b, out_dtype)
    return (a.dequantize(torch.float32) @ b.dequantize(torch.float32).t()).to(out_dtype)


if HAS_TRITON:

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
            acc += tl.dot(a, b) * sa[:, None] * sb[None, :]
        tl.store(
            c_ptr + rm[:, None] * stride_cm + rn[None, :] * stride_cn,
            acc.to(c_ptr.dtype.element_ty),
            mask=m_ok[:, None] & n_ok[None, :],
        )


def _gemm_triton(a: Quantized, b: Quantized, out_dtype: torch.dtype) -> torch.Tensor:
    m, k = a.shape
    n = b.shape[0]
    c = torch.empty(m, n, dtype=out_dtype, device=a.data.device)
    if m == 0 or n == 0:
        return c
    sa = a.scale.contiguous()
    sb = b.scale.contiguous()
    block_m = 64 if m <= 64 else 128
    block_n = 128
    grid = (cdiv(m, block_m) * cdiv(n, block_n),)
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
        BLOCK_M=block_m,
        BLOCK_N=block_n,
        BLOCK_K=BLOCK,
        GROUP_M=8,
        num_warps=8 if block_m == 128 else 4,
        num_stages=3,
    )
    return c


def _recipe(q: Quantized) -> Any:
    st = torch.nn.functional.ScalingType
    return st.BlockWise128x128 if q.block_rows == BLOCK else st.BlockWise1x128


def _gemm_scaled_mm(a: Quantized, b: Quantized, out_dtype: torch.dtype) -> torch.Tensor:
    """``torch.nn.functional.scaled_mm`` with block-wise recipes (Hopper, CUDA ≥ 12.9).

    cuBLASLt wants the scale grids "outer-dim major" (the transpose of our row-major grids)
    and 128×128 grids padded to a multiple of 4 along K blocks.
    """
    if not a.data.is_cuda:
        raise RuntimeError("backend='scaled_mm' needs CUDA tensors")
    if a.block_rows == BLOCK and b.block_rows == BLOCK:
        raise ValueError("scaled_mm has no 128x128 x 128x128 recipe")

    def layout(q: Quantized) -> torch.Tensor:
        s = q.scale
        if q.block_rows == BLOCK:
            kb = s.shape[1]
            padded = torch.zeros(s.shape[0], cdiv(kb, 4) * 4, dtype=s.dtype, device=s.device)
            padded[:, :kb] = s
            return padded.t()
        return s.t().contiguous().t()

    sm = torch.nn.functional.scaled_mm
    return sm(
        a.data,
        b.data.t(),
        layout(a),
        _recipe(a),
        layout(b),
        _recipe(b),
        output_dtype=out_dtype,
    )


def fp8_gemm(
    a: Quantized,
    b: Quantized,
    *,
    out_dtype: torch.dtype = torch.bfloat16,
    backend: GemmBackend = "auto",
) -> torch.Tensor:
    """``dequant(A) · dequant(B)ᵀ`` for A [M, K], B [N, K] → [M, N] in ``out_dtype``."""
    _check(a, b, out_dtype)
    if backend == "scaled_mm":
        return _gemm_scaled_mm(a, b, out_dtype)
    if backend == "auto" and a.data.is_cuda and _scaled_mm_usable(a, b):
        try:
            return _gemm_scaled_mm(a, b, out_dtype)
        except (RuntimeError, ValueError, NotImplementedError):
            # This torch/CUDA/GPU lacks the block-scaled recipe: remember, use Triton.
            _SCALED_MM_USABLE[_recipe_key(a, b)] = False
    if resolve_backend(backend, a.data, b.data) == "torch":
        return fp8_gemm_ref(a, b, out_dtype)
    return _gemm_triton(a, b, out_dtype)


# (device, A block rows, B block rows, 128-alignment of M, N, K) -> whether cuBLASLt's
# block-scaled path works for such operands.
# On an H200 it ran 1.5x BF16 at 8192^3 where the Triton kernel ran 0.8x (docs/benchmarks.md),
# so "auto" prefers it on CUDA and falls back to Triton where it is missing.
_SCALED_MM_USABLE: dict[tuple[int, ...], bool] = {}


def _recipe_key(a: Quantized, b: Quantized) -> tuple[int, ...]:
    (m, k), n = a.data.shape, b.data.shape[0]
    aligned = (m % BLOCK == 0, n % BLOCK == 0, k % BLOCK == 0)
    return (a.data.device.index or 0, a.block_rows, b.block_rows, *aligned)


def _scaled_mm_usable(a: Quantized, b: Quantized) -> bool:
    if not hasattr(torch.nn.functional, "scaled_mm"):
        return False
    if a.block_rows == BLOCK and b.block_rows == BLOCK:
        return False
    return _SCALED_MM_USABLE.setdefault(_recipe_key(a, b), True)
