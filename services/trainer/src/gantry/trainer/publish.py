"""Publishing a checkpoint's weights to a rollout server (RolloutService.UpdateWeights).

STREAM sends a header and then every tensor in ~1 MiB chunks; URI sends only the
checkpoint directory for a rollout server that shares the storage. Under the fp8-jet
recipe the projection weights travel as FP8 E4M3 codes with their per-128x128-block
float32 scales as "<param>_scale" tensors: half the bytes of BF16, and exactly the codes
the trainer's FP8 forward used (both sides quantize the BF16-rounded master weight).
Everything else (embeddings, norms, lm_head) travels in the checkpoint's dtype.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import torch

from gantry.core.client import sync_channel
from gantry.core.codecs import tensor_chunks, tensor_from_torch
from gantry.core.precision import precision_message
from gantry.proto.common.v1 import precision_pb2
from gantry.proto.rollout.v1 import rollout_pb2, rollout_pb2_grpc
from gantry.proto.trainer.v1 import trainer_pb2

SCALE_SUFFIX = "_scale"


def is_fp8_weight(name: str, tensor: torch.Tensor) -> bool:
    """The weights FP8Linear quantizes: the attention and MLP projections' matrices."""
    from gantry.kernels.fp8_linear import DEFAULT_TARGETS

    parts = name.split(".")
    return (
        tensor.dim() == 2
        and len(parts) >= 2
        and parts[-1] == "weight"
        and parts[-2] in DEFAULT_TARGETS
    )


def checkpoint_tensors(checkpoint_dir: Path) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    tensors: dict[str, torch.Tensor] = {}
    for file in sorted(checkpoint_dir.glob("*.safetensors")):
        tensors.update(load_file(str(file)))
    if not tensors:
        raise FileNotFoundError(f"no safetensors weights in {checkpoint_dir}")
    return tensors


def wire_tensors(
    tensors: dict[str, torch.Tensor], recipe: str
) -> tuple[dict[str, torch.Tensor], precision_pb2.Precision]:
    """What goes on the wire for `recipe`, and the precision announced in the header."""
    if recipe != "fp8-jet":
        return tensors, precision_pb2.Precision(mode=precision_pb2.PRECISION_MODE_BF16)
    from gantry.kernels.fp8_linear import FP8Config
    from gantry.kernels.fp8_quant import quantize_weight

    config = FP8Config()
    out: dict[str, torch.Tensor] = {}
    for name, tensor in tensors.items():
        if is_fp8_weight(name, tensor):
            q = quantize_weight(config.weight_source(tensor), config.weight_format)
            out[name] = q.data
            out[name + SCALE_SUFFIX] = q.scale.to(torch.float32)
        else:
            out[name] = tensor
    return out, precision_message("fp8-jet")


def requests(
    header: rollout_pb2.WeightsHeader, tensors: dict[str, torch.Tensor]
) -> Iterator[rollout_pb2.UpdateWeightsRequest]:
    yield rollout_pb2.UpdateWeightsRequest(header=header)
    for name, tensor in tensors.items():
        for chunk in tensor_chunks(name, tensor_from_torch(tensor)):
            yield rollout_pb2.UpdateWeightsRequest(chunk=chunk)


@dataclass(frozen=True)
class Published:
    policy_version: int
    seconds: float
    bytes_sent: int


def publish(
    target: str,
    token: str | None,
    checkpoint: trainer_pb2.Checkpoint,
    recipe: str,
    run_id: str,
    *,
    uri_only: bool = False,
    timeout_s: float = 600.0,
) -> Published:
    """Push `checkpoint` to the rollout server at `target` (blocking)."""
    started = time.perf_counter()
    header = rollout_pb2.WeightsHeader(version=checkpoint.policy_version, run_id=run_id)
    if uri_only:
        header.checkpoint_uri = checkpoint.uri
        stream: Iterator[rollout_pb2.UpdateWeightsRequest] = iter(
            [rollout_pb2.UpdateWeightsRequest(header=header)]
        )
        sent = 0
    else:
        tensors, precision = wire_tensors(checkpoint_tensors(Path(checkpoint.uri)), recipe)
        header.tensor_count = len(tensors)
        sent = sum(t.numel() * t.element_size() for t in tensors.values())
        header.total_bytes = sent
        header.precision.CopyFrom(precision)
        stream = requests(header, tensors)
    with sync_channel(target, token=token, default_timeout_s=timeout_s) as channel:
        reply = rollout_pb2_grpc.RolloutServiceStub(channel).UpdateWeights(stream)
    return Published(int(reply.policy_version), time.perf_counter() - started, sent)
