"""Pieces shared by the tiny-model builders."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import torch
from transformers import PreTrainedTokenizerBase, Qwen3Config

from gantry.models.tiny.tokenizer import ENDOFTEXT, token_id


@contextmanager
def seeded(seed: int) -> Iterator[None]:
    """Seed torch for weight init without disturbing the caller's global RNG state."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        yield


def prepare_out_dir(out_dir: str | os.PathLike[str]) -> Path:
    """Create ``out_dir``; refuse a non-empty one so a build never mixes with old files."""
    path = Path(out_dir).expanduser()
    if path.exists() and any(path.iterdir()):
        raise FileExistsError(f"output directory is not empty: {path}")
    path.mkdir(parents=True, exist_ok=True)
    return path


def tiny_qwen3_config(
    tokenizer: PreTrainedTokenizerBase,
    *,
    hidden_size: int = 64,
    num_layers: int = 2,
    num_heads: int = 4,
    num_kv_heads: int = 2,
    max_position_embeddings: int = 2048,
) -> Qwen3Config:
    """A Qwen3 text config small enough to build and run in well under a second."""
    if hidden_size % num_heads or num_heads % num_kv_heads:
        raise ValueError("hidden_size must divide by num_heads, num_heads by num_kv_heads")
    return Qwen3Config(
        vocab_size=len(tokenizer),
        hidden_size=hidden_size,
        intermediate_size=hidden_size * 2,
        num_hidden_layers=num_layers,
        num_attention_heads=num_heads,
        num_key_value_heads=num_kv_heads,
        head_dim=hidden_size // num_heads,
        max_position_embeddings=max_position_embeddings,
        max_window_layers=num_layers,
        tie_word_embeddings=True,
        bos_token_id=None,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        dtype="float32",
    )


def eos_ids(tokenizer: PreTrainedTokenizerBase) -> list[int]:
    """Stop on end-of-turn and end-of-text, as Qwen's generation configs do."""
    ids = [tokenizer.eos_token_id, token_id(tokenizer, ENDOFTEXT)]
    return [int(i) for i in dict.fromkeys(ids) if i is not None]
