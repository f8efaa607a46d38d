"""Tiny random Qwen3 causal LM, saved as an ordinary HF checkpoint directory."""

from __future__ import annotations

import os
from pathlib import Path

from transformers import GenerationConfig, Qwen3ForCausalLM

from gantry.models.tiny._common import eos_ids, prepare_out_dir, seeded, tiny_qwen3_config
from gantry.models.tiny.tokenizer import DEFAULT_VOCAB_SIZE, train_bpe_tokenizer


def build_tiny_causal_lm(
    out_dir: str | os.PathLike[str],
    *,
    seed: int = 0,
    vocab_size: int = DEFAULT_VOCAB_SIZE,
    hidden_size: int = 64,
    num_layers: int = 2,
    num_heads: int = 4,
    num_kv_heads: int = 2,
    max_position_embeddings: int = 2048,
) -> Path:
    """Write config, safetensors weights, tokenizer and generation config to ``out_dir``.

    The same arguments always give identical weights (init runs under ``seed``). The
    weights are random: output is gibberish, but shapes, dtypes and code paths are real.
    """
    path = prepare_out_dir(out_dir)
    tokenizer = train_bpe_tokenizer(vocab_size=vocab_size)
    config = tiny_qwen3_config(
        tokenizer,
        hidden_size=hidden_size,
        num_layers=num_layers,
        num_heads=num_heads,
        num_kv_heads=num_kv_heads,
        max_position_embeddings=max_position_embeddings,
    )
    with seeded(seed):
        model = Qwen3ForCausalLM(config)
    # Greedy by default so tests and demos are reproducible; callers can still sample.
    model.generation_config = GenerationConfig(  # type: ignore[no-untyped-call]
        eos_token_id=eos_ids(tokenizer),
        pad_token_id=tokenizer.pad_token_id,
        do_sample=False,
        max_new_tokens=32,
    )
    model.save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path
