"""Data-parallel training across ranks with PyTorch's own engine: FSDP2 and DCP.

Every rank holds a shard of each parameter and of its AdamW state (`fully_shard` on each
transformer block, then on the root for the embeddings, norm and head). A forward gathers
a block's full weight just before the block runs and frees it after, so the FP8 flow
quantizes the gathered weight exactly as one process would (per-128x128-block scales of
the whole matrix, never of a shard).

Weights are gathered in the parameters' own dtype, so every rank computes as one process
does: BF16 under BF16 working weights (`gantry.trainer.master`: the float32 masters and
AdamW moments are optimiser state, sharded like their parameters), float32 for float32
weights (the BF16 recipes then autocast, as one process does); no `param_dtype` cast is
needed, the parameters already are the working weights. Gradients are reduced in float32
and summed, not averaged: each rank's loss is already divided by the whole batch's token
count, so the sum over ranks is the one-process gradient; FSDP2 hands the reduced shard
over in the parameter's dtype and MasterAdamW's hook adds it to the float32 master
gradient at once.

Nothing here starts processes; `gantry.trainer.ranks` does. With no process group every
function degrades to the one-process case.

DCP's reader unpickles its `.metadata` file and any non-tensor entry; here both go through
allow-listing unpicklers (DCP's own metadata classes, torch dtypes and sizes; plain data via
`torch.load(weights_only=True)`), so a tampered checkpoint folder cannot run code.
"""

from __future__ import annotations

import io
import pathlib
import pickle
from collections.abc import Sequence
from pathlib import Path
from typing import Any, TypeVar

import torch
import torch.distributed as dist
from torch import nn

T = TypeVar("T")

_BLOCK_SUFFIXES = ("DecoderLayer", "EncoderLayer", "Block")


def active() -> bool:
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def rank() -> int:
    return dist.get_rank() if active() else 0


def world_size() -> int:
    return dist.get_world_size() if active() else 1


def blocks(model: nn.Module) -> list[nn.Module]:
    """The repeated transformer blocks (HF `*DecoderLayer`, vision `*EncoderLayer`/`*Block`)."""
    return [
        m for m in model.modules() if m is not model and type(m).__name__.endswith(_BLOCK_SUFFIXES)
    ]


def shard(model: nn.Module) -> None:
    """FSDP2 over the current process group, in place: each block, then the root."""
    from torch.distributed.fsdp import FSDPModule, MixedPrecisionPolicy, fully_shard

    policy = MixedPrecisionPolicy(reduce_dtype=torch.float32)
    for block in blocks(model):
        fully_shard(block, mp_policy=policy)
    fully_shard(model, mp_policy=policy)
    for module in model.modules():
        if isinstance(module, FSDPModule):
            module.set_gradient_divide_factor(1.0)  # sum: losses are pre-normalised
            module.set_force_sum_reduction_for_comms(True)  # plain SUM (gloo has no PREMUL)


def share(items: Sequence[T], group_rank: int, size: int) -> list[T]:
    """This rank's part of a batch every rank holds whole: items rank, rank + size, ..."""
    return list(items[group_rank::size])


def max_over_ranks(value: float) -> float:
    """The largest `value` of any rank (e.g. forwards to run: each rank must run as many as
    the others). float64 on the wire: exact for counts."""
    if not active():
        return value
    t = torch.tensor([value], dtype=torch.float64)
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return float(t.item())


def sum_over_ranks(values: Sequence[float]) -> list[float]:
    if not active():
        return list(values)
    t = torch.tensor(list(values), dtype=torch.float64)
    dist.all_reduce(t)
    return t.tolist()


def _local(tensor: torch.Tensor) -> torch.Tensor:
    """A DTensor's full value (a collective), or the tensor itself."""
    full = getattr(tensor, "full_tensor", None)
    return full() if callable(full) else tensor  # type: ignore[no-any-return]


def clip_grad_norm(params: list[torch.Tensor], limit: float) -> float:
    """The global gradient norm over every rank's shards, clipped to `limit`."""
    norm = torch.nn.utils.clip_grad_norm_(params, limit)
    return float(_local(norm))


def full_state_dict(model: nn.Module) -> dict[str, torch.Tensor]:
    """The whole model's weights on CPU at rank 0 (others get {}); a collective.

    Gathered tensor by tensor, so rank 0 holds one full copy, never two.
    """
    if not active():
        return {k: v.detach() for k, v in model.state_dict().items()}
    from torch.distributed.checkpoint.state_dict import StateDictOptions, get_model_state_dict

    options = StateDictOptions(full_state_dict=True, cpu_offload=True)
    state = get_model_state_dict(model, options=options)
    tied = _tied_names(model)  # gathered copies no longer share storage: HF cannot tell
    return {k: v for k, v in state.items() if isinstance(v, torch.Tensor) and k not in tied}


def _tied_names(model: nn.Module) -> set[str]:
    """Every name but the first of a parameter registered under several names."""
    first: dict[int, str] = {}
    tied = set()
    for name, param in model.named_parameters(remove_duplicate=False):
        if id(param) in first:
            tied.add(name)
        else:
            first[id(param)] = name
    return tied


def save_sharded(model: nn.Module, optimizer: torch.optim.Optimizer, directory: Path) -> None:
    """Each rank writes its shards of the weights and AdamW state into `directory` (DCP)."""
    from torch.distributed.checkpoint.state_dict import get_state_dict
    from torch.distributed.checkpoint.state_dict_saver import save

    model_state, optim_state = get_state_dict(model, optimizer)
    save({"model": model_state, "optim": optim_state}, checkpoint_id=str(directory))


_METADATA_MODULES = ("torch.distributed.checkpoint.metadata",)
_METADATA_GLOBALS = {
    ("torch.distributed.checkpoint.filesystem", "_StorageInfo"),
    ("torch", "Size"),
    ("torch.serialization", "_get_layout"),
    ("pathlib", "PosixPath"),
    ("pathlib", "PurePosixPath"),
}


class _MetadataUnpickler(pickle.Unpickler):
    """DCP's metadata classes and torch dtypes; anything else is refused."""

    def find_class(self, module: str, name: str) -> Any:
        allowed = module in _METADATA_MODULES or (module, name) in _METADATA_GLOBALS
        if module == "torch" and isinstance(getattr(torch, name, None), torch.dtype):
            allowed = True
        if not allowed:
            raise pickle.UnpicklingError(f"shards metadata may not load {module}.{name}")
        return super().find_class(module, name)


def _safe_reader(directory: Path) -> Any:
    from torch.distributed.checkpoint.filesystem import FileSystemReader
    from torch.distributed.checkpoint.metadata import Metadata, StorageMeta

    class SafeReader(FileSystemReader):
        def read_metadata(self, *args: Any, **kwargs: Any) -> Metadata:
            with (pathlib.Path(self.path) / ".metadata").open("rb") as fh:
                metadata = _MetadataUnpickler(fh).load()
            if not isinstance(metadata, Metadata):
                raise pickle.UnpicklingError("shards metadata is not DCP metadata")
            storage = metadata.storage_meta or StorageMeta()
            storage.load_id = self.load_id
            metadata.storage_meta = storage
            return metadata

    return SafeReader(str(directory))


def _safe_planner() -> Any:
    from torch.distributed.checkpoint.default_planner import DefaultLoadPlanner

    class SafePlanner(DefaultLoadPlanner):
        def load_bytes(self, read_item: Any, value: io.BytesIO) -> None:
            data = torch.load(value, weights_only=True)  # DCP's own default is False
            super().load_bytes(read_item, _saved(data))

    return SafePlanner()


def _saved(data: Any) -> io.BytesIO:
    buffer = io.BytesIO()
    torch.save(data, buffer)
    buffer.seek(0)
    return buffer


def load_sharded(model: nn.Module, optimizer: torch.optim.Optimizer, directory: Path) -> None:
    """Weights and AdamW state from a DCP directory written by any number of ranks."""
    from torch.distributed.checkpoint.state_dict import get_state_dict, set_state_dict
    from torch.distributed.checkpoint.state_dict_loader import load

    model_state, optim_state = get_state_dict(model, optimizer)
    state: dict[str, Any] = {"model": model_state, "optim": optim_state}
    load(state, storage_reader=_safe_reader(directory), planner=_safe_planner())
    set_state_dict(
        model, optimizer, model_state_dict=state["model"], optim_state_dict=state["optim"]
    )
