"""Loading the weights an UpdateWeights header names by `checkpoint_uri`.

The URI resolves inside the configured checkpoints root (`checkpoints_root`, by default
`<data_dir>/checkpoints`; `gantry up` points it at the local trainer's data): `..`,
symlinks leading out and other schemes are PERMISSION_DENIED. Only safetensors files are
read (never a pickle), each file is checked against the root again (a symlinked shard
cannot leave it), and their total size is bounded before anything is loaded.
"""

from __future__ import annotations

from pathlib import Path

import torch

from gantry.core.errors import InvalidArgument, NotFound, echo
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
