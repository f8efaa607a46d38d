"""The two VLM streams of TwinBrainVLA (asymmetric mixture of transformers).

Both streams are copies of one LLaVA-style checkpoint (a vision tower, a projector and a
decoder-only text model with Llama/Qwen-style layers). The *left* stream is frozen and
runs under `torch.no_grad()`: it only contributes, per layer, its keys and values
(detached). The *right* stream is trainable, carries one extra token holding the
proprioceptive state, and in every layer its queries attend over the concatenation of
the left's keys/values and its own. The hidden states of one chosen right layer condition
the action expert.

The layer loop is written here, on the checkpoint's own modules, because no library
forward exposes "attend over another stream's K/V": each decoder layer's projections,
norms and MLP are reused as they are, only the attention mixing is Gantry's.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from transformers import LlavaForConditionalGeneration


@dataclass
class Prefix:
    """One observation batch as stream inputs: image patches then instruction tokens."""

    pixel_values: torch.Tensor  # float [B, cameras, 3, S, S], normalised for the vision tower
    input_ids: torch.Tensor  # long [B, T], right-padded
    text_mask: torch.Tensor  # bool [B, T], True on real tokens


@dataclass
class LayerKV:
    """Keys and values of one layer (after rotary), [B, kv_heads, N, head_dim]."""

    keys: torch.Tensor
    values: torch.Tensor


@dataclass
class Context:
    """What conditions the action expert: one right-stream layer's hidden states."""

    hidden: torch.Tensor  # [B, N, hidden]
    mask: torch.Tensor  # bool [B, N], True on tokens that exist


def _rotate_half(x: torch.Tensor) -> torch.Tensor:
    half = x.shape[-1] // 2
    return torch.cat((-x[..., half:], x[..., :half]), dim=-1)


def _rope(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    return x * cos.unsqueeze(1) + _rotate_half(x) * sin.unsqueeze(1)


class Stream(nn.Module):
    """One copy of the VLM, run layer by layer."""

    def __init__(self, vlm: LlavaForConditionalGeneration) -> None:
        super().__init__()
        inner = vlm.model
        self.vision_tower = inner.vision_tower
        self.projector = inner.multi_modal_projector
        self.text = inner.language_model
        text_config: Any = vlm.config.text_config
        self.hidden_size = int(text_config.hidden_size)
        self.num_heads = int(text_config.num_attention_heads)
        self.num_kv_heads = int(text_config.num_key_value_heads)
        head_dim = getattr(text_config, "head_dim", None)
        self.head_dim = int(head_dim or self.hidden_size // self.num_heads)
        self.num_layers = len(self.text.layers)

    def embed(self, prefix: Prefix) -> tuple[torch.Tensor, torch.Tensor]:
        """Embeddings [B, P + T, hidden] and their mask: image patches, then text."""
        batch, cameras = prefix.pixel_values.shape[:2]
        pixels = prefix.pixel_values.flatten(0, 1)
        vision = self.vision_tower(pixel_values=pixels).last_hidden_state
        patches = self.projector(vision).reshape(batch, cameras * vision.shape[1], -1)
        words = self.text.embed_tokens(prefix.input_ids)
        image_mask = torch.ones(patches.shape[:2], dtype=torch.bool, device=patches.device)
        return torch.cat([patches, words], dim=1), torch.cat([image_mask, prefix.text_mask], 1)

    def rotary(self, hidden: torch.Tensor, positions: torch.Tensor) -> tuple[torch.Tensor, ...]:
        cos, sin = self.text.rotary_emb(hidden, positions)
        return cos, sin

    def qkv(
        self, index: int, hidden: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor
    ) -> tuple[torch.Tensor, LayerKV]:
        """Queries [B, heads, N, d] and this layer's keys/values for `hidden` [B, N, h]."""
        layer = self.text.layers[index]
        attn = layer.self_attn
        x = layer.input_layernorm(hidden)
        batch, length, _ = x.shape
        q = attn.q_proj(x).view(batch, length, -1, self.head_dim)
        k = attn.k_proj(x).view(batch, length, -1, self.head_dim)
        v = attn.v_proj(x).view(batch, length, -1, self.head_dim)
        if hasattr(attn, "q_norm"):  # Qwen3 normalises queries and keys per head
            q, k = attn.q_norm(q), attn.k_norm(k)
        q, k, v = q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2)
        return _rope(q, cos, sin), LayerKV(_rope(k, cos, sin), v)

    def finish(
        self,
        index: int,
        hidden: torch.Tensor,
        queries: torch.Tensor,
        kv: LayerKV,
        allowed: torch.Tensor,
    ) -> torch.Tensor:
        """Attention over `kv` where `allowed` [B, 1, N, M], then o_proj, residual, MLP."""
        layer = self.text.layers[index]
        mixed = F.scaled_dot_product_attention(
            queries, kv.keys, kv.values, attn_mask=allowed, enable_gqa=True
        )
        batch, _, length, _ = mixed.shape
        mixed = mixed.transpose(1, 2).reshape(batch, length, -1)
        hidden = hidden + layer.self_attn.o_proj(mixed)
        out: torch.Tensor = hidden + layer.mlp(layer.post_attention_layernorm(hidden))
        return out


def _causal(mask: torch.Tensor) -> torch.Tensor:
    """[B, 1, N, N]: query i sees existing keys j <= i (and itself, so no row is empty)."""
    length = mask.shape[1]
    lower = torch.ones(length, length, dtype=torch.bool, device=mask.device).tril()
    allowed = lower.unsqueeze(0) & mask.unsqueeze(1)
    allowed = allowed | torch.eye(length, dtype=torch.bool, device=mask.device).unsqueeze(0)
    return allowed.unsqueeze(1)


class TwinStreams(nn.Module):
    """Left (frozen, optional) and right (trainable) streams up to the conditioning layer.

    With `left=None` this is the single-stream baseline: the same right stream and state
    token, attending over its own tokens only.
    """

    def __init__(
        self,
        right: LlavaForConditionalGeneration,
        left: LlavaForConditionalGeneration | None,
        *,
        state_dim: int,
        cond_layer: int,
    ) -> None:
        super().__init__()
        self.right = Stream(right)
        self.left = Stream(left) if left is not None else None
        if self.left is not None:
            self.left.requires_grad_(False)
            self.left.eval()
        if not 1 <= cond_layer <= self.right.num_layers:
            raise ValueError(f"cond_layer must be in [1, {self.right.num_layers}]")
        self.cond_layer = cond_layer
        self.state_proj = nn.Linear(state_dim, self.right.hidden_size)

    def train(self, mode: bool = True) -> TwinStreams:
        super().train(mode)
        if self.left is not None:
            self.left.eval()  # frozen: no dropout, whatever the caller's mode
        return self

    def left_kv(self, prefix: Prefix) -> tuple[list[LayerKV], torch.Tensor]:
        """The left stream's per-layer K/V (detached) and its token mask."""
        assert self.left is not None
        with torch.no_grad():
            hidden, mask = self.left.embed(prefix)
            positions = _positions(mask)
            cos, sin = self.left.rotary(hidden, positions)
            allowed = _causal(mask)
            cache: list[LayerKV] = []
            for index in range(self.cond_layer):
                queries, kv = self.left.qkv(index, hidden, cos, sin)
                cache.append(LayerKV(kv.keys.detach(), kv.values.detach()))
                if index + 1 < self.cond_layer:  # the last layer's output is never read
                    hidden = self.left.finish(index, hidden, queries, kv, allowed)
        return cache, mask

    def forward(self, prefix: Prefix, state: torch.Tensor) -> Context:
        """Right-stream hidden states of `cond_layer` for the prefix plus the state token."""
        hidden, mask = self.right.embed(prefix)
        state_token = self.state_proj(state).unsqueeze(1)
        hidden = torch.cat([hidden, state_token.to(hidden.dtype)], dim=1)
        mask = torch.cat([mask, torch.ones_like(mask[:, :1])], dim=1)
        positions = _positions(mask)
        cos, sin = self.right.rotary(hidden, positions)
        own = _causal(mask)
        left: list[LayerKV] | None = None
        if self.left is not None:
            left, left_mask = self.left_kv(prefix)
            # Right queries see every existing left token, then their own causal prefix.
            sees_left = left_mask[:, None, None, :].expand(-1, 1, own.shape[2], -1)
            own = torch.cat([sees_left, own], dim=-1)
        for index in range(self.cond_layer):
            queries, kv = self.right.qkv(index, hidden, cos, sin)
            if left is not None:
                kv = LayerKV(
                    torch.cat([left[index].keys, kv.keys], dim=2),
                    torch.cat([left[index].values, kv.values], dim=2),
                )
            hidden = self.right.finish(index, hidden, queries, kv, own)
        return Context(hidden, mask)


def _positions(mask: torch.Tensor) -> torch.Tensor:
    """Position ids that skip padding: the state token follows the last real text token."""
    return (mask.long().cumsum(dim=1) - 1).clamp(min=0)
