"""An UpdateWeights chunk stream decoded tensor by tensor, as it arrives.

Each tensor is decoded as soon as its last chunk lands and its chunks are dropped, so a
streamed update is held once (plus the chunks of one tensor), not once as chunks and
again as tensors. The decoded tensors are staged until the stream ends and the whole
update is checked, then copied into the served model: a failed or cut stream leaves the
served weights untouched.
"""

from __future__ import annotations

import torch

from gantry.core.codecs import assemble_chunks, tensor_to_torch
from gantry.core.errors import InvalidArgument
from gantry.proto.common.v1 import tensor_pb2


class StreamedTensors:
    def __init__(self, field: str = "chunk") -> None:
        self.field = field
        self.tensors: dict[str, torch.Tensor] = {}
        self._pending: list[tensor_pb2.TensorChunk] = []

    def add(self, chunk: tensor_pb2.TensorChunk) -> list[tensor_pb2.TensorChunk] | None:
        """Take a chunk; returns the chunks of a tensor once its last one has arrived."""
        self._pending.append(chunk)
        if not chunk.last:
            return None
        done, self._pending = self._pending, []
        return done

    def decode(self, chunks: list[tensor_pb2.TensorChunk]) -> None:
        """Decode one tensor's chunks into the staged update (blocking: off the loop)."""
        for named in assemble_chunks(chunks, field=self.field):
            self.tensors[named.name] = tensor_to_torch(
                named.tensor, field=f"{self.field}[{named.name}]"
            )

    def finish(self) -> dict[str, torch.Tensor]:
        if self._pending:
            raise InvalidArgument.for_field(
                f"{self.field}.last", f"stream ended inside tensor {self._pending[0].name!r}"
            )
        if not self.tensors:
            raise InvalidArgument.for_field(self.field, "no tensors were sent")
        return self.tensors
