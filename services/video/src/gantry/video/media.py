"""Video containers in and out: MP4 (H.264) via the ffmpeg binary in imageio-ffmpeg.

Decoding is the attack surface here (clients send arbitrary bytes), so a file must look
like a known container (magic bytes) before ffmpeg sees it, ffmpeg may only open local
files with the container demuxers listed below (no playlists that fetch other files),
and frame size and count are checked against the limits from the stream header before
any frame is decoded past them.
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

from gantry.core.errors import InvalidArgument

# imageio-ffmpeg otherwise starts ffmpeg with preexec_fn=os.setpgrp: Python code between
# fork and exec, which crashes the child in a process with gRPC threads (seen as a
# segfault and a broken pipe). Without it, subprocess uses a plain fork+exec.
os.environ.setdefault("IMAGEIO_FFMPEG_NO_PREVENT_SIGINT", "1")

MP4 = "video/mp4"
OUTPUT_MIME_TYPES = (MP4,)
_DEMUXERS = "mov,mp4,m4a,3gp,3g2,mj2,matroska,webm,avi"
_SAFE_INPUT = ["-protocol_whitelist", "file", "-format_whitelist", _DEMUXERS]


@dataclass(frozen=True)
class Probe:
    """What a decoded video holds."""

    frames: NDArray[np.uint8]  # [T, H, W, 3]
    fps: float

    @property
    def frame_count(self) -> int:
        return int(self.frames.shape[0])

    @property
    def height(self) -> int:
        return int(self.frames.shape[1])

    @property
    def width(self) -> int:
        return int(self.frames.shape[2])


@dataclass(frozen=True)
class DecodeLimits:
    max_frames: int
    max_width: int
    max_height: int


def looks_like_video(head: bytes) -> bool:
    """MP4/MOV (`ftyp` box), Matroska/WebM (EBML) or AVI (RIFF....AVI )."""
    return (
        head[4:8] == b"ftyp"
        or head[:4] == b"\x1a\x45\xdf\xa3"
        or (head[:4] == b"RIFF" and head[8:12] == b"AVI ")
    )


def decode_file(path: Path, limits: DecodeLimits, field: str) -> Probe:
    """Decode every frame to RGB, or raise InvalidArgument naming `field`."""
    import imageio_ffmpeg

    with open(path, "rb") as fh:
        head = fh.read(16)
    if not looks_like_video(head):
        raise InvalidArgument.for_field(field, "is not a video (MP4, WebM/Matroska or AVI)")
    reader = imageio_ffmpeg.read_frames(str(path), input_params=_SAFE_INPUT)
    try:
        try:
            meta = next(reader)
        except (OSError, RuntimeError, StopIteration) as exc:
            raise InvalidArgument.for_field(field, "could not be decoded as a video") from exc
        width, height = (int(x) for x in meta["size"])
        if width > limits.max_width or height > limits.max_height:
            raise InvalidArgument.for_field(
                field,
                f"is {width}x{height}; the limit is {limits.max_width}x{limits.max_height}",
            )
        frames: list[NDArray[np.uint8]] = []
        try:
            for raw in reader:
                if len(frames) == limits.max_frames:
                    raise InvalidArgument.for_field(
                        field, f"has more than {limits.max_frames} frames (the limit)"
                    )
                frames.append(np.frombuffer(raw, np.uint8).reshape(height, width, 3))
        except (OSError, RuntimeError, ValueError) as exc:
            raise InvalidArgument.for_field(field, "is corrupt (decoding failed)") from exc
    finally:
        reader.close()
    if not frames:
        raise InvalidArgument.for_field(field, "has no frames")
    fps = float(meta.get("fps") or 0.0)
    return Probe(np.stack(frames), fps if fps > 0 else 16.0)


def decode_bytes(data: bytes, limits: DecodeLimits, *, field: str, scratch: Path) -> Probe:
    """Decode an in-memory container through a scratch file (removed afterwards)."""
    fd, name = tempfile.mkstemp(suffix=".video", dir=scratch)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        return decode_file(Path(name), limits, field=field)
    finally:
        os.unlink(name)


def encode_mp4(frames: NDArray[np.uint8], fps: float, path: Path) -> None:
    """Write H.264 MP4 (yuv420p, CRF 18) to `path`; sizes must be even."""
    import imageio_ffmpeg

    count, height, width, _ = frames.shape
    writer = imageio_ffmpeg.write_frames(
        str(path),
        (width, height),
        fps=fps,
        codec="libx264",
        pix_fmt_out="yuv420p",
        quality=None,
        macro_block_size=1,
        ffmpeg_log_level="error",
        output_params=["-crf", "18"],
    )
    writer.send(None)
    try:
        for frame in frames:
            writer.send(np.ascontiguousarray(frame).tobytes())
    finally:
        writer.close()
    if count == 0:
        raise ValueError("no frames to encode")
