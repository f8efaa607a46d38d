"""Errors raised by gantry.models."""

from __future__ import annotations


class ModelLoadError(ValueError):
    """A model directory is missing, incomplete or unusable.

    Subclasses ``ValueError`` so callers that map bad input to INVALID_ARGUMENT
    (the gRPC error interceptor does) treat a wrong path as the caller's mistake.
    """

    def __init__(self, path: object, reason: str) -> None:
        self.path = str(path)
        self.reason = reason
        super().__init__(f"cannot load model from {self.path!r}: {reason}")
