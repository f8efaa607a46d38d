"""An UpdateWeights chunk stream decoded in place, as it arrives.

The first chunk of a tensor announces its dtype and shape: the tensor is allocated then
(after checking it fits the update's byte budget) and every chunk's bytes are copied
straight into it, so a streamed update is held once, with no second copy as chunks or
wire buffers. The tensors are staged until the stream ends and the whole update is
checked, then copied into the served model: a failed or cut stream leaves the served
weights untouched.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from gantry.core.codecs import itemsize, tensor_to_torch
from gantry.core.errors import InvalidArgument, echo
from gantry.proto.common.v1 import tensor_pb2


class StreamedTensors:
    def __init__(self, budget: int, field: str = "chunk") -> None:
        self.budget = budget  # bytes all staged tensors may take together
        self.field = field
        self.tensors: dict[str, torch.Tensor] = {}
        self.staged = 0
        self._name = ""
        self._bytes: np.ndarray | None = None  # the current tensor's bytes, being filled
        self._filled = 0

    def add(self, chunk: tensor_pb2.TensorChunk) -> None:
        """Copy one chunk into its tensor (at most ~1 MiB: cheap enough for the loop)."""
        if self._bytes is None:
            if chunk.offset != 0:
                raise InvalidArgument.for_field(
                    f"{self.field}.offset", f"tensor {echo(chunk.name)} must start at offset 0"
                )
            self._start(chunk)
        elif chunk.name != self._name or chunk.offset != self._filled:
            raise InvalidArgument.for_field(
                f"{self.field}.offset",
                f"tensor {echo(self._name)}: expected offset {self._filled}, "
                f"got {echo(chunk.name)} at {chunk.offset}",
            )
        assert self._bytes is not None
        end = self._filled + len(chunk.data)
        if end > self._bytes.size:
            raise InvalidArgument.for_field(
                f"{self.field}[{self._name}].data",
                f"more than the {self._bytes.size} bytes its shape and dtype need",
            )
        self._bytes[self._filled : end] = np.frombuffer(chunk.data, dtype=np.uint8)
        self._filled = end
        if chunk.last:
            if self._filled != self._bytes.size:
                raise InvalidArgument.for_field(
                    f"{self.field}[{self._name}].data",
                    f"holds {self._filled} bytes; its shape and dtype need {self._bytes.size}",
                )
            self._bytes = None

    def _start(self, chunk: tensor_pb2.TensorChunk) -> None:
        where = f"{self.field}[{chunk.name}]"
        try:
            size = itemsize(chunk.dtype)
        except ValueError:
            raise InvalidArgument.for_field(f"{where}.dtype", "must be a known DType") from None
        shape = tuple(int(d) for d in chunk.shape)
        if any(d < 0 for d in shape):
            raise InvalidArgument.for_field(f"{where}.shape", "dimensions must be >= 0")
        nbytes = math.prod(shape) * size
        if self.staged + nbytes > self.budget:
            raise InvalidArgument.for_field(
                self.field, f"the update exceeds {self.budget} bytes, more than the served "
                "model's parameters can hold",
            )  # fmt: skip
        dtype = tensor_to_torch(tensor_pb2.Tensor(dtype=chunk.dtype, shape=[0])).dtype
        tensor = torch.empty(shape, dtype=dtype)
        self.staged += nbytes
        self.tensors[chunk.name] = tensor
        self._name, self._filled = chunk.name, 0
        self._bytes = (
            tensor.reshape(-1).view(torch.uint8).numpy() if nbytes else np.empty(0, np.uint8)
        )

    def finish(self) -> dict[str, torch.Tensor]:
        if self._bytes is not None:
            raise InvalidArgument.for_field(
                f"{self.field}.last", f"stream ended inside tensor {echo(self._name)}"
            )
        if not self.tensors:
            raise InvalidArgument.for_field(self.field, "no tensors were sent")
        return self.tensors
