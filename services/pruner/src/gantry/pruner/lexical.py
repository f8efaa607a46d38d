"""Lexical signals shared by the skimmer's features and the BM25 baseline."""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

_WORD = re.compile(r"[A-Za-z_][A-Za-z0-9_]*|\d+")
_CAMEL = re.compile(r"[A-Z]+(?=[A-Z][a-z])|[A-Z]?[a-z]+|[A-Z]+|\d+")
STOPWORDS = frozenset(
    [
        "a",
        "an",
        "and",
        "are",
        "as",
        "at",
        "be",
        "by",
        "for",
        "from",
        "has",
        "have",
        "in",
        "is",
        "it",
        "its",
        "of",
        "on",
        "or",
        "that",
        "the",
        "this",
        "to",
        "was",
        "were",
        "will",
        "with",
        "what",
        "how",
        "does",
        "do",
        "which",
        "where",
        "when",
        "who",
        "why",
        "focus",
        "code",
        "lines",
        "line",
        "find",
        "show",
        "me",
        "logic",
        "handle",
        "handles",
        "handling",
        "implementation",
        "implemented",
        "implement",
        "part",
    ]
)


_SUFFIX = re.compile(r"(ies|ied|ying|ing|ed|es|s|y|e)$")


def stem(word: str) -> str:
    """A light suffix stripper: retry/retried/retries/retrying -> retr, parse/parsed -> pars."""
    if len(word) <= 4 or word.isdigit():
        return word
    stripped = _SUFFIX.sub("", word)
    return stripped if len(stripped) >= 3 else word


def terms(text: str) -> list[str]:
    """Stemmed lower-case terms: identifiers split on ``_`` and camelCase, plus the whole
    identifiers."""
    out: list[str] = []
    for word in _WORD.findall(text):
        lower = word.lower()
        parts = [p.lower() for piece in word.split("_") for p in _CAMEL.findall(piece)]
        if len(parts) > 1 and lower not in STOPWORDS:
            out.append(lower)
        out.extend(stem(p) for p in parts if p not in STOPWORDS and len(p) > 1)
    return out


def bm25_scores(
    docs: Sequence[Sequence[str]], query: Sequence[str], *, k1: float = 1.2, b: float = 0.75
) -> npt.NDArray[np.float64]:
    """Okapi BM25 of ``query`` against each of ``docs`` (the lines), idf from ``docs``."""
    n = len(docs)
    scores = np.zeros(n)
    if n == 0 or not query:
        return scores
    df: Counter[str] = Counter()
    for doc in docs:
        df.update(set(doc))
    lengths = np.array([len(doc) for doc in docs], dtype=np.float64)
    avg = float(lengths.mean()) or 1.0
    query_terms = Counter(query)
    for i, doc in enumerate(docs):
        if not doc:
            continue
        counts = Counter(doc)
        total = 0.0
        for term in query_terms:
            tf = counts.get(term, 0)
            if not tf:
                continue
            idf = math.log(1 + (n - df[term] + 0.5) / (df[term] + 0.5))
            total += idf * tf * (k1 + 1) / (tf + k1 * (1 - b + b * lengths[i] / avg))
        scores[i] = total
    return scores


def coverage(docs: Sequence[Sequence[str]], query: Sequence[str]) -> npt.NDArray[np.float64]:
    """Share of the distinct query terms each doc contains."""
    wanted = set(query)
    if not wanted:
        return np.zeros(len(docs))
    return np.array([len(wanted.intersection(doc)) / len(wanted) for doc in docs])


def indent_parents(lines: Sequence[str]) -> list[int]:
    """For each line, the nearest previous non-blank line with smaller indentation (-1)."""
    parents: list[int] = []
    stack: list[tuple[int, int]] = []  # (width, line)
    last = -1
    for i, line in enumerate(lines):
        if not line.strip():  # a blank line sits in the previous code line's block
            parents.append(parents[last] if last >= 0 else -1)
            continue
        expanded = line.expandtabs(4)
        width = len(expanded) - len(expanded.lstrip())
        while stack and stack[-1][0] >= width:
            stack.pop()
        parents.append(stack[-1][1] if stack else -1)
        stack.append((width, i))
        last = i
    return parents
