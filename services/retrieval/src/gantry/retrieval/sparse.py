"""BM25-style sparse vectors computed here, scored by Qdrant.

Documents get BM25's term-frequency part, `tf * (k1 + 1) / (tf + k1 * (1 - b + b * len/avg))`;
queries get weight 1 per distinct term. The collection's sparse vectors use Qdrant's IDF
modifier, so the dot product Qdrant computes is `sum idf(t) * tf_part(t, d)`: BM25, with
IDF taken from the live collection statistics rather than frozen at indexing time.

Terms are hashed to 32-bit indices (no vocabulary to store or keep in sync). The tokenizer
keeps identifiers whole ("ERR-4012", "x86_64", "v2.3.1") *and* emits their parts, so both
an exact part number and a loose mention of one of its parts match.
"""

from __future__ import annotations

import hashlib
import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

SPARSE_ENCODER_ID = "bm25"

# Words joined by -, _, . or / stay one identifier token (part numbers, error codes, paths).
_IDENTIFIER = re.compile(r"[0-9a-z]+(?:[-_./][0-9a-z]+)*")
_PART = re.compile(r"[0-9a-z]+")
# A short English stop list: these carry no lexical evidence and would dominate tf.
_STOP_LIST = """a an and are as at be but by for from has have how i if in into is it its of on
or that the their them then there these they this to was were what when where which who why
will with you your do does did can could should would not no"""
STOPWORDS = frozenset(_STOP_LIST.split())


def tokenize(text: str) -> list[str]:
    """Lower-cased terms: each identifier, plus its parts when it has several."""
    terms: list[str] = []
    for match in _IDENTIFIER.finditer(text.lower()):
        token = match.group(0)
        parts = _PART.findall(token)
        if len(parts) > 1:
            terms.append(token)
        terms.extend(p for p in parts if p not in STOPWORDS)
    return terms


def term_index(term: str) -> int:
    """A stable 32-bit index for a term (same in every process and release)."""
    return int.from_bytes(hashlib.blake2b(term.encode(), digest_size=4).digest(), "little")


@dataclass(frozen=True)
class SparseVector:
    """Ascending indices and their weights."""

    indices: list[int]
    values: list[float]


def _vector(weights: dict[int, float]) -> SparseVector:
    ordered = sorted(weights.items())
    return SparseVector([i for i, _ in ordered], [w for _, w in ordered])


class BM25Encoder:
    """Documents → BM25 tf weights; queries → term presence (IDF is applied by Qdrant)."""

    id = SPARSE_ENCODER_ID

    def __init__(self, *, k1: float = 1.2, b: float = 0.75, avg_doc_words: float = 120.0) -> None:
        self.k1 = k1
        self.b = b
        self.avg_doc_words = avg_doc_words

    def encode_documents(self, texts: Sequence[str]) -> list[SparseVector]:
        out = []
        for text in texts:
            terms = tokenize(text)
            norm = self.k1 * (1.0 - self.b + self.b * len(terms) / self.avg_doc_words)
            weights: dict[int, float] = {}
            for term, tf in Counter(terms).items():
                index = term_index(term)
                # Hash collisions inside one document add up, as repeated terms would.
                weights[index] = weights.get(index, 0.0) + tf * (self.k1 + 1.0) / (tf + norm)
            out.append(_vector(weights))
        return out

    def encode_queries(self, texts: Sequence[str]) -> list[SparseVector]:
        return [_vector({term_index(t): 1.0 for t in set(tokenize(text))}) for text in texts]
