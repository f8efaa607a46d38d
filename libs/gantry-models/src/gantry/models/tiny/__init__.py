"""Tiny random models for tests, demos and the local stack.

Builders write ordinary HF checkpoint directories (config, safetensors, tokenizer or
processor), so code under test loads them exactly as it would load a real checkpoint.
"""

from gantry.models.tiny.cache import TinyKind, cache_root, tiny_model_dir
from gantry.models.tiny.causal_lm import build_tiny_causal_lm
from gantry.models.tiny.corpus import CORPUS
from gantry.models.tiny.encoder import build_tiny_encoder
from gantry.models.tiny.tokenizer import (
    CHAT_TEMPLATE,
    SPECIAL_TOKENS,
    train_bpe_tokenizer,
    train_wordpiece_tokenizer,
)
from gantry.models.tiny.vlm import build_tiny_vlm

__all__ = [
    "CHAT_TEMPLATE",
    "CORPUS",
    "SPECIAL_TOKENS",
    "TinyKind",
    "build_tiny_causal_lm",
    "build_tiny_encoder",
    "build_tiny_vlm",
    "cache_root",
    "tiny_model_dir",
    "train_bpe_tokenizer",
    "train_wordpiece_tokenizer",
]
