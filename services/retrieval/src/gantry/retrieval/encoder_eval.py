"""Evaluate dense encoders on a retrieval set: exact search, nDCG@k, recall@k, MRR@10.

Two on-disk layouts (docs/retrieval.md, "Evaluation data"):

* one JSONL file, a record per line, tagged by "type":
  {"type": "document", "id": "d1", "title": "...", "text": "..."}
  {"type": "query", "id": "q1", "text": "..."}
  {"type": "qrel", "query_id": "q1", "document_id": "d1", "relevance": 1}
* a BEIR directory: corpus.jsonl ({"_id", "title", "text"}), queries.jsonl ({"_id",
  "text"}) and qrels/<split>.tsv ("query-id<TAB>corpus-id<TAB>score", with a header).

Search is exact (normalised dot product over the whole corpus), so the numbers measure
the encoder, not an index.
"""

from __future__ import annotations

import csv
import json
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from gantry.retrieval.embedders import Embedder
from gantry.retrieval.ranking_metrics import mrr_at, ndcg_at, recall_at


class DatasetError(ValueError):
    """The evaluation set cannot be read or is inconsistent."""


@dataclass(frozen=True)
class EvalDocument:
    id: str
    text: str
    title: str = ""

    @property
    def full_text(self) -> str:
        return f"{self.title}. {self.text}" if self.title else self.text


@dataclass
class EvalSet:
    documents: list[EvalDocument]
    queries: dict[str, str]
    qrels: dict[str, dict[str, int]]  # query id -> document id -> relevance

    def judged_queries(self) -> list[str]:
        """Queries with at least one relevant document (the others cannot score)."""
        return [q for q in self.queries if any(g > 0 for g in self.qrels.get(q, {}).values())]

    def check(self) -> None:
        if not self.documents:
            raise DatasetError("the corpus is empty")
        ids = {d.id for d in self.documents}
        if len(ids) != len(self.documents):
            raise DatasetError("document ids are not unique")
        for qid, judged in self.qrels.items():
            if qid not in self.queries:
                raise DatasetError(f"qrels name query {qid!r}, which is not in the queries")
            missing = [d for d in judged if d not in ids]
            if missing:
                raise DatasetError(f"qrels for {qid!r} name unknown documents {missing[:3]}")
        if not self.judged_queries():
            raise DatasetError("no query has a relevant document")


def _jsonl(path: Path) -> Iterable[tuple[int, dict[str, Any]]]:
    with path.open(encoding="utf-8") as fh:
        for number, line in enumerate(fh, start=1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as exc:
                raise DatasetError(f"{path}:{number}: not JSON ({exc.msg})") from exc
            if not isinstance(record, dict):
                raise DatasetError(f"{path}:{number}: expected a JSON object")
            yield number, record


def _field(record: dict[str, Any], key: str, where: str) -> str:
    value = record.get(key)
    if value is None:
        raise DatasetError(f"{where}: missing {key!r}")
    return str(value)


def _relevance(value: object, where: str) -> int:
    try:
        return int(value)  # type: ignore[call-overload, no-any-return]
    except (TypeError, ValueError, OverflowError) as exc:
        raise DatasetError(f"{where}: relevance must be an integer") from exc


def load_jsonl_set(path: Path) -> EvalSet:
    docs: list[EvalDocument] = []
    queries: dict[str, str] = {}
    qrels: dict[str, dict[str, int]] = {}
    for number, record in _jsonl(path):
        where = f"{path}:{number}"
        kind = record.get("type")
        if kind == "document":
            docs.append(
                EvalDocument(
                    _field(record, "id", where),
                    _field(record, "text", where),
                    str(record.get("title", "")),
                )
            )
        elif kind == "query":
            queries[_field(record, "id", where)] = _field(record, "text", where)
        elif kind == "qrel":
            qid = _field(record, "query_id", where)
            qrels.setdefault(qid, {})[_field(record, "document_id", where)] = _relevance(
                record.get("relevance", 1), where
            )
        else:
            raise DatasetError(f"{where}: 'type' must be document, query or qrel")
    return EvalSet(docs, queries, qrels)


def save_jsonl_set(data: EvalSet, path: Path) -> Path:
    """Write a set in the one-file JSONL layout `load_jsonl_set` reads."""
    with path.open("w", encoding="utf-8") as fh:
        for doc in data.documents:
            record = {"type": "document", "id": doc.id, "title": doc.title, "text": doc.text}
            fh.write(json.dumps(record) + "\n")
        for qid, text in data.queries.items():
            fh.write(json.dumps({"type": "query", "id": qid, "text": text}) + "\n")
        for qid, judged in data.qrels.items():
            for doc_id, relevance in judged.items():
                qrel = {"type": "qrel", "query_id": qid, "document_id": doc_id}
                fh.write(json.dumps({**qrel, "relevance": relevance}) + "\n")
    return path


def dataset_files(location: Path, split: str = "test") -> list[Path]:
    """The files `load_eval_set(location, split)` reads (a BEIR directory's three, or the
    one JSONL file), so a caller can check where they resolve and how large they are."""
    if location.is_dir():
        return [
            location / "corpus.jsonl",
            location / "queries.jsonl",
            location / "qrels" / f"{split or 'test'}.tsv",
        ]
    return [location]


def load_beir_dir(root: Path, split: str = "test") -> EvalSet:
    corpus, queries_file, qrels_file = dataset_files(root, split)
    for needed in (corpus, queries_file, qrels_file):
        if not needed.is_file():
            raise DatasetError(f"{root}: missing {needed.relative_to(root)}")
    docs = [
        EvalDocument(
            _field(r, "_id", f"{corpus}:{n}"),
            _field(r, "text", f"{corpus}:{n}"),
            str(r.get("title", "")),
        )
        for n, r in _jsonl(corpus)
    ]
    queries = {
        _field(r, "_id", f"{queries_file}:{n}"): _field(r, "text", f"{queries_file}:{n}")
        for n, r in _jsonl(queries_file)
    }
    qrels: dict[str, dict[str, int]] = {}
    with qrels_file.open(encoding="utf-8", newline="") as fh:
        rows = list(csv.reader(fh, delimiter="\t"))
    for number, row in enumerate(rows, start=1):
        if number == 1 and row and not row[-1].lstrip("-").isdigit():
            continue  # header
        if len(row) < 3:
            raise DatasetError(f"{qrels_file}:{number}: expected query-id, corpus-id, score")
        qrels.setdefault(row[0], {})[row[1]] = _relevance(row[-1], f"{qrels_file}:{number}")
    # BEIR ships every split's queries in one file; keep those this split judges.
    return EvalSet(docs, {q: t for q, t in queries.items() if q in qrels}, qrels)


def load_eval_set(location: str | Path, split: str = "test") -> EvalSet:
    """Read and check a set; anything wrong with the files is a `DatasetError`."""
    path = Path(location)
    try:
        if path.is_dir():
            data = load_beir_dir(path, split or "test")
        elif path.is_file():
            data = load_jsonl_set(path)
        else:
            raise DatasetError(f"{path}: no such file or directory")
    except UnicodeDecodeError as exc:
        raise DatasetError(f"{path}: not UTF-8 text") from exc
    except (OSError, csv.Error, RecursionError) as exc:
        raise DatasetError(f"{path}: cannot be read ({type(exc).__name__})") from exc
    data.check()
    return data


@dataclass
class EvalResult:
    encoder: str
    ndcg: dict[int, float]
    recall: dict[int, float]
    mrr_at_10: float
    queries_count: int
    documents_count: int
    encode_time_s: float
    per_query_ndcg10: dict[str, float] = field(default_factory=dict)


Progress = Callable[[int, int, int, int], None]  # docs done, docs total, queries done, total


def rank_exact(query_vectors: np.ndarray, doc_vectors: np.ndarray, depth: int) -> np.ndarray:
    """Top `depth` document rows per query by dot product (vectors are normalised)."""
    scores = query_vectors @ doc_vectors.T
    depth = min(depth, doc_vectors.shape[0])
    top = np.argpartition(-scores, depth - 1, axis=1)[:, :depth]
    order = np.take_along_axis(scores, top, axis=1).argsort(axis=1)[:, ::-1]
    return np.take_along_axis(top, order, axis=1)


def evaluate(
    embedder: Embedder,
    data: EvalSet,
    *,
    name: str = "",
    ndcg_at_k: Sequence[int] = (10,),
    recall_at_k: Sequence[int] = (1, 5, 10, 100),
    max_queries: int = 0,
    batch_size: int = 32,
    progress: Progress | None = None,
) -> EvalResult:
    query_ids = data.judged_queries()
    if max_queries:
        query_ids = query_ids[:max_queries]
    n_docs, n_queries = len(data.documents), len(query_ids)
    report = progress or (lambda *_: None)
    started = time.perf_counter()
    doc_vectors = []
    for start in range(0, n_docs, max(batch_size * 8, 1)):
        batch = data.documents[start : start + batch_size * 8]
        doc_vectors.append(
            embedder.encode(
                [d.full_text for d in batch], input_type="document", batch_size=batch_size
            )
        )
        report(start + len(batch), n_docs, 0, n_queries)
    docs = np.concatenate(doc_vectors)
    queries = embedder.encode(
        [data.queries[q] for q in query_ids], input_type="query", batch_size=batch_size
    )
    encode_time = time.perf_counter() - started
    depth = max([*ndcg_at_k, *recall_at_k, 10])
    top = rank_exact(queries, docs, depth)
    ids = [d.id for d in data.documents]
    ndcg = dict.fromkeys(ndcg_at_k, 0.0)
    recall = dict.fromkeys(recall_at_k, 0.0)
    mrr = 0.0
    per_query: dict[str, float] = {}
    for row, qid in enumerate(query_ids):
        ranking = [ids[i] for i in top[row]]
        judged = data.qrels[qid]
        for k in ndcg:
            ndcg[k] += ndcg_at(ranking, judged, k)
        for k in recall:
            recall[k] += recall_at(ranking, judged, k)
        mrr += mrr_at(ranking, judged, 10)
        per_query[qid] = ndcg_at(ranking, judged, 10)
    report(n_docs, n_docs, n_queries, n_queries)
    return EvalResult(
        encoder=name or embedder.model_path,
        ndcg={k: v / n_queries for k, v in ndcg.items()},
        recall={k: v / n_queries for k, v in recall.items()},
        mrr_at_10=mrr / n_queries,
        queries_count=n_queries,
        documents_count=n_docs,
        encode_time_s=encode_time,
        per_query_ndcg10=per_query,
    )
