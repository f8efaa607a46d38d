from __future__ import annotations

from typing import cast

import pytest
import torch
from torch import nn

from gantry.kernels.fp8_linear import (
    FP8Config,
    FP8Linear,
    convert_linear_layers,
    fp8_linear,
    set_fp8_enabled,
)
from gantry.kernels.fp8_quant import quantize_weight
from gantry.kernels.numerics import check_close, relative_error
from gantry.models.loading import load_causal_lm
from gantry.models.tiny import tiny_model_dir

# Stated tolerances against float64 (random normal data; measured ~2 % forward, ~3.7 %
# E4M3 gradients, ~5.7 % E5M2 gradients).
FWD_REL = 0.05
GRAD_REL = {"e4m3": 0.06, "e5m2": 0.09}


def run(
    x: torch.Tensor, w: torch.Tensor, b: torch.Tensor, dy: torch.Tensor, config: FP8Config
) -> tuple[torch.Tensor, ...]:
    x = x.detach().requires_grad_()
    w = w.detach().requires_grad_()
    b = b.detach().requires_grad_()
    y = fp8_linear(x, w, b, config)
    torch.autograd.backward(y, dy)
    assert x.grad is not None and w.grad is not None and b.grad is not None
    return y, x.grad, w.grad, b.grad


def float64_reference(
    x: torch.Tensor, w: torch.Tensor, b: torch.Tensor, dy: torch.Tensor
) -> tuple[torch.Tensor, ...]:
    x64 = x.detach().double().requires_grad_()
    w64 = w.detach().double().requires_grad_()
    b64 = b.detach().double().requires_grad_()
    y = nn.functional.linear(x64, w64, b64)
    torch.autograd.backward(y, dy.double())
    assert x64.grad is not None and w64.grad is not None and b64.grad is not None
    return y, x64.grad, w64.grad, b64.grad


@pytest.mark.parametrize("grad_format", ["e4m3", "e5m2"])
def test_gradients_match_float64_within_tolerance(grad_format: str) -> None:
    # Ragged everywhere: 2*75 tokens, 192 inputs, 160 outputs; BF16 activations, FP32 master.
    x = torch.randn(2, 75, 192).to(torch.bfloat16)
    w, b = torch.randn(160, 192) * 0.05, torch.randn(160)
    dy = torch.randn(2, 75, 160).to(torch.bfloat16)
    config = FP8Config(grad_format=grad_format)  # type: ignore[arg-type]
    y, dx, dw, db = run(x, w, b, dy, config)
    ry, rdx, rdw, rdb = float64_reference(x, w, b, dy)
    # Gradient transport stays BF16; the weight gradient comes back in the master's dtype.
    assert y.dtype == dx.dtype == torch.bfloat16 and dw.dtype == db.dtype == torch.float32
    tol = GRAD_REL[grad_format]
    check_close(y, ry, max_rel=FWD_REL, what="forward")
    check_close(dx, rdx, max_rel=tol, what="dgrad")
    check_close(dw, rdw, max_rel=tol, what="wgrad")
    check_close(db, rdb, max_rel=1e-6, what="bias grad")
    # And the FP8 errors are real: the quantized result is not the float64 one.
    assert relative_error(dw, rdw) > 1e-3


def test_triton_path_equals_reference_path() -> None:
    x = torch.randn(130, 256).to(torch.bfloat16)
    w, b = torch.randn(192, 256) * 0.05, torch.randn(192)
    dy = torch.randn(130, 192).to(torch.bfloat16)
    triton = run(x, w, b, dy, FP8Config(backend="triton"))
    ref = run(x, w, b, dy, FP8Config(backend="torch"))
    for name, got, want in zip(("y", "dx", "dw", "db"), triton, ref, strict=True):
        # BF16 outputs: float32 summation order can flip the last BF16 bit (2^-8 relative).
        check_close(got, want, max_rel=8e-3 if got.dtype == torch.bfloat16 else 1e-5, what=name)


def test_bf16_master_weights_get_bf16_gradients() -> None:
    layer = FP8Linear(64, 96, dtype=torch.bfloat16)
    x = torch.randn(5, 64, dtype=torch.bfloat16, requires_grad=True)
    layer(x).float().square().sum().backward()
    assert x.grad is not None and layer.weight.grad is not None and layer.bias is not None
    assert x.grad.dtype == layer.weight.grad.dtype == torch.bfloat16
    assert layer.bias.grad is not None and layer.bias.grad.dtype == torch.bfloat16


def test_from_linear_shares_parameters_and_disabled_is_plain_linear() -> None:
    linear = nn.Linear(64, 48)
    layer = FP8Linear.from_linear(linear)
    assert layer.weight is linear.weight and layer.bias is linear.bias
    assert list(layer.state_dict()) == list(linear.state_dict())
    x = torch.randn(7, 64)
    fp8_out = layer(x)
    assert not torch.equal(fp8_out, linear(x))
    check_close(fp8_out, linear(x).detach(), max_rel=FWD_REL)
    layer.enabled = False
    assert torch.equal(layer(x), linear(x))


def test_inference_cache_follows_weight_updates() -> None:
    layer = FP8Linear(128, 128, bias=False)
    x = torch.randn(4, 128)
    with torch.no_grad():
        first = layer(x)
        assert torch.equal(layer(x), first)  # cached quantized weight, same numbers
        layer.weight.mul_(2.0)  # an in-place optimizer step bumps the version counter
        second = layer(x)
    check_close(second, 2.0 * first, max_rel=1e-2)
    src = layer.weight.detach().to(torch.bfloat16)
    assert torch.equal(layer._weight_operands(need_t=False)[0].scale, quantize_weight(src).scale)


def test_fp32_master_and_bf16_copy_give_identical_forwards() -> None:
    # The trainer holds float32 masters, the rollout engine the published BF16 copy: with
    # weight_cast=bf16 (the default) both quantize the same weights to the same codes.
    master = torch.randn(96, 192) * 0.05
    x = torch.randn(9, 192).to(torch.bfloat16)
    trainer = fp8_linear(x, master.requires_grad_())
    rollout = fp8_linear(x, master.detach().to(torch.bfloat16))
    assert torch.equal(trainer, rollout)
    direct = fp8_linear(x, master.detach(), config=FP8Config(weight_cast=None))
    assert not torch.equal(direct, rollout)  # quantizing the float32 master differs


def test_converter_on_tiny_qwen3() -> None:
    bundle = load_causal_lm(tiny_model_dir("causal_lm"))
    model = cast(nn.Module, bundle.model).to(torch.bfloat16)
    ids = torch.randint(0, int(bundle.config.vocab_size), (2, 12))
    with torch.no_grad():
        before = model(ids).logits.float()
    converted = convert_linear_layers(model)
    layers = int(bundle.config.num_hidden_layers)
    projections = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
    assert sorted(converted) == sorted(
        f"model.layers.{i}.{'self_attn' if p[0] in 'qkvo' else 'mlp'}.{p}"
        for i in range(layers)
        for p in projections
    )
    assert type(model.lm_head) is nn.Linear
    assert type(model.get_submodule("model.embed_tokens")) is nn.Embedding
    assert convert_linear_layers(model) == []  # idempotent
    # hidden 64 / head 16 / MLP 128: ragged single blocks, handled without padding.
    logits = model(ids).logits.float()
    check_close(logits, before, max_rel=0.1, what="FP8 logits vs BF16 logits")
    assert not torch.equal(logits, before)
    logits.logsumexp(-1).mean().backward()
    grads = [p.grad for n, p in model.named_parameters() if "proj" in n]
    assert all(g is not None and torch.isfinite(g).all() and g.abs().sum() > 0 for g in grads)
    assert set_fp8_enabled(model, False) == len(converted)
    with torch.no_grad():
        assert torch.equal(model(ids).logits.float(), before)


def test_converter_respects_targets_and_never_touches_lm_head() -> None:
    model = nn.ModuleDict(
        {"q_proj": nn.Linear(8, 8), "lm_head": nn.Linear(8, 8), "other": nn.Linear(8, 8)}
    )
    assert convert_linear_layers(model, targets=("q_proj", "lm_head")) == ["q_proj"]
    assert isinstance(model["q_proj"], FP8Linear)
    assert type(model["lm_head"]) is nn.Linear and type(model["other"]) is nn.Linear
