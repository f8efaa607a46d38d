"""Request checks: every GenerateVideo field validated on arrival, errors naming the field.

These run before any decoding or model work, and before an operation exists (AIP-151:
a bad request fails the call itself). Checks that need the decoded input (the output
frame count against the input's) live in `resolve_frames` and run right after decoding,
still before the operation starts.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from gantry.core.codecs import tensor_to_numpy
from gantry.core.errors import InvalidArgument
from gantry.core.limits import check_bytes
from gantry.proto.video.v1 import video_pb2
from gantry.video.engine import FRAME_MULTIPLE, FRAME_REMAINDER
from gantry.video.media import OUTPUT_MIME_TYPES
from gantry.video.memory import Camera
from gantry.video.salad import AttentionSettings, Mode

MAX_FPS = 120.0
MAX_GUIDANCE = 50.0
MAX_WINDOW = 256
MAX_CAMERA_FRAMES = 1024

_MODES: dict[int, Mode | None] = {
    video_pb2.ATTENTION_MODE_UNSPECIFIED: None,
    video_pb2.ATTENTION_MODE_DENSE: "dense",
    video_pb2.ATTENTION_MODE_SPARSE: "sparse",
    video_pb2.ATTENTION_MODE_SALAD: "salad",
}


@dataclass(frozen=True)
class Bounds:
    max_frames: int
    max_width: int
    max_height: int
    size_multiple: int
    max_prompt_bytes: int
    max_steps: int
    max_top_k: int
    max_token_budget: int


def valid_frame_count(n: int) -> bool:
    return n >= FRAME_REMAINDER and (n - FRAME_REMAINDER) % FRAME_MULTIPLE == 0


def round_down_frames(n: int) -> int:
    """The largest valid frame count <= n (0 when none is)."""
    if n < FRAME_REMAINDER:
        return 0
    return n - (n - FRAME_REMAINDER) % FRAME_MULTIPLE


def check_request(request: video_pb2.GenerateVideoRequest, bounds: Bounds) -> None:
    """Everything that can be checked without decoding the input."""
    if request.input.WhichOneof("source") is None:
        raise InvalidArgument.for_field(
            "input", "set one of input.video, input.video_id, input.uri"
        )
    check_bytes(request.prompt, field="prompt", limit=bounds.max_prompt_bytes)
    check_bytes(request.negative_prompt, field="negative_prompt", limit=bounds.max_prompt_bytes)
    n = request.num_frames
    if n < 0 or n > bounds.max_frames:
        raise InvalidArgument.for_field(
            "num_frames", f"must be in [0, {bounds.max_frames}] (got {n})"
        )
    if n and not valid_frame_count(n):
        raise InvalidArgument.for_field(
            "num_frames",
            f"must be {FRAME_MULTIPLE}k+{FRAME_REMAINDER} (Wan's VAE compresses time "
            f"{FRAME_MULTIPLE}x); {n} is not: use {max(round_down_frames(n), 1)} or "
            f"{round_down_frames(n) + FRAME_MULTIPLE}",
        )
    for name, value, limit in (
        ("width", request.width, bounds.max_width),
        ("height", request.height, bounds.max_height),
    ):
        if value < 0 or value > limit:
            raise InvalidArgument.for_field(name, f"must be in [0, {limit}] (got {value})")
        if value % bounds.size_multiple:
            raise InvalidArgument.for_field(
                name, f"must be a multiple of {bounds.size_multiple} (got {value})"
            )
    if not (math.isfinite(request.fps) and 0 <= request.fps <= MAX_FPS):
        raise InvalidArgument.for_field("fps", f"must be in [0, {MAX_FPS}]")
    if not 0 <= request.num_inference_steps <= bounds.max_steps:
        raise InvalidArgument.for_field(
            "num_inference_steps", f"must be in [0, {bounds.max_steps}]"
        )
    if not (math.isfinite(request.guidance_scale) and 0 <= request.guidance_scale <= MAX_GUIDANCE):
        raise InvalidArgument.for_field("guidance_scale", f"must be in [0, {MAX_GUIDANCE}]")
    if not (math.isfinite(request.strength) and 0 <= request.strength <= 1):
        raise InvalidArgument.for_field("strength", "must be in [0, 1] (0 = default)")
    if request.task not in video_pb2.VideoTask.values():
        raise InvalidArgument.for_field("task", f"unknown task {request.task}")
    if request.task == video_pb2.VIDEO_TASK_NOVEL_VIEW and not request.camera.HasField(
        "extrinsics"
    ):
        raise InvalidArgument.for_field(
            "camera.extrinsics", "is required for VIDEO_TASK_NOVEL_VIEW"
        )
    if request.output_mime_type and request.output_mime_type not in OUTPUT_MIME_TYPES:
        raise InvalidArgument.for_field(
            "output_mime_type", f"must be one of {', '.join(OUTPUT_MIME_TYPES)}"
        )
    memory = request.memory
    if not 0 <= memory.top_k <= bounds.max_top_k:
        raise InvalidArgument.for_field("memory.top_k", f"must be in [0, {bounds.max_top_k}]")
    if not 0 <= memory.token_budget <= bounds.max_token_budget:
        raise InvalidArgument.for_field(
            "memory.token_budget", f"must be in [0, {bounds.max_token_budget}]"
        )
    if not (math.isfinite(memory.min_relevance) and 0 <= memory.min_relevance <= 1):
        raise InvalidArgument.for_field("memory.min_relevance", "must be in [0, 1]")
    if memory.retrieval not in video_pb2.MemoryRetrieval.values():
        raise InvalidArgument.for_field("memory.retrieval", f"unknown value {memory.retrieval}")
    if request.HasField("memory") and not memory.session_id:
        raise InvalidArgument.for_field("memory.session_id", "is required when memory is set")


def attention_settings(
    request: video_pb2.GenerateVideoRequest, default_mode: Mode, default_sparsity: float
) -> AttentionSettings:
    att = request.attention
    if att.mode not in _MODES:
        raise InvalidArgument.for_field("attention.mode", f"unknown mode {att.mode}")
    mode = _MODES[att.mode] or default_mode
    if not (math.isfinite(att.sparsity) and 0 <= att.sparsity < 1):
        raise InvalidArgument.for_field("attention.sparsity", "must be in [0, 1)")
    block = att.block_size or 64
    if block < 16 or block > 256 or block & (block - 1):
        raise InvalidArgument.for_field(
            "attention.block_size", "must be 0 or a power of two in [16, 256]"
        )
    window = []
    for axis, value, default in (
        ("frames", att.window.frames, 3),
        ("height", att.window.height, 8),
        ("width", att.window.width, 8),
    ):
        if not 0 <= value <= MAX_WINDOW:
            raise InvalidArgument.for_field(
                f"attention.window.{axis}", f"must be in [0, {MAX_WINDOW}]"
            )
        window.append(value or default)
    sparsity = (
        att.sparsity if att.mode != video_pb2.ATTENTION_MODE_UNSPECIFIED else default_sparsity
    )
    if mode == "dense":
        sparsity = 0.0
    return AttentionSettings(
        mode=mode,
        sparsity=sparsity,
        window=(window[0], window[1], window[2]),
        block_size=block,
    )


def camera_from_proto(camera: video_pb2.CameraParameters, *, field: str) -> Camera | None:
    """Parse and check a camera; None when no extrinsics are given."""
    if not camera.HasField("extrinsics"):
        return None
    ext = tensor_to_numpy(camera.extrinsics, field=f"{field}.extrinsics")
    if ext.ndim != 3 or ext.shape[1:] != (4, 4) or not 1 <= ext.shape[0] <= MAX_CAMERA_FRAMES:
        raise InvalidArgument.for_field(f"{field}.extrinsics", "must be float [T, 4, 4], T >= 1")
    if not camera.HasField("intrinsics"):
        raise InvalidArgument.for_field(f"{field}.intrinsics", "is required with extrinsics")
    intr = tensor_to_numpy(camera.intrinsics, field=f"{field}.intrinsics")
    if intr.shape != (3, 3) and intr.shape != (ext.shape[0], 3, 3):
        raise InvalidArgument.for_field(f"{field}.intrinsics", "must be [3, 3] or [T, 3, 3]")
    ext64, intr64 = ext.astype(np.float64), intr.astype(np.float64)
    if not (np.isfinite(ext64).all() and np.isfinite(intr64).all()):
        raise InvalidArgument.for_field(field, "must hold finite numbers")
    k = intr64.reshape(-1, 3, 3)
    if not ((k[:, 0, 0] > 0).all() and (k[:, 1, 1] > 0).all() and (k[:, :2, 2] > 0).all()):
        raise InvalidArgument.for_field(
            f"{field}.intrinsics", "focal lengths and principal point must be positive"
        )
    if np.abs(np.linalg.det(ext64[:, :3, :3])).min() < 1e-6:
        raise InvalidArgument.for_field(f"{field}.extrinsics", "rotations must be invertible")
    return Camera(torch.from_numpy(ext64).float(), torch.from_numpy(intr64).float())


def resolve_frames(requested: int, available: int) -> int:
    """Output frames for an input of `available` frames (num_frames=0: rounded down)."""
    if requested == 0:
        n = round_down_frames(available)
        if n == 0:
            raise InvalidArgument.for_field("input", "has no frames")
        return n
    if requested > available:
        raise InvalidArgument.for_field(
            "num_frames", f"is {requested} but the input has only {available} frames"
        )
    return requested


def resolve_size(requested: int, available: int, multiple: int, field: str) -> int:
    if requested:
        return requested
    size = available - available % multiple
    if size == 0:
        raise InvalidArgument.for_field(
            field, f"the input's {field} {available} is below the size multiple {multiple}"
        )
    return size
