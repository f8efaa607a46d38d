"""Deterministic scorers for testing selection and the service without a model."""

from __future__ import annotations

import re
from collections.abc import Sequence

import numpy as np
import numpy.typing as npt
import torch

from gantry.pruner.lexical import bm25_scores, coverage, indent_parents, terms
from gantry.pruner.scoring import DEFINITION_PREFIXES, EXTRA_FEATURES, LineEncoder


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


def reference_line_embeddings(
    encoder: LineEncoder, lines: Sequence[str]
) -> npt.NDArray[np.float32]:
    """`LineEncoder.embed_lines` by its definition: one window per forward pass, no padding,
    each line's token states averaged one line at a time (the pre-batching path)."""
    ids = [x[: encoder.line_cap] for x in encoder.token_ids(lines)]
    out = np.zeros((len(lines), encoder.dim), dtype=np.float32)
    with torch.inference_mode():
        for sequence, spans in encoder.windows(ids):
            hidden = encoder.encoder.model(input_ids=torch.tensor([sequence])).last_hidden_state
            for line, lo, hi in spans:
                if hi > lo:
                    vector = hidden[0, lo:hi].float().mean(0)
                    out[line] = torch.nn.functional.normalize(vector, dim=0).numpy()
    return out


def reference_lexical_features(
    lines: Sequence[str], hint: str, cosine: npt.NDArray[np.float64]
) -> npt.NDArray[np.float32]:
    """`lexical_features` line by line in plain loops (the pre-vectorisation path)."""
    n = len(lines)
    docs = [terms(line) for line in lines]
    query = terms(hint)
    bm25 = bm25_scores(docs, query)
    top = float(bm25.max()) if n else 0.0
    bm25n = bm25 / top if top > 0 else bm25
    cov = coverage(docs, query)
    parents = indent_parents(lines)
    code = [i for i in range(n) if lines[i].strip()]
    mean_cos = float(cosine[code].mean()) if code else 0.0
    out = np.zeros((n, len(EXTRA_FEATURES)), dtype=np.float32)
    for i, line in enumerate(lines):
        anc = np.zeros(3)
        p, depth = parents[i], 0
        while p >= 0 and depth < 4:
            anc = np.maximum(anc, (bm25n[p], cov[p], cosine[p]))
            p, depth = parents[p], depth + 1
        stripped = line.strip()
        expanded = line.expandtabs(4)
        out[i] = (
            bm25n[i],
            cov[i],
            *anc,
            bm25n[max(0, i - 3) : i + 4].max(),
            (cosine[i] - mean_cos) if stripped else 0.0,
            min(2.0, (len(expanded) - len(expanded.lstrip())) / 16),
            float(stripped.startswith(("#", "//", "--", "/*", "*"))),
            float(stripped.startswith(DEFINITION_PREFIXES)),
        )
    return out
