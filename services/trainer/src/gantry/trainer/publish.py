"""Publishing a checkpoint's weights to a rollout server (RolloutService.UpdateWeights).

STREAM sends a header and then every tensor in ~1 MiB chunks; URI sends only the
checkpoint directory for a rollout server that shares the storage. Under the fp8-jet
recipe the projection weights travel as FP8 E4M3 codes with their per-128x128-block
float32 scales as "<param>_scale" tensors: half the bytes of BF16, and exactly the codes
the trainer's FP8 forward used (both sides quantize the BF16-rounded master weight).
Everything else (embeddings, norms, lm_head) travels in the checkpoint's dtype.

Retries: the channel has gRPC's own retries switched off. Retrying a client-streaming
call inside grpc core (a rollout server answering UNAVAILABLE mid-stream) aborts the
whole process (`promise_based_filter.cc ... ILLEGAL STATE: FORWARDED_BATCH`), so
`publish` retries the whole stream itself: a new call from the header and first chunk,
after an exponential backoff or the server's RetryInfo, a bounded number of times.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import grpc
import torch

from gantry.core.client import sync_channel
from gantry.core.codecs import tensor_chunks, tensor_from_torch
from gantry.core.errors import GantryError, from_rpc_error
from gantry.core.precision import precision_message
from gantry.proto.common.v1 import precision_pb2
from gantry.proto.rollout.v1 import rollout_pb2, rollout_pb2_grpc
from gantry.proto.trainer.v1 import trainer_pb2

log = logging.getLogger("gantry.trainer.publish")

SCALE_SUFFIX = "_scale"
RETRYABLE = frozenset({grpc.StatusCode.UNAVAILABLE})
# Backoff jitter from a private generator: the global `random` state is part of a run's
# checkpointed RNG state and must not move when a publish retries.
_jitter = random.Random()


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
class Retry:
    """Attempts of one publish, and the waits between them."""

    attempts: int = 6
    initial_backoff_s: float = 0.5
    max_backoff_s: float = 8.0
    multiplier: float = 2.0
    max_retry_after_s: float = 30.0  # a server's RetryInfo is honoured up to this

    def delay(self, attempt: int, retry_after_s: float | None) -> float:
        """The wait after failed attempt number `attempt` (1-based)."""
        if retry_after_s is not None and retry_after_s > 0:
            return min(retry_after_s, self.max_retry_after_s)
        backoff = self.initial_backoff_s * self.multiplier ** (attempt - 1)
        return min(backoff, self.max_backoff_s) * _jitter.uniform(0.8, 1.2)


@dataclass(frozen=True)
class Published:
    policy_version: int
    seconds: float
    bytes_sent: int
    attempts: int = 1


class PublishFailed(Exception):
    """The last attempt's error, after `attempts` tries (or a stop request)."""

    def __init__(self, error: GantryError, attempts: int, *, stopped: bool = False) -> None:
        super().__init__(error.message)
        self.error = error
        self.attempts = attempts
        self.stopped = stopped


def publish(
    target: str,
    token: str | None,
    checkpoint: trainer_pb2.Checkpoint,
    recipe: str,
    run_id: str,
    *,
    uri_only: bool = False,
    timeout_s: float = 600.0,
    retry: Retry = Retry(),
    stop: threading.Event | None = None,
) -> Published:
    """Push `checkpoint` to the rollout server at `target` (blocking).

    UNAVAILABLE is retried with the whole stream, up to `retry.attempts` calls within
    `timeout_s`; `stop` (the service draining) ends the waiting early. Raises
    PublishFailed with the last error.
    """
    started = time.perf_counter()
    deadline = started + timeout_s
    header = rollout_pb2.WeightsHeader(version=checkpoint.policy_version, run_id=run_id)
    tensors: dict[str, torch.Tensor] = {}
    sent = 0
    if uri_only:
        header.checkpoint_uri = checkpoint.uri
    else:
        tensors, precision = wire_tensors(checkpoint_tensors(Path(checkpoint.uri)), recipe)
        header.tensor_count = len(tensors)
        sent = sum(t.numel() * t.element_size() for t in tensors.values())
        header.total_bytes = sent
        header.precision.CopyFrom(precision)
    attempt = 0
    while True:
        attempt += 1
        remaining = max(deadline - time.perf_counter(), 0.001)
        try:
            # A fresh channel and a fresh request iterator: every attempt starts over.
            with sync_channel(
                target, token=token, default_timeout_s=remaining, retry=None
            ) as channel:
                reply = rollout_pb2_grpc.RolloutServiceStub(channel).UpdateWeights(
                    requests(header, tensors), timeout=remaining
                )
            return Published(
                int(reply.policy_version), time.perf_counter() - started, sent, attempt
            )
        except grpc.RpcError as exc:
            error = from_rpc_error(exc)
            if error.code not in RETRYABLE or attempt >= retry.attempts:
                raise PublishFailed(error, attempt) from exc
            wait = retry.delay(attempt, getattr(error, "retry_after_s", None))
            if time.perf_counter() + wait >= deadline:
                raise PublishFailed(error, attempt) from exc
            log.warning(
                "UpdateWeights to %s: %s (attempt %d of %d); retrying in %.1fs",
                target,
                error.code.name,
                attempt,
                retry.attempts,
                wait,
            )
            if stop is not None and stop.wait(wait):
                raise PublishFailed(error, attempt, stopped=True) from exc
            if stop is None:
                time.sleep(wait)
