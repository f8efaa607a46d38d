"""Ranking metrics over graded qrels: nDCG@k (linear gain), recall@k, MRR@k."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence


def ndcg_at(ranking: Sequence[str], relevant: Mapping[str, int], k: int) -> float:
    """DCG of the top k (gain = relevance, discount log2(rank + 1)) over the ideal DCG."""
    dcg = sum(relevant.get(doc, 0) / math.log2(rank + 2) for rank, doc in enumerate(ranking[:k]))
    ideal = sorted((g for g in relevant.values() if g > 0), reverse=True)[:k]
    idcg = sum(g / math.log2(rank + 2) for rank, g in enumerate(ideal))
    return dcg / idcg if idcg > 0 else 0.0


def recall_at(ranking: Sequence[str], relevant: Mapping[str, int], k: int) -> float:
    """Share of the relevant documents found in the top k."""
    positives = {doc for doc, g in relevant.items() if g > 0}
    if not positives:
        return 0.0
    return len(positives.intersection(ranking[:k])) / len(positives)


def mrr_at(ranking: Sequence[str], relevant: Mapping[str, int], k: int = 10) -> float:
    """1 / rank of the first relevant document in the top k, else 0."""
    for rank, doc in enumerate(ranking[:k]):
        if relevant.get(doc, 0) > 0:
            return 1.0 / (rank + 1)
    return 0.0
