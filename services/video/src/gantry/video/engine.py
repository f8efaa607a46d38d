"""The engine: diffusers' WanVideoToVideoPipeline with SALAD processors and memory context.

`WanEngine.load` reads a Wan2.1 diffusers folder (a real checkpoint or the tiny random
one), installs a `SaladProcessor` on every self-attention layer and loads tuned SALAD
weights when there are any. `generate` runs one edit: it reports each denoising step,
stops the sampler at the next step once `cancelled` is set, and returns the decoded frames
with the final latents (kept by memory sessions).

Memory-V2V conditioning (`ContextTransformer`): the retrieved entries' clean latents are
concatenated in front of the noisy video along the frame axis, with timestep 0 for their
tokens (Wan's per-token timesteps), so every DiT layer attends over memory context tokens
and the video's own; only the video's part of the prediction goes to the sampler.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from numpy.typing import NDArray
from torch import nn

from gantry.video.salad import (
    SALAD_FILE,
    AttentionRuntime,
    AttentionSettings,
    MergeStats,
    install_salad,
    load_salad,
)

log = logging.getLogger("gantry.video.engine")

FRAME_MULTIPLE = 4  # Wan's VAE compresses time 4x: valid frame counts are 4k+1
FRAME_REMAINDER = 1
FEATURE_GRID = 4  # pooled feature: latent channels x 4 x 4


class GenerationCancelled(Exception):
    """Raised inside the sampler when the operation was cancelled."""


@dataclass
class GenerationPlan:
    """A validated request, in engine terms."""

    frames: NDArray[np.uint8]  # [T, H, W, 3], T = output frames
    width: int
    height: int
    prompt: str
    negative_prompt: str
    steps: int
    guidance_scale: float
    strength: float
    seed: int
    attention: AttentionSettings = field(default_factory=AttentionSettings)
    context: torch.Tensor | None = None  # [C, F, h, w] memory latents


@dataclass
class GenerationOutput:
    frames: NDArray[np.uint8]
    latents: torch.Tensor  # [C, F, h, w]
    denoise_s: float
    merge_before: int  # memory tokens seen by the video's queries, summed over calls
    merge_after: int  # the same after adaptive merging
    merge_calls: int  # attention calls that merged


def denoising_steps(steps: int, strength: float) -> int:
    """Steps the video-to-video sampler runs (diffusers' `get_timesteps`)."""
    return min(int(steps * strength), steps)


class ContextTransformer(nn.Module):
    """The Wan transformer with memory latents as leading context frames (timestep 0)."""

    def __init__(self, inner: Any, context: torch.Tensor, runtime: AttentionRuntime) -> None:
        super().__init__()
        self.inner = inner
        self.context = context  # [1, C, F, h, w]
        self.runtime = runtime

    @property
    def dtype(self) -> torch.dtype:
        dtype: torch.dtype = self.inner.dtype
        return dtype

    @property
    def config(self) -> Any:
        return self.inner.config

    @property
    def device(self) -> torch.device:
        device: torch.device = self.inner.device
        return device

    def forward(
        self,
        hidden_states: torch.Tensor,
        timestep: torch.Tensor,
        encoder_hidden_states: torch.Tensor,
        attention_kwargs: dict[str, Any] | None = None,
        return_dict: bool = False,
    ) -> tuple[torch.Tensor]:
        b, _, frames, height, width = hidden_states.shape
        p_t, p_h, p_w = (int(x) for x in self.config.patch_size)
        per_frame = (height // p_h) * (width // p_w)
        ctx = self.context.to(hidden_states).expand(b, -1, -1, -1, -1)
        n_ctx = ctx.shape[2] // p_t * per_frame
        n_video = frames // p_t * per_frame
        steps = torch.cat(
            [
                torch.zeros(b, n_ctx, device=timestep.device, dtype=timestep.dtype),
                timestep[:, None].expand(b, n_video),
            ],
            dim=1,
        )
        self.runtime.context_tokens = n_ctx
        try:
            out = self.inner(
                torch.cat([ctx, hidden_states], dim=2),
                steps,
                encoder_hidden_states,
                attention_kwargs=attention_kwargs,
                return_dict=False,
            )[0]
        finally:
            self.runtime.context_tokens = 0
        return (out[:, :, ctx.shape[2] :],)


def pick_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def pick_dtype(name: str, device: torch.device) -> torch.dtype:
    if name == "auto":
        return torch.bfloat16 if device.type == "cuda" else torch.float32
    return {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}[name]


class WanEngine:
    def __init__(
        self,
        model_dir: Path,
        *,
        model_id: str,
        tiny: bool,
        device: torch.device,
        dtype: torch.dtype,
    ) -> None:
        self.model_dir = model_dir
        self.model_id = model_id
        self.tiny = tiny
        self.device = device
        self.dtype = dtype
        self.runtime = AttentionRuntime()
        self.salad_loaded = False
        self.pipe: Any = None
        self._lock = threading.Lock()  # one generation at a time per engine

    def load(self, salad_weights: Path | None = None) -> None:
        from diffusers import WanTransformer3DModel, WanVideoToVideoPipeline

        # Loaded apart so diffusers keeps its float32 modules (norms, RoPE) in a bf16 model;
        # the VAE and text encoder stay float32.
        transformer = WanTransformer3DModel.from_pretrained(
            str(self.model_dir), subfolder="transformer", dtype=self.dtype
        )
        pipe = WanVideoToVideoPipeline.from_pretrained(
            str(self.model_dir), transformer=transformer, dtype=torch.float32
        )
        pipe.to(self.device)
        pipe.set_progress_bar_config(disable=True)
        install_salad(pipe.transformer, self.runtime)
        weights = salad_weights or (self.model_dir / "salad" / SALAD_FILE)
        if weights.is_file():
            load_salad(pipe.transformer, weights)
            self.salad_loaded = True
        self.pipe = pipe
        log.info(
            "loaded %s from %s (salad weights: %s)",
            self.model_id,
            self.model_dir,
            self.salad_loaded,
        )

    @property
    def vae_scale(self) -> tuple[int, int]:
        """(temporal, spatial) compression of the VAE."""
        return int(self.pipe.vae_scale_factor_temporal), int(self.pipe.vae_scale_factor_spatial)

    @property
    def size_multiple(self) -> int:
        patch = int(self.pipe.transformer.config.patch_size[1])
        return self.vae_scale[1] * patch

    def tokens_per_latent_frame(self, width: int, height: int) -> int:
        _, spatial = self.vae_scale
        p = self.pipe.transformer.config.patch_size
        return (height // spatial // int(p[1])) * (width // spatial // int(p[2]))

    # -- encoding ------------------------------------------------------------------------

    @torch.no_grad()
    def encode(self, frames: NDArray[np.uint8], width: int, height: int) -> torch.Tensor:
        """Normalised VAE latents [C, F, h, w] of frames resized to width x height."""
        from PIL import Image

        pipe = self.pipe
        video = pipe.video_processor.preprocess_video(
            [Image.fromarray(f) for f in frames], height=height, width=width
        )
        video = video.to(self.device, dtype=pipe.vae.dtype)
        latents = pipe.vae.encode(video).latent_dist.mode()
        mean, inv_std = self._latent_stats(latents)
        normalised: torch.Tensor = ((latents - mean) * inv_std)[0].float().cpu()
        return normalised

    def _latent_stats(self, like: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        cfg = self.pipe.vae.config
        shape = (1, cfg.z_dim, 1, 1, 1)
        mean = torch.tensor(cfg.latents_mean).view(shape).to(like)
        inv_std = 1.0 / torch.tensor(cfg.latents_std).view(shape).to(like)
        return mean, inv_std

    @staticmethod
    def feature(latents: torch.Tensor) -> torch.Tensor:
        """The light default descriptor: latents pooled over time and to a 4x4 grid, unit norm."""
        pooled = torch.nn.functional.adaptive_avg_pool2d(latents.float().mean(dim=1), FEATURE_GRID)
        return torch.nn.functional.normalize(pooled.flatten(), dim=0)

    @torch.no_grad()
    def decode(self, latents: torch.Tensor) -> NDArray[np.uint8]:
        pipe = self.pipe
        lat = latents[None].to(self.device, pipe.vae.dtype)
        mean, inv_std = self._latent_stats(lat)
        video = pipe.vae.decode(lat / inv_std + mean, return_dict=False)[0]
        frames = np.asarray(pipe.video_processor.postprocess_video(video, output_type="np")[0])
        pixels: NDArray[np.uint8] = (np.clip(frames, 0.0, 1.0) * 255).round().astype(np.uint8)
        return pixels

    # -- generation ----------------------------------------------------------------------

    def generate(
        self,
        plan: GenerationPlan,
        on_step: Callable[[int, int], None],
        cancelled: threading.Event,
    ) -> GenerationOutput:
        from PIL import Image

        with self._lock:
            pipe = self.pipe
            total = denoising_steps(plan.steps, plan.strength)
            self.runtime.settings = plan.attention
            self.runtime.stats = MergeStats()
            inner = pipe.transformer
            if plan.context is not None:
                context = self._fit_context(plan.context, plan.width, plan.height)
                wrapper = ContextTransformer(inner, context[None].to(self.device), self.runtime)
                object.__setattr__(pipe, "transformer", wrapper)

            def step_end(_pipe: Any, i: int, _t: Any, kwargs: dict[str, Any]) -> dict[str, Any]:
                on_step(i + 1, total)
                if cancelled.is_set():
                    raise GenerationCancelled()
                return kwargs

            generator = torch.Generator(device="cpu").manual_seed(plan.seed)
            started = time.perf_counter()
            try:
                if cancelled.is_set():
                    raise GenerationCancelled()
                with torch.no_grad():
                    latents = pipe(
                        video=[Image.fromarray(f) for f in plan.frames],
                        prompt=plan.prompt,
                        negative_prompt=plan.negative_prompt or None,
                        height=plan.height,
                        width=plan.width,
                        num_inference_steps=plan.steps,
                        guidance_scale=plan.guidance_scale,
                        strength=plan.strength,
                        generator=generator,
                        output_type="latent",
                        callback_on_step_end=step_end,
                    ).frames
            finally:
                object.__setattr__(pipe, "transformer", inner)
                self.runtime.settings = AttentionSettings()
            denoise_s = time.perf_counter() - started
            latents = latents[0].float()
            frames = self.decode(latents)
            return GenerationOutput(
                frames=frames,
                latents=latents.cpu(),
                denoise_s=denoise_s,
                merge_before=self.runtime.stats.before,
                merge_after=self.runtime.stats.after,
                merge_calls=self.runtime.stats.calls,
            )

    def _fit_context(self, context: torch.Tensor, width: int, height: int) -> torch.Tensor:
        """Memory latents resized to the video's latent grid (entries may differ in size)."""
        _, spatial = self.vae_scale
        h, w = height // spatial, width // spatial
        if tuple(context.shape[-2:]) == (h, w):
            return context
        c, f = context.shape[:2]
        resized = torch.nn.functional.interpolate(
            context.reshape(c * f, 1, *context.shape[-2:]), size=(h, w), mode="area"
        )
        return resized.reshape(c, f, h, w)
