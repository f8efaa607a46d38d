"""GPU checks for the FP8 kernels: correctness on the device, then speed against BF16.

    .venv/bin/python benchmarks/gpu_checks.py            # needs a CUDA GPU (Hopper for FP8)

On a machine without CUDA it prints that nothing was measured and exits 0.

Measured (median of CUDA-event timings after warm-up):

1. FP8 GEMM TFLOP/s at 4096³ and 8192³ (1×128 activation groups × 128×128 weight blocks,
   operands pre-quantized, BF16 output): the Triton kernel and
   ``torch.nn.functional.scaled_mm`` (cuBLASLt block scaling), each against BF16
   ``torch.matmul`` on the same shape. The faster FP8 path should become the CUDA default
   of ``gantry.kernels.fp8_gemm`` (Triton today).
2. Quantization kernels GB/s (bytes read + written) against the device's copy bandwidth
   (``Tensor.copy_`` of the same BF16 tensor, 2 bytes read + 2 written per element).
3. FP8Linear forward+backward against BF16 ``nn.Linear`` for an 8B-like SwiGLU MLP
   (hidden 4096, intermediate 14336, 8192 tokens).

Before timing, every Triton kernel is checked on the device against the torch reference
(quantization bit-exact, GEMM relative error ≤ 1e-3); a failure is reported and its
timings are skipped.
"""

from __future__ import annotations

import argparse
import statistics
import sys
from collections.abc import Callable
from dataclasses import replace
from functools import partial

import torch
from torch import nn

from gantry.kernels._common import HAS_TRITON
from gantry.kernels.fp8_gemm import fp8_gemm, fp8_gemm_ref
from gantry.kernels.fp8_linear import FP8Config, FP8Linear
from gantry.kernels.fp8_quant import (
    quantize_activation,
    quantize_activation_ref,
    quantize_weight,
    quantize_weight_ref,
    quantize_weight_with_transpose,
)
from gantry.kernels.numerics import relative_error

Timer = Callable[[Callable[[], object]], float]


def cuda_timer(fn: Callable[[], object], warmup: int = 5, reps: int = 20) -> float:
    """Median milliseconds of ``fn`` over ``reps`` runs, timed with CUDA events."""
    for _ in range(warmup):
        fn()
    torch.cuda.synchronize()
    times = []
    for _ in range(reps):
        start = torch.cuda.Event(enable_timing=True)  # type: ignore[no-untyped-call]
        end = torch.cuda.Event(enable_timing=True)  # type: ignore[no-untyped-call]
        start.record()
        fn()
        end.record()
        torch.cuda.synchronize()
        times.append(start.elapsed_time(end))
    return float(statistics.median(times))


def row(*cells: object) -> None:
    print("".join(f"{c:<34}" if i == 0 else f"{c!s:>16}" for i, c in enumerate(cells)))


def check_kernels(device: str) -> list[str]:
    """Device-side correctness against the torch reference; returns the failures."""
    failures = []
    x = torch.randn(300, 520, device=device, dtype=torch.bfloat16)
    for fmt in ("e4m3", "e5m2"):
        for transpose in (False, True):
            got = quantize_activation(x, fmt, transpose=transpose, backend="triton")
            ref = quantize_activation_ref(x, fmt, transpose=transpose)
            same = torch.equal(got.data.view(torch.uint8), ref.data.view(torch.uint8))
            if not (same and torch.equal(got.scale, ref.scale)):
                failures.append(f"group quant {fmt} transpose={transpose}")
    q, qt = quantize_weight_with_transpose(x, backend="triton")
    ref = quantize_weight_ref(x)
    if not (
        torch.equal(q.data.view(torch.uint8), ref.data.view(torch.uint8))
        and torch.equal(qt.data.view(torch.uint8), ref.data.view(torch.uint8).t())
        and torch.equal(q.scale, ref.scale)
    ):
        failures.append("block quant")
    a = quantize_activation(torch.randn(384, 512, device=device))
    b = quantize_weight(torch.randn(640, 512, device=device))
    ref_c = fp8_gemm_ref(a, b, torch.float32)
    if relative_error(fp8_gemm(a, b, out_dtype=torch.float32, backend="triton"), ref_c) > 1e-3:
        failures.append("triton gemm")
    # "auto" (scaled_mm where usable) on all three recipes FP8Linear uses, odd shapes too.
    for m, n, k in ((384, 640, 512), (300, 520, 200)):
        x1, x2 = torch.randn(m, k, device=device), torch.randn(n, k, device=device)
        for a, b in (
            (quantize_activation(x1), quantize_weight(x2)),
            (quantize_activation(x1), quantize_activation(x2)),
        ):
            prod = fp8_gemm(a, b, out_dtype=torch.float32, backend="auto")
            if relative_error(prod, fp8_gemm_ref(a, b, torch.float32)) > 1e-2:
                failures.append(f"auto gemm {m}x{n}x{k} B rows {b.block_rows}")
    return failures


def scaled_mm_status(device: str) -> str | None:
    """None when the cuBLASLt block-scaled path works and matches the reference, else why not."""
    a = quantize_activation(torch.randn(256, 512, device=device))
    b = quantize_weight(torch.randn(384, 512, device=device))
    try:
        got = fp8_gemm(a, b, out_dtype=torch.bfloat16, backend="scaled_mm")
    except Exception as exc:  # unsupported GPU / CUDA / layout: reported, not fatal
        return f"{type(exc).__name__}: {str(exc).splitlines()[0][:80]}"
    err = relative_error(got, fp8_gemm_ref(a, b, torch.float32))
    return None if err <= 1e-2 else f"wrong result (relative error {err:.2e})"


def gemm_table(device: str, sizes: list[int], timer: Timer, use_scaled_mm: bool) -> None:
    print("\nFP8 GEMM (1x128 groups x 128x128 blocks, bf16 out) vs BF16 torch.matmul")
    row("shape", "bf16 TFLOP/s", "triton TFLOP/s", "triton/bf16", "scaled_mm TF/s", "scaled/bf16")
    for n in sizes:
        flops = 2.0 * n**3
        x = torch.randn(n, n, device=device, dtype=torch.bfloat16)
        w = torch.randn(n, n, device=device, dtype=torch.bfloat16)
        a, b = quantize_activation(x), quantize_weight(w)
        bf16 = flops / timer(partial(torch.matmul, x, w.t())) / 1e9
        tri = flops / timer(partial(fp8_gemm, a, b, backend="triton")) / 1e9
        cells: list[object] = [f"{n}x{n}x{n}", f"{bf16:.0f}", f"{tri:.0f}", f"{tri / bf16:.2f}x"]
        if use_scaled_mm:
            sm = flops / timer(partial(fp8_gemm, a, b, backend="scaled_mm")) / 1e9
            cells += [f"{sm:.0f}", f"{sm / bf16:.2f}x"]
        else:
            cells += ["n/a", "n/a"]
        row(*cells)
        del x, w, a, b


def quant_table(device: str, n: int, timer: Timer) -> None:
    print(f"\nQuantization kernels on a {n}x{n} bf16 tensor vs copy bandwidth")
    row("kernel", "GB/s", "copy GB/s", "of copy")
    x = torch.randn(n, n, device=device, dtype=torch.bfloat16)
    dst = torch.empty_like(x)
    elems = x.numel()
    copy = 4.0 * elems / timer(lambda: dst.copy_(x)) / 1e6
    scales_128 = 4.0 * elems / 128
    cases: list[tuple[str, Callable[[], object], float]] = [
        ("block 128x128 (W)", lambda: quantize_weight(x), 3.0 * elems),
        ("block 128x128 (W and W^T)", lambda: quantize_weight_with_transpose(x), 4.0 * elems),
        ("group 1x128 e4m3", lambda: quantize_activation(x), 3.0 * elems + scales_128),
        (
            "group 1x128 e4m3 transposed",
            lambda: quantize_activation(x, transpose=True),
            3.0 * elems + scales_128,
        ),
        ("group 1x128 e5m2", lambda: quantize_activation(x, "e5m2"), 3.0 * elems + scales_128),
    ]
    for name, fn, nbytes in cases:
        gbs = nbytes / timer(fn) / 1e6
        row(name, f"{gbs:.0f}", f"{copy:.0f}", f"{gbs / copy:.0%}")


class MLP(nn.Module):
    def __init__(self, hidden: int, inter: int, device: str) -> None:
        super().__init__()
        kw: dict[str, object] = {"bias": False, "device": device, "dtype": torch.bfloat16}
        self.gate_proj = nn.Linear(hidden, inter, **kw)  # type: ignore[arg-type]
        self.up_proj = nn.Linear(hidden, inter, **kw)  # type: ignore[arg-type]
        self.down_proj = nn.Linear(inter, hidden, **kw)  # type: ignore[arg-type]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = self.down_proj(nn.functional.silu(self.gate_proj(x)) * self.up_proj(x))
        return out


def linear_table(device: str, hidden: int, inter: int, tokens: int, timer: Timer) -> None:
    from gantry.kernels.fp8_linear import convert_linear_layers

    print(f"\nSwiGLU MLP forward+backward, hidden {hidden}, intermediate {inter}, {tokens} tokens")
    row("layers", "fwd ms", "fwd+bwd ms", "fwd+bwd speedup")
    bf16 = MLP(hidden, inter, device)
    fp8 = MLP(hidden, inter, device)
    fp8.load_state_dict(bf16.state_dict())
    convert_linear_layers(fp8, config=FP8Config(backend="triton"))
    fp8_auto = MLP(hidden, inter, device)
    fp8_auto.load_state_dict(bf16.state_dict())
    convert_linear_layers(fp8_auto, config=FP8Config(backend="auto"))
    x = torch.randn(tokens, hidden, device=device, dtype=torch.bfloat16, requires_grad=True)
    dy = torch.randn(tokens, hidden, device=device, dtype=torch.bfloat16)
    results = {}
    models = (("bf16 nn.Linear", bf16), ("FP8Linear (Triton)", fp8), ("FP8Linear (auto)", fp8_auto))
    for name, model in models:

        def step(model: nn.Module = model) -> None:
            model(x).backward(dy)

        def fwd(model: nn.Module = model) -> None:
            with torch.no_grad():
                model(x)

        results[name] = (timer(fwd), timer(step))
    base = results["bf16 nn.Linear"][1]
    for name, (f, fb) in results.items():
        row(name, f"{f:.2f}", f"{fb:.2f}", f"{base / fb:.2f}x")
    layer = next(m for m in fp8.modules() if isinstance(m, FP8Linear))
    assert layer.config == replace(FP8Config(), backend="triton")
    from gantry.kernels.fp8_gemm import _SCALED_MM_USABLE

    print("auto's scaled_mm probe (device, A rows, B rows, M/N/K aligned):", _SCALED_MM_USABLE)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sizes", type=int, nargs="+", default=[4096, 8192])
    parser.add_argument("--quant-size", type=int, default=8192)
    parser.add_argument("--tokens", type=int, default=8192)
    args = parser.parse_args()
    if not torch.cuda.is_available():
        print(
            f"gpu_checks: no CUDA device on this machine (torch {torch.__version__}); "
            "nothing was measured. Run this script on a GPU host (Hopper for FP8)."
        )
        return 0
    if not HAS_TRITON:
        print("gpu_checks: triton is not installed (pip install 'gantry-kernels[triton]')")
        return 0
    device = "cuda"
    props = torch.cuda.get_device_properties(0)
    print(f"device {props.name} (sm_{props.major}{props.minor}), torch {torch.__version__}")
    if props.major < 9:
        print("gpu_checks: FP8 tensor cores need sm_89+/sm_90; results would be meaningless")
        return 0
    torch.manual_seed(0)
    failures = check_kernels(device)
    print("device correctness vs reference:", "ok" if not failures else f"FAILED {failures}")
    scaled = scaled_mm_status(device)
    print(
        "torch scaled_mm block-scaled path:", "ok" if scaled is None else f"unavailable ({scaled})"
    )
    if failures:
        return 1
    gemm_table(device, args.sizes, cuda_timer, scaled is None)
    quant_table(device, args.quant_size, cuda_timer)
    linear_table(device, 4096, 14336, args.tokens, cuda_timer)
    return 0


if __name__ == "__main__":
    sys.exit(main())
