"""Check that a local directory looks like a loadable HF safetensors checkpoint.

Checking up front turns transformers' varied (and sometimes network-flavoured) errors
into one `ModelLoadError` that names the directory and the missing file.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from pathlib import Path

from gantry.models.errors import ModelLoadError

CONFIG_FILE = "config.json"
SAFETENSORS_FILE = "model.safetensors"
SAFETENSORS_INDEX_FILE = "model.safetensors.index.json"
_LEGACY_WEIGHTS = ("pytorch_model.bin", "pytorch_model.bin.index.json", "tf_model.h5")
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "vocab.txt")
PROCESSOR_FILES = ("processor_config.json", "preprocessor_config.json")


def check_checkpoint_dir(
    path: str | os.PathLike[str], *, need_any_of: Iterable[tuple[str, ...]] = ()
) -> Path:
    """Return ``path`` resolved, or raise `ModelLoadError` saying what is missing.

    ``need_any_of`` lists extra requirements; each is satisfied by any one of its files
    (e.g. a tokenizer may be described by ``tokenizer.json`` or ``tokenizer_config.json``).
    """
    root = Path(path).expanduser()
    if not root.exists():
        raise ModelLoadError(
            root,
            "path does not exist (only local directories are supported; models are never "
            "downloaded)",
        )
    if not root.is_dir():
        raise ModelLoadError(root, "path is not a directory")
    if not (root / CONFIG_FILE).is_file():
        raise ModelLoadError(root, f"missing {CONFIG_FILE}")
    _check_weights(root)
    for options in need_any_of:
        if not any((root / name).is_file() for name in options):
            raise ModelLoadError(root, f"missing {' or '.join(options)}")
    return root.resolve()


def _check_weights(root: Path) -> None:
    if (root / SAFETENSORS_FILE).is_file():
        return
    index = root / SAFETENSORS_INDEX_FILE
    if index.is_file():
        for shard in _shards(root, index):
            if not (root / shard).is_file():
                raise ModelLoadError(root, f"missing weight shard {shard} listed in {index.name}")
        return
    legacy = [name for name in _LEGACY_WEIGHTS if (root / name).exists()]
    hint = f" (found {', '.join(legacy)}; only safetensors weights are loaded)" if legacy else ""
    raise ModelLoadError(root, f"missing {SAFETENSORS_FILE} or {SAFETENSORS_INDEX_FILE}{hint}")


def _shards(root: Path, index: Path) -> list[str]:
    try:
        data = json.loads(index.read_text(encoding="utf-8"))
        weight_map = data["weight_map"]
        if not isinstance(weight_map, dict):
            raise TypeError("weight_map is not an object")
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ModelLoadError(root, f"unreadable {index.name}: {exc}") from exc
    return sorted({str(name) for name in weight_map.values()})
