"""FP8 quantization: per-block 128×128 weights and per-group 1×128 activations/gradients.

Semantics (the torch reference defines them; the Triton kernels must match bit for bit):

* A **block** (weights) is a 128×128 tile of a 2-D tensor [N, K]; a **group**
  (activations, gradients) is 1×128: 128 consecutive elements of one row.
* Each block/group gets one float32 scale ``s = max(amax, 1e-12) / fp8_max`` where
  ``amax`` is the largest magnitude in it; its elements are stored as
  ``fp8(clamp(x / s, -fp8_max, fp8_max))`` (round to nearest even). ``x ≈ q · s``.
* **Non-finite inputs** (NaN, ±inf) poison their block/group, identically on every backend:
  its scale is NaN and every one of its codes is the positive NaN ``0x7F`` (both formats),
  so ``dequantize`` gives NaN across the block and every GEMM output that reads it is NaN.
  Nothing is clamped to ±fp8_max and nothing fails silently; other blocks are untouched
  (failing loudly instead would need a host-side check: a device sync on every call).
* **Scale floor**: ``amax`` is floored at ``AMAX_EPS = 1e-12`` so an all-zero block gets a
  finite scale (``1e-12 / fp8_max``) and zero codes. A block whose amax is below the floor
  keeps that scale, so its codes shrink to ``amax / 1e-12`` of the FP8 range. Nothing is
  lost while they stay normal (amax ≥ 1e-12 · 2^-6 / 448 ≈ 3.5e-17 for E4M3, ≈ 1.1e-21
  for E5M2); below that the codes are subnormal and the error is bounded by half the
  subnormal step times the scale (absolute, not relative); and once
  ``amax < 1e-12 · 2^(sub-1) / fp8_max`` (E4M3 ≈ 2.2e-18, E5M2 ≈ 1.3e-22) every code
  rounds to zero and the block dequantizes to 0.
* **Ragged edges**: dimensions need not be multiples of 128. The last block/group along a
  dimension covers only the remaining elements: numerically this is zero-padding to a
  multiple of 128 (zeros change neither amax nor any dot product) without materializing
  the padding. Scale grids therefore have ``ceil(dim / 128)`` entries per dimension. A
  64×64 weight (the tiny test model) is one block with one scale.

The **transpose-friendly weight variant** writes, in the same pass over the weight, the
quantized ``W`` [N, K] and the quantized ``Wᵀ`` [K, N] (contiguous) with the transposed
scale grid. Because blocks are square, quantizing ``Wᵀ`` block-wise gives exactly the
transposed codes and scales, so the backward pass (dgrad = dY · W) reads a K-major FP8
operand without re-quantizing. Activations need a different variant for the weight
gradient (dW = dYᵀ · X contracts over tokens): ``transpose=True`` quantizes ``xᵀ`` with
groups running along the token dimension.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from gantry.kernels._common import (
    AMAX_EPS,
    BLOCK,
    FP8_MAX,
    HAS_TRITON,
    Backend,
    FP8Format,
    cdiv,
    expand_scales,
    fp8_dtype,
    resolve_backend,
    tl,
    triton,
)

#: Mantissa bits and log2 of the subnormal step of each format (E4M3: 2^-9, E5M2: 2^-16).
MANT_BITS: dict[str, int] = {"e4m3": 3, "e5m2": 2}
SUB_EXP: dict[str, int] = {"e4m3": -9, "e5m2": -16}

__all__ = [
    "Quantized",
    "dequantize",
    "quantize_activation",
    "quantize_activation_ref",
    "quantize_weight",
    "quantize_weight_ref",
    "quantize_weight_with_transpose",
]


@dataclass(frozen=True, slots=True)
class Quantized:
    """FP8 codes with their float32 scales.

    ``data`` is [rows, cols] in an FP8 dtype; ``scale`` is
    [ceil(rows / block_rows), ceil(cols / 128)] float32, where ``block_rows`` is 128 for
    a 128×128 block grid (weights) and 1 for 1×128 groups (activations, gradients).
    """

    data: torch.Tensor
    scale: torch.Tensor
    block_rows: int

    @property
    def shape(self) -> tuple[int, int]:
        rows, cols = self.data.shape
        return int(rows), int(cols)

    def dequantize(self, dtype: torch.dtype = torch.float32) -> torch.Tensor:
        return dequantize(self, dtype)


def dequantize(q: Quantized, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """``q.data · scale`` broadcast over each block/group, computed in float32 (or float64)."""
    rows, cols = q.shape
    work = torch.float64 if dtype == torch.float64 else torch.float32
    scale = expand_scales(q.scale.to(work), rows, cols, q.block_rows)
    return (q.data.to(work) * scale).to(dtype)


def _check_2d(name: str, x: torch.Tensor) -> None:
    if x.dim() != 2:
        raise ValueError(f"{name} must be 2-D, got shape {tuple(x.shape)}")
    if not (x.is_floating_point() and x.element_size() >= 2):
        raise ValueError(f"{name} must be float16/bfloat16/float32/float64, got {x.dtype}")


# ---- torch reference ------------------------------------------------------------------------


def _quantize_tiles_ref(x: torch.Tensor, block_rows: int, fmt: FP8Format) -> Quantized:
    rows, cols = x.shape
    fmax = FP8_MAX[fmt]
    rb, cb = cdiv(rows, block_rows), cdiv(cols, BLOCK)
    padded = torch.zeros(rb * block_rows, cb * BLOCK, dtype=torch.float32, device=x.device)
    padded[:rows, :cols] = x.to(torch.float32)
    tiles = padded.view(rb, block_rows, cb, BLOCK)
    amax = tiles.abs().amax(dim=(1, 3))
    finite = torch.isfinite(tiles).all(dim=3).all(dim=1)
    # Tensor / tensor: CUDA divides by a Python scalar through its reciprocal, which can be
    # an ulp off the correctly rounded quotient the kernels compute (div_rn).
    scale = torch.clamp(amax, min=AMAX_EPS) / torch.full_like(amax, fmax)
    nan = torch.full_like(scale, math.nan)  # the positive quiet NaN, as the kernels write
    scale = torch.where(finite, scale, nan)
    scaled = (tiles / scale[:, None, :, None]).clamp(-fmax, fmax)
    scaled = torch.where(finite[:, None, :, None], scaled, nan[:, None, :, None])
    codes = scaled.to(fp8_dtype(fmt))
    data = codes.view(rb * block_rows, cb * BLOCK)[:rows, :cols].contiguous()
    return Quantized(data, scale.contiguous(), block_rows)


def quantize_weight_ref(w: torch.Tensor, fmt: FP8Format = "e4m3") -> Quantized:
    """Reference per-block 128×128 quantization of a [N, K] weight."""
    _check_2d("weight", w)
    return _quantize_tiles_ref(w, BLOCK, fmt)


def quantize_activation_ref(
    x: torch.Tensor, fmt: FP8Format = "e4m3", *, transpose: bool = False
) -> Quantized:
    """Reference per-group 1×128 quantization of ``x`` [M, K] (of ``xᵀ`` when transposed)."""
    _check_2d("activation", x)
    return _quantize_tiles_ref(x.t() if transpose else x, 1, fmt)


# ---- Triton kernels -------------------------------------------------------------------------

if HAS_TRITON:

    @triton.jit  # type: ignore[untyped-decorator]
    def _round_to_fp8_grid(
        y: tl.tensor, MANT_BITS: tl.constexpr, SUB_EXP: tl.constexpr
    ) -> tl.tensor:
        """Round float32 ``y`` (already clamped to ±fp8_max) to the nearest FP8 value, ties to even.

        Doing the rounding here makes the final ``.to(fp8)`` cast exact, so the result does
        not depend on the cast's rounding (Triton's CPU interpreter rounds ties away from
        zero and drops the mantissa carry; the GPU cast is RTNE, so both agree with this).
        Normal range: round the float32 mantissa to MANT_BITS bits with integer arithmetic
        (the carry moves into the exponent). Subnormal range (|y| < 2^(SUB_EXP + MANT_BITS)):
        the grid step is 2^SUB_EXP; adding and removing 2^(SUB_EXP + 23) rounds to it (RTNE).
        """
        bits = y.to(tl.int32, bitcast=True)
        sign = bits & -2147483648  # the sign bit, 0x80000000 as int32
        mag = bits & 0x7FFFFFFF
        drop: tl.constexpr = 23 - MANT_BITS
        lsb = (mag >> drop) & 1
        normal = (mag + ((1 << (drop - 1)) - 1) + lsb) & -(1 << drop)
        a = mag.to(tl.float32, bitcast=True)
        magic: tl.constexpr = 2.0 ** (SUB_EXP + 23)
        sub = ((a + magic) - magic).to(tl.int32, bitcast=True)
        min_normal: tl.constexpr = 2.0 ** (SUB_EXP + MANT_BITS)
        out = tl.where(a < min_normal, sub, normal) | sign
        return out.to(tl.float32, bitcast=True)

    @triton.jit  # type: ignore[untyped-decorator]
    def _nonfinite(x: tl.tensor) -> tl.tensor:
        """1 where ``x`` is NaN or ±inf, else 0 (int32, so it can be max-reduced)."""
        return ((x != x) | (tl.abs(x) == float("inf"))).to(tl.int32)

    @triton.jit  # type: ignore[untyped-decorator]
    def _codes(y: tl.tensor, bad: tl.tensor, fp8: tl.constexpr) -> tl.tensor:
        """FP8 codes of the exactly representable ``y``; the positive NaN (0x7F in both
        formats) where ``bad``. Written as bits: casting NaN is not uniform across backends."""
        bits = y.to(fp8).to(tl.uint8, bitcast=True)
        return tl.where(bad, 0x7F, bits).to(tl.uint8).to(fp8, bitcast=True)

    @triton.jit  # type: ignore[untyped-decorator]
    def _weight_quant_kernel(
        x_ptr: tl.tensor,
        q_ptr: tl.tensor,
        s_ptr: tl.tensor,
        qt_ptr: tl.tensor,
        st_ptr: tl.tensor,
        n_rows: tl.tensor,
        n_cols: tl.tensor,
        stride_xr: tl.tensor,
        stride_xc: tl.tensor,
        FMAX: tl.constexpr,
        EPS: tl.constexpr,
        MANT_BITS: tl.constexpr,
        SUB_EXP: tl.constexpr,
        BLOCK_SIZE: tl.constexpr,
        WRITE_T: tl.constexpr,
    ) -> None:
        pid_r = tl.program_id(0)
        pid_c = tl.program_id(1)
        n_rb = tl.num_programs(0)
        n_cb = tl.num_programs(1)
        rr = pid_r * BLOCK_SIZE + tl.arange(0, BLOCK_SIZE)
        rc = pid_c * BLOCK_SIZE + tl.arange(0, BLOCK_SIZE)
        mask = (rr[:, None] < n_rows) & (rc[None, :] < n_cols)
        x = tl.load(
            x_ptr + rr[:, None] * stride_xr + rc[None, :] * stride_xc, mask=mask, other=0.0
        ).to(tl.float32)
        amax = tl.max(tl.max(tl.abs(x), axis=1), axis=0)
        # max() drops NaN on the GPU and in the interpreter: detect non-finite blocks apart.
        bad = tl.max(tl.max(_nonfinite(x), axis=1), axis=0) > 0
        scale = tl.where(bad, float("nan"), tl.div_rn(tl.maximum(amax, EPS), FMAX))
        y = tl.minimum(tl.maximum(tl.div_rn(x, scale), -FMAX), FMAX)
        y = _round_to_fp8_grid(y, MANT_BITS, SUB_EXP)
        q = _codes(y, bad, q_ptr.dtype.element_ty)
        tl.store(q_ptr + rr[:, None] * n_cols + rc[None, :], q, mask=mask)
        tl.store(s_ptr + pid_r * n_cb + pid_c, scale)
        if WRITE_T:
            # Same codes, transposed tile: Wᵀ is [n_cols, n_rows], its scale grid [n_cb, n_rb].
            tl.store(
                qt_ptr + rc[:, None] * n_rows + rr[None, :],
                tl.trans(q),
                mask=tl.trans(mask),
            )
            tl.store(st_ptr + pid_c * n_rb + pid_r, scale)

    @triton.jit  # type: ignore[untyped-decorator]
    def _group_quant_rows_kernel(
        x_ptr: tl.tensor,
        q_ptr: tl.tensor,
        s_ptr: tl.tensor,
        n_rows: tl.tensor,
        n_cols: tl.tensor,
        stride_xr: tl.tensor,
        stride_xc: tl.tensor,
        FMAX: tl.constexpr,
        EPS: tl.constexpr,
        MANT_BITS: tl.constexpr,
        SUB_EXP: tl.constexpr,
        BLOCK_R: tl.constexpr,
        GROUP: tl.constexpr,
    ) -> None:
        # Tile [BLOCK_R rows, GROUP cols]: one group per row.
        pid_r = tl.program_id(0)
        pid_g = tl.program_id(1)
        n_groups = tl.num_programs(1)
        rr = pid_r * BLOCK_R + tl.arange(0, BLOCK_R)
        rc = pid_g * GROUP + tl.arange(0, GROUP)
        mask = (rr[:, None] < n_rows) & (rc[None, :] < n_cols)
        x = tl.load(
            x_ptr + rr[:, None] * stride_xr + rc[None, :] * stride_xc, mask=mask, other=0.0
        ).to(tl.float32)
        amax = tl.max(tl.abs(x), axis=1)
        bad = tl.max(_nonfinite(x), axis=1) > 0
        scale = tl.where(bad, float("nan"), tl.div_rn(tl.maximum(amax, EPS), FMAX))
        y = tl.minimum(tl.maximum(tl.div_rn(x, scale[:, None]), -FMAX), FMAX)
        y = _round_to_fp8_grid(y, MANT_BITS, SUB_EXP)
        q = _codes(y, bad[:, None], q_ptr.dtype.element_ty)
        tl.store(q_ptr + rr[:, None] * n_cols + rc[None, :], q, mask=mask)
        tl.store(s_ptr + rr * n_groups + pid_g, scale, mask=rr < n_rows)

    @triton.jit  # type: ignore[untyped-decorator]
    def _group_quant_cols_kernel(
        x_ptr: tl.tensor,
        q_ptr: tl.tensor,
        s_ptr: tl.tensor,
        n_rows: tl.tensor,
        n_cols: tl.tensor,
        stride_xr: tl.tensor,
        stride_xc: tl.tensor,
        FMAX: tl.constexpr,
        EPS: tl.constexpr,
        MANT_BITS: tl.constexpr,
        SUB_EXP: tl.constexpr,
        GROUP: tl.constexpr,
        BLOCK_C: tl.constexpr,
    ) -> None:
        # Quantizes xᵀ: tile [GROUP rows, BLOCK_C cols] of x, one group per column, written
        # transposed into q [n_cols, n_rows] with scales [n_cols, ceil(n_rows / GROUP)].
        pid_g = tl.program_id(0)
        pid_c = tl.program_id(1)
        n_groups = tl.num_programs(0)
        rr = pid_g * GROUP + tl.arange(0, GROUP)
        rc = pid_c * BLOCK_C + tl.arange(0, BLOCK_C)
        mask = (rr[:, None] < n_rows) & (rc[None, :] < n_cols)
        x = tl.load(
            x_ptr + rr[:, None] * stride_xr + rc[None, :] * stride_xc, mask=mask, other=0.0
        ).to(tl.float32)
        amax = tl.max(tl.abs(x), axis=0)
        bad = tl.max(_nonfinite(x), axis=0) > 0
        scale = tl.where(bad, float("nan"), tl.div_rn(tl.maximum(amax, EPS), FMAX))
        y = tl.minimum(tl.maximum(tl.div_rn(x, scale[None, :]), -FMAX), FMAX)
        y = _round_to_fp8_grid(y, MANT_BITS, SUB_EXP)
        q = tl.trans(_codes(y, bad[None, :], q_ptr.dtype.element_ty))
        tl.store(q_ptr + rc[:, None] * n_rows + rr[None, :], q, mask=tl.trans(mask))
        tl.store(s_ptr + rc * n_groups + pid_g, scale, mask=rc < n_cols)


def _weight_triton(w: torch.Tensor, fmt: FP8Format, with_t: bool) -> tuple[Quantized, Quantized]:
    n, k = w.shape
    nb, kb = cdiv(n, BLOCK), cdiv(k, BLOCK)
    dt = fp8_dtype(fmt)
    q = torch.empty(n, k, dtype=dt, device=w.device)
    s = torch.empty(nb, kb, dtype=torch.float32, device=w.device)
    qt = torch.empty(k, n, dtype=dt, device=w.device) if with_t else q
    st = torch.empty(kb, nb, dtype=torch.float32, device=w.device) if with_t else s
    _weight_quant_kernel[(nb, kb)](
        w,
        q,
        s,
        qt,
        st,
        n,
        k,
        w.stride(0),
        w.stride(1),
        FMAX=FP8_MAX[fmt],
        EPS=AMAX_EPS,
        MANT_BITS=MANT_BITS[fmt],
        SUB_EXP=SUB_EXP[fmt],
        BLOCK_SIZE=BLOCK,
        WRITE_T=with_t,
        num_warps=8,
    )
    return Quantized(q, s, BLOCK), Quantized(qt, st, BLOCK)


def _activation_triton(x: torch.Tensor, fmt: FP8Format, transpose: bool) -> Quantized:
    m, k = x.shape
    dt = fp8_dtype(fmt)
    fmax = FP8_MAX[fmt]
    if not transpose:
        q = torch.empty(m, k, dtype=dt, device=x.device)
        s = torch.empty(m, cdiv(k, BLOCK), dtype=torch.float32, device=x.device)
        block_r = 32
        grid = (cdiv(m, block_r), cdiv(k, BLOCK))
        _group_quant_rows_kernel[grid](
            x,
            q,
            s,
            m,
            k,
            x.stride(0),
            x.stride(1),
            FMAX=fmax,
            EPS=AMAX_EPS,
            MANT_BITS=MANT_BITS[fmt],
            SUB_EXP=SUB_EXP[fmt],
            BLOCK_R=block_r,
            GROUP=BLOCK,
            num_warps=4,
        )
        return Quantized(q, s, 1)
    qt = torch.empty(k, m, dtype=dt, device=x.device)
    st = torch.empty(k, cdiv(m, BLOCK), dtype=torch.float32, device=x.device)
    block_c = 64
    grid = (cdiv(m, BLOCK), cdiv(k, block_c))
    _group_quant_cols_kernel[grid](
        x,
        qt,
        st,
        m,
        k,
        x.stride(0),
        x.stride(1),
        FMAX=fmax,
        EPS=AMAX_EPS,
        MANT_BITS=MANT_BITS[fmt],
        SUB_EXP=SUB_EXP[fmt],
        GROUP=BLOCK,
        BLOCK_C=block_c,
        num_warps=4,
    )
    return Quantized(qt, st, 1)


# ---- dispatchers ----------------------------------------------------------------------------


def quantize_weight(
    w: torch.Tensor, fmt: FP8Format = "e4m3", *, backend: Backend = "auto"
) -> Quantized:
    """Per-block 128×128 quantization of a [N, K] weight.

    Returns codes [N, K] and float32 scales [⌈N/128⌉, ⌈K/128⌉].
    """
    _check_2d("weight", w)
    fp8_dtype(fmt)
    if resolve_backend(backend, w) == "torch":
        return quantize_weight_ref(w, fmt)
    return _weight_triton(w, fmt, with_t=False)[0]


def quantize_weight_with_transpose(
    w: torch.Tensor, fmt: FP8Format = "e4m3", *, backend: Backend = "auto"
) -> tuple[Quantized, Quantized]:
    """Quantized ``W`` [N, K] and quantized ``Wᵀ`` [K, N] (contiguous) from one pass over W."""
    _check_2d("weight", w)
    fp8_dtype(fmt)
    if resolve_backend(backend, w) == "torch":
        q = quantize_weight_ref(w, fmt)
        return q, Quantized(q.data.t().contiguous(), q.scale.t().contiguous(), BLOCK)
    return _weight_triton(w, fmt, with_t=True)


def quantize_activation(
    x: torch.Tensor,
    fmt: FP8Format = "e4m3",
    *,
    transpose: bool = False,
    backend: Backend = "auto",
) -> Quantized:
    """Per-group 1×128 quantization of ``x`` [M, K] along K.

    With ``transpose=True`` the result is ``xᵀ`` [K, M] (contiguous) quantized in 1×128
    groups along M, the layout the weight-gradient GEMM needs.
    """
    _check_2d("activation", x)
    fp8_dtype(fmt)
    if resolve_backend(backend, x) == "torch":
        return quantize_activation_ref(x, fmt, transpose=transpose)
    return _activation_triton(x, fmt, transpose)
