"""Tiny random BERT encoder with a locally trained WordPiece tokenizer."""

from __future__ import annotations

import json
import os
from pathlib import Path

from transformers import BertConfig, BertModel

from gantry.models.tiny._common import prepare_out_dir, seeded
from gantry.models.tiny.tokenizer import DEFAULT_VOCAB_SIZE, train_wordpiece_tokenizer


def build_tiny_encoder(
    out_dir: str | os.PathLike[str],
    *,
    seed: int = 0,
    vocab_size: int = DEFAULT_VOCAB_SIZE,
    hidden_size: int = 64,
    num_layers: int = 2,
    num_heads: int = 4,
    max_position_embeddings: int = 512,
) -> Path:
    """Write a BERT-style encoder checkpoint (random weights) for retrieval tests.

    Also writes a sentence-transformers ``1_Pooling/config.json`` declaring mean pooling,
    the same layout real embedding checkpoints use, so `load_encoder` picks it up.
    """
    path = prepare_out_dir(out_dir)
    tokenizer = train_wordpiece_tokenizer(vocab_size=vocab_size)
    config = BertConfig(
        vocab_size=len(tokenizer),
        hidden_size=hidden_size,
        num_hidden_layers=num_layers,
        num_attention_heads=num_heads,
        intermediate_size=hidden_size * 2,
        max_position_embeddings=max_position_embeddings,
        pad_token_id=tokenizer.pad_token_id,
        dtype="float32",
    )
    with seeded(seed):
        model = BertModel(config)
    model.save_pretrained(path)
    tokenizer.save_pretrained(path)
    pooling_dir = path / "1_Pooling"
    pooling_dir.mkdir()
    pooling = {
        "word_embedding_dimension": hidden_size,
        "pooling_mode_cls_token": False,
        "pooling_mode_mean_tokens": True,
    }
    (pooling_dir / "config.json").write_text(json.dumps(pooling, indent=2) + "\n", encoding="utf-8")
    return path
