"""Every GEMM layout against float64, non-finite inputs, and blocks under the scale floor."""

from __future__ import annotations

import math

import pytest
import torch

from gantry.kernels._common import AMAX_EPS, FP8_MAX, FP8Format
from gantry.kernels.fp8_gemm import fp8_gemm
from gantry.kernels.fp8_linear import FP8Config, fp8_linear, transpose_blocks
from gantry.kernels.fp8_quant import (
    Quantized,
    quantize_activation,
    quantize_weight_with_transpose,
)
from gantry.kernels.numerics import relative_error

BACKENDS = ("torch", "triton")


def f64_product(a: Quantized, b: Quantized) -> torch.Tensor:
    """The float64 truth for ``dequant(A) · dequant(B)ᵀ``."""
    return a.dequantize(torch.float64) @ b.dequantize(torch.float64).t()


def bits(t: torch.Tensor) -> torch.Tensor:
    return t.contiguous().view(torch.uint8 if t.element_size() == 1 else torch.int32)


# ---- layouts ---------------------------------------------------------------------------------


@pytest.mark.parametrize("backend", BACKENDS)
def test_each_linear_gemm_layout_matches_float64(backend: str) -> None:
    """Forward (X groups x W blocks), dgrad (dY groups x Wᵀ blocks, from the fused
    quantize-and-transpose and from transposing W's codes) and wgrad (dYᵀ x Xᵀ, groups
    along tokens), ragged in every dimension. A misplaced scale or tile costs ~1e-1."""
    m, n, k = 70, 136, 136
    x, w, dy = torch.randn(m, k), torch.randn(n, k), torch.randn(m, n)
    wq, wq_t = quantize_weight_with_transpose(w, backend=backend)  # type: ignore[arg-type]
    assert torch.equal(bits(wq_t.data), bits(transpose_blocks(wq).data))
    assert torch.equal(wq_t.scale, transpose_blocks(wq).scale)
    layouts = {
        "forward": (quantize_activation(x, backend=backend), wq),  # type: ignore[arg-type]
        "dgrad": (quantize_activation(dy, "e5m2", backend=backend), wq_t),  # type: ignore[arg-type]
        "wgrad": (
            quantize_activation(dy, transpose=True, backend=backend),  # type: ignore[arg-type]
            quantize_activation(x, transpose=True, backend=backend),  # type: ignore[arg-type]
        ),
    }
    tol = 1e-12 if backend == "torch" else 1e-5  # exact reference vs float32 accumulation
    for name, (a, b) in layouts.items():
        got = fp8_gemm(a, b, out_dtype=torch.float32, backend=backend)  # type: ignore[arg-type]
        assert relative_error(got, f64_product(a, b)) < max(tol, 1e-7), name
    # And the layer's own backward uses exactly these layouts.
    cfg = FP8Config(backend=backend, weight_cast=None)  # type: ignore[arg-type]
    xr, wr = x.clone().requires_grad_(), w.clone().requires_grad_()
    fp8_linear(xr, wr, config=cfg).backward(dy)  # type: ignore[no-untyped-call]
    assert xr.grad is not None and wr.grad is not None
    dgrad = f64_product(quantize_activation(dy, backend="torch"), wq_t)
    wgrad = f64_product(*[quantize_activation(t, transpose=True, backend="torch") for t in (dy, x)])
    assert relative_error(xr.grad, dgrad) < 1e-5
    assert relative_error(wr.grad, wgrad) < 1e-5


# ---- non-finite inputs -----------------------------------------------------------------------


def poisoned(rows: int, cols: int) -> torch.Tensor:
    x = torch.randn(rows, cols)
    x[0, 3] = math.inf
    x[1, 130] = math.nan
    x[2, 200] = -math.inf
    x[3, 5] = -math.nan  # a NaN with its sign bit set
    return x


@pytest.mark.parametrize("fmt", ["e4m3", "e5m2"])
def test_nonfinite_values_poison_their_group_on_every_backend(fmt: FP8Format) -> None:
    x = poisoned(6, 256)
    bad_groups = {(0, 0), (1, 1), (2, 1), (3, 0)}
    got = {be: quantize_activation(x, fmt, backend=be) for be in BACKENDS}  # type: ignore[arg-type]
    for be, q in got.items():
        for r in range(6):
            for g in range(2):
                cols = slice(g * 128, (g + 1) * 128)
                if (r, g) in bad_groups:
                    assert math.isnan(q.scale[r, g].item()), (be, r, g)
                    assert (bits(q.data[r, cols]) == 0x7F).all(), (be, r, g)
                    assert q.dequantize()[r, cols].isnan().all()
                else:
                    assert math.isfinite(q.scale[r, g].item()), (be, r, g)
                    assert torch.isfinite(q.dequantize()[r, cols]).all()
    ref, tri = got["torch"], got["triton"]
    assert torch.equal(bits(ref.data), bits(tri.data))
    assert torch.equal(bits(ref.scale), bits(tri.scale))  # the same NaN, bit for bit


def test_nonfinite_weight_blocks_and_transposed_groups_match_across_backends() -> None:
    x = poisoned(200, 256)
    for fn in (
        lambda be: quantize_weight_with_transpose(x, backend=be),
        lambda be: (quantize_activation(x, transpose=True, backend=be),),
    ):
        ref, tri = fn("torch"), fn("triton")
        for r, t in zip(ref, tri, strict=True):
            assert torch.equal(bits(r.data), bits(t.data))
            assert torch.equal(bits(r.scale), bits(t.scale))
            assert r.scale.isnan().any() and not r.scale.isnan().all()


@pytest.mark.parametrize("backend", BACKENDS)
def test_nan_reaches_exactly_the_outputs_that_read_it(backend: str) -> None:
    x = torch.randn(5, 256)
    x[2, 17] = math.nan  # token 2's first group
    w = torch.randn(192, 256)
    w[130, 40] = math.inf  # weight block (1, 0): output columns 128..191
    y = fp8_linear(x, w, config=FP8Config(backend=backend))  # type: ignore[arg-type]
    nan = y.isnan()
    assert nan[2].all()
    assert nan[:, 128:].all()
    assert not nan[[0, 1, 3, 4], :128].any()


# ---- the scale floor ---------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", ["e4m3", "e5m2"])
def test_groups_below_the_scale_floor(fmt: FP8Format) -> None:
    """amax ≥ 1e-12: scale amax/fp8_max. Below: the scale stays 1e-12/fp8_max, so the codes
    shrink; nothing is lost while they stay normal, then the error is bounded by half the
    subnormal step (absolute), and far enough below every code is 0."""
    fmax = FP8_MAX[fmt]
    mant, sub = {"e4m3": (3, -9), "e5m2": (2, -16)}[fmt]
    floor_scale = torch.tensor(AMAX_EPS, dtype=torch.float32) / torch.tensor(fmax)
    base = torch.randn(4, 128)
    base /= base.abs().amax(1, keepdim=True)
    zero_below = AMAX_EPS * 2.0 ** (sub - 1) / fmax
    amax = torch.tensor([1e-3, 1e-13, 16 * zero_below, zero_below / 4])[:, None]
    x = base * amax
    q = {be: quantize_activation(x, fmt, backend=be) for be in BACKENDS}  # type: ignore[arg-type]
    assert torch.equal(bits(q["torch"].data), bits(q["triton"].data))
    assert torch.equal(q["torch"].scale, q["triton"].scale)
    scale = q["torch"].scale[:, 0]
    assert scale[0].item() == pytest.approx(1e-3 / fmax, rel=1e-6)
    assert torch.equal(scale[1:], floor_scale.expand(3))
    deq = q["torch"].dequantize(torch.float64)
    err = (deq - x.double()).abs()
    half_ulp = x.double().abs() * 2.0 ** -(mant + 1)
    assert (err[:2] <= half_ulp[:2] * (1 + 1e-6)).all()  # full relative precision
    half_sub = float(floor_scale) * 2.0 ** (sub - 1)
    assert (err[2] <= half_sub * (1 + 1e-6)).all()  # subnormal codes: absolute bound
    assert (err[2] > half_ulp[2]).any()  # ...which is coarser than the format's ulp
    assert (bits(q["torch"].data[3]) & 0x7F == 0).all()  # every code ±0
    assert (deq[3] == 0).all()
