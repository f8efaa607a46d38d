"""Adaptive token merging: the plan, the weighted means, Triton (interpreted) vs reference."""

from __future__ import annotations

import torch

from gantry.kernels.token_merge import merge_tokens, merge_tokens_ref, plan_merge


def test_plan_keeps_the_most_important_and_merges_into_the_nearest() -> None:
    x = torch.tensor([[[1.0, 0.0], [0.0, 1.0], [0.9, 0.1], [0.1, 0.9], [1.0, 0.05]]])
    importance = torch.tensor([[5.0, 4.0, 0.1, 0.2, 0.3]])
    plan = plan_merge(x, importance, keep=2)
    assert plan.kept.tolist() == [[0, 1]]
    assert plan.dest.tolist() == [[0, 1, 0, 1, 0]]


def test_zero_weights_drop_and_weights_blend() -> None:
    x = torch.randn(2, 9, 16)
    plan = plan_merge(x, torch.rand(2, 9), keep=3)
    kept = torch.gather(x, 1, plan.kept[..., None].expand(-1, -1, 16))
    torch.testing.assert_close(merge_tokens_ref(x, torch.zeros(2, 9), plan), kept)
    ones = merge_tokens_ref(x, torch.ones(2, 9), plan)
    for b in range(2):
        for slot in range(3):
            members = x[b, plan.dest[b] == slot]
            torch.testing.assert_close(ones[b, slot], members.mean(0))


def test_triton_matches_reference() -> None:
    x = torch.randn(2, 37, 16, requires_grad=True)
    weight = torch.rand(2, 37, requires_grad=True)
    plan = plan_merge(x.detach(), torch.rand(2, 37), keep=10)
    out = merge_tokens(x, weight, plan, backend="triton")
    ref = merge_tokens_ref(x, weight, plan)
    torch.testing.assert_close(out, ref, atol=1e-5, rtol=1e-5)
    grad = torch.randn_like(out)
    got = torch.autograd.grad(out, (x, weight), grad)
    want = torch.autograd.grad(ref, (x, weight), grad)
    for a, b in zip(got, want, strict=True):
        torch.testing.assert_close(a, b)
