from __future__ import annotations

import copy
from typing import cast

import pytest
import torch
from torch import nn

from gantry.kernels.fp8_linear import FP8Linear
from gantry.kernels.recipes import RECIPES, get_recipe
from gantry.models.loading import load_causal_lm
from gantry.models.tiny import tiny_model_dir


def test_recipe_table() -> None:
    assert sorted(RECIPES) == ["bf16", "fp8-jet", "fp8-naive"]
    naive, jet, bf16 = get_recipe("fp8-naive"), get_recipe("fp8-jet"), get_recipe("bf16")
    assert (naive.rollout, naive.trainer, naive.on_policy) == ("fp8", "bf16", False)
    assert (jet.rollout, jet.trainer, jet.on_policy) == ("fp8", "fp8", True)
    assert (bf16.rollout, bf16.trainer, bf16.on_policy) == ("bf16", "bf16", True)
    with pytest.raises(ValueError, match="unknown precision recipe"):
        get_recipe("fp4")
    with pytest.raises(ValueError, match="unknown role"):
        jet.precision("critic")  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def base() -> nn.Module:
    model = cast(nn.Module, load_causal_lm(tiny_model_dir("causal_lm")).model)
    return model.to(torch.bfloat16)


def logprobs(model: nn.Module, ids: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        logits = model(ids).logits.float()
    return torch.log_softmax(logits[:, :-1], -1).gather(-1, ids[:, 1:, None])[..., 0]


@pytest.mark.parametrize("name", ["bf16", "fp8-naive", "fp8-jet"])
def test_rollout_and_trainer_forwards_per_recipe(base: nn.Module, name: str) -> None:
    recipe = get_recipe(name)
    rollout, trainer = copy.deepcopy(base), copy.deepcopy(base)
    rollout_fp8 = recipe.apply(rollout, "rollout")
    trainer_fp8 = recipe.apply(trainer, "trainer")
    assert bool(rollout_fp8) == (recipe.rollout == "fp8")
    assert bool(trainer_fp8) == (recipe.trainer == "fp8")
    ids = torch.randint(0, 1024, (3, 16))
    delta = (logprobs(rollout, ids) - logprobs(trainer, ids)).abs().max().item()
    if recipe.on_policy:
        assert delta == 0.0  # the same numbers: on-policy by construction
    else:
        assert delta > 1e-4  # FP8 rollout vs BF16 training: a real mismatch


def test_apply_switches_a_converted_model_back_and_forth(base: nn.Module) -> None:
    model = copy.deepcopy(base)
    ids = torch.randint(0, 1024, (2, 8))
    bf16 = logprobs(model, ids)
    naive = get_recipe("fp8-naive")
    assert len(naive.apply(model, "rollout")) == 14
    fp8 = logprobs(model, ids)
    assert naive.apply(model, "trainer") == []
    assert all(not m.enabled for m in model.modules() if isinstance(m, FP8Linear))
    assert torch.equal(logprobs(model, ids), bf16)
    assert len(get_recipe("fp8-jet").apply(model, "trainer")) == 14
    assert torch.equal(logprobs(model, ids), fp8)


def _linear_dtypes(model: nn.Module, ids: torch.Tensor, train: bool) -> set[torch.dtype]:
    """Output dtypes of every plain linear layer (incl. lm_head) in one forward."""
    seen: set[torch.dtype] = set()
    hooks = [
        m.register_forward_hook(lambda _m, _a, out: seen.add(out.dtype))
        for m in model.modules()
        if type(m) is nn.Linear
    ]
    with torch.set_grad_enabled(train):
        out = model(ids).logits
        if train:
            out.float().logsumexp(-1).mean().backward()
    for h in hooks:
        h.remove()
    return seen


def test_bf16_trainer_computes_in_bf16_over_float32_masters() -> None:
    model = cast(nn.Module, load_causal_lm(tiny_model_dir("causal_lm"), dtype="float32").model)
    ids = torch.randint(0, 200, (2, 8))
    assert _linear_dtypes(model, ids, train=False) == {torch.float32}  # as loaded: fp32
    get_recipe("bf16").apply(model, "trainer")
    assert _linear_dtypes(model, ids, train=True) == {torch.bfloat16}
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    opt.step()
    params = list(model.parameters())
    assert {p.dtype for p in params} == {torch.float32}
    assert {p.grad.dtype for p in params if p.grad is not None} == {torch.float32}
    assert {t.dtype for s in opt.state.values() for t in s.values() if t.dim()} == {torch.float32}
    ref = copy.deepcopy(model)  # the KL reference model keeps the same compute
    assert _linear_dtypes(ref, ids, train=False) == {torch.bfloat16}
    # fp8-naive trains in BF16 as well; fp8-jet keeps float32 around its FP8 projections;
    # a rollout role never autocasts.
    get_recipe("fp8-naive").apply(model, "trainer")
    assert _linear_dtypes(model, ids, train=False) == {torch.bfloat16}
    get_recipe("fp8-jet").apply(model, "trainer")
    assert _linear_dtypes(model, ids, train=False) == {torch.float32}
    get_recipe("bf16").apply(model, "rollout")
    assert _linear_dtypes(model, ids, train=False) == {torch.float32}


def test_bf16_weights_need_no_autocast_in_the_trainer_role() -> None:
    """Over BF16 weights the trainer's forward is the rollout's, no autocast region."""
    from gantry.kernels.recipes import bf16_compute

    model = cast(nn.Module, load_causal_lm(tiny_model_dir("causal_lm"), dtype="bfloat16").model)
    for name in ("bf16", "fp8-naive", "fp8-jet"):
        get_recipe(name).apply(model, "trainer")
        assert not bf16_compute(model), name


def test_bf16_autocast_exits_when_the_forward_raises() -> None:
    model = cast(nn.Module, load_causal_lm(tiny_model_dir("causal_lm"), dtype="float32").model)
    get_recipe("bf16").apply(model, "trainer")
    with pytest.raises(IndexError):
        model(torch.tensor([[10**6]]))  # an id past the vocabulary
    assert not torch.is_autocast_enabled("cpu")
