from __future__ import annotations

import pytest
import torch

from gantry.kernels import fp8_quant
from gantry.kernels._common import BLOCK, FP8_MAX, FP8Format, interpreted, resolve_backend
from gantry.kernels.fp8_quant import (
    MANT_BITS,
    SUB_EXP,
    Quantized,
    quantize_activation,
    quantize_activation_ref,
    quantize_weight,
    quantize_weight_ref,
    quantize_weight_with_transpose,
)
from gantry.kernels.numerics import NumericsError

SHAPES = [(256, 256), (200, 328), (64, 64), (3, 130)]


def codes(q: Quantized) -> torch.Tensor:
    return q.data.view(torch.uint8)


def wide_range(rows: int, cols: int) -> torch.Tensor:
    """Random values spanning 8 decades (exercises subnormal codes), a zero block corner."""
    x = torch.randn(rows, cols) * torch.logspace(-6, 2, cols)
    x[: min(rows, 3), : min(cols, 5)] = 0.0
    return x.to(torch.bfloat16)


def assert_quantization_bound(q: Quantized, x: torch.Tensor, fmt: FP8Format) -> None:
    """Elementwise round-to-nearest bound of the format, against float64.

    Every element must satisfy |q·s − x| ≤ s · max(|x/s| · 2^-(m+1), 2^(sub−1)) (half an
    FP8 ulp at the element's magnitude, or half the subnormal step), and every scale must be
    amax/fp8_max of its block or group. A wrong scale or a misplaced tile breaks both.
    """
    rows, cols = q.shape
    x64 = x.double()
    scale = q.scale.double().repeat_interleave(q.block_rows, 0)[:rows]
    scale = scale.repeat_interleave(BLOCK, 1)[:, :cols]
    err = (q.dequantize(torch.float64) - x64).abs()
    y = (x64 / scale).abs()
    half_sub = torch.tensor(2.0 ** (SUB_EXP[fmt] - 1), dtype=torch.float64)
    bound = scale * torch.maximum(y * 2.0 ** -(MANT_BITS[fmt] + 1), half_sub)
    bad = int((err > bound * (1 + 1e-5) + 1e-30).sum())
    if bad:
        raise NumericsError(f"{bad} elements outside the {fmt} rounding bound")
    pad_r, pad_c = -rows % q.block_rows, -cols % BLOCK
    padded = torch.nn.functional.pad(x64.abs(), (0, pad_c, 0, pad_r))
    amax = padded.view(-1, q.block_rows, padded.shape[1] // BLOCK, BLOCK).amax(dim=(1, 3))
    want = torch.clamp(amax, min=1e-12) / FP8_MAX[fmt]
    if not torch.allclose(q.scale.double(), want, rtol=1e-6, atol=0.0):
        raise NumericsError("scales differ from amax / fp8_max")


def test_kernels_are_interpreted_on_cpu() -> None:
    assert interpreted()
    assert type(fp8_quant._weight_quant_kernel).__name__ == "InterpretedFunction"


@pytest.mark.parametrize("shape", SHAPES)
def test_weight_kernel_matches_reference_bitwise(shape: tuple[int, int]) -> None:
    w = wide_range(*shape)
    got = quantize_weight(w, backend="triton")
    ref = quantize_weight_ref(w)
    assert got.scale.shape == ((shape[0] + 127) // 128, (shape[1] + 127) // 128)
    assert torch.equal(got.scale, ref.scale)
    assert torch.equal(codes(got), codes(ref))
    assert_quantization_bound(got, w, "e4m3")


@pytest.mark.parametrize("shape", SHAPES)
def test_transposed_weight_is_the_transpose(shape: tuple[int, int]) -> None:
    w = wide_range(*shape)
    q, qt = quantize_weight_with_transpose(w, backend="triton")
    assert qt.shape == (shape[1], shape[0]) and qt.data.is_contiguous()
    assert torch.equal(codes(qt), codes(q).t())
    assert torch.equal(qt.scale, q.scale.t())
    # Square blocks: quantizing Wᵀ directly gives the same codes and scales.
    direct = quantize_weight_ref(w.t())
    assert torch.equal(codes(qt), codes(direct))
    assert torch.equal(qt.scale, direct.scale)
    ref_q, ref_qt = quantize_weight_with_transpose(w, backend="torch")
    assert torch.equal(codes(ref_qt), codes(qt)) and torch.equal(ref_q.scale, q.scale)


@pytest.mark.parametrize("fmt", ["e4m3", "e5m2"])
@pytest.mark.parametrize("transpose", [False, True])
@pytest.mark.parametrize("shape", SHAPES)
def test_group_kernel_matches_reference_bitwise(
    shape: tuple[int, int], fmt: FP8Format, transpose: bool
) -> None:
    x = wide_range(*shape)
    got = quantize_activation(x, fmt, transpose=transpose, backend="triton")
    ref = quantize_activation_ref(x, fmt, transpose=transpose)
    rows, cols = (shape[1], shape[0]) if transpose else shape
    assert got.shape == (rows, cols) and got.block_rows == 1
    assert got.scale.shape == (rows, (cols + 127) // 128)
    assert got.data.dtype == (torch.float8_e4m3fn if fmt == "e4m3" else torch.float8_e5m2)
    assert torch.equal(got.scale, ref.scale)
    assert torch.equal(codes(got), codes(ref))
    assert_quantization_bound(got, x.t() if transpose else x, fmt)


def test_rounding_is_nearest_even_at_exponent_carry() -> None:
    # 124.3 lies between E4M3 codes 120 and 128: nearest is 128 (a carry into the exponent);
    # 124.0 is a tie between 120 (odd mantissa) and 128 (even) and must go to 128; 116.0
    # ties between 112 (even) and 120 (odd) and must go to 112.
    x = torch.tensor([[448.0, 124.3, 124.0, 116.0, -124.0, 2.0**-10, 3 * 2.0**-10, 0.0]])
    q = quantize_activation(x, backend="triton")
    assert q.scale.item() == 1.0
    assert q.data.float().tolist() == [[448.0, 128.0, 128.0, 112.0, -128.0, 0.0, 2.0**-8, 0.0]]
    assert torch.equal(codes(q), codes(quantize_activation_ref(x)))


def test_zero_block_gets_finite_scale_and_zero_codes() -> None:
    w = torch.zeros(130, 256)
    w[:, 128:] = torch.randn(130, 128)
    q = quantize_weight(w, backend="triton")
    assert torch.isfinite(q.scale).all()
    assert (q.data[:128, :128].float() == 0).all()
    assert torch.equal(q.scale, quantize_weight_ref(w).scale)


def test_bound_check_catches_a_corrupted_scale() -> None:
    w = torch.randn(256, 256)
    q = quantize_weight(w, backend="triton")
    assert_quantization_bound(q, w, "e4m3")
    bad_scale = q.scale.clone()
    bad_scale[1, 0] *= 1.5
    with pytest.raises(NumericsError):
        assert_quantization_bound(Quantized(q.data, bad_scale, q.block_rows), w, "e4m3")


def test_bound_check_catches_a_transposed_block() -> None:
    x = torch.randn(256, 256)
    q = quantize_weight(x, backend="triton")
    data = q.data.clone()
    data[128:, :128] = q.data[128:, :128].t()
    with pytest.raises(NumericsError):
        assert_quantization_bound(Quantized(data, q.scale, q.block_rows), x, "e4m3")


def test_bound_check_catches_groups_scaled_per_block() -> None:
    # A group kernel that wrote one scale per 128 rows would still "look" quantized.
    x = torch.randn(256, 256) * torch.linspace(0.01, 10, 256)[:, None]
    q = quantize_weight(x)
    expanded = q.scale.repeat_interleave(BLOCK, 0)
    with pytest.raises(NumericsError):
        assert_quantization_bound(Quantized(q.data, expanded, 1), x, "e4m3")


def test_dispatcher_uses_torch_on_cpu_and_refuses_compiled_triton(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    x = torch.randn(4, 8)
    assert resolve_backend("auto", x) == "torch"
    assert resolve_backend("triton", x) == "triton"  # the interpreter is on
    monkeypatch.setenv("TRITON_INTERPRET", "0")
    with pytest.raises(RuntimeError, match="TRITON_INTERPRET"):
        quantize_weight(x, backend="triton")
    with pytest.raises(ValueError, match="unknown backend"):
        resolve_backend("cuda", x)


def test_input_validation() -> None:
    with pytest.raises(ValueError, match="2-D"):
        quantize_weight(torch.randn(4, 4, 4))
    with pytest.raises(ValueError, match="unknown FP8 format"):
        quantize_activation(torch.randn(4, 4), "e3m4")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="float16/bfloat16"):
        quantize_activation(torch.ones(4, 4, dtype=torch.int32))
