"""Block-sparse attention: Triton (interpreted) vs the torch reference, and the block rules."""

from __future__ import annotations

import math

import pytest
import torch

from gantry.kernels._common import interpreted
from gantry.kernels.sparse_attention import (
    block_sparse_attention,
    block_sparse_attention_ref,
    dense_token_mask,
    select_blocks,
    window_block_mask,
)


def qkv(n: int, d: int = 16, heads: int = 2) -> list[torch.Tensor]:
    return [torch.randn(1, heads, n, d, requires_grad=True) for _ in range(3)]


def test_kernels_are_interpreted_on_cpu() -> None:
    assert interpreted()


def test_all_blocks_selected_is_dense_attention() -> None:
    q, k, v = qkv(40)
    mask = select_blocks(q, k, block_size=16, sparsity=0.0)
    assert bool(mask.all())
    dense = torch.nn.functional.scaled_dot_product_attention(q, k, v)
    torch.testing.assert_close(block_sparse_attention_ref(q, k, v, mask, 16), dense)


def test_unselected_keys_get_no_weight() -> None:
    q, k, v = (x.detach() for x in qkv(48))
    mask = torch.zeros(1, 2, 3, 3, dtype=torch.bool)
    mask[..., 0, 0] = mask[..., 1, 1] = mask[..., 2, 2] = True  # block diagonal
    out = block_sparse_attention_ref(q, k, v, mask, 16)
    # Changing keys/values of block 2 leaves query blocks 0 and 1 untouched.
    k2, v2 = k.clone(), v.clone()
    k2[..., 32:, :] += 5.0
    v2[..., 32:, :] -= 3.0
    out2 = block_sparse_attention_ref(q, k2, v2, mask, 16)
    assert torch.equal(out[..., :32, :], out2[..., :32, :])
    assert not torch.allclose(out[..., 32:, :], out2[..., 32:, :])


def test_select_blocks_keeps_the_budget_and_the_window() -> None:
    grid, bs = (3, 4, 8), 16  # 96 tokens, 6 blocks (two per frame)
    window = window_block_mask(grid, bs, (1, 4, 8))  # same frame only
    same_frame = torch.block_diag(*[torch.ones(2, 2)] * 3).bool()  # type: ignore[no-untyped-call]
    assert torch.equal(window, same_frame)
    q, k, _ = (x.detach() for x in qkv(96))
    mask = select_blocks(q, k, block_size=bs, sparsity=0.5, window=window)
    assert torch.equal(mask.sum(-1), torch.full((1, 2, 6), 3))
    assert bool((mask | ~window).all())  # every window block is kept


@pytest.mark.parametrize(("n", "sparsity"), [(40, 0.5), (64, 0.0)])
def test_triton_forward_and_backward_match_reference(n: int, sparsity: float) -> None:
    q, k, v = qkv(n)
    mask = select_blocks(q.detach(), k.detach(), block_size=16, sparsity=sparsity)
    out = block_sparse_attention(q, k, v, mask, 16, backend="triton")
    ref = block_sparse_attention_ref(q, k, v, mask, 16)
    torch.testing.assert_close(out, ref, atol=2e-5, rtol=1e-4)
    grad = torch.randn_like(out)
    got = torch.autograd.grad(out, (q, k, v), grad)
    want = torch.autograd.grad(ref, (q, k, v), grad)
    for a, b in zip(got, want, strict=True):
        torch.testing.assert_close(a, b, atol=5e-5, rtol=1e-4)


def test_reference_matches_float64_masked_softmax() -> None:
    q, k, v = (x.detach().double() for x in qkv(33))
    mask = select_blocks(q, k, block_size=16, sparsity=0.4)
    token_mask = dense_token_mask(mask, 33, 16)
    scores = (q @ k.transpose(-1, -2) / math.sqrt(16)).masked_fill(~token_mask, -math.inf)
    torch.testing.assert_close(
        block_sparse_attention_ref(q, k, v, mask, 16), scores.softmax(-1) @ v
    )


def test_bad_shapes_are_refused() -> None:
    q, k, v = (x.detach() for x in qkv(32))
    with pytest.raises(ValueError, match="mask must be bool"):
        block_sparse_attention(q, k, v, torch.ones(1, 2, 3, 3, dtype=torch.bool), 16)
    with pytest.raises(ValueError, match="at least one key block"):
        block_sparse_attention(q, k, v, torch.zeros(1, 2, 2, 2, dtype=torch.bool), 16)
    with pytest.raises(ValueError, match="sparsity"):
        select_blocks(q, k, block_size=16, sparsity=1.0)
