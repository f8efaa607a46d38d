"""Checkpoints: an HF model directory plus the trainer's state, written atomically.

Layout of `<run>/checkpoints/step-000012/`:
  config.json, generation_config.json, model.safetensors, tokenizer files
      -> loadable by `load_causal_lm`, usable as another run's `base_model` and by
         rollout's UpdateWeights `checkpoint_uri`
  trainer_state.pt   optimiser, scheduler, RNG states, data cursor, step, policy version
  checkpoint.json    the Checkpoint message (what ListCheckpoints returns)

Everything is written into a hidden temporary sibling and renamed into place, so a
crash mid-write never leaves a half checkpoint that resume would pick up.
"""

from __future__ import annotations

import os
import random
import shutil
from pathlib import Path
from typing import Any

import torch
from google.protobuf import json_format
from torch import nn
from transformers import PreTrainedTokenizerBase

from gantry.proto.trainer.v1 import trainer_pb2

STATE_FILE = "trainer_state.pt"
META_FILE = "checkpoint.json"


def checkpoint_id(step: int) -> str:
    return f"step-{step:06d}"


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def rng_state() -> dict[str, Any]:
    return {"torch": torch.get_rng_state(), "python": random.getstate()}


def restore_rng(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    random.setstate(state["python"])


def save(
    root: Path,
    meta: trainer_pb2.Checkpoint,
    model: nn.Module,
    tokenizer: PreTrainedTokenizerBase,
    state: dict[str, Any],
) -> trainer_pb2.Checkpoint:
    """Write checkpoint `meta.id` under `root`; returns meta with uri and size filled in."""
    root.mkdir(parents=True, exist_ok=True)
    final = root / meta.id
    tmp = root / f".tmp-{meta.id}-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    model.save_pretrained(str(tmp))  # type: ignore[operator]
    tokenizer.save_pretrained(str(tmp))
    torch.save(state, tmp / STATE_FILE)
    done = trainer_pb2.Checkpoint()
    done.CopyFrom(meta)
    done.uri = str(final.resolve())
    done.size_bytes = sum(f.stat().st_size for f in tmp.iterdir() if f.is_file())
    (tmp / META_FILE).write_text(json_format.MessageToJson(done))
    for file in tmp.iterdir():
        with file.open("rb") as fh:
            os.fsync(fh.fileno())
    if final.exists():  # the same step saved again (e.g. a resumed run's final save)
        shutil.rmtree(final)
    tmp.rename(final)
    _fsync_dir(root)
    return done


def list_checkpoints(root: Path) -> list[trainer_pb2.Checkpoint]:
    """Complete checkpoints, newest (highest step) first."""
    found = []
    if root.is_dir():
        for entry in root.iterdir():
            meta = entry / META_FILE
            if entry.name.startswith(".") or not meta.is_file():
                continue
            found.append(json_format.Parse(meta.read_text(), trainer_pb2.Checkpoint()))
    return sorted(found, key=lambda c: c.step, reverse=True)


def load_state(checkpoint_dir: Path) -> dict[str, Any]:
    state: dict[str, Any] = torch.load(checkpoint_dir / STATE_FILE, weights_only=False)
    return state


def clean_temporaries(root: Path) -> None:
    """Remove half-written checkpoints left by a crash."""
    if root.is_dir():
        for entry in root.iterdir():
            if entry.name.startswith(".tmp-"):
                shutil.rmtree(entry, ignore_errors=True)
