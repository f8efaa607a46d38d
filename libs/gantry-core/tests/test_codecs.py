"""Tensor/Image/Video codecs round-trip and reject malformed payloads by field."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from gantry.core import codecs
from gantry.core.errors import InvalidArgument
from gantry.proto.common.v1 import media_pb2, tensor_pb2


@pytest.mark.parametrize(
    "dtype", ["float32", "float16", "float64", "int8", "uint8", "int16", "int32", "int64", "bool"]
)
def test_numpy_round_trip(dtype: str) -> None:
    array = (
        (np.arange(24).reshape(2, 3, 4) % 2 == 0)
        if dtype == "bool"
        else np.arange(24, dtype=dtype).reshape(2, 3, 4)
    )
    wire = codecs.tensor_from_numpy(array)
    assert list(wire.shape) == [2, 3, 4]
    back = codecs.tensor_to_numpy(tensor_pb2.Tensor.FromString(wire.SerializeToString()))
    assert back.dtype == array.dtype and np.array_equal(back, array)


def test_big_endian_input_goes_little_endian_on_the_wire() -> None:
    array = np.arange(4, dtype=">i4")
    wire = codecs.tensor_from_numpy(array)
    assert wire.data == np.arange(4, dtype="<i4").tobytes()


@pytest.mark.parametrize(
    "dtype", [torch.bfloat16, torch.float8_e4m3fn, torch.float8_e5m2, torch.float32, torch.int64]
)
def test_torch_round_trip_including_bf16_and_fp8(dtype: torch.dtype) -> None:
    value = torch.linspace(-4, 4, 12).reshape(3, 4).to(dtype)
    wire = codecs.tensor_from_torch(value)
    back = codecs.tensor_to_torch(wire)
    assert back.dtype == dtype
    assert torch.equal(back.view(torch.uint8), value.contiguous().view(torch.uint8))


def test_bf16_has_no_numpy_view() -> None:
    wire = codecs.tensor_from_torch(torch.zeros(2, dtype=torch.bfloat16))
    with pytest.raises(InvalidArgument, match="decode with torch"):
        codecs.tensor_to_numpy(wire)


def test_empty_and_scalar_tensors() -> None:
    empty = codecs.tensor_to_torch(codecs.tensor_from_torch(torch.zeros(0, 3)))
    assert tuple(empty.shape) == (0, 3)
    scalar = codecs.tensor_to_numpy(codecs.tensor_from_numpy(np.array(3.5, dtype=np.float32)))
    assert scalar.shape == () and float(scalar) == 3.5


@pytest.mark.parametrize(
    ("tensor", "field"),
    [
        (tensor_pb2.Tensor(shape=[1], data=b"\0\0\0\0"), "obs.state.dtype"),
        (
            tensor_pb2.Tensor(dtype=tensor_pb2.DTYPE_FLOAT32, shape=[-1], data=b""),
            "obs.state.shape",
        ),
        (
            tensor_pb2.Tensor(dtype=tensor_pb2.DTYPE_FLOAT32, shape=[2], data=b"\0" * 7),
            "obs.state.data",
        ),
    ],
)
def test_malformed_tensor_names_the_field(tensor: tensor_pb2.Tensor, field: str) -> None:
    with pytest.raises(InvalidArgument) as info:
        codecs.tensor_to_numpy(tensor, field="obs.state")
    assert info.value.violations[0].field == field


def test_chunks_reassemble_in_order_and_validate() -> None:
    big = torch.randn(700, 1000)  # 2.8 MB -> 3 chunks
    wire = codecs.tensor_from_torch(big)
    chunks = list(codecs.tensor_chunks("w", wire))
    assert len(chunks) == 3 and chunks[-1].last and not chunks[0].last
    assert all(len(c.data) <= codecs.CHUNK_BYTES for c in chunks)
    small = list(codecs.tensor_chunks("b", codecs.tensor_from_torch(torch.ones(3))))
    (w, b) = codecs.assemble_chunks([*chunks, *small])
    assert w.name == "w" and torch.equal(codecs.tensor_to_torch(w.tensor), big)
    assert b.name == "b"
    with pytest.raises(InvalidArgument, match="expected offset"):
        list(codecs.assemble_chunks([chunks[0], chunks[2]]))
    with pytest.raises(InvalidArgument, match="ended inside"):
        list(codecs.assemble_chunks(chunks[:2]))


def test_image_round_trip_and_bad_bytes() -> None:
    pixels = np.random.default_rng(0).integers(0, 255, (20, 30, 3), dtype=np.uint8)
    image = codecs.image_from_array(pixels)
    assert (image.width, image.height, image.mime_type) == (30, 20, "image/png")
    assert np.array_equal(codecs.image_to_array(image), pixels)
    with pytest.raises(InvalidArgument) as info:
        codecs.image_to_array(media_pb2.Image(data=b"not an image"), field="observation.image")
    assert info.value.violations[0].field == "observation.image.data"


def test_video_frames_round_trip() -> None:
    frames = np.zeros((4, 8, 6, 3), dtype=np.uint8)
    frames[2] = 255
    video = codecs.video_from_frames(frames, fps=8.0)
    assert video.frame_count == 4 and (video.width, video.height) == (6, 8)
    assert np.array_equal(codecs.video_to_frames(video), frames)
    with pytest.raises(InvalidArgument):
        codecs.video_to_frames(media_pb2.Video(data=b"mp4", mime_type="video/mp4"))
