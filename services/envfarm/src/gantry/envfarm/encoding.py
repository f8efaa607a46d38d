"""How an observation's frame travels: PNG, WebP lossless or raw pixels (a request option).

Frames are encoded in the executor thread that stepped the environment; Pillow's encoders
release the GIL, so the items of a StepBatch encode in parallel with each other's steps.
WebP lossless (method 0) gives the same pixels as PNG in fewer bytes and less time on
rendered VisGym frames; raw pixels skip encoding altogether for clients on the same host.
"""

from __future__ import annotations

import io
from typing import Any

import numpy as np
from numpy.typing import NDArray

from gantry.core.errors import InvalidArgument
from gantry.envfarm.envs.base import IMAGE_LONG_SIDE
from gantry.envfarm.regions import FrameSlot
from gantry.proto.common.v1 import episode_pb2, media_pb2, tensor_pb2
from gantry.proto.envfarm.v1 import envfarm_pb2

PNG = envfarm_pb2.OBSERVATION_ENCODING_PNG
RAW = envfarm_pb2.OBSERVATION_ENCODING_RAW
WEBP_LOSSLESS = envfarm_pb2.OBSERVATION_ENCODING_WEBP_LOSSLESS
NAMES = {PNG: "PNG", RAW: "RAW", WEBP_LOSSLESS: "WEBP_LOSSLESS"}

# The largest frame a VisGym environment renders (long side 336, RGB).
MAX_FRAME_BYTES = IMAGE_LONG_SIDE * IMAGE_LONG_SIDE * 3


def check(value: int, field: str = "observation_encoding") -> int:
    """The requested encoding (UNSPECIFIED means PNG); unknown values name the field."""
    if value == envfarm_pb2.OBSERVATION_ENCODING_UNSPECIFIED:
        return PNG
    if value not in NAMES:
        known = ", ".join(f"OBSERVATION_ENCODING_{n}" for n in NAMES.values())
        raise InvalidArgument.for_field(
            field, f"unknown observation encoding {value}; known: {known}"
        )
    return value


def image(pixels: NDArray[np.uint8], encoding: int) -> media_pb2.Image:
    """PNG (compression level 1: the fastest level that still compresses) or WebP lossless."""
    from PIL import Image as PILImage

    buffer = io.BytesIO()
    frame = PILImage.fromarray(pixels)
    if encoding == WEBP_LOSSLESS:
        # Method 0 (the fastest); for lossless WebP, quality sets encoder effort only.
        frame.save(buffer, format="WEBP", lossless=True, method=0, quality=25)
        mime = "image/webp"
    else:
        frame.save(buffer, format="PNG", compress_level=1)
        mime = "image/png"
    height, width = pixels.shape[:2]
    return media_pb2.Image(data=buffer.getvalue(), mime_type=mime, width=width, height=height)


def write(
    message: Any,
    obs: dict[str, Any],
    mode: int,
    encoding: int,
    *,
    previous: NDArray[np.uint8] | None = None,
    omit_unchanged: bool = False,
    slot: FrameSlot | None = None,
) -> NDArray[np.uint8] | None:
    """Fill `message.observation` (and `observation_pixels` for RAW) from `obs`.

    `message` is a StepResult, CreateSessionResponse or ResetResponse. With
    `omit_unchanged`, a frame equal to `previous` is left out and
    `observation_changed` says so. With a frame region's `slot` (StepResult only), a RAW
    frame goes there and `frame_in_region` says so. Returns the frame the client now
    holds, if any.
    """
    wants_text = mode in (
        episode_pb2.OBSERVATION_MODE_TEXT,
        episode_pb2.OBSERVATION_MODE_IMAGE_AND_TEXT,
    )
    wants_image = mode != episode_pb2.OBSERVATION_MODE_TEXT
    message.observation.SetInParent()
    if wants_text:
        message.observation.text = obs["text"]
    if not wants_image:
        return None
    pixels: NDArray[np.uint8] = obs["image"]
    if omit_unchanged:
        # A buffer the environment reuses cannot be compared with itself: send it.
        reused = previous is not None and np.may_share_memory(previous, pixels)
        changed = previous is None or reused or not np.array_equal(previous, pixels)
        message.observation_changed = changed
        if not changed:
            return pixels
    if encoding == RAW:
        if slot is not None and slot[0].write(slot[1], pixels):
            _describe_pixels(message.observation_pixels, pixels)
            message.frame_in_region = True
        else:
            _describe_pixels(message.observation_pixels, pixels)
            message.observation_pixels.data = pixels.tobytes()  # C order whatever the strides
    else:
        message.observation.image.CopyFrom(image(pixels, encoding))
    return pixels


def _describe_pixels(tensor: tensor_pb2.Tensor, pixels: NDArray[np.uint8]) -> None:
    """A uint8 frame's dtype and shape, set in place: building a Tensor and copying it
    into the message would copy the ~330 KiB frame twice more (and fresh pages are dear)."""
    if pixels.dtype != np.uint8:
        raise TypeError(f"frames are uint8, got {pixels.dtype}")
    tensor.dtype = tensor_pb2.DTYPE_UINT8
    tensor.shape[:] = pixels.shape
