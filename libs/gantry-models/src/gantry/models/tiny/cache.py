"""Build each tiny model once per machine and reuse it (`gantry.models.cache`)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Literal, get_args

import transformers

from gantry.models.cache import CACHE_ENV, STALE_STAGING_S, cache_root, cached_dir
from gantry.models.tiny.causal_lm import build_tiny_causal_lm
from gantry.models.tiny.encoder import build_tiny_encoder
from gantry.models.tiny.vlm import build_tiny_vlm

__all__ = ["CACHE_ENV", "STALE_STAGING_S", "TINY_KINDS", "TinyKind", "cache_root", "tiny_model_dir"]

TinyKind = Literal["causal_lm", "vlm", "encoder"]
TINY_KINDS: tuple[str, ...] = get_args(TinyKind)

# Bump when a builder's output changes, so stale entries are not reused. The
# transformers version is part of the key too, as it controls the saved format.
TINY_FORMAT_VERSION = "2"  # 2: digits tokenized one by one

Builder = Callable[..., Path]
_BUILDERS: dict[str, Builder] = {
    "causal_lm": build_tiny_causal_lm,
    "vlm": build_tiny_vlm,
    "encoder": build_tiny_encoder,
}


def cache_key(kind: TinyKind, seed: int) -> str:
    return f"{kind}-seed{seed}-v{TINY_FORMAT_VERSION}-tf{transformers.__version__}"


def tiny_model_dir(kind: TinyKind, seed: int = 0) -> Path:
    """Return the cached directory of tiny model ``kind`` for ``seed``, building it if absent."""
    if kind not in _BUILDERS:
        raise ValueError(f"unknown tiny model kind {kind!r}; expected one of {TINY_KINDS}")
    builder = _BUILDERS[kind]
    return cached_dir(cache_key(kind, seed), lambda out: builder(out, seed=seed))
