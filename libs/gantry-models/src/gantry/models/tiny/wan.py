"""A tiny random Wan 2.1 video-to-video pipeline (diffusers classes, tiny dims).

The folder it writes has the Wan2.1-T2V diffusers layout (`model_index.json`, `transformer/`,
`vae/`, `text_encoder/`, `tokenizer/`, `scheduler/`), so the video service loads it exactly
as it loads a real checkpoint. diffusers is imported lazily: only the video service
depends on it.

Shapes keep Wan's rules: the VAE compresses time 4x (hence 4k+1 frames) and space 8x, the
transformer patches 1x2x2 latents (hence sizes that are multiples of 16).
"""

from __future__ import annotations

import os
from pathlib import Path

from gantry.models.cache import cached_dir
from gantry.models.tiny._common import prepare_out_dir, seeded
from gantry.models.tiny.tokenizer import train_bpe_tokenizer

# Bump when the builder's output changes so cached folders are rebuilt.
TINY_WAN_FORMAT = "1"
LATENT_CHANNELS = 4
HEAD_DIM = 32  # a power of two, as the Triton kernels want; Wan2.1-1.3B uses 128


def build_tiny_wan(
    out_dir: str | os.PathLike[str], *, seed: int = 0, num_layers: int = 2, num_heads: int = 2
) -> Path:
    """Write a random tiny Wan video-to-video pipeline to `out_dir` (must be empty)."""
    from diffusers import (
        AutoencoderKLWan,
        FlowMatchEulerDiscreteScheduler,
        WanTransformer3DModel,
        WanVideoToVideoPipeline,
    )
    from transformers import UMT5Config, UMT5EncoderModel

    path = prepare_out_dir(out_dir)
    tokenizer = train_bpe_tokenizer(vocab_size=512)
    tokenizer.padding_side = "right"  # T5 encoders read prompts from the left
    with seeded(seed):
        vae = AutoencoderKLWan(
            base_dim=8,
            z_dim=LATENT_CHANNELS,
            dim_mult=[1, 1, 1, 1],
            num_res_blocks=1,
            temperal_downsample=[False, True, True],
            latents_mean=[0.0] * LATENT_CHANNELS,
            latents_std=[1.0] * LATENT_CHANNELS,
        )
        text_encoder = UMT5EncoderModel(
            UMT5Config(
                vocab_size=len(tokenizer),
                d_model=32,
                d_kv=8,
                d_ff=64,
                num_layers=1,
                num_heads=4,
                relative_attention_num_buckets=8,
                pad_token_id=tokenizer.pad_token_id,
            )
        )
        transformer = WanTransformer3DModel(
            patch_size=(1, 2, 2),
            num_attention_heads=num_heads,
            attention_head_dim=HEAD_DIM,
            in_channels=LATENT_CHANNELS,
            out_channels=LATENT_CHANNELS,
            text_dim=32,
            freq_dim=32,
            ffn_dim=128,
            num_layers=num_layers,
            rope_max_seq_len=64,
        )
    scheduler = FlowMatchEulerDiscreteScheduler(shift=3.0)
    pipe = WanVideoToVideoPipeline(
        tokenizer=tokenizer,
        text_encoder=text_encoder,
        transformer=transformer,
        vae=vae,
        scheduler=scheduler,
    )
    pipe.save_pretrained(path)
    return path


def tiny_wan_dir(seed: int = 0) -> Path:
    """The cached tiny Wan folder for `seed`, built on first use."""
    import diffusers

    key = f"wan-seed{seed}-v{TINY_WAN_FORMAT}-df{diffusers.__version__}"
    return cached_dir(key, lambda out: build_tiny_wan(out, seed=seed))
