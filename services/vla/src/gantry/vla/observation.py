"""Checking and decoding one `RobotObservation` against the served policy's spec.

Every rejection is INVALID_ARGUMENT naming the field, checked in the cheap order: sizes
and shapes before any decoding, decoding before the model.
"""

from __future__ import annotations

import io
import math
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from gantry.core.codecs import tensor_to_numpy
from gantry.core.errors import InvalidArgument, echo
from gantry.core.limits import check_bytes, check_count
from gantry.proto.common.v1 import tensor_pb2
from gantry.proto.vla.v1 import vla_pb2


@dataclass(frozen=True)
class ObservationSpec:
    cameras: tuple[str, ...]
    state_dim: int
    max_image_pixels: int
    max_image_bytes: int
    max_instruction_bytes: int
    max_denoising_steps: int


@dataclass
class Observation:
    images: NDArray[np.uint8]  # [cameras, H, W, 3] (cameras in spec order, one size)
    state: NDArray[np.float32]  # [state_dim]
    instruction: str
    timestep: int


def check_steps(steps: int, field: str, spec: ObservationSpec) -> int:
    if steps < 0 or steps > spec.max_denoising_steps:
        raise InvalidArgument.for_field(
            field, f"must be in [0, {spec.max_denoising_steps}] (0 = the policy default)"
        )
    return steps


def _raw_frame(tensor: tensor_pb2.Tensor, field: str, spec: ObservationSpec) -> NDArray[np.uint8]:
    if tensor.dtype != tensor_pb2.DTYPE_UINT8:
        raise InvalidArgument.for_field(f"{field}.dtype", "must be DTYPE_UINT8")
    shape = list(tensor.shape)
    if len(shape) != 3 or shape[2] != 3 or shape[0] < 1 or shape[1] < 1:
        raise InvalidArgument.for_field(f"{field}.shape", "must be [H, W, 3] (RGB), H, W >= 1")
    if shape[0] * shape[1] > spec.max_image_pixels:
        raise InvalidArgument.for_field(
            f"{field}.shape", f"holds more than {spec.max_image_pixels} pixels"
        )
    return tensor_to_numpy(tensor, field=field)  # checks the byte count


def _encoded_frame(data: bytes, field: str, spec: ObservationSpec) -> NDArray[np.uint8]:
    from PIL import Image, UnidentifiedImageError

    check_bytes(data, field=f"{field}.data", limit=spec.max_image_bytes)
    if not data:
        raise InvalidArgument.for_field(f"{field}.data", "is empty")
    try:
        with Image.open(io.BytesIO(data)) as decoded:
            # The header's size, checked before any pixel is decoded.
            if decoded.width * decoded.height > spec.max_image_pixels:
                raise InvalidArgument.for_field(
                    f"{field}.data", f"decodes to more than {spec.max_image_pixels} pixels"
                )
            if decoded.format not in ("PNG", "JPEG"):
                raise InvalidArgument.for_field(f"{field}.data", "is not a PNG or JPEG image")
            return np.asarray(decoded.convert("RGB"), dtype=np.uint8)
    except (UnidentifiedImageError, OSError, Image.DecompressionBombError, ValueError) as exc:
        raise InvalidArgument.for_field(f"{field}.data", "is not a PNG or JPEG image") from exc


def parse_observation(
    obs: vla_pb2.RobotObservation,
    field: str,
    spec: ObservationSpec,
    default_instruction: str = "",
) -> Observation:
    check_bytes(obs.instruction, field=f"{field}.instruction", limit=spec.max_instruction_bytes)
    instruction = obs.instruction.strip() or default_instruction
    if not instruction:
        raise InvalidArgument.for_field(f"{field}.instruction", "must not be empty")
    if not obs.HasField("state"):
        raise InvalidArgument.for_field(f"{field}.state", "is required")
    state_field = f"{field}.state"
    if obs.state.dtype != tensor_pb2.DTYPE_FLOAT32:
        raise InvalidArgument.for_field(f"{state_field}.dtype", "must be DTYPE_FLOAT32")
    if list(obs.state.shape) != [spec.state_dim]:
        raise InvalidArgument.for_field(
            f"{state_field}.shape",
            f"must be [{spec.state_dim}] (the policy's state_dim), "
            f"got {echo(list(obs.state.shape))}",
        )
    state = tensor_to_numpy(obs.state, field=state_field).astype(np.float32)
    if not np.all(np.isfinite(state)):
        raise InvalidArgument.for_field(state_field, "holds NaN or infinity")
    check_count(obs.cameras, field=f"{field}.cameras", limit=len(spec.cameras))
    frames: dict[str, NDArray[np.uint8]] = {}
    for i, frame in enumerate(obs.cameras):
        where = f"{field}.cameras[{i}]"
        if frame.camera not in spec.cameras:
            raise InvalidArgument.for_field(
                f"{where}.camera",
                f"unknown camera {echo(frame.camera)}; the policy uses {', '.join(spec.cameras)}",
            )
        if frame.camera in frames:
            raise InvalidArgument.for_field(f"{where}.camera", "is repeated")
        kind = frame.WhichOneof("pixels")
        if kind == "raw":
            frames[frame.camera] = _raw_frame(frame.raw, f"{where}.raw", spec)
        elif kind == "image":
            frames[frame.camera] = _encoded_frame(frame.image.data, f"{where}.image", spec)
        else:
            raise InvalidArgument.for_field(f"{where}.pixels", "set image or raw")
    missing = [name for name in spec.cameras if name not in frames]
    if missing:
        raise InvalidArgument.for_field(f"{field}.cameras", f"missing camera {missing[0]!r}")
    images = [frames[name] for name in spec.cameras]
    if len({img.shape for img in images}) > 1:
        raise InvalidArgument.for_field(f"{field}.cameras", "all frames must have one size")
    if obs.timestep < 0:
        raise InvalidArgument.for_field(f"{field}.timestep", "must be >= 0")
    return Observation(np.stack(images), state, instruction, int(obs.timestep))


def check_fraction(value: float, field: str) -> None:
    if not math.isfinite(value) or not 0.0 <= value <= 1.0:
        raise InvalidArgument.for_field(field, "must be in [0, 1]")
