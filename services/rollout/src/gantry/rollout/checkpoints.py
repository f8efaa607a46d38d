"""Loading the weights an UpdateWeights header names by `checkpoint_uri`, and the
latest published weights a replica catches up from when it starts.

The URI resolves inside the configured checkpoints root (`checkpoints_root`, by default
`<data_dir>/checkpoints`; `gantry up` points it at the local trainer's data): `..`,
symlinks leading out and other schemes are PERMISSION_DENIED. Only safetensors files are
read (never a pickle), each file is checked against the root again (a symlinked shard
cannot leave it), and their total size is bounded before anything is loaded.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import torch

from gantry.core.errors import FailedPrecondition, InvalidArgument, NotFound, echo
from gantry.core.storage import StorageRoot

FIELD = "header.checkpoint_uri"
SUFFIX = ".safetensors"


def checkpoint_files(root: StorageRoot, uri: str, *, max_bytes: int) -> list[Path]:
    """The safetensors files `uri` names (one file, or every shard of a directory)."""
    path = root.resolve(uri, field=FIELD, must_exist=True, allow_root=False)
    if path.is_dir():
        files = sorted(p for p in path.iterdir() if p.name.endswith(SUFFIX))
        if not files:
            raise NotFound(
                f"{FIELD}: {echo(uri)} holds no {SUFFIX} weights",
                resource_type="checkpoint",
                resource_name=uri,
            )
    elif path.name.endswith(SUFFIX) and path.is_file():
        files = [path]
    else:
        raise InvalidArgument.for_field(
            FIELD, f"must name a {SUFFIX} file or a directory of them (got {echo(uri)})"
        )
    # A shard that is a symlink must stay inside the root too.
    files = [root.resolve(str(f), field=FIELD, must_exist=True) for f in files]
    if not all(f.is_file() for f in files):
        raise InvalidArgument.for_field(FIELD, f"{echo(uri)}: every {SUFFIX} entry must be a file")
    total = sum(f.stat().st_size for f in files)
    if total > max_bytes:
        raise InvalidArgument.for_field(
            FIELD, f"the checkpoint is {total} bytes; this server loads at most {max_bytes}"
        )
    return files


def load_checkpoint(root: StorageRoot, uri: str, *, max_bytes: int) -> dict[str, torch.Tensor]:
    """Every tensor of the checkpoint (blocking: run it off the event loop)."""
    from safetensors.torch import load_file

    tensors: dict[str, torch.Tensor] = {}
    for file in checkpoint_files(root, uri, max_bytes=max_bytes):
        try:
            loaded = load_file(str(file))
        except Exception as exc:  # a malformed file is the caller's checkpoint, not a bug
            raise InvalidArgument.for_field(
                FIELD, f"{file.name} is not a readable safetensors file ({type(exc).__name__})"
            ) from exc
        tensors.update(loaded)
    return tensors


# The trainer's record of its latest publish, inside the published-weights folder.
MANIFEST = "latest.json"
MAX_MANIFEST_BYTES = 64 * 1024
PUBLISHED_FIELD = "published_weights"


@dataclass(frozen=True)
class PublishedWeights:
    policy_version: int
    run_id: str
    checkpoint_id: str
    uri: str  # the weights folder, inside the checkpoints root


def read_published(root: StorageRoot, uri: str) -> PublishedWeights | None:
    """The latest weights the trainer published into folder `uri`; None before any.

    The trainer writes `latest.json` ({"policy_version", "run_id", "checkpoint_id",
    "weights"}) next to the weights folder it names, replacing both atomically.
    """
    folder = root.resolve(uri, field=PUBLISHED_FIELD, must_exist=False, allow_root=True)
    manifest = folder / MANIFEST
    if not manifest.is_file():
        return None
    manifest = root.resolve(str(manifest), field=PUBLISHED_FIELD, must_exist=True)
    if manifest.stat().st_size > MAX_MANIFEST_BYTES:
        raise FailedPrecondition(f"{PUBLISHED_FIELD}: {MANIFEST} is larger than expected")
    try:
        record = json.loads(manifest.read_text(encoding="utf-8"))
        version, weights = int(record["policy_version"]), str(record["weights"])
        run_id, checkpoint_id = str(record.get("run_id", "")), str(record.get("checkpoint_id", ""))
    except (ValueError, KeyError, TypeError) as exc:
        raise FailedPrecondition(f"{PUBLISHED_FIELD}: {MANIFEST} is malformed ({exc})") from exc
    if version < 1 or not weights or "/" in weights or weights.startswith("."):
        raise FailedPrecondition(f"{PUBLISHED_FIELD}: {MANIFEST} names no valid weights")
    return PublishedWeights(version, run_id, checkpoint_id, str(folder / weights))
