"""Build each tiny model once per machine and reuse it.

A cache entry is complete by construction: it is built in a temporary sibling directory
and renamed into place (an atomic step on one filesystem). A killed build leaves only a
``.tmp-*`` directory, never a half-written entry; when two processes race, the first
rename wins and the loser discards its copy.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Literal, get_args

import transformers

from gantry.models.tiny.causal_lm import build_tiny_causal_lm
from gantry.models.tiny.encoder import build_tiny_encoder
from gantry.models.tiny.vlm import build_tiny_vlm

TinyKind = Literal["causal_lm", "vlm", "encoder"]
TINY_KINDS: tuple[str, ...] = get_args(TinyKind)

CACHE_ENV = "GANTRY_MODELS_CACHE"
DEFAULT_CACHE = Path("~/.cache/gantry/tiny-models")

# Bump when a builder's output changes, so stale entries are not reused. The
# transformers version is part of the key too, as it controls the saved format.
TINY_FORMAT_VERSION = "2"  # 2: digits tokenized one by one

# Staging directories older than this belong to builds that were killed (a real build
# takes well under a minute), so they are safe to delete.
STALE_STAGING_S = 3600.0

Builder = Callable[..., Path]
_BUILDERS: dict[str, Builder] = {
    "causal_lm": build_tiny_causal_lm,
    "vlm": build_tiny_vlm,
    "encoder": build_tiny_encoder,
}


def cache_root() -> Path:
    """``$GANTRY_MODELS_CACHE``, else ``~/.cache/gantry/tiny-models``."""
    configured = os.environ.get(CACHE_ENV)
    return Path(configured).expanduser() if configured else DEFAULT_CACHE.expanduser()


def cache_key(kind: TinyKind, seed: int) -> str:
    return f"{kind}-seed{seed}-v{TINY_FORMAT_VERSION}-tf{transformers.__version__}"


def tiny_model_dir(kind: TinyKind, seed: int = 0) -> Path:
    """Return the cached directory of tiny model ``kind`` for ``seed``, building it if absent."""
    if kind not in _BUILDERS:
        raise ValueError(f"unknown tiny model kind {kind!r}; expected one of {TINY_KINDS}")
    root = cache_root()
    target = root / cache_key(kind, seed)
    if target.is_dir():
        return target
    root.mkdir(parents=True, exist_ok=True)
    _sweep_stale_staging(root, target.name)
    staging = Path(tempfile.mkdtemp(prefix=f".tmp-{target.name}-", dir=root))
    try:
        _BUILDERS[kind](staging / "model", seed=seed)
        try:
            os.rename(staging / "model", target)
        except OSError:
            # Another process renamed its build into place first; theirs is as good.
            if not target.is_dir():
                raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return target


def _sweep_stale_staging(root: Path, name: str) -> None:
    cutoff = time.time() - STALE_STAGING_S
    for leftover in root.glob(f".tmp-{name}-*"):
        try:
            if leftover.stat().st_mtime < cutoff:
                shutil.rmtree(leftover, ignore_errors=True)
        except OSError:
            continue  # another process removed it first
