"""The fast scoring path: its caches, and equality with the straightforward path."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from gantry.pruner.cache import LRUCache
from gantry.pruner.pruner import Pruner, split_lines
from gantry.pruner.scoring import HeadScorer, LineEncoder, lexical_features, single_thread
from gantry.pruner.service import DEMO_CODE
from gantry.pruner.testing import reference_lexical_features, reference_line_embeddings

# Batching, padding, length buckets and the scatter-sum pooling reorder float sums only:
# line vectors (unit norm) agree with the one-window-at-a-time path to this absolute
# tolerance (measured: <= 2e-7), keep probabilities likewise.
TOLERANCE = 1e-5


@pytest.fixture(scope="module")
def scorer() -> HeadScorer:
    return HeadScorer.load()


def _lines() -> list[str]:
    lines, _ = split_lines(DEMO_CODE)
    return lines


def _fresh(scorer: HeadScorer, **kwargs: int) -> HeadScorer:
    """A scorer sharing the loaded models but with its own caches."""
    return HeadScorer(scorer.lines.encoder, scorer.head, **kwargs)


def test_lru_bounds_entries_and_bytes() -> None:
    cache: LRUCache[str, bytes] = LRUCache(3, 10, len)
    for key in "abc":
        cache.put(key, b"xx")
    assert cache.get("a") == b"xx"  # a is now the most recent
    cache.put("d", b"xx")
    assert cache.get("b") is None and len(cache) == 3  # the least recent went
    cache.put("e", b"x" * 8)
    assert cache.nbytes <= 10 and cache.get("e") is not None and cache.get("a") is None
    cache.put("huge", b"x" * 11)
    assert cache.get("huge") is None and cache.get("e") is not None
    assert cache.hits >= 3 and cache.misses >= 3


def test_line_cache_hits_on_same_content(scorer: HeadScorer) -> None:
    fresh = _fresh(scorer)
    lines = _lines()
    first = fresh.line_embeddings(lines)
    assert fresh.line_embeddings(list(lines)) is first  # equal content, another list
    assert fresh.cache.hits == 1 and len(fresh.cache) == 1
    # Token counts of the cached file come from the cache, and match the tokenizer.
    assert fresh.count_tokens(lines) == [len(x) for x in fresh.lines.token_ids(lines)]
    assert fresh.cache.hits == 2


def test_line_cache_misses_on_changed_content(scorer: HeadScorer) -> None:
    fresh = _fresh(scorer)
    lines = _lines()
    first = fresh.line_embeddings(lines)
    edited = list(lines)
    edited[0] = "import os  # edited"
    second = fresh.line_embeddings(edited)
    assert second is not first and len(fresh.cache) == 2
    assert not np.allclose(first[0], second[0])
    # Same characters, lines broken elsewhere: another file.
    joined = [lines[0] + "\n" + lines[1], *lines[2:]]
    assert fresh.content_key(joined) != fresh.content_key(lines)
    # The key names the model and window settings, not just the text.
    other = _fresh(scorer)
    other.lines = LineEncoder(scorer.lines.encoder, core=64)
    assert other.content_key(lines) != fresh.content_key(lines)


def test_line_cache_is_bounded(scorer: HeadScorer) -> None:
    fresh = _fresh(scorer, cache_size=2)
    files = [[f"x_{k} = {k}", "", f"print(x_{k})"] for k in range(3)]
    vectors = [fresh.line_embeddings(lines) for lines in files]
    assert len(fresh.cache) == 2
    assert fresh.line_embeddings(files[2]) is vectors[2]
    assert fresh.line_embeddings(files[0]) is not vectors[0]  # evicted, re-encoded
    np.testing.assert_allclose(fresh.line_embeddings(files[0]), vectors[0], atol=TOLERANCE)
    small = _fresh(scorer, cache_bytes=1000)  # one 3-line file is ~4.6 KB of vectors
    small.line_embeddings(files[0])
    assert len(small.cache) == 0


@pytest.mark.slow
def test_batched_embeddings_equal_the_reference(scorer: HeadScorer) -> None:
    lines = _lines() * 3  # several windows, of different lengths
    ids = scorer.lines.token_ids(lines)
    assert len({len(seq) for seq, _ in scorer.lines.windows(ids)}) > 1
    fast = scorer.lines.embed_lines(lines)
    reference = reference_line_embeddings(scorer.lines, lines)
    assert fast.shape == reference.shape == (len(lines), scorer.lines.dim)
    np.testing.assert_allclose(fast, reference, atol=TOLERANCE)
    blank = [i for i, line in enumerate(lines) if not line.strip()]
    assert blank and not fast[blank].any()


def test_vectorised_features_equal_the_reference(scorer: HeadScorer) -> None:
    lines = ["", *_lines(), "\tdef tabbed():", "  // comment", "x"]
    hint = "how are failed calls retried?"
    cosine = np.random.default_rng(0).uniform(-1, 1, len(lines))
    fast = lexical_features(lines, hint, cosine)
    np.testing.assert_array_equal(fast, reference_lexical_features(lines, hint, cosine))
    assert lexical_features([], hint).shape == (0, fast.shape[1])


def test_scores_equal_the_reference_path(scorer: HeadScorer) -> None:
    lines = _lines()
    hint = "where is the JSON config file read?"
    emb = reference_line_embeddings(scorer.lines, lines)
    q = scorer.lines.encoder.encode([hint], normalize=True)[0].numpy()
    extra = reference_lexical_features(lines, hint, (emb @ q).astype(np.float64))
    with torch.inference_mode():
        logits = scorer.head(
            torch.from_numpy(emb)[None], torch.from_numpy(q)[None], torch.from_numpy(extra)[None]
        )[0]
    reference = torch.sigmoid(logits).double().numpy()
    np.testing.assert_allclose(_fresh(scorer).score(lines, hint), reference, atol=TOLERANCE)


def test_warm_prune_reuses_embeddings_and_hints(scorer: HeadScorer) -> None:
    fresh = _fresh(scorer)
    pruner = Pruner(fresh)
    first = pruner.prune(DEMO_CODE, "how are failed calls retried?", keep_ratio=0.5)
    again = pruner.prune(DEMO_CODE, "how are failed calls retried?", keep_ratio=0.5)
    assert again.text == first.text and again.line_scores == first.line_scores
    assert len(fresh.cache) == 1 and len(fresh.hint_cache) == 1
    assert fresh.hint_cache.hits == 1


def test_single_thread_restores_the_thread_count() -> None:
    before = torch.get_num_threads()
    with single_thread():
        assert torch.get_num_threads() == 1
    assert torch.get_num_threads() == before
    with pytest.raises(RuntimeError), single_thread():
        raise RuntimeError
    assert torch.get_num_threads() == before
