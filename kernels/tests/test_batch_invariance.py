"""Batch invariance of the FP8 flow: a token's result never depends on the batch around it.

Jet-RL is on-policy only if the rollout (decode: M = a few rows, no grad, KV cache) and the
trainer (padded batches of thousands of rows, autograd) compute the same numbers. These
tests pin the property for every backend ``FP8Config.backend`` accepts, on CPU: the torch
reference and the Triton kernels under the interpreter (the root conftest sets
``TRITON_INTERPRET=1``), plus the selection logic that decides which kernel runs on CUDA.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

import pytest
import torch
from torch import nn

from gantry.kernels import fp8_gemm as gemm_mod
from gantry.kernels._common import BLOCK
from gantry.kernels.fp8_gemm import fp8_gemm, fp8_gemm_ref, gemm_config, select_backend
from gantry.kernels.fp8_linear import FP8Config, FP8Linear, fp8_linear
from gantry.kernels.fp8_quant import Quantized, quantize_activation, quantize_weight
from gantry.kernels.numerics import relative_error
from gantry.kernels.recipes import get_recipe
from gantry.models.loading import load_causal_lm
from gantry.models.tiny import tiny_model_dir

BACKENDS = ("torch", "triton")


# ---- selection: a function of the device, never of M or grad mode ---------------------------


class _FakeCuda(torch.Tensor):
    """A CPU tensor that claims to live on CUDA, to drive the CUDA branch of the dispatcher."""

    @property
    def is_cuda(self) -> bool:  # type: ignore[override]
        return True

    @property
    def device(self) -> torch.device:  # type: ignore[override]
        return torch.device("cuda", 0)


def _on_fake_cuda(q: Quantized) -> Quantized:
    return Quantized(q.data.as_subclass(_FakeCuda), q.scale.as_subclass(_FakeCuda), q.block_rows)


@pytest.fixture
def chosen(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Record which GEMM implementation ran. The stand-in for cuBLASLt refuses a ragged M,
    as a shape probe would: a dispatcher that falls back on refusal picks by M."""
    ran: list[str] = []

    def scaled_mm(a: Quantized, b: Quantized, out_dtype: torch.dtype) -> torch.Tensor:
        if a.shape[0] % BLOCK:
            raise RuntimeError("cuBLASLt: unsupported shape")
        ran.append("scaled_mm")
        return torch.zeros(a.shape[0], b.shape[0])

    def recorder(name: str) -> Callable[..., torch.Tensor]:
        def run(a: Quantized, b: Quantized, out_dtype: torch.dtype) -> torch.Tensor:
            ran.append(name)
            return torch.zeros(a.shape[0], b.shape[0])

        return run

    monkeypatch.setattr(gemm_mod, "_gemm_scaled_mm", scaled_mm)
    monkeypatch.setattr(gemm_mod, "_gemm_triton", recorder("triton"))
    monkeypatch.setattr(gemm_mod, "fp8_gemm_ref", recorder("torch"))
    # Some torch builds lack the block-scaled API; the dispatcher must not care either way.
    monkeypatch.setattr(torch.nn.functional, "scaled_mm", lambda *a, **k: None, raising=False)
    return ran


@pytest.mark.parametrize("backend", ["auto", "triton", "torch"])
def test_cuda_selection_ignores_m_alignment_grad_mode_and_role(
    chosen: list[str], backend: str
) -> None:
    k, n = 256, 256
    w = _on_fake_cuda(quantize_weight(torch.randn(n, k)))
    for m in (1, 100, 128, 256, 300):
        x = torch.randn(m, k)
        act = _on_fake_cuda(quantize_activation(x))  # forward / dgrad role: A groups, B blocks
        act_t = _on_fake_cuda(quantize_activation(torch.randn(m, n)))  # wgrad role: groups
        for grad in (False, True):
            with torch.set_grad_enabled(grad):
                fp8_gemm(act, w, backend=backend)  # type: ignore[arg-type]
                fp8_gemm(act_t, act_t, backend=backend)  # type: ignore[arg-type]
    assert len(chosen) == 5 * 2 * 2
    assert set(chosen) == {"torch" if backend == "torch" else "triton"}, chosen


def test_cpu_selection_is_the_reference_and_scaled_mm_is_opt_in() -> None:
    cpu, cuda = torch.device("cpu"), torch.device("cuda", 0)
    assert select_backend("auto", cpu) == "torch"
    assert select_backend("auto", cuda) == "triton"
    assert select_backend("scaled_mm", cuda) == "scaled_mm"
    with pytest.raises(ValueError, match="unknown backend"):
        select_backend("cublas", cpu)
    # Neither function can see M: they are not given it.
    assert list(inspect.signature(select_backend).parameters) == ["backend", "device"]
    assert list(inspect.signature(gemm_config).parameters) == ["n", "k"]


def test_triton_launch_config_is_the_same_for_every_m(monkeypatch: pytest.MonkeyPatch) -> None:
    launches: list[dict[str, Any]] = []

    class Kernel:
        def __getitem__(self, grid: tuple[int, ...]) -> Callable[..., None]:
            def launch(*args: Any, **meta: Any) -> None:
                launches.append(meta)

            return launch

    monkeypatch.setattr(gemm_mod, "_fp8_gemm_kernel", Kernel())
    w = quantize_weight(torch.randn(192, 256))
    for m in (1, 7, 64, 65, 128, 129, 1000):
        gemm_mod._gemm_triton(quantize_activation(torch.randn(m, 256)), w, torch.float32)
    assert len(launches) == 7
    assert all(meta == launches[0] for meta in launches), launches


# ---- numerics: bit-for-bit rows, real kernels ------------------------------------------------


def _layer(backend: str, k: int = 256, n: int = 192) -> FP8Linear:
    torch.manual_seed(1)
    layer = FP8Linear(k, n, bias=True, config=FP8Config(backend=backend))  # type: ignore[arg-type]
    with torch.no_grad():
        layer.bias.normal_()  # type: ignore[union-attr]
    return layer


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.slow
def test_a_rows_output_depends_on_nothing_but_the_row(backend: str) -> None:
    """M = 1 (decode), M = 64/65 (tile edges), a padded batch and shuffled batch-mates all
    give the rows of the full batch, bit for bit; so does the autograd forward."""
    k = 1024 if backend == "torch" else 256  # the interpreter is slow; BLAS blocks by K
    layer = _layer(backend, k=k)
    torch.manual_seed(2)
    x = torch.randn(130, k)  # float32 output: no bf16 rounding to hide an ulp
    with torch.no_grad():
        full = layer(x)
        for rows in (slice(0, 1), slice(64, 65), slice(3, 130)):
            assert torch.equal(layer(x[rows]), full[rows]), rows
        padded = torch.cat([x[:5], torch.zeros(59, k, dtype=x.dtype)])  # padded to 64 rows
        assert torch.equal(layer(padded)[:5], full[:5])
        perm = torch.randperm(130)
        assert torch.equal(layer(x[perm]), full[perm])
        mates = torch.cat([x[7:8], 100.0 * torch.randn(40, k).to(x.dtype)])
        assert torch.equal(layer(mates)[:1], full[7:8])  # loud batch-mates change nothing
    trained = layer(x.clone().requires_grad_())
    assert trained.requires_grad
    assert torch.equal(trained.detach(), full)


@pytest.mark.parametrize("backend", BACKENDS)
def test_grad_and_no_grad_quantize_the_weight_identically(backend: str) -> None:
    # The functional path (no layer cache) and the layer's cache, grad on and off.
    torch.manual_seed(3)
    w = torch.randn(192, 256) * 0.05
    x = torch.randn(9, 256).to(torch.bfloat16)
    cfg = FP8Config(backend=backend)  # type: ignore[arg-type]
    with torch.no_grad():
        no_grad = fp8_linear(x, w, config=cfg)
    with_grad = fp8_linear(x.clone().requires_grad_(), w.clone().requires_grad_(), config=cfg)
    assert torch.equal(with_grad.detach(), no_grad)
    layer = _layer(backend)
    with torch.no_grad():
        cached = layer(x)  # fills the cache without Wᵀ
    trained = layer(x)  # needs Wᵀ: same function, same codes
    assert torch.equal(trained.detach(), cached)
    trained.float().sum().backward()  # type: ignore[no-untyped-call]
    assert layer.weight.grad is not None and torch.isfinite(layer.weight.grad).all()


def test_old_float32_reference_matmul_was_not_batch_invariant() -> None:
    """Why the reference is computed per K slice in float64: a float32 GEMM of the same
    dequantized operands can round a row differently for another M (BLAS blocking)."""
    torch.manual_seed(0)
    a = quantize_activation(torch.randn(300, 1024))
    b = quantize_weight(torch.randn(512, 1024))
    f32 = a.dequantize() @ b.dequantize().t()
    a1 = Quantized(a.data[:1], a.scale[:1], 1)
    assert not torch.equal((a1.dequantize() @ b.dequantize().t())[0], f32[0])
    assert torch.equal(fp8_gemm_ref(a1, b, torch.float32)[0], fp8_gemm_ref(a, b, torch.float32)[0])


# ---- in a model: every FP8 layer is a row-wise function --------------------------------------


def _capture(model: nn.Module) -> tuple[list[tuple[str, torch.Tensor, torch.Tensor]], list[Any]]:
    seen: list[tuple[str, torch.Tensor, torch.Tensor]] = []
    hooks = []
    for name, module in model.named_modules():
        if isinstance(module, FP8Linear):

            def hook(mod: nn.Module, args: Any, out: torch.Tensor, name: str = name) -> None:
                x = args[0].detach()
                seen.append(
                    (name, x.reshape(-1, x.shape[-1]), out.detach().reshape(-1, out.shape[-1]))
                )

            hooks.append(module.register_forward_hook(hook))
    return seen, hooks


def test_fp8_layers_are_row_wise_inside_a_decoding_model() -> None:
    """Tiny Qwen3 under fp8-jet: full forward vs KV-cache decode vs a left-padded batch vs
    grad mode. Wherever an FP8 layer sees a bitwise-equal input row in two runs, its output
    row is bitwise equal. (Attention and lm_head are torch's own ops; they may differ by an
    ulp between these runs on CPU, which is why the check is per layer input.) The torch
    backend here; the Triton kernel's row invariance is the layer tests above (the
    interpreter is too slow for a whole model in the suite budget)."""
    backend = "torch"
    bundle = load_causal_lm(tiny_model_dir("causal_lm"), dtype="float32")
    model = bundle.model.train(False)
    recipe = get_recipe("fp8-jet")
    recipe.apply(model, "rollout")
    for m in model.modules():
        if isinstance(m, FP8Linear):
            m.config = FP8Config(backend=backend)  # type: ignore[arg-type]
    torch.manual_seed(4)
    ids = torch.randint(0, 200, (2, 6))
    seen, hooks = _capture(model)
    with torch.no_grad():
        model(ids)
        out = model(ids[:, :5], use_cache=True)
        model(ids[:, 5:], past_key_values=out.past_key_values, use_cache=True)
        mask = torch.ones(2, 8, dtype=torch.long)
        mask[:, :2] = 0
        model(torch.cat([torch.zeros(2, 2, dtype=torch.long), ids], 1), attention_mask=mask)
    model(ids)  # grad mode (parameters require grad)
    for h in hooks:
        h.remove()
    table: dict[tuple[str, bytes], torch.Tensor] = {}
    matched = 0
    for name, xs, ys in seen:
        for x_row, y_row in zip(xs, ys, strict=True):
            key = (name, x_row.contiguous().view(torch.uint8).numpy().tobytes())
            if key in table:
                assert torch.equal(table[key], y_row), name
                matched += 1
            else:
                table[key] = y_row
    # At least the first layer's q/k/v rows (embedding + RMSNorm: row-wise) recur in all runs.
    assert matched >= 3 * 2 * 6


def test_persistent_tma_kernel_matches_the_tiled_kernel_and_float64() -> None:
    """The Hopper variant (persistent programs, TMA descriptors): same tile config, same
    K-ordered reduction, so the same bits as the tiled kernel and the same rows for any M.
    Its speed needs a GPU (benchmarks/gpu_checks.py)."""
    torch.manual_seed(5)
    a = quantize_activation(torch.randn(130, 144))
    b = quantize_weight(torch.randn(192, 144))
    full = fp8_gemm(a, b, out_dtype=torch.float32, backend="triton_persistent")
    assert torch.equal(full, fp8_gemm(a, b, out_dtype=torch.float32, backend="triton"))
    one = Quantized(a.data[5:6], a.scale[5:6], 1)
    assert torch.equal(
        fp8_gemm(one, b, out_dtype=torch.float32, backend="triton_persistent")[0], full[5]
    )
    # The descriptor loads and tl.dot themselves (the GPU path), against float64.
    tma = gemm_mod._gemm_triton_persistent(a, b, torch.float32, ordered=False)
    truth = a.dequantize(torch.float64) @ b.dequantize(torch.float64).t()
    assert relative_error(tma, truth) < 1e-6
