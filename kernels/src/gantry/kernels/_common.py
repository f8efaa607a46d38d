"""Shared pieces of the FP8 kernels: formats, block sizes, Triton availability, dispatch."""

from __future__ import annotations

import os
from typing import Literal

import torch

try:  # Triton is optional: CPU installs run the torch references.
    import triton
    import triton.language as tl
except ImportError:  # pragma: no cover - exercised only where triton is absent
    triton = None
    tl = None

HAS_TRITON: bool = triton is not None

#: Side of a weight block (128×128) and length of an activation group (1×128).
BLOCK: int = 128

FP8Format = Literal["e4m3", "e5m2"]
Backend = Literal["auto", "triton", "torch"]

FP8_DTYPES: dict[str, torch.dtype] = {
    "e4m3": torch.float8_e4m3fn,
    "e5m2": torch.float8_e5m2,
}
FP8_MAX: dict[str, float] = {name: float(torch.finfo(dt).max) for name, dt in FP8_DTYPES.items()}

#: Smallest amax used to build a scale, so an all-zero block gets a finite scale (and q = 0).
AMAX_EPS: float = 1e-12


def fp8_dtype(fmt: FP8Format) -> torch.dtype:
    try:
        return FP8_DTYPES[fmt]
    except KeyError:
        raise ValueError(
            f"unknown FP8 format {fmt!r}: expected one of {sorted(FP8_DTYPES)}"
        ) from None


def cdiv(a: int, b: int) -> int:
    return -(-a // b)


def interpreted() -> bool:
    """True when Triton kernels run in the CPU interpreter (TRITON_INTERPRET=1)."""
    return os.environ.get("TRITON_INTERPRET", "0").lower() in ("1", "true", "on", "yes")


def resolve_backend(backend: str, *tensors: torch.Tensor) -> Literal["triton", "torch"]:
    """Pick the implementation: Triton on CUDA tensors, the torch reference elsewhere.

    ``backend="triton"`` forces the kernel; on CPU tensors that only works in the Triton
    interpreter (tests set ``TRITON_INTERPRET=1``), otherwise a clear error is raised.
    """
    return backend_for_device(backend, all(t.is_cuda for t in tensors))


def backend_for_device(backend: str, on_cuda: bool) -> Literal["triton", "torch"]:
    """:func:`resolve_backend` from the device alone: nothing about shapes or grad mode."""
    if backend == "torch":
        return "torch"
    if backend == "auto":
        return "triton" if HAS_TRITON and on_cuda else "torch"
    if backend != "triton":
        raise ValueError(f"unknown backend {backend!r}: expected 'auto', 'triton' or 'torch'")
    if not HAS_TRITON:
        raise RuntimeError("backend='triton' needs the triton package (gantry-kernels[triton])")
    if not on_cuda and not interpreted():
        raise RuntimeError(
            "backend='triton' on CPU tensors needs the Triton interpreter (TRITON_INTERPRET=1 "
            "set before gantry.kernels is imported)"
        )
    return "triton"


def expand_scales(scales: torch.Tensor, rows: int, cols: int, row_gran: int) -> torch.Tensor:
    """Broadcast a [ceil(rows/row_gran), ceil(cols/BLOCK)] scale grid to [rows, cols]."""
    out = scales.repeat_interleave(row_gran, dim=0)[:rows]
    return out.repeat_interleave(BLOCK, dim=1)[:, :cols]


__all__ = [
    "AMAX_EPS",
    "BLOCK",
    "FP8_DTYPES",
    "FP8_MAX",
    "HAS_TRITON",
    "Backend",
    "FP8Format",
    "backend_for_device",
    "cdiv",
    "expand_scales",
    "fp8_dtype",
    "interpreted",
    "resolve_backend",
    "tl",
    "triton",
]
