"""Streamed weight updates decoded in place: exact tensors, and bad streams refused before
anything large is allocated."""

from __future__ import annotations

import pytest
import torch

from gantry.core.codecs import tensor_chunks, tensor_from_torch
from gantry.core.errors import InvalidArgument
from gantry.proto.common.v1 import tensor_pb2
from gantry.rollout.weights import StreamedTensors


def test_tensors_are_rebuilt_exactly_from_their_chunks() -> None:
    sent = {
        "a": torch.randn(3, 1000),
        "b": torch.randn(7).bfloat16(),
        "c": torch.randn(200, 130).to(torch.float8_e4m3fn),
        "empty": torch.zeros(0, 4),
    }
    streamed = StreamedTensors(budget=1 << 24)
    for name, tensor in sent.items():
        for chunk in tensor_chunks(name, tensor_from_torch(tensor), chunk_bytes=333):
            streamed.add(chunk)
    got = streamed.finish()
    assert got.keys() == sent.keys()
    for name, tensor in sent.items():
        assert got[name].dtype == tensor.dtype and got[name].shape == tensor.shape
        assert torch.equal(got[name].view(torch.uint8), tensor.view(torch.uint8))
    assert streamed.staged == sum(t.numel() * t.element_size() for t in sent.values())


def test_a_huge_announced_shape_is_refused_before_allocating() -> None:
    streamed = StreamedTensors(budget=1 << 20)
    chunk = tensor_pb2.TensorChunk(
        name="w", offset=0, dtype=tensor_pb2.DTYPE_FLOAT32, shape=[1 << 20, 1 << 20], last=True
    )
    with pytest.raises(InvalidArgument, match="exceeds") as info:
        streamed.add(chunk)
    assert info.value.violations[0].field == "chunk"


@pytest.mark.parametrize(
    ("chunks", "field"),
    [
        ([{"offset": 4}], "chunk.offset"),
        ([{"dtype": 0}], "chunk[w].dtype"),
        ([{"data": b"\0" * 20}], "chunk[w].data"),  # more than 2 float32
        ([{"data": b"\0" * 4, "last": True}], "chunk[w].data"),  # fewer
        ([{"data": b"\0" * 4}, {"name": "v", "offset": 4, "data": b"\0" * 4}], "chunk.offset"),
    ],
)
def test_bad_chunks_name_the_field(chunks: list[dict[str, object]], field: str) -> None:
    streamed = StreamedTensors(budget=1 << 20)
    first = {"name": "w", "offset": 0, "dtype": tensor_pb2.DTYPE_FLOAT32, "shape": [2]}
    messages = [
        tensor_pb2.TensorChunk(**{**(first if i == 0 else {"name": "w"}), **fields})  # type: ignore[arg-type]
        for i, fields in enumerate(chunks)
    ]
    for message in messages[:-1]:
        streamed.add(message)
    with pytest.raises(InvalidArgument) as info:
        streamed.add(messages[-1])
    assert info.value.violations[0].field == field


def test_a_stream_cut_inside_a_tensor_is_refused() -> None:
    streamed = StreamedTensors(budget=1 << 20)
    streamed.add(
        tensor_pb2.TensorChunk(
            name="w", offset=0, dtype=tensor_pb2.DTYPE_FLOAT32, shape=[2], data=b"\0" * 4
        )
    )
    with pytest.raises(InvalidArgument, match="ended inside"):
        streamed.finish()
    with pytest.raises(InvalidArgument, match="no tensors"):
        StreamedTensors(budget=1).finish()
