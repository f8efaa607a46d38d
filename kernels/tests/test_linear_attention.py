"""Linear attention: Triton (interpreted) vs the torch reference vs a float64 definition."""

from __future__ import annotations

import pytest
import torch

from gantry.kernels.linear_attention import feature_map, linear_attention, linear_attention_ref


def test_reference_is_the_normalised_kernel_sum() -> None:
    q, k, v = (torch.randn(1, 2, 7, 16, dtype=torch.float64) for _ in range(3))
    fq, fk = feature_map(q).double(), feature_map(k).double()
    weights = fq @ fk.transpose(-1, -2)  # [.., N, N] positive kernel values
    want = (weights / weights.sum(-1, keepdim=True)) @ v
    torch.testing.assert_close(linear_attention_ref(q, k, v), want)


@pytest.mark.parametrize("kind", ["softmax", "elu"])
def test_triton_matches_reference(kind: str) -> None:
    q, k, v = (torch.randn(1, 2, 45, 16, requires_grad=True) for _ in range(3))
    out = linear_attention(q, k, v, kind, backend="triton")  # type: ignore[arg-type]
    ref = linear_attention_ref(q, k, v, kind)  # type: ignore[arg-type]
    torch.testing.assert_close(out, ref, atol=1e-5, rtol=1e-4)
    grad = torch.randn_like(out)
    got = torch.autograd.grad(out, (q, k, v), grad)
    want = torch.autograd.grad(ref, (q, k, v), grad)
    for a, b in zip(got, want, strict=True):
        torch.testing.assert_close(a, b)


def test_unknown_feature_map_is_refused() -> None:
    with pytest.raises(ValueError, match="feature map"):
        feature_map(torch.zeros(2), "relu")  # type: ignore[arg-type]
