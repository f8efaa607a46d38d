"""GPU checks for the Jet-RL FP8 flow (issue 24): correctness, batch invariance, speed.

    .venv/bin/python benchmarks/gpu_checks.py            # one CUDA GPU (Hopper for FP8), ≤ 8 min
    .venv/bin/python benchmarks/gpu_checks.py --small    # the same script, CPU-sized

Without CUDA (and without ``--small``) it says so and exits 0. Everything ends in one table
(``check | figure | target | verdict``); sections:

1. **Correctness on the device**: the Triton quantizers bit for bit against the torch
   reference (NaN/inf inputs included); every GEMM path (``triton``, ``scaled_mm``) in every
   layout FP8Linear uses (forward: groups x blocks; dgrad: groups x transposed blocks;
   wgrad: groups x groups) against float64, on ragged shapes and K/128 not a multiple of 4.
2. **Batch invariance on the device**: rows of an [M, K] x W product for M = 1 ... 4096
   against the full batch, bit for bit, per backend; FP8Linear grad vs no-grad forward.
3. **GEMM TFLOP/s** per path vs BF16 ``torch.matmul`` at 4096³, 8192³, 8192x14336x4096 and
   8192x4096x14336 (M x N x K; operands pre-quantized, BF16 out). Targets (issue 24):
   ≥ 1.5x BF16 at 8192³ and the two MLP shapes, ≥ 1.3x at 4096³.
4. **Quantizers** (8192² BF16): 1x128 groups, 128x128 blocks, fused W + Wᵀ, transposed groups;
   GB/s against the copy bandwidth and a ``torch.compile`` of the plain formula. Targets:
   ≥ 80% of copy, never slower than the compiled formula.
5. **FP8Linear SwiGLU MLP** (4096 → 14336, 8192 tokens) forward+backward vs BF16: ≥ 1.3x.
6. **Jet-RL mismatch study** (benchmarks/fp8_mismatch.py): gantry-rollout's engine on the
   GPU vs the trainer's padded forward, bf16 / fp8-naive / fp8-jet, random ~0.5B Qwen3;
   decode tokens/s.
"""

from __future__ import annotations

import argparse
import importlib
import math
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

import torch
from torch import nn

from gantry.kernels._common import BLOCK, FP8_MAX, HAS_TRITON, interpreted
from gantry.kernels.fp8_gemm import fp8_gemm
from gantry.kernels.fp8_linear import FP8Config, convert_linear_layers, fp8_linear
from gantry.kernels.fp8_quant import (
    Quantized,
    quantize_activation,
    quantize_activation_ref,
    quantize_weight,
    quantize_weight_ref,
    quantize_weight_with_transpose,
)
from gantry.kernels.numerics import relative_error

Timer = Callable[[Callable[[], object]], float]
GEMM_SHAPES = [(4096, 4096, 4096), (8192, 8192, 8192), (8192, 14336, 4096), (8192, 4096, 14336)]
SMALL_GEMM_SHAPES = [(256, 256, 256), (384, 640, 512)]


@dataclass
class Report:
    """Rows of the final table; a failed correctness check makes the exit status 1."""

    rows: list[tuple[str, str, str, str]] = field(default_factory=list)
    failed: bool = False

    def add(self, check: str, figure: str, target: str = "", ok: bool | None = None) -> None:
        verdict = "" if ok is None else ("ok" if ok else "MISSED")
        self.rows.append((check, figure, target, verdict))
        suffix = f"  (target {target}: {verdict})" if target else ""
        print(f"  {check}: {figure}{suffix}", flush=True)

    def fail(self, check: str, figure: str) -> None:
        self.failed = True
        self.add(check, figure, "correct", False)

    def print(self, title: str) -> None:
        widths = [max(len(r[i]) for r in [("check", "figure", "target", "verdict"), *self.rows])
                  for i in range(4)]  # fmt: skip
        print(f"\n{title}")
        for r in [("check", "figure", "target", "verdict"), *self.rows]:
            print(" | ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)))


def cuda_timer(fn: Callable[[], object], warmup: int = 3, reps: int = 10) -> float:
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


def cpu_timer(fn: Callable[[], object], warmup: int = 1, reps: int = 3) -> float:
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(reps):
        start = time.perf_counter()
        fn()
        times.append((time.perf_counter() - start) * 1e3)
    return float(statistics.median(times))


def bits(t: torch.Tensor) -> torch.Tensor:
    return t.contiguous().view(torch.uint8 if t.element_size() == 1 else torch.int32)


def on(q: Quantized, device: str) -> Quantized:
    return Quantized(q.data.to(device), q.scale.to(device), q.block_rows)


def same(a: Quantized, b: Quantized) -> bool:
    return torch.equal(bits(a.data), bits(b.data)) and torch.equal(bits(a.scale), bits(b.scale))


def gemm_backends(device: str) -> list[str]:
    if device == "cpu":
        return ["torch", "triton"] if interpreted() else ["torch"]
    return ["triton", "triton_persistent", "scaled_mm"]


# ---- 1. correctness ----------------------------------------------------------------------------


def check_quantizers(device: str, report: Report) -> None:
    x = torch.randn(300, 520, device=device, dtype=torch.bfloat16)
    x[5, 7], x[200, 300], x[17, 140] = math.inf, -math.inf, math.nan
    backend = "triton" if device != "cpu" or interpreted() else "torch"
    bad = []
    for fmt in ("e4m3", "e5m2"):
        for t in (False, True):
            got = quantize_activation(x, fmt, transpose=t, backend=backend)  # type: ignore[arg-type]
            if not same(got, on(quantize_activation_ref(x.cpu(), fmt, transpose=t), device)):
                bad.append(f"group {fmt} T={t}")
    q, qt = quantize_weight_with_transpose(x, backend=backend)  # type: ignore[arg-type]
    ref = on(quantize_weight_ref(x.cpu()), device)
    if not (same(q, ref) and torch.equal(bits(qt.data), bits(ref.data).t())):
        bad.append("block W/Wt")
    if bad:
        report.fail("quantizers bitwise vs reference (NaN/inf incl.)", ", ".join(bad))
    else:
        report.add("quantizers bitwise vs reference (NaN/inf incl.)", f"{backend}: identical")


def check_gemm_layouts(device: str, report: Report) -> None:
    shapes = [(300, 520, 200), (384, 640, 640), (256, 512, 512)]  # ragged; K/128 = 5
    for backend in gemm_backends(device):
        worst: dict[str, float] = {}
        errors: list[str] = []
        for m, n, k in shapes:
            x, w = torch.randn(m, k, device=device), torch.randn(n, k, device=device)
            dy = torch.randn(m, n, device=device)
            wq, wq_t = quantize_weight_with_transpose(w)
            layouts = {
                "forward": (quantize_activation(x), wq),
                "dgrad": (quantize_activation(dy, "e5m2"), wq_t),
                "wgrad": (
                    quantize_activation(dy, transpose=True),
                    quantize_activation(x, transpose=True),
                ),
            }
            for name, (a, b) in layouts.items():
                truth = a.dequantize(torch.float64) @ b.dequantize(torch.float64).t()
                try:
                    got = fp8_gemm(a, b, out_dtype=torch.float32, backend=backend)  # type: ignore[arg-type]
                except Exception as exc:  # scaled_mm may lack a recipe: reported, not fatal
                    errors.append(f"{name}: {type(exc).__name__}: {str(exc).splitlines()[0][:60]}")
                    continue
                worst[name] = max(worst.get(name, 0.0), relative_error(got, truth))
        for name, err in worst.items():
            label = f"gemm {backend} {name} vs float64 (rel err)"
            if err > 1e-3:
                report.fail(label, f"{err:.2e} (a layout error?)")
            else:
                report.add(label, f"{err:.2e}", "≤ 1e-3", True)
        for e in sorted(set(errors)):
            report.add(f"gemm {backend} unavailable", e)


# ---- 2. batch invariance -----------------------------------------------------------------------


def check_invariance(device: str, report: Report, big: int) -> None:
    k, n = 1024, 1536
    x = torch.randn(big, k, device=device, dtype=torch.bfloat16)
    w = torch.randn(n, k, device=device, dtype=torch.bfloat16) * 0.05
    wq = quantize_weight(w)
    for backend in ["torch", *gemm_backends(device)] if device != "cpu" else gemm_backends(device):
        try:
            full = fp8_gemm(quantize_activation(x), wq, backend=backend)  # type: ignore[arg-type]
            diffs = []
            for m in (1, 7, 64, 65, 300, big // 2 + 3):
                part = fp8_gemm(quantize_activation(x[-m:]), wq, backend=backend)  # type: ignore[arg-type]
                if not torch.equal(part, full[-m:]):
                    diffs.append(f"M={m}: {(part.float() - full[-m:].float()).abs().max():.1e}")
        except Exception as exc:
            report.add(f"batch invariance {backend}", f"not run ({type(exc).__name__})")
            continue
        label = f"batch invariance {backend} (rows, M=1..{big})"
        if diffs:
            report.add(label, "; ".join(diffs), "bitwise", False)
        else:
            report.add(label, "bitwise equal", "bitwise", True)
    for backend in ("torch", "triton") if device != "cpu" else gemm_backends(device):
        cfg = FP8Config(backend=backend)  # type: ignore[arg-type]
        xs = x[:257]
        with torch.no_grad():
            no_grad = fp8_linear(xs, w, config=cfg)
        grad = fp8_linear(xs.clone().requires_grad_(), w.clone().requires_grad_(), config=cfg)
        ok = torch.equal(grad.detach(), no_grad)
        report.add(f"grad vs no-grad forward {backend}", "bitwise equal" if ok else
                   f"max {(grad.detach().float() - no_grad.float()).abs().max():.1e}",
                   "bitwise", ok)  # fmt: skip


# ---- 3. GEMM speed ---------------------------------------------------------------------------


def gemm_speed(
    device: str, shapes: list[tuple[int, int, int]], timer: Timer, report: Report
) -> None:
    for m, n, k in shapes:
        flops = 2.0 * m * n * k
        x = torch.randn(m, k, device=device, dtype=torch.bfloat16)
        w = torch.randn(n, k, device=device, dtype=torch.bfloat16)
        bf16 = flops / timer(partial(torch.matmul, x, w.t())) / 1e9
        a, b = quantize_activation(x), quantize_weight(w)
        shape = f"{m}x{n}x{k}"
        report.add(f"gemm bf16 {shape}", f"{bf16:.3g} TFLOP/s")
        target = 1.3 if (m, n, k) == (4096, 4096, 4096) else 1.5
        for backend in gemm_backends(device):
            try:
                t = flops / timer(partial(fp8_gemm, a, b, backend=backend)) / 1e9  # type: ignore[arg-type]
            except Exception as exc:
                report.add(f"gemm {backend} {shape}", f"n/a ({type(exc).__name__})")
                continue
            report.add(f"gemm {backend} {shape}", f"{t:.3g} TFLOP/s = {t / bf16:.2f}x bf16",
                       f"≥ {target}x", t / bf16 >= target)  # fmt: skip
        del x, w, a, b


# ---- 4. quantizers -----------------------------------------------------------------------------


def group_formula(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The plain 1x128 formula (K a multiple of 128), for torch.compile."""
    g = x.float().view(x.shape[0], -1, BLOCK)
    s = g.abs().amax(-1, keepdim=True).clamp(min=1e-12) / FP8_MAX["e4m3"]
    q = (g / s).clamp(-448.0, 448.0).to(torch.float8_e4m3fn)
    return q.view(x.shape), s[..., 0]


def block_formula(x: torch.Tensor, with_t: bool) -> tuple[torch.Tensor, ...]:
    n, k = x.shape
    t = x.float().view(n // BLOCK, BLOCK, k // BLOCK, BLOCK)
    s = t.abs().amax(dim=(1, 3), keepdim=True).clamp(min=1e-12) / FP8_MAX["e4m3"]
    q = (t / s).clamp(-448.0, 448.0).to(torch.float8_e4m3fn).view(n, k)
    return (q, s, q.t().contiguous()) if with_t else (q, s)


def quantizer_speed(device: str, size: int, timer: Timer, report: Report) -> None:
    x = torch.randn(size, size, device=device, dtype=torch.bfloat16)
    dst = torch.empty_like(x)
    elems = x.numel()
    copy = 4.0 * elems / timer(lambda: dst.copy_(x)) / 1e6
    report.add(f"copy {size}² bf16", f"{copy:.0f} GB/s")
    scales = 4.0 * elems / BLOCK
    compiled: dict[str, Callable[[], object]] = {}
    if device != "cpu":
        cg = torch.compile(group_formula)
        cb = torch.compile(partial(block_formula, with_t=False))
        cbt = torch.compile(partial(block_formula, with_t=True))
        compiled = {
            "group": lambda: cg(x),
            "block": lambda: cb(x),
            "block+T": lambda: cbt(x),
            "group T": lambda: cg(x.t().contiguous()),
        }
    cases: list[tuple[str, str, Callable[[], object], float]] = [
        ("group 1x128", "group", lambda: quantize_activation(x), 3.0 * elems + scales),
        ("block 128x128 (W)", "block", lambda: quantize_weight(x), 3.0 * elems),
        ("block W + Wᵀ fused", "block+T", lambda: quantize_weight_with_transpose(x), 4.0 * elems),
        ("group 1x128 transposed", "group T", lambda: quantize_activation(x, transpose=True),
         3.0 * elems + scales),
    ]  # fmt: skip
    for name, key, fn, nbytes in cases:
        ms = timer(fn)
        gbs = nbytes / ms / 1e6
        line = f"{gbs:.0f} GB/s = {gbs / copy:.0%} of copy"
        ok = gbs / copy >= 0.8
        if key in compiled:
            cms = timer(compiled[key])
            line += f"; torch.compile formula {nbytes / cms / 1e6:.0f} GB/s"
            ok = ok and ms <= cms * 1.02
        report.add(f"quant {name}", line, "≥ 80% copy, ≥ compiled", ok)


# ---- 5. FP8Linear MLP --------------------------------------------------------------------------


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


def linear_speed(
    device: str, hidden: int, inter: int, tokens: int, timer: Timer, report: Report
) -> None:
    bf16 = MLP(hidden, inter, device)
    fp8 = MLP(hidden, inter, device)
    fp8.load_state_dict(bf16.state_dict())
    convert_linear_layers(fp8, config=FP8Config(backend="auto"))
    x = torch.randn(tokens, hidden, device=device, dtype=torch.bfloat16, requires_grad=True)
    dy = torch.randn(tokens, hidden, device=device, dtype=torch.bfloat16)
    times = {}
    for name, model in (("bf16", bf16), ("fp8", fp8)):

        def step(model: nn.Module = model) -> None:
            model(x).backward(dy)

        times[name] = timer(step)
    ratio = times["bf16"] / times["fp8"]
    report.add(f"FP8Linear SwiGLU {hidden}->{inter}, {tokens} tok, fwd+bwd",
               f"{times['fp8']:.2f} ms vs bf16 {times['bf16']:.2f} ms = {ratio:.2f}x",
               "≥ 1.3x", ratio >= 1.3)  # fmt: skip


# ---- 6. the study ------------------------------------------------------------------------------


def mismatch_study(device: str, small: bool, report: Report) -> None:
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    fp8_mismatch = importlib.import_module("fp8_mismatch")  # benchmarks/ is no package

    argv = ["--device", device] + (["--small", "--tokens", "16", "--samples", "2"] if small else
                                   ["--tokens", "128", "--samples", "4"])  # fmt: skip
    argv += ["--train-dtype", "both"]  # the trainer's BF16 weights (default), float32 before
    tables = fp8_mismatch.study(fp8_mismatch.parser().parse_args(argv))
    for dtype, rows in tables.items():
        for name, r in rows.items():
            report.add(f"mismatch {name}, trainer {dtype}",
                       f"mean|Δlogp| {r['mean_abs']:.2e}, KL {r['kl_k3']:.2e}, prefill KL "
                       f"{r['prefill_kl']:.2e}, {r['tokens_per_s']:.0f} tok/s")  # fmt: skip
    table = tables["bfloat16"]
    bf16, jet, naive = (table[n]["mean_abs"] for n in ("bf16", "fp8-jet", "fp8-naive"))
    ratio = fp8_mismatch.ratio
    report.add("mismatch fp8-jet / bf16", ratio(jet, bf16), "≤ 2x", jet <= 2 * bf16)
    report.add("mismatch fp8-naive / fp8-jet", ratio(naive, jet), "≫ 1", naive > 2 * jet)
    speed = table["fp8-jet"]["tokens_per_s"] / table["bf16"]["tokens_per_s"]
    report.add("decode tok/s fp8-jet / bf16", f"{speed:.2f}x")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--small", action="store_true", help="CPU-sized run of every section")
    parser.add_argument("--skip-study", action="store_true", help="omit section 6")
    args = parser.parse_args()
    cuda = torch.cuda.is_available()
    if not cuda and not args.small:
        print(f"gpu_checks: no CUDA device on this machine (torch {torch.__version__}); nothing "
              "was measured. Run it on a GPU host, or --small for the CPU-sized run.")  # fmt: skip
        return 0
    device = "cuda" if cuda and not args.small else "cpu"
    if device == "cuda":
        props = torch.cuda.get_device_properties(0)
        import triton

        what = f"{props.name} (sm_{props.major}{props.minor}), torch {torch.__version__}, "
        what += f"triton {triton.__version__}"
        if props.major < 9 or not HAS_TRITON:
            print(f"gpu_checks: {what}: FP8 needs sm_89+/sm_90 and triton; nothing measured")
            return 0
        timer: Timer = cuda_timer
    else:
        what = f"CPU-sized run (--small), torch {torch.__version__}"
        timer = cpu_timer
    print(f"gpu_checks on {what}")
    torch.manual_seed(0)
    report = Report()
    started = time.perf_counter()
    print("\n1. correctness on the device")
    check_quantizers(device, report)
    check_gemm_layouts(device, report)
    print("\n2. batch invariance")
    check_invariance(device, report, big=4096 if device == "cuda" else 256)
    print("\n3. GEMM speed")
    gemm_speed(device, GEMM_SHAPES if device == "cuda" else SMALL_GEMM_SHAPES, timer, report)
    print("\n4. quantizers")
    quantizer_speed(device, 8192 if device == "cuda" else 512, timer, report)
    print("\n5. FP8Linear MLP")
    if device == "cuda":
        linear_speed(device, 4096, 14336, 8192, timer, report)
    else:
        linear_speed(device, 256, 512, 128, timer, report)
    if not args.skip_study:
        print("\n6. Jet-RL mismatch study")
        mismatch_study(device, device == "cpu", report)
    report.print(f"Summary ({what}; {time.perf_counter() - started:.0f} s)")
    return 1 if report.failed else 0


if __name__ == "__main__":
    sys.exit(main())
