"""Deterministic scorers for testing selection and the service without a model."""

from __future__ import annotations

import re
from collections.abc import Sequence

import numpy as np
import numpy.typing as npt


class RandomScorer:
    """Seeded random line scores: a stress test for structure-preserving selection."""

    name = "random"

    def __init__(self, seed: int = 0) -> None:
        self.rng = np.random.default_rng(seed)

    def count_tokens(self, texts: Sequence[str]) -> list[int]:
        return [len(re.findall(r"\w+|[^\w\s]", t)) for t in texts]

    def score(self, lines: Sequence[str], goal_hint: str) -> npt.NDArray[np.float64]:
        return self.rng.random(len(lines))


class FixedScorer(RandomScorer):
    """Scores given by a table: 1-based line number -> score (default ``base``)."""

    name = "fixed"

    def __init__(self, scores: dict[int, float], base: float = 0.0) -> None:
        super().__init__()
        self.table, self.base = scores, base

    def score(self, lines: Sequence[str], goal_hint: str) -> npt.NDArray[np.float64]:
        return np.array([self.table.get(i + 1, self.base) for i in range(len(lines))])
