"""SALAD attention for the Wan transformer, as a diffusers attention processor.

Each self-attention layer (`blocks[i].attn1`) gets a `SaladProcessor`: the layer's own
Q/K/V (with Wan's RMS norms and 3D RoPE) feed two branches over the same tokens,

    out = sparse_attention(q, k, v) + g(x) · P(linear_attention(q, k, v))

where the sparse branch keeps a 3D local window plus the top-k key blocks
(`gantry.kernels.sparse_attention`), the linear branch gives global context
(`gantry.kernels.linear_attention`), `P` is a new projection (identity at start) and
`g(x) = clamp(w · mean(x) + b, 0, 1)` a scalar gate per video, zero at start. With the gate
at zero and sparsity 0 the processor computes exactly what Wan's own processor does.

The processors need the latent token grid (frames, rows, columns) for their windows: a
forward pre-hook on the transformer records it in the shared `AttentionRuntime`. The same
runtime carries the per-request settings (mode, sparsity, window) and, for Memory-V2V,
how many leading tokens are memory context and whether to merge them (`memory.py`).
Nothing in diffusers is patched: processors are installed with `set_processor`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import torch
from torch import nn

from gantry.kernels.linear_attention import linear_attention
from gantry.kernels.sparse_attention import block_sparse_attention, select_blocks
from gantry.kernels.sparse_attention import window_block_mask as _window_block_mask
from gantry.kernels.token_merge import merge_tokens, plan_merge

Mode = Literal["dense", "sparse", "salad"]
SALAD_FILE = "salad.safetensors"


@dataclass
class AttentionSettings:
    """What the processors do for the current request."""

    mode: Mode = "dense"
    sparsity: float = 0.0
    window: tuple[int, int, int] = (3, 8, 8)  # latent tokens (frames, rows, columns)
    block_size: int = 64
    merge_keep: float = 1.0  # fraction of memory tokens kept by adaptive merging


@dataclass
class MergeStats:
    """Memory tokens seen by the target queries, summed over layers and steps."""

    before: int = 0
    after: int = 0
    calls: int = 0


@dataclass
class AttentionRuntime:
    """State shared by the processors of one transformer (one request at a time)."""

    settings: AttentionSettings = field(default_factory=AttentionSettings)
    grid: tuple[int, int, int] = (1, 1, 1)
    context_tokens: int = 0  # leading tokens that are memory context
    stats: MergeStats = field(default_factory=MergeStats)
    _windows: dict[tuple[Any, ...], torch.Tensor] = field(default_factory=dict)

    def window_mask(self, n: int, device: torch.device) -> torch.Tensor | None:
        t, h, w = self.grid
        if t * h * w != n:
            return None  # not a video token sequence (e.g. a plain tensor in a unit test)
        key = (self.grid, self.settings.block_size, self.settings.window, device)
        if key not in self._windows:
            mask = _window_block_mask(self.grid, self.settings.block_size, self.settings.window)
            self._windows[key] = mask.to(device)
        return self._windows[key]


def _rope(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Wan's rotary embedding on [B, N, H, D] (interleaved pairs), as diffusers applies it."""
    x1, x2 = x.reshape(*x.shape[:-1], -1, 2).unbind(-1)
    c, s = cos[..., 0::2], sin[..., 1::2]
    out = torch.empty_like(x)
    out[..., 0::2] = x1 * c - x2 * s
    out[..., 1::2] = x1 * s + x2 * c
    return out.type_as(x)


class SaladProcessor(nn.Module):
    """Sparse + gated linear attention for one Wan self-attention layer."""

    def __init__(self, dim: int, inner_dim: int, heads: int, runtime: AttentionRuntime) -> None:
        super().__init__()
        self.heads = heads
        self.runtime = runtime
        self.proj_l = nn.Linear(inner_dim, inner_dim)
        self.gate = nn.Linear(dim, 1)
        self.merge_weight = nn.Linear(inner_dim // heads, 1)
        with torch.no_grad():
            self.proj_l.weight.copy_(torch.eye(inner_dim))
            self.proj_l.bias.zero_()
            self.gate.weight.zero_()
            self.gate.bias.zero_()
            self.merge_weight.weight.zero_()
            self.merge_weight.bias.zero_()

    def gate_value(self, x: torch.Tensor) -> torch.Tensor:
        """g(x) in [0, 1], one per video: [B, 1, 1]."""
        pooled = x.float().mean(dim=1)
        gate: torch.Tensor = self.gate(pooled.to(self.gate.weight.dtype))
        return gate.clamp(0.0, 1.0)[:, :, None]

    def forward(
        self,
        attn: Any,
        hidden_states: torch.Tensor,
        encoder_hidden_states: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        rotary_emb: tuple[torch.Tensor, torch.Tensor] | None = None,
    ) -> torch.Tensor:
        if encoder_hidden_states is not None:
            raise ValueError("SaladProcessor is for self-attention layers (attn1) only")
        query = attn.norm_q(attn.to_q(hidden_states)).unflatten(2, (attn.heads, -1))
        key = attn.norm_k(attn.to_k(hidden_states)).unflatten(2, (attn.heads, -1))
        value = attn.to_v(hidden_states).unflatten(2, (attn.heads, -1))
        plain_q, plain_k = query, key
        if rotary_emb is not None:
            query, key = _rope(query, *rotary_emb), _rope(key, *rotary_emb)
        settings = self.runtime.settings
        out = self._softmax_branch(query, key, value, attention_mask)
        if settings.mode == "salad":
            # Linear attention on the un-rotated features: φ is a softmax over the head dim.
            lin = linear_attention(*(x.transpose(1, 2) for x in (plain_q, plain_k, value)))
            lin = self.proj_l(lin.transpose(1, 2).flatten(2).to(self.proj_l.weight.dtype))
            out = out + (self.gate_value(hidden_states) * lin).to(out.dtype)
        out = attn.to_out[0](out)
        return attn.to_out[1](out)  # type: ignore[no-any-return]

    def _softmax_branch(
        self,
        query: torch.Tensor,
        key: torch.Tensor,
        value: torch.Tensor,
        attention_mask: torch.Tensor | None,
    ) -> torch.Tensor:
        """[B, N, H·D]: dense, or block-sparse, or memory-aware with merged context."""
        settings = self.runtime.settings
        n_ctx = self.runtime.context_tokens
        if n_ctx and settings.merge_keep < 1.0:
            return self._merged_memory_attention(query, key, value, n_ctx).flatten(2)
        q, k, v = (x.transpose(1, 2) for x in (query, key, value))  # [B, H, N, D]
        if settings.mode == "dense" or settings.sparsity <= 0.0:
            from diffusers.models.attention_dispatch import dispatch_attention_fn

            # Exactly Wan's own dense path (same function, same layout).
            dense = dispatch_attention_fn(query, key, value, attn_mask=attention_mask)
            return dense.flatten(2).type_as(query)  # type: ignore[no-any-return]
        mask = select_blocks(
            q.detach(),
            k.detach(),
            block_size=settings.block_size,
            sparsity=settings.sparsity,
            window=self.runtime.window_mask(q.shape[2], q.device),
        )
        out = block_sparse_attention(q, k, v, mask, settings.block_size)
        return out.transpose(1, 2).flatten(2)

    def _merged_memory_attention(
        self, query: torch.Tensor, key: torch.Tensor, value: torch.Tensor, n_ctx: int
    ) -> torch.Tensor:
        """Memory queries attend to merged memory; the video to merged memory + itself.

        Memory keys the video's queries barely attend to are merged into the most similar
        kept ones (learned weights) instead of dropped, so attention costs M·r + N·(r + N)
        instead of (M + N)² for M memory tokens merged to r and N video tokens.
        """
        sdpa = torch.nn.functional.scaled_dot_product_attention
        q, k, v = (x.transpose(1, 2) for x in (query, key, value))  # [B, H, N, D]
        qc, kc, vc = q[:, :, :n_ctx], k[:, :, :n_ctx], v[:, :, :n_ctx]
        qt, kt, vt = q[:, :, n_ctx:], k[:, :, n_ctx:], v[:, :, n_ctx:]
        b, h, m, d = kc.shape
        keep = max(1, math.ceil(self.runtime.settings.merge_keep * m))
        # Importance: attention mass from a pooled video query (cheap, per head).
        pooled = qt.mean(dim=2, keepdim=True)
        importance = (pooled @ kc.transpose(-1, -2) / math.sqrt(d)).softmax(-1)[:, :, 0]
        flat = (b * h, m, d)
        plan = plan_merge(kc.reshape(flat), importance.reshape(b * h, m), keep)
        weight = torch.nn.functional.softplus(self.merge_weight(kc.reshape(flat)))[..., 0]
        km = merge_tokens(kc.reshape(flat), weight, plan).view(b, h, keep, d)
        vm = merge_tokens(vc.reshape(flat), weight, plan).view(b, h, keep, d)
        ctx_out = sdpa(qc, km, vm)
        tgt_out = sdpa(qt, torch.cat([km, kt], 2), torch.cat([vm, vt], 2))
        self.runtime.stats.before += m
        self.runtime.stats.after += keep
        self.runtime.stats.calls += 1
        return torch.cat([ctx_out, tgt_out], 2).transpose(1, 2)


def install_salad(transformer: Any, runtime: AttentionRuntime) -> list[SaladProcessor]:
    """Put a SaladProcessor on every self-attention layer and the grid hook on the model."""
    config = transformer.config
    heads, head_dim = int(config.num_attention_heads), int(config.attention_head_dim)
    inner = heads * head_dim
    device = next(transformer.parameters()).device
    dtype = next(transformer.parameters()).dtype
    processors = []
    for block in transformer.blocks:
        proc = SaladProcessor(inner, inner, heads, runtime).to(device=device, dtype=dtype)
        block.attn1.set_processor(proc)
        processors.append(proc)
    p_t, p_h, p_w = (int(x) for x in config.patch_size)

    def record_grid(module: nn.Module, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        latents = kwargs.get("hidden_states", args[0] if args else None)
        if latents is not None:
            _, _, f, hh, ww = latents.shape
            runtime.grid = (f // p_t, hh // p_h, ww // p_w)

    transformer.register_forward_pre_hook(record_grid, with_kwargs=True)
    return processors


def salad_parameters(transformer: nn.Module) -> dict[str, nn.Parameter]:
    """The new SALAD parameters (projections, gates, merge weights) by state-dict name."""
    return {
        name: param for name, param in transformer.named_parameters() if ".attn1.processor." in name
    }


def save_salad(transformer: nn.Module, path: Path) -> None:
    from safetensors.torch import save_file

    tensors = {k: v.detach().cpu().contiguous() for k, v in salad_parameters(transformer).items()}
    save_file(tensors, str(path))


def load_salad(transformer: nn.Module, path: Path) -> None:
    """Load tuned SALAD weights (safetensors); every name must match an installed processor."""
    from safetensors.torch import load_file

    tensors = load_file(str(path))
    params = salad_parameters(transformer)
    missing = sorted(set(params) - set(tensors))
    unknown = sorted(set(tensors) - set(params))
    if missing or unknown:
        raise ValueError(
            f"{path}: SALAD weights do not fit this model (missing {missing[:3]}, "
            f"unexpected {unknown[:3]})"
        )
    with torch.no_grad():
        for name, param in params.items():
            if tensors[name].shape != param.shape:
                raise ValueError(f"{path}: {name} has shape {tuple(tensors[name].shape)}")
            param.copy_(tensors[name].to(param.dtype))
