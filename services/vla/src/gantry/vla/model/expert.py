"""The flow-matching action expert: a small DiT over a chunk of H actions.

Flow matching (rectified flow): with noise `eps` and a demonstrated chunk `a`, the point
at time `tau` in [0, 1] is `x = (1 - tau) * eps + tau * a` and the expert learns the
velocity `a - eps`. Sampling starts from noise at tau = 0 and takes a few Euler steps to
tau = 1. Each block: self-attention over the chunk, cross-attention to the conditioning
tokens (one right-stream layer), an MLP; tau enters through adaptive layer norm
(shift/scale/gate per sub-layer), zero-initialised so each block starts as the identity.
"""

from __future__ import annotations

import math

import torch
from torch import nn


def timestep_embedding(tau: torch.Tensor, dim: int) -> torch.Tensor:
    """Sinusoidal features of tau in [0, 1] (scaled to the usual 0..1000 range)."""
    half = dim // 2
    freqs = torch.exp(-math.log(10_000.0) * torch.arange(half, device=tau.device) / half)
    angles = tau.float()[:, None] * 1000.0 * freqs[None, :]
    return torch.cat([angles.cos(), angles.sin()], dim=-1)


class DiTBlock(nn.Module):
    def __init__(self, width: int, heads: int) -> None:
        super().__init__()
        self.norm_self = nn.LayerNorm(width, elementwise_affine=False)
        self.self_attn = nn.MultiheadAttention(width, heads, batch_first=True)
        self.norm_cross = nn.LayerNorm(width)
        self.cross_attn = nn.MultiheadAttention(width, heads, batch_first=True)
        self.norm_mlp = nn.LayerNorm(width, elementwise_affine=False)
        self.mlp = nn.Sequential(
            nn.Linear(width, 4 * width), nn.GELU(approximate="tanh"), nn.Linear(4 * width, width)
        )
        self.modulation = nn.Linear(width, 6 * width)
        nn.init.zeros_(self.modulation.weight)
        nn.init.zeros_(self.modulation.bias)

    def forward(
        self, x: torch.Tensor, time: torch.Tensor, context: torch.Tensor, pad: torch.Tensor
    ) -> torch.Tensor:
        shift1, scale1, gate1, shift2, scale2, gate2 = (
            self.modulation(time).unsqueeze(1).chunk(6, dim=-1)
        )
        h = self.norm_self(x) * (1 + scale1) + shift1
        x = x + gate1 * self.self_attn(h, h, h, need_weights=False)[0]
        h = self.norm_cross(x)
        x = x + self.cross_attn(h, context, context, key_padding_mask=pad, need_weights=False)[0]
        h = self.norm_mlp(x) * (1 + scale2) + shift2
        out: torch.Tensor = x + gate2 * self.mlp(h)
        return out


class FlowMatchingExpert(nn.Module):
    """Predicts the flow velocity of an action chunk [B, H, D] given context tokens."""

    def __init__(
        self,
        *,
        action_dim: int,
        chunk_size: int,
        context_dim: int,
        width: int = 128,
        depth: int = 2,
        heads: int = 4,
    ) -> None:
        super().__init__()
        self.action_dim = action_dim
        self.chunk_size = chunk_size
        self.width = width
        self.action_in = nn.Linear(action_dim, width)
        self.position = nn.Parameter(torch.randn(1, chunk_size, width) * 0.02)
        self.time_mlp = nn.Sequential(nn.Linear(width, width), nn.SiLU(), nn.Linear(width, width))
        self.context_in = nn.Linear(context_dim, width)
        self.blocks = nn.ModuleList(DiTBlock(width, heads) for _ in range(depth))
        self.norm_out = nn.LayerNorm(width)
        self.action_out = nn.Linear(width, action_dim)
        nn.init.zeros_(self.action_out.weight)
        nn.init.zeros_(self.action_out.bias)

    def velocity(
        self, x: torch.Tensor, tau: torch.Tensor, context: torch.Tensor, mask: torch.Tensor
    ) -> torch.Tensor:
        time = self.time_mlp(timestep_embedding(tau, self.width).to(x.dtype))
        h = self.action_in(x) + self.position
        ctx = self.context_in(context)
        pad = ~mask
        for block in self.blocks:
            h = block(h, time, ctx, pad)
        out: torch.Tensor = self.action_out(self.norm_out(h))
        return out

    def loss(
        self,
        actions: torch.Tensor,
        context: torch.Tensor,
        mask: torch.Tensor,
        generator: torch.Generator | None = None,
    ) -> torch.Tensor:
        """Flow-matching loss for demonstrated chunks [B, H, D]."""
        batch = actions.shape[0]
        noise = torch.randn(
            actions.shape, generator=generator, device=actions.device, dtype=actions.dtype
        )
        tau = torch.rand(batch, generator=generator, device=actions.device, dtype=actions.dtype)
        point = (1 - tau)[:, None, None] * noise + tau[:, None, None] * actions
        target = actions - noise
        return torch.mean((self.velocity(point, tau, context, mask) - target) ** 2)

    @torch.no_grad()
    def sample(
        self,
        context: torch.Tensor,
        mask: torch.Tensor,
        *,
        steps: int,
        noise: torch.Tensor,
    ) -> torch.Tensor:
        """Integrate from `noise` [B, H, D] (tau = 0) to actions (tau = 1), Euler steps."""
        x = noise
        dt = 1.0 / steps
        for k in range(steps):
            tau = torch.full((x.shape[0],), k * dt, device=x.device)
            x = x + dt * self.velocity(x, tau, context, mask)
        return x
