"""The TwinBrainVLA policy: streams + action expert, its inputs, and its checkpoint.

Checkpoint (the HF-directory convention used across Gantry): `config.json` (this
policy's `PolicyConfig`, with `"model_type": "gantry-vla"`), `model.safetensors` (every
weight: left stream, right stream, state projection, action expert) and `vlm/` (the base
VLM's config and tokenizer, so the streams can be rebuilt without the original path).
Weights load from safetensors only, never pickles.
"""

from __future__ import annotations

import copy
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
import torch.nn.functional as F
from numpy.typing import NDArray
from safetensors.torch import load_file, save_file
from torch import nn
from transformers import AutoTokenizer, LlavaConfig, LlavaForConditionalGeneration

from gantry.vla.model.expert import FlowMatchingExpert
from gantry.vla.model.streams import Context, Prefix, TwinStreams

Architecture = Literal["twinbrain", "single_stream"]
MODEL_TYPE = "gantry-vla"


@dataclass
class PolicyConfig:
    """Everything needed to rebuild the policy and to describe it to clients."""

    architecture: Architecture = "twinbrain"
    state_dim: int = 4
    action_dim: int = 4
    chunk_size: int = 8
    num_denoising_steps: int = 4
    cond_layer: int = 0  # 0 = the last text layer
    expert_width: int = 128
    expert_depth: int = 2
    expert_heads: int = 4
    max_text_tokens: int = 24
    cameras: list[str] = field(default_factory=lambda: ["corner"])
    image_size: int = 64
    image_mean: list[float] = field(default_factory=lambda: [0.5, 0.5, 0.5])
    image_std: list[float] = field(default_factory=lambda: [0.5, 0.5, 0.5])
    state_mean: list[float] = field(default_factory=list)
    state_std: list[float] = field(default_factory=list)
    action_low: float = -1.0
    action_high: float = 1.0
    base_model_id: str = ""
    # Descriptive metadata served by GetPolicyInfo (set by whoever trains the policy).
    info: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> str:
        return json.dumps({"model_type": MODEL_TYPE, **asdict(self)}, indent=2)

    @classmethod
    def from_json(cls, text: str) -> PolicyConfig:
        raw = json.loads(text)
        if raw.pop("model_type", None) != MODEL_TYPE:
            raise ValueError(f"config.json is not a {MODEL_TYPE} checkpoint")
        known = set(cls.__dataclass_fields__)
        return cls(**{k: v for k, v in raw.items() if k in known})


class VlaPolicy(nn.Module):
    def __init__(self, config: PolicyConfig, vlm: LlavaForConditionalGeneration, tokenizer: Any):
        super().__init__()
        text_config: Any = vlm.config.text_config
        layers = int(text_config.num_hidden_layers)
        config.cond_layer = config.cond_layer or layers
        self.config = config
        self.tokenizer = tokenizer
        left = copy.deepcopy(vlm) if config.architecture == "twinbrain" else None
        self.streams = TwinStreams(
            vlm, left, state_dim=config.state_dim, cond_layer=config.cond_layer
        )
        self.expert = FlowMatchingExpert(
            action_dim=config.action_dim,
            chunk_size=config.chunk_size,
            context_dim=self.streams.right.hidden_size,
            width=config.expert_width,
            depth=config.expert_depth,
            heads=config.expert_heads,
        )
        self.vlm_config = vlm.config
        self._pad_id = int(tokenizer.pad_token_id or 0)

    # ---- building, saving, loading -------------------------------------------------------
    @classmethod
    def from_vlm(cls, vlm_path: str | Path, config: PolicyConfig) -> VlaPolicy:
        """A fresh policy on a pretrained VLM: both streams start from its weights."""
        vlm = LlavaForConditionalGeneration.from_pretrained(vlm_path, dtype=torch.float32)
        tokenizer = AutoTokenizer.from_pretrained(vlm_path)
        vision_config: Any = vlm.config.vision_config
        config.image_size = int(vision_config.image_size)
        config.base_model_id = config.base_model_id or str(vlm_path)
        return cls(config, vlm, tokenizer)

    def save(self, out_dir: str | Path) -> Path:
        path = Path(out_dir)
        (path / "vlm").mkdir(parents=True, exist_ok=True)
        (path / "config.json").write_text(self.config.to_json())
        self.vlm_config.save_pretrained(path / "vlm")
        self.tokenizer.save_pretrained(path / "vlm")
        # Tied embeddings share storage: safetensors wants each tensor once, contiguous.
        tensors = {k: v.detach().contiguous().clone() for k, v in self.state_dict().items()}
        save_file(tensors, str(path / "model.safetensors"))
        return path

    @classmethod
    def load(cls, path: str | Path, *, device: str = "cpu") -> VlaPolicy:
        root = Path(path)
        config = PolicyConfig.from_json((root / "config.json").read_text())
        vlm_config = LlavaConfig.from_pretrained(root / "vlm")
        vlm = LlavaForConditionalGeneration(vlm_config)
        tokenizer = AutoTokenizer.from_pretrained(root / "vlm")
        policy = cls(config, vlm, tokenizer)
        weights = load_file(str(root / "model.safetensors"))
        policy.load_state_dict(weights, strict=True)
        return policy.to(device).eval()

    # ---- inputs -----------------------------------------------------------------------------
    @property
    def device(self) -> torch.device:
        return next(self.expert.parameters()).device

    @property
    def dtype(self) -> torch.dtype:
        return next(self.expert.parameters()).dtype

    def prepare(
        self,
        images: NDArray[np.uint8],
        instructions: list[str],
        states: NDArray[np.floating[Any]],
    ) -> tuple[Prefix, torch.Tensor]:
        """Model inputs from uint8 images [B, cameras, H, W, 3], texts and states [B, S]."""
        size = self.config.image_size
        pixels = torch.from_numpy(np.ascontiguousarray(images)).to(self.device)
        batch, cameras = pixels.shape[:2]
        pixels = pixels.flatten(0, 1).permute(0, 3, 1, 2).float() / 255.0
        if pixels.shape[-2:] != (size, size):
            pixels = F.interpolate(pixels, size=(size, size), mode="bilinear", antialias=True)
        mean = torch.tensor(self.config.image_mean, device=self.device)[None, :, None, None]
        std = torch.tensor(self.config.image_std, device=self.device)[None, :, None, None]
        pixels = ((pixels - mean) / std).reshape(batch, cameras, 3, size, size).to(self.dtype)
        encoded = self.tokenizer(
            instructions,
            padding="max_length",
            truncation=True,
            max_length=self.config.max_text_tokens,
            return_tensors="pt",
        )
        prefix = Prefix(
            pixel_values=pixels,
            input_ids=encoded["input_ids"].to(self.device),
            text_mask=encoded["attention_mask"].to(self.device).bool(),
        )
        state = torch.as_tensor(np.asarray(states, dtype=np.float32), device=self.device)
        if self.config.state_mean:
            mean_s = torch.tensor(self.config.state_mean, device=self.device)
            std_s = torch.tensor(self.config.state_std, device=self.device)
            state = (state - mean_s) / std_s
        return prefix, state.to(self.dtype)

    # ---- training and inference -----------------------------------------------------------
    def context(self, prefix: Prefix, state: torch.Tensor) -> Context:
        return self.streams(prefix, state)  # type: ignore[no-any-return]

    def loss(
        self,
        prefix: Prefix,
        state: torch.Tensor,
        actions: torch.Tensor,
        generator: torch.Generator | None = None,
    ) -> torch.Tensor:
        ctx = self.context(prefix, state)
        return self.expert.loss(actions, ctx.hidden, ctx.mask, generator)

    @torch.no_grad()
    def act(
        self,
        prefix: Prefix,
        state: torch.Tensor,
        *,
        steps: int = 0,
        seeds: list[int | None] | None = None,
    ) -> torch.Tensor:
        """Action chunks [B, H, D] in the action range; `seeds` fix each sample's noise."""
        ctx = self.context(prefix, state)
        batch = state.shape[0]
        shape = (self.config.chunk_size, self.config.action_dim)
        noise = torch.empty((batch, *shape))  # drawn on the CPU: the same on every device
        for i, seed in enumerate(seeds or [None] * batch):
            gen = torch.Generator().manual_seed(seed) if seed is not None else None
            noise[i] = torch.randn(shape, generator=gen)
        chunk = self.expert.sample(
            ctx.hidden,
            ctx.mask,
            steps=steps or self.config.num_denoising_steps,
            noise=noise.to(device=self.device, dtype=ctx.hidden.dtype),
        )
        return chunk.clamp(self.config.action_low, self.config.action_high)

    def trainable_parameters(self) -> list[nn.Parameter]:
        return [p for p in self.parameters() if p.requires_grad]
