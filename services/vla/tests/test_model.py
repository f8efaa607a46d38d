"""The two-stream model and the flow-matching expert, on the tiny random VLM."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from gantry.vla.model.expert import FlowMatchingExpert
from gantry.vla.model.policy import PolicyConfig, VlaPolicy
from gantry.vla.model.streams import Prefix, Stream


def _policy(vlm: Path, **config: object) -> VlaPolicy:
    torch.manual_seed(0)
    return VlaPolicy.from_vlm(vlm, PolicyConfig(**config))  # type: ignore[arg-type]


def _inputs(policy: VlaPolicy, batch: int = 2, seed: int = 0) -> tuple[Prefix, torch.Tensor]:
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 256, (batch, 1, 64, 64, 3), dtype=np.uint8)
    texts = ["reach the goal position", "close the drawer"][:batch]
    return policy.prepare(images, texts, rng.normal(size=(batch, 4)))


def test_no_gradient_reaches_the_left_stream(tiny_vlm: Path) -> None:
    policy = _policy(tiny_vlm)
    left = policy.streams.left
    assert left is not None
    # Even a left parameter someone marked trainable gets nothing: it runs under no_grad.
    left.requires_grad_(True)
    # The expert's output layer starts at zero (no gradient upstream yet); open it.
    torch.nn.init.normal_(policy.expert.action_out.weight, std=0.1)
    prefix, state = _inputs(policy)
    policy.loss(prefix, state, torch.zeros(2, 8, 4)).backward()  # type: ignore[no-untyped-call]
    assert all(p.grad is None for p in left.parameters())
    right_grads = [p.grad for p in policy.streams.right.parameters() if p.grad is not None]
    assert right_grads and any(float(g.abs().sum()) > 0 for g in right_grads)
    assert policy.streams.state_proj.weight.grad is not None
    kv, _ = policy.streams.left_kv(prefix)
    assert all(not layer.keys.requires_grad and not layer.values.requires_grad for layer in kv)


def test_frozen_left_is_excluded_from_the_trainable_parameters(tiny_vlm: Path) -> None:
    policy = _policy(tiny_vlm)
    trainable = {id(p) for p in policy.trainable_parameters()}
    assert policy.streams.left is not None
    assert not any(id(p) in trainable for p in policy.streams.left.parameters())
    policy.train()
    assert not policy.streams.left.training  # frozen stream stays in eval mode


def _scaled_values(stream: Stream, factor: float) -> None:
    layers: Any = stream.text.layers
    with torch.no_grad():
        for layer in layers:
            layer.self_attn.v_proj.weight.mul_(factor)


def test_right_stream_attends_to_left_and_to_itself(tiny_vlm: Path) -> None:
    policy = _policy(tiny_vlm).eval()
    prefix, state = _inputs(policy)
    base = policy.context(prefix, state).hidden
    # Left values changed -> the right stream's output changes (it reads the left K/V) ...
    assert policy.streams.left is not None
    _scaled_values(policy.streams.left, 3.0)
    after_left = policy.context(prefix, state).hidden
    assert not torch.allclose(base, after_left, atol=1e-5)
    # ... and its own values matter too.
    _scaled_values(policy.streams.right, 3.0)
    after_right = policy.context(prefix, state).hidden
    assert not torch.allclose(after_left, after_right, atol=1e-5)
    # The state token exists only in the right stream: one more token than the prefix.
    _, left_mask = policy.streams.left_kv(prefix)
    assert policy.context(prefix, state).mask.shape[1] == left_mask.shape[1] + 1


def test_single_stream_baseline_has_no_left_stream(tiny_vlm: Path) -> None:
    policy = _policy(tiny_vlm, architecture="single_stream")
    assert policy.streams.left is None
    twin = _policy(tiny_vlm)
    # Same trainable parts: the comparison changes only the frozen left stream.
    assert sum(p.numel() for p in policy.trainable_parameters()) == sum(
        p.numel() for p in twin.trainable_parameters()
    )
    prefix, state = _inputs(policy)
    assert policy.act(prefix, state, seeds=[0, 1]).shape == (2, 8, 4)


def test_state_token_changes_the_actions(tiny_vlm: Path) -> None:
    policy = _policy(tiny_vlm).eval()
    prefix, state = _inputs(policy)
    torch.nn.init.normal_(policy.expert.action_out.weight, std=0.05)  # zero-init hides it
    a = policy.act(prefix, state, seeds=[3, 3])
    b = policy.act(prefix, state + 1.0, seeds=[3, 3])
    assert not torch.allclose(a, b)


def test_chunk_size_steps_and_layer_are_configurable(tiny_vlm: Path) -> None:
    policy = _policy(tiny_vlm, chunk_size=5, num_denoising_steps=2, cond_layer=1).eval()
    prefix, state = _inputs(policy)
    assert policy.act(prefix, state, seeds=[0, 0]).shape == (2, 5, 4)
    last = _policy(tiny_vlm, chunk_size=5).eval()
    assert last.config.cond_layer == 2  # 0 = the last of the tiny model's 2 layers
    assert not torch.allclose(
        policy.context(prefix, state).hidden, last.context(prefix, state).hidden
    )
    with pytest.raises(ValueError, match="cond_layer"):
        _policy(tiny_vlm, cond_layer=3)


def test_noise_seed_makes_chunks_repeatable(tiny_vlm: Path) -> None:
    policy = _policy(tiny_vlm).eval()
    torch.nn.init.normal_(policy.expert.action_out.weight, std=0.1)
    prefix, state = _inputs(policy)
    same = policy.act(prefix, state, seeds=[7, 7])
    again = policy.act(prefix, state, seeds=[7, 7])
    assert torch.equal(same, again)
    other = policy.act(prefix, state, seeds=[8, 8])
    assert not torch.equal(same, other)


def test_flow_matching_expert_learns_a_chunk() -> None:
    """Rectified flow on one context: sampled chunks move to the demonstrated one."""
    torch.manual_seed(0)
    expert = FlowMatchingExpert(action_dim=2, chunk_size=4, context_dim=8, width=32, depth=1)
    context = torch.randn(1, 3, 8)
    mask = torch.ones(1, 3, dtype=torch.bool)
    target = torch.tensor([[[0.5, -0.5], [0.4, -0.4], [0.3, -0.3], [0.2, -0.2]]])
    noise = torch.randn(16, 4, 2, generator=torch.Generator().manual_seed(1))
    ctx, msk = context.expand(16, -1, -1), mask.expand(16, -1)
    before = (expert.sample(ctx, msk, steps=4, noise=noise) - target).abs().mean()
    optimizer = torch.optim.Adam(expert.parameters(), lr=3e-3)
    for _ in range(150):
        loss = expert.loss(target.expand(16, -1, -1), ctx, msk)
        optimizer.zero_grad()
        loss.backward()  # type: ignore[no-untyped-call]
        optimizer.step()
    after = (expert.sample(ctx, msk, steps=4, noise=noise) - target).abs().mean()
    assert after < 0.25 * before


def test_checkpoint_round_trip(tiny_vlm: Path, tmp_path: Path) -> None:
    policy = _policy(tiny_vlm).eval()
    torch.nn.init.normal_(policy.expert.action_out.weight, std=0.1)
    policy.config.state_mean, policy.config.state_std = [0.0] * 4, [2.0] * 4
    out = policy.save(tmp_path / "ckpt")
    assert sorted(p.name for p in out.iterdir()) == ["config.json", "model.safetensors", "vlm"]
    loaded = VlaPolicy.load(out)
    assert loaded.config.state_std == [2.0] * 4
    prefix, state = _inputs(policy)
    prefix2, state2 = _inputs(loaded)
    assert torch.equal(
        policy.act(prefix, state, seeds=[1, 2]), loaded.act(prefix2, state2, seeds=[1, 2])
    )
