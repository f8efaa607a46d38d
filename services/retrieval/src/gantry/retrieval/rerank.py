"""Optional second stage: a cross-encoder re-scores (query, passage) pairs."""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import Protocol

import numpy as np
import numpy.typing as npt

from gantry.retrieval.embedders import resolve_device


class Reranker(Protocol):
    """Re-scores a query's candidate passages; the servicer needs nothing else of it."""

    def score(
        self, query: str, passages: Sequence[str], *, batch_size: int = 32
    ) -> npt.NDArray[np.float32]: ...


class CrossEncoderReranker:
    """A local cross-encoder checkpoint (sentence-transformers CrossEncoder)."""

    def __init__(self, path: str, *, device: str = "auto", max_length: int = 512) -> None:
        from sentence_transformers import CrossEncoder

        self.path = path
        self.model = CrossEncoder(
            path, device=resolve_device(device), local_files_only=True, max_length=max_length
        )
        self._lock = threading.Lock()

    def score(
        self, query: str, passages: Sequence[str], *, batch_size: int = 32
    ) -> npt.NDArray[np.float32]:
        """One relevance score per passage (higher = more relevant)."""
        if not passages:
            return np.zeros(0, dtype=np.float32)
        with self._lock:
            scores = self.model.predict(
                [(query, p) for p in passages],
                batch_size=batch_size,
                show_progress_bar=False,
                convert_to_numpy=True,
            )
        return np.asarray(scores, dtype=np.float32).reshape(len(passages))
