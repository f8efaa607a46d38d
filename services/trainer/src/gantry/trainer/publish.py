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
import math
import random
import threading
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import grpc
import torch

from gantry.core.client import sync_channel
from gantry.core.codecs import CHUNK_BYTES, tensor_from_torch
from gantry.core.errors import GantryError, from_rpc_error
from gantry.core.precision import precision_message
from gantry.proto.common.v1 import precision_pb2, tensor_pb2
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


# Bytes per element of the safetensors dtypes a checkpoint holds.
_ITEMSIZE = {"F64": 8, "F32": 4, "BF16": 2, "F16": 2, "F8_E4M3": 1, "F8_E5M2": 1, "I64": 8}
_ITEMSIZE |= {"I32": 4, "I16": 2, "I8": 1, "U8": 1, "BOOL": 1}
FP8_BLOCK = 128


class WireWeights:
    """A checkpoint's tensors as they go on the wire, read one tensor at a time.

    The safetensors files are opened lazily (memory-mapped) and each tensor is read,
    converted for the recipe and chunked only when the stream reaches it, so a publish
    holds one tensor beyond the trainer's own model, never a second copy of the whole
    model (and several replicas stream from the same mapped files).
    """

    def __init__(self, checkpoint_dir: Path, recipe: str) -> None:
        from safetensors import safe_open

        self.files = sorted(checkpoint_dir.glob("*.safetensors"))
        if not self.files:
            raise FileNotFoundError(f"no safetensors weights in {checkpoint_dir}")
        self.fp8 = recipe == "fp8-jet"
        self.precision = (
            precision_message("fp8-jet")
            if self.fp8
            else precision_pb2.Precision(mode=precision_pb2.PRECISION_MODE_BF16)
        )
        # Sizes from the headers alone: the count and bytes the header announces.
        self.count = self.bytes = 0
        self.names: list[tuple[Path, str]] = []
        for file in self.files:
            with safe_open(str(file), framework="pt") as f:
                for name in f.keys():  # noqa: SIM118 (safe_open is not a Mapping)
                    self.names.append((file, name))
                    part = f.get_slice(name)
                    shape, dtype = list(part.get_shape()), part.get_dtype()
                    numel = math.prod(shape)
                    if self.fp8 and _fp8_shape(name, shape):
                        rows, cols = shape
                        self.count += 2
                        self.bytes += numel + 4 * -(-rows // FP8_BLOCK) * -(-cols // FP8_BLOCK)
                    else:
                        self.count += 1
                        self.bytes += numel * _ITEMSIZE.get(dtype, 4)

    def __iter__(self) -> Iterator[tuple[str, torch.Tensor]]:
        from safetensors import safe_open

        for file, name in self.names:
            # Mapped only while one tensor is read: the file's pages do not pile up in RSS.
            with safe_open(str(file), framework="pt") as f:
                tensor = f.get_tensor(name)
            yield from self._wire(name, tensor)

    def _wire(self, name: str, tensor: torch.Tensor) -> Iterator[tuple[str, torch.Tensor]]:
        """fp8-jet: projection weights as FP8 codes + their block scales; else as stored."""
        if not (self.fp8 and is_fp8_weight(name, tensor)):
            yield name, tensor
            return
        from gantry.kernels.fp8_linear import FP8Config
        from gantry.kernels.fp8_quant import quantize_weight

        config = FP8Config()
        q = quantize_weight(config.weight_source(tensor), config.weight_format)
        yield name, q.data
        yield name + SCALE_SUFFIX, q.scale.to(torch.float32)


def _fp8_shape(name: str, shape: list[int]) -> bool:
    return len(shape) == 2 and is_fp8_weight(name, torch.empty(0, 0))


def chunks(
    name: str, tensor: torch.Tensor, chunk_bytes: int = CHUNK_BYTES
) -> Iterator[tensor_pb2.TensorChunk]:
    """`tensor` as `TensorChunk`s, sliced straight from its memory: no whole-tensor bytes
    copy on the way (the same chunks as gantry.core.codecs.tensor_chunks)."""
    dtype = tensor_from_torch(torch.empty(0, dtype=tensor.dtype)).dtype
    flat = tensor.detach().to("cpu").contiguous().reshape(-1)
    raw = flat.view(torch.uint8).numpy() if flat.numel() else b""
    offsets = range(0, max(len(raw), 1), chunk_bytes)
    for i, offset in enumerate(offsets):
        chunk = tensor_pb2.TensorChunk(
            name=name,
            offset=offset,
            data=bytes(raw[offset : offset + chunk_bytes]),
            last=i == len(offsets) - 1,
        )
        if offset == 0:
            chunk.dtype = dtype
            chunk.shape.extend(tensor.shape)
        yield chunk


def requests(
    header: rollout_pb2.WeightsHeader, tensors: Iterable[tuple[str, torch.Tensor]]
) -> Iterator[rollout_pb2.UpdateWeightsRequest]:
    yield rollout_pb2.UpdateWeightsRequest(header=header)
    for name, tensor in tensors:
        for chunk in chunks(name, tensor):
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
    version: int = 0,
    timeout_s: float = 600.0,
    retry: Retry = Retry(),
    stop: threading.Event | None = None,
) -> Published:
    """Push `checkpoint` to the rollout server at `target` (blocking). `version` asks
    the server to serve at least that policy version (replicas then agree on numbers).

    UNAVAILABLE is retried with the whole stream, up to `retry.attempts` calls within
    `timeout_s`; `stop` (the service draining) ends the waiting early. Raises
    PublishFailed with the last error.
    """
    started = time.perf_counter()
    deadline = started + timeout_s
    header = rollout_pb2.WeightsHeader(version=version, run_id=run_id)
    tensors: Iterable[tuple[str, torch.Tensor]] = ()
    sent = 0
    if uri_only:
        header.checkpoint_uri = checkpoint.uri
    else:
        tensors = wire = WireWeights(Path(checkpoint.uri), recipe)
        header.tensor_count, header.total_bytes = wire.count, wire.bytes
        header.precision.CopyFrom(wire.precision)
        sent = wire.bytes
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
