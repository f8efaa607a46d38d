"""Tiny random checkpoints built locally: an HF encoder (no sentence-transformers files)
and a cross-encoder (BERT with a one-logit classification head)."""

from __future__ import annotations

from pathlib import Path

from transformers import BertConfig, BertForSequenceClassification

from gantry.models.tiny import tiny_model_dir, train_wordpiece_tokenizer


def tiny_encoder() -> Path:
    return tiny_model_dir("encoder")


def build_tiny_cross_encoder(out_dir: Path, *, seed: int = 0) -> Path:
    import torch

    tokenizer = train_wordpiece_tokenizer()
    config = BertConfig(
        vocab_size=len(tokenizer),
        hidden_size=32,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=128,
        pad_token_id=tokenizer.pad_token_id,
    )
    config.num_labels = 1
    torch.manual_seed(seed)
    model = BertForSequenceClassification(config)
    model.save_pretrained(out_dir)
    tokenizer.save_pretrained(out_dir)
    return out_dir
