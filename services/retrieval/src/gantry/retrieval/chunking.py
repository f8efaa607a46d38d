"""Split long documents into overlapping word windows, each embedded as its own point."""

from __future__ import annotations

import re

_WORD = re.compile(r"\S+")


def chunk_text(text: str, *, max_words: int, overlap_words: int) -> list[str]:
    """Windows of at most `max_words` words, consecutive ones sharing `overlap_words`.

    Slices the original string (whitespace inside a window is kept as written). A text
    that fits returns as one chunk, unchanged.
    """
    if overlap_words >= max_words:
        raise ValueError("overlap_words must be smaller than max_words")
    spans = [m.span() for m in _WORD.finditer(text)]
    if len(spans) <= max_words:
        return [text]
    step = max_words - overlap_words
    chunks = []
    for start in range(0, len(spans), step):
        window = spans[start : start + max_words]
        chunks.append(text[window[0][0] : window[-1][1]])
        if start + max_words >= len(spans):
            break
    return chunks
