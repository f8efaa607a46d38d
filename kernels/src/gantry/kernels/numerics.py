"""Error metrics used to check kernels against float64 references.

Global metrics alone can hide a local fault (one bad 128×128 tile in a big matrix moves the
global relative error only a little), so :func:`check_close` also bounds the worst tile.
"""

from __future__ import annotations

import math

import torch

from gantry.kernels._common import BLOCK, cdiv

__all__ = [
    "NumericsError",
    "check_close",
    "relative_error",
    "sqnr_db",
    "worst_tile_relative_error",
]


class NumericsError(AssertionError):
    """A result is further from its reference than the stated tolerance."""


def relative_error(actual: torch.Tensor, expected: torch.Tensor) -> float:
    """‖actual − expected‖₂ / ‖expected‖₂ in float64 (inf if expected is 0 and they differ)."""
    a, e = actual.double(), expected.double()
    num = torch.linalg.vector_norm(a - e).item()
    den = torch.linalg.vector_norm(e).item()
    if den == 0.0:
        return 0.0 if num == 0.0 else math.inf
    return float(num / den)


def sqnr_db(actual: torch.Tensor, expected: torch.Tensor) -> float:
    """Signal-to-quantization-noise ratio in dB: 20·log10(‖expected‖ / ‖actual − expected‖)."""
    rel = relative_error(actual, expected)
    if rel == 0.0:
        return math.inf
    return -20.0 * math.log10(rel) if math.isfinite(rel) else -math.inf


def worst_tile_relative_error(
    actual: torch.Tensor, expected: torch.Tensor, tile: int = BLOCK
) -> float:
    """Largest relative error over the tile×tile tiles of two 2-D tensors (NaN counts as inf)."""
    if actual.shape != expected.shape or actual.dim() != 2:
        raise ValueError(f"need two 2-D tensors of one shape, got {actual.shape}, {expected.shape}")
    rows, cols = actual.shape
    worst = 0.0
    for i in range(cdiv(rows, tile)):
        for j in range(cdiv(cols, tile)):
            sl = (slice(i * tile, (i + 1) * tile), slice(j * tile, (j + 1) * tile))
            err = relative_error(actual[sl], expected[sl])
            worst = max(worst, err if not math.isnan(err) else math.inf)
    return worst


def check_close(
    actual: torch.Tensor,
    expected: torch.Tensor,
    *,
    max_rel: float,
    min_sqnr_db: float | None = None,
    max_tile_rel: float | None = None,
    what: str = "result",
) -> None:
    """Raise :class:`NumericsError` unless ``actual`` is within tolerance of ``expected``.

    ``max_rel`` bounds the global relative error, ``min_sqnr_db`` (optional) the SQNR and
    ``max_tile_rel`` (2-D only; defaults to ``4 · max_rel``) the worst 128×128 tile.
    """
    if actual.shape != expected.shape:
        raise NumericsError(f"{what}: shape {tuple(actual.shape)} != {tuple(expected.shape)}")
    if not torch.isfinite(actual).all():
        raise NumericsError(f"{what}: non-finite values")
    rel = relative_error(actual, expected)
    if not rel <= max_rel:
        raise NumericsError(f"{what}: relative error {rel:.3e} > {max_rel:.3e}")
    if min_sqnr_db is not None:
        sqnr = sqnr_db(actual, expected)
        if not sqnr >= min_sqnr_db:
            raise NumericsError(f"{what}: SQNR {sqnr:.1f} dB < {min_sqnr_db:.1f} dB")
    if actual.dim() == 2:
        bound = 4.0 * max_rel if max_tile_rel is None else max_tile_rel
        tile_rel = worst_tile_relative_error(actual, expected)
        if not tile_rel <= bound:
            raise NumericsError(
                f"{what}: worst 128x128 tile relative error {tile_rel:.3e} > {bound:.3e}"
            )
