"""Checkpoints: an HF model directory plus the trainer's state, written atomically.

Layout of `<run>/checkpoints/step-000012/`:
  config.json, generation_config.json, model.safetensors, tokenizer files
      -> loadable by `load_causal_lm`, usable as another run's `base_model` and by
         rollout's UpdateWeights `checkpoint_uri`
  trainer_state.pt   scheduler, RNG states, data cursor, step, policy version
  shards/            weights and AdamW state as torch.distributed.checkpoint (DCP) wrote
                     them, one file per rank: a run resumes on any number of ranks
  checkpoint.json    the Checkpoint message (what ListCheckpoints returns)

The HF files are the consolidated export (rank 0 gathers the sharded weights); the shards
are what training resumes from. Checkpoints written before shards/ existed kept the
optimiser inside trainer_state.pt; a one-process run still resumes from them.

Everything is written into a hidden temporary sibling (`.tmp-step-000012-<random>`) and
renamed into place, so a crash mid-write never leaves a half checkpoint that resume would
pick up; only temporaries of exactly that shape are ever removed.

Nothing read back is trusted as a path or as code: a checkpoint's location is its
directory under the run's checkpoint root (never the `uri` stored in checkpoint.json),
and trainer_state.pt is loaded with `torch.load(weights_only=True)`, which refuses any
pickle that would construct objects other than tensors and plain containers.
"""

from __future__ import annotations

import logging
import os
import random
import re
import secrets
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from google.protobuf import json_format

from gantry.core.errors import FailedPrecondition, NotFound, echo
from gantry.core.storage import write_atomically
from gantry.proto.trainer.v1 import trainer_pb2

log = logging.getLogger("gantry.trainer.checkpoints")

STATE_FILE = "trainer_state.pt"
SHARDS_DIR = "shards"
META_FILE = "checkpoint.json"
MAX_META_BYTES = 1024 * 1024
_ID = re.compile(r"step-\d{6,}")
_TEMPORARY = re.compile(r"\.tmp-step-\d{6,}-[0-9a-f]{12}")


def checkpoint_id(step: int) -> str:
    return f"step-{step:06d}"


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def rng_state() -> dict[str, Any]:
    """RNG states as tensors and plain lists (what `weights_only=True` loads)."""
    version, internal, gauss = random.getstate()
    return {
        "torch": torch.get_rng_state(),
        "python": {"version": version, "state": list(internal), "gauss": gauss},
    }


def restore_rng(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    python = state["python"]
    random.setstate((int(python["version"]), tuple(python["state"]), python["gauss"]))


def save(
    root: Path,
    meta: trainer_pb2.Checkpoint,
    write_files: Callable[[Path], None],
) -> trainer_pb2.Checkpoint:
    """Write checkpoint `meta.id` under `root`; returns meta with uri and size filled in.

    `write_files(folder)` writes the model, tokenizer, state and shards into the hidden
    temporary folder (every rank of a multi-process run writes its shards there)."""
    if not _ID.fullmatch(meta.id):
        raise ValueError(f"not a checkpoint id: {meta.id!r}")
    root.mkdir(parents=True, exist_ok=True)
    final = root / meta.id
    tmp = root / f".tmp-{meta.id}-{secrets.token_hex(6)}"  # unique: concurrent saves
    tmp.mkdir()
    try:
        write_files(tmp)
        done = _finish(tmp, final, meta)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    _fsync_dir(root)
    return done


def _files(folder: Path) -> list[Path]:
    return [f for f in sorted(folder.rglob("*")) if f.is_file() and not f.is_symlink()]


def _finish(tmp: Path, final: Path, meta: trainer_pb2.Checkpoint) -> trainer_pb2.Checkpoint:
    done = trainer_pb2.Checkpoint()
    done.CopyFrom(meta)
    done.uri = str(final.resolve())
    done.size_bytes = sum(f.stat().st_size for f in _files(tmp))
    write_atomically(tmp / META_FILE, json_format.MessageToJson(done))
    for file in _files(tmp):
        with file.open("rb") as fh:
            os.fsync(fh.fileno())
    if (tmp / SHARDS_DIR).is_dir():
        _fsync_dir(tmp / SHARDS_DIR)
    if final.is_dir() and not final.is_symlink():  # the same step saved again
        shutil.rmtree(final)
    tmp.rename(final)
    return done


def _read(entry: Path) -> trainer_pb2.Checkpoint | None:
    """The checkpoint in folder `entry`, or None when it is not a complete one of ours.

    Its `uri` is the folder itself, whatever checkpoint.json says; links, and a
    checkpoint.json that is unreadable or names another id, do not count.
    """
    if not _ID.fullmatch(entry.name) or entry.is_symlink() or not entry.is_dir():
        return None
    meta_file = entry / META_FILE
    try:
        if meta_file.is_symlink() or meta_file.stat().st_size > MAX_META_BYTES:
            raise ValueError("not a plain checkpoint.json")
        meta = json_format.Parse(meta_file.read_text(), trainer_pb2.Checkpoint())
    except (OSError, ValueError) as exc:  # json_format.ParseError is a ValueError
        if not isinstance(exc, FileNotFoundError):
            log.warning("skipping checkpoint %s: %s", entry, exc)
        return None
    if meta.id != entry.name:
        log.warning("skipping checkpoint %s: checkpoint.json names %r", entry, meta.id)
        return None
    meta.uri = str(entry.resolve())
    return meta


def list_checkpoints(root: Path) -> list[trainer_pb2.Checkpoint]:
    """Complete checkpoints in a run's checkpoint folder, newest (highest step) first."""
    found = []
    if root.is_dir() and not root.is_symlink():
        for entry in root.iterdir():
            meta = _read(entry)
            if meta is not None:
                found.append(meta)
    return sorted(found, key=lambda c: c.step, reverse=True)


def find(root: Path, checkpoint_id: str) -> trainer_pb2.Checkpoint:
    """The checkpoint `checkpoint_id` of the run whose checkpoints live in `root`."""
    meta = _read(root / checkpoint_id) if _ID.fullmatch(checkpoint_id) else None
    if meta is None:
        raise NotFound(
            f"checkpoint {echo(checkpoint_id)} not found",
            resource_type="checkpoint",
            resource_name=checkpoint_id,
        )
    return meta


def unreadable(checkpoint_dir: Path, why: str) -> FailedPrecondition:
    return FailedPrecondition(
        f"checkpoint {checkpoint_dir.name} {why}", reason="CHECKPOINT_UNREADABLE"
    )


def load_state(checkpoint_dir: Path) -> dict[str, Any]:
    """trainer_state.pt as tensors and plain containers; never runs pickled code."""
    try:
        state = torch.load(checkpoint_dir / STATE_FILE, weights_only=True, map_location="cpu")
    except Exception as exc:  # torch raises UnpicklingError, RuntimeError, EOFError, ...
        raise FailedPrecondition(
            f"checkpoint {checkpoint_dir.name}: {STATE_FILE} is not a trainer state "
            f"(refused by torch.load(weights_only=True): {type(exc).__name__})",
            reason="CHECKPOINT_UNREADABLE",
        ) from exc
    if not isinstance(state, dict):
        raise FailedPrecondition(
            f"checkpoint {checkpoint_dir.name}: {STATE_FILE} does not hold a trainer state",
            reason="CHECKPOINT_UNREADABLE",
        )
    return state


def clean_temporaries(root: Path) -> None:
    """Remove half-written checkpoints this trainer left in `root` (a run's own checkpoint
    folder) after a crash: only directories named like the ones `save` creates."""
    if root.is_dir() and not root.is_symlink():
        for entry in root.iterdir():
            if _TEMPORARY.fullmatch(entry.name) and entry.is_dir() and not entry.is_symlink():
                shutil.rmtree(entry, ignore_errors=True)
