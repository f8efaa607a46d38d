"""BM25 sparse vectors, chunking and ranking metrics, without a server."""

from __future__ import annotations

import math

import pytest

from gantry.retrieval.chunking import chunk_text
from gantry.retrieval.ranking_metrics import mrr_at, ndcg_at, recall_at
from gantry.retrieval.sparse import BM25Encoder, term_index, tokenize


def test_tokenize_keeps_identifiers_whole_and_split() -> None:
    terms = tokenize("The pump PN-77-A113 raised ERR_4012 on x86_64 hosts.")
    assert "pn-77-a113" in terms and {"pn", "77", "a113"} <= set(terms)
    assert "err_4012" in terms and "4012" in terms
    assert "the" not in terms  # stop word
    assert tokenize("") == []


def test_term_index_is_stable_32_bit() -> None:
    assert term_index("e-4012") == term_index("e-4012")
    assert term_index("e-4012") != term_index("e-4021")
    assert 0 <= term_index("anything") < 2**32


def test_bm25_document_weights_saturate_and_normalise_length() -> None:
    bm25 = BM25Encoder(k1=1.2, b=0.75, avg_doc_words=4)
    (once,) = bm25.encode_documents(["valve"])
    (many,) = bm25.encode_documents(["valve valve valve valve valve valve"])
    (padded,) = bm25.encode_documents(["valve pump motor fan belt drive gear shaft"])
    assert once.indices == [term_index("valve")]
    # tf saturates: six repeats weigh more than one but stay below k1 + 1.
    assert once.values[0] < many.values[0] < 2.2
    # A longer document dilutes the same single occurrence.
    pos = padded.indices.index(term_index("valve"))
    assert padded.values[pos] < once.values[0]
    # Hand-computed BM25 tf part for a one-word document against avg 4.
    norm = 1.2 * (1 - 0.75 + 0.75 * 1 / 4)
    assert once.values[0] == pytest.approx(1 * 2.2 / (1 + norm))
    assert padded.indices == sorted(padded.indices)


def test_bm25_queries_weigh_each_distinct_term_once() -> None:
    (query,) = BM25Encoder().encode_queries(["valve valve E-4012"])
    assert sorted(query.indices) == query.indices
    assert set(query.indices) == {term_index(t) for t in ("valve", "e-4012", "e", "4012")}
    assert query.values == [1.0] * len(query.indices)


def test_chunks_overlap_and_cover_the_text() -> None:
    words = [f"w{i}" for i in range(25)]
    chunks = chunk_text(" ".join(words), max_words=10, overlap_words=3)
    assert [c.split() for c in chunks] == [words[0:10], words[7:17], words[14:24], words[21:25]]
    assert chunk_text("short text", max_words=10, overlap_words=3) == ["short text"]
    with pytest.raises(ValueError, match="overlap"):
        chunk_text("x", max_words=3, overlap_words=3)


def test_metrics_on_a_hand_worked_ranking() -> None:
    ranking = ["d3", "d1", "d7", "d2"]
    judged = {"d1": 2, "d2": 1, "d9": 1}
    dcg = 2 / math.log2(3) + 1 / math.log2(5)
    idcg = 2 / math.log2(2) + 1 / math.log2(3) + 1 / math.log2(4)
    assert ndcg_at(ranking, judged, 10) == pytest.approx(dcg / idcg)
    assert recall_at(ranking, judged, 2) == pytest.approx(1 / 3)
    assert recall_at(ranking, judged, 4) == pytest.approx(2 / 3)
    assert mrr_at(ranking, judged, 10) == pytest.approx(0.5)
    assert mrr_at(ranking, judged, 1) == 0.0
    assert ndcg_at(["d1", "d2", "d9"], judged, 10) == pytest.approx(1.0)
