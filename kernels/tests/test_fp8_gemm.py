from __future__ import annotations

import pytest
import torch

from gantry.kernels.fp8_gemm import fp8_gemm, fp8_gemm_ref
from gantry.kernels.fp8_quant import Quantized, quantize_activation, quantize_weight
from gantry.kernels.numerics import NumericsError, check_close, sqnr_db

# (M, N, K): aligned, ragged in every dimension, tiny-model sized, a single token.
SHAPES = [(256, 256, 256), (100, 200, 328), (10, 64, 64), (1, 130, 96)]

# E4M3 × E4M3 over random normals lands at ~3.7 % relative error (~28.6 dB) against the
# unquantized float64 product; E5M2 × E4M3 at ~5.7 %. The bounds leave ~1.5x headroom.
E4M3_REL, E4M3_SQNR = 0.055, 25.0
E5M2_REL = 0.085
# The kernel against the float64 product of the *dequantized* operands: only float32
# accumulation order separates them.
KERNEL_REL = 1e-5

Operands = tuple[Quantized, Quantized, torch.Tensor]


def exact(a: Quantized, b: Quantized) -> torch.Tensor:
    return a.dequantize(torch.float64) @ b.dequantize(torch.float64).t()


@pytest.mark.parametrize("shape", SHAPES)
def test_forward_gemm_groups_by_blocks(shape: tuple[int, int, int]) -> None:
    m, n, k = shape
    x, w = torch.randn(m, k), torch.randn(n, k)
    a, b = quantize_activation(x, backend="triton"), quantize_weight(w, backend="triton")
    got = fp8_gemm(a, b, out_dtype=torch.float32, backend="triton")
    check_close(got, exact(a, b), max_rel=KERNEL_REL, what="triton vs dequantized float64")
    check_close(got, fp8_gemm_ref(a, b, torch.float32), max_rel=KERNEL_REL, what="vs reference")
    full = x.double() @ w.double().t()
    check_close(got, full, max_rel=E4M3_REL, min_sqnr_db=E4M3_SQNR, what="vs float64 inputs")


@pytest.mark.parametrize("shape", SHAPES)
def test_wgrad_gemm_groups_by_groups_mixed_formats(shape: tuple[int, int, int]) -> None:
    m, n, k = shape  # dW[n, k] = dYᵀ[n, m] · X[m, k]: groups run along the tokens (m)
    dy, x = torch.randn(m, n), torch.randn(m, k)
    a = quantize_activation(dy, "e5m2", transpose=True, backend="triton")
    b = quantize_activation(x, "e4m3", transpose=True, backend="triton")
    got = fp8_gemm(a, b, out_dtype=torch.float32, backend="triton")
    assert got.shape == (n, k)
    check_close(got, exact(a, b), max_rel=KERNEL_REL, what="triton vs dequantized float64")
    check_close(got, dy.double().t() @ x.double(), max_rel=E5M2_REL, what="vs float64 inputs")


def test_dgrad_gemm_uses_transposed_blocks_and_bf16_output() -> None:
    from gantry.kernels.fp8_quant import quantize_weight_with_transpose

    m, n, k = 96, 256, 160  # dX[m, k] = dY[m, n] · W[n, k]
    dy, w = torch.randn(m, n, dtype=torch.bfloat16), torch.randn(n, k)
    _, wt = quantize_weight_with_transpose(w, backend="triton")
    a = quantize_activation(dy, backend="triton")
    got = fp8_gemm(a, wt, backend="triton")
    assert got.dtype == torch.bfloat16
    # BF16 output rounding (2^-9 relative) dominates the kernel error here.
    check_close(got, exact(a, wt), max_rel=4e-3, what="bf16 dgrad")
    check_close(got, dy.double() @ w.double(), max_rel=E4M3_REL, what="vs float64 inputs")


def test_cpu_dispatch_is_the_reference() -> None:
    a = quantize_activation(torch.randn(33, 200))
    b = quantize_weight(torch.randn(70, 200))
    assert torch.equal(fp8_gemm(a, b), fp8_gemm_ref(a, b))


# ---- the checks must fail on broken kernels --------------------------------------------------


@pytest.fixture
def operands() -> Operands:
    x, w = torch.randn(256, 256), torch.randn(256, 256)
    return quantize_activation(x), quantize_weight(w), x.double() @ w.double().t()


def test_check_fails_on_a_corrupted_scale(operands: Operands) -> None:
    a, b, full = operands
    scale = b.scale.clone()
    scale[0, 1] *= 2.0  # one 128x128 weight block decoded at twice its size
    broken = Quantized(b.data, scale, b.block_rows)
    got = fp8_gemm(a, broken, out_dtype=torch.float32, backend="triton")
    with pytest.raises(NumericsError):
        check_close(got, full, max_rel=E4M3_REL, min_sqnr_db=E4M3_SQNR)


def test_check_fails_on_a_transposed_block(operands: Operands) -> None:
    a, b, full = operands
    data = b.data.clone()
    data[:128, 128:] = b.data[:128, 128:].t()
    broken = Quantized(data, b.scale, b.block_rows)
    got = fp8_gemm(a, broken, out_dtype=torch.float32, backend="triton")
    with pytest.raises(NumericsError):
        check_close(got, full, max_rel=E4M3_REL, min_sqnr_db=E4M3_SQNR)


def test_check_fails_on_an_unwritten_output_tile(
    operands: Operands,
) -> None:
    a, b, full = operands
    got = fp8_gemm(a, b, out_dtype=torch.float32, backend="triton")
    check_close(got, full, max_rel=E4M3_REL, min_sqnr_db=E4M3_SQNR)
    for fill in (0.0, float("nan")):  # torch.empty leaves zeros or garbage behind
        broken = got.clone()
        broken[128:, 128:] = fill
        with pytest.raises(NumericsError):
            check_close(broken, full, max_rel=E4M3_REL, min_sqnr_db=E4M3_SQNR)
    # In a 4096x4096 output one missing tile of 1024 leaves the global error (~4.8 %) under
    # the E4M3 bound; the worst-tile bound still catches it.
    x, w = torch.randn(4096, 128), torch.randn(4096, 128)
    big = fp8_gemm(quantize_activation(x), quantize_weight(w), out_dtype=torch.float32)
    big_full = x.double() @ w.double().t()
    check_close(big, big_full, max_rel=E4M3_REL, min_sqnr_db=E4M3_SQNR)
    big[1024:1152, 2048:2176] = 0.0
    with pytest.raises(NumericsError, match="tile"):
        check_close(big, big_full, max_rel=E4M3_REL, min_sqnr_db=E4M3_SQNR - 1.0)


def test_shape_and_scale_validation() -> None:
    a = quantize_activation(torch.randn(4, 128))
    b = quantize_weight(torch.randn(8, 256))
    with pytest.raises(ValueError, match="inner dimensions"):
        fp8_gemm(a, b)
    b = quantize_weight(torch.randn(8, 128))
    with pytest.raises(ValueError, match="scale must be"):
        fp8_gemm(a, Quantized(b.data, b.scale, 1))  # a block grid claimed as groups
    with pytest.raises(ValueError, match="FP8 codes"):
        fp8_gemm(Quantized(a.data.float(), a.scale, 1), b)
    with pytest.raises(ValueError, match="out_dtype"):
        fp8_gemm(a, b, out_dtype=torch.int32)
    with pytest.raises(RuntimeError, match="CUDA"):
        fp8_gemm(a, b, backend="scaled_mm")
    assert sqnr_db(a.dequantize(), a.dequantize()) == float("inf")
