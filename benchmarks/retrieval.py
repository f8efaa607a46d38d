"""Retrieval benchmark: the service vs qdrant-client directly vs brute-force numpy.

On N random unit 384-d vectors (MiniLM's width):

- upsert throughput (points/s): the service's Upsert with precomputed vectors (batches
  through `upsert_batched`), qdrant-client's `upsert` on the same embedded store type,
  and numpy (copying rows into a preallocated matrix, the floor);
- search latency (mean, p99) and QPS for sequential top-10 vector queries;
- recall@10 of the served search against exact numpy search;
- the embedding path: Upsert of short texts (MiniLM on this machine's device) and text
  Search latency, which is what most callers pay;
- fusion quality (`--fusion`): nDCG@10, recall@1 and recall@10 of dense, sparse (BM25) and
  hybrid search with each fusion (RRF, DBSF, and the default) on four sets: the keyword
  set above, `fusion_sets`' identifier set (one rare token among paraphrases), its
  paraphrase set (new wording, no identifier) and its pydoc set (general prose), each as
  a ratio to the stronger single-branch baseline.

The store is Qdrant's embedded (local) mode, persisted on disk, as the service runs by
default; it searches exhaustively, so recall is exact by construction and latency grows
linearly with N. A Qdrant server (HNSW) is the production path; it is not available here.

    .venv/bin/python benchmarks/retrieval.py [--n 100000] [--queries 200] [--json out.json]
    .venv/bin/python benchmarks/retrieval.py --fusion      # fusion quality only (~3 min)
"""

from __future__ import annotations

import argparse
import functools
import json
import statistics
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
from qdrant_client import QdrantClient, models

from gantry.core.client import sync_channel
from gantry.core.codecs import tensor_from_numpy
from gantry.core.testing.threaded import serve_in_thread
from gantry.proto.retrieval.v1 import retrieval_pb2 as pb
from gantry.proto.retrieval.v1 import retrieval_pb2_grpc
from gantry.retrieval.client import upsert_batched
from gantry.retrieval.encoder_eval import EvalSet
from gantry.retrieval.fusion_sets import identifier_set, paraphrase_set, pydoc_set
from gantry.retrieval.keyword_set import keyword_set
from gantry.retrieval.ranking_metrics import ndcg_at, recall_at
from gantry.retrieval.service import RetrievalService
from gantry.retrieval.settings import RetrievalSettings
from gantry.retrieval.store import QdrantStore

DIM = 384
BATCH = 1024
TOP_K = 10


def unit_rows(rng: np.random.Generator, n: int) -> np.ndarray:
    rows = rng.standard_normal((n, DIM)).astype(np.float32)
    unit: np.ndarray = rows / np.linalg.norm(rows, axis=1, keepdims=True)
    return unit


def latency_stats(samples: list[float]) -> dict[str, float]:
    ordered = sorted(samples)
    p99 = ordered[min(len(ordered) - 1, int(0.99 * len(ordered)))]
    mean = statistics.fmean(samples)
    return {"mean_ms": mean * 1e3, "p99_ms": p99 * 1e3, "qps": 1.0 / mean}


def timed(fn: Callable[[], Any]) -> tuple[Any, float]:
    start = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - start


def exact_top(matrix: np.ndarray, query: np.ndarray, k: int = TOP_K) -> np.ndarray:
    scores = matrix @ query
    top = np.argpartition(-scores, k - 1)[:k]
    return top[np.argsort(-scores[top])]


def bench_numpy(vectors: np.ndarray, queries: np.ndarray) -> dict[str, Any]:
    def fill() -> np.ndarray:
        matrix = np.empty_like(vectors)
        for start in range(0, len(vectors), BATCH):
            matrix[start : start + BATCH] = vectors[start : start + BATCH]
        return matrix

    matrix, seconds = timed(fill)
    samples = [timed(functools.partial(exact_top, matrix, q))[1] for q in queries]
    return {"upsert_points_per_s": len(vectors) / seconds, **latency_stats(samples)}


def bench_qdrant(path: Path, vectors: np.ndarray, queries: np.ndarray) -> dict[str, Any]:
    client = QdrantClient(path=str(path))
    client.create_collection(
        "bench",
        vectors_config={"dense": models.VectorParams(size=DIM, distance=models.Distance.COSINE)},
    )
    # The same SQLite tuning the service applies to its embedded store (like for like).
    QdrantStore(client, embedded=True)

    def load() -> None:
        for start in range(0, len(vectors), BATCH):
            block = vectors[start : start + BATCH]
            client.upsert(
                "bench",
                points=[
                    models.PointStruct(id=start + i, vector={"dense": row.tolist()})
                    for i, row in enumerate(block)
                ],
                wait=True,
            )

    _, seconds = timed(load)
    samples = []
    for q in queries:
        query = functools.partial(
            client.query_points, "bench", query=q.tolist(), using="dense", limit=TOP_K
        )
        _, took = timed(query)
        samples.append(took)
    client.close()
    return {"upsert_points_per_s": len(vectors) / seconds, **latency_stats(samples)}


def _points(vectors: np.ndarray) -> Iterator[pb.Point]:
    for i, row in enumerate(vectors):
        yield pb.Point(id=str(i), vector=tensor_from_numpy(row))


# (label, mode, fusion); "hybrid (default)" sends FUSION_UNSPECIFIED, what callers get.
METHODS = (
    ("dense", pb.SEARCH_MODE_DENSE, pb.FUSION_UNSPECIFIED),
    ("sparse (BM25)", pb.SEARCH_MODE_SPARSE, pb.FUSION_UNSPECIFIED),
    ("hybrid RRF", pb.SEARCH_MODE_HYBRID, pb.FUSION_RRF),
    ("hybrid DBSF", pb.SEARCH_MODE_HYBRID, pb.FUSION_DBSF),
    ("hybrid (default)", pb.SEARCH_MODE_HYBRID, pb.FUSION_UNSPECIFIED),
)


def fusion_quality(stub: Any, name: str, data: EvalSet) -> dict[str, dict[str, float]]:
    """Mean nDCG@10, recall@1 and recall@10 of each method over the set's judged queries."""
    stub.CreateCollection(pb.CreateCollectionRequest(name=name, sparse_enabled=True))
    points = (pb.Point(id=d.id, text=d.full_text) for d in data.documents)
    upsert_batched(stub, name, points, batch_size=64)
    judged = data.judged_queries()
    out: dict[str, dict[str, float]] = {}
    for label, mode, fusion in METHODS:
        totals = {"ndcg@10": 0.0, "recall@1": 0.0, "recall@10": 0.0}
        for qid in judged:
            request = pb.SearchRequest(
                collection=name, text=data.queries[qid], mode=mode, fusion=fusion, top_k=10
            )
            ranking = [r.id for r in stub.Search(request).results]
            relevant = data.qrels[qid]
            totals["ndcg@10"] += ndcg_at(ranking, relevant, 10)
            totals["recall@1"] += recall_at(ranking, relevant, 1)
            totals["recall@10"] += recall_at(ranking, relevant, 10)
        out[label] = {k: v / len(judged) for k, v in totals.items()}
    return out


def fusion_sets(keyword_docs: int) -> dict[str, EvalSet]:
    return {
        "keyword": keyword_set(errors=keyword_docs * 3 // 5, parts=keyword_docs * 2 // 5),
        "identifier": identifier_set(),
        "paraphrase": paraphrase_set(),
        "pydoc": pydoc_set(),
    }


def bench_fusion(path: Path, keyword_docs: int) -> dict[str, Any]:
    settings = RetrievalSettings(
        host="127.0.0.1",
        port=0,
        metrics_port=0,
        auth_disabled=True,
        log_json=False,
        qdrant_path=str(path),
    )
    with (
        serve_in_thread(RetrievalService(settings)) as running,
        sync_channel(f"127.0.0.1:{running.port}") as channel,
    ):
        stub = retrieval_pb2_grpc.RetrievalServiceStub(channel)
        return {
            name: fusion_quality(stub, f"fusion-{name}", data)
            for name, data in fusion_sets(keyword_docs).items()
        }


def print_fusion(results: dict[str, Any]) -> None:
    """A table per set; each hybrid's ratio is to the better of dense and sparse."""
    for name, rows in results.items():
        print(f"\nfusion quality, {name} set")
        print(
            f"{'method':<18}{'nDCG@10':>9}{'R@1':>7}{'R@10':>7}{'nDCG ratio':>12}{'R@1 ratio':>11}"
        )
        best = {m: max(rows["dense"][m], rows["sparse (BM25)"][m]) for m in ("ndcg@10", "recall@1")}
        for label, r in rows.items():
            ratios = [r[m] / best[m] if best[m] else float("nan") for m in ("ndcg@10", "recall@1")]
            print(
                f"{label:<18}{r['ndcg@10']:>9.3f}{r['recall@1']:>7.3f}{r['recall@10']:>7.3f}"
                f"{ratios[0]:>11.3f}x{ratios[1]:>10.3f}x"
            )


def bench_service(
    path: Path, vectors: np.ndarray, queries: np.ndarray, text_docs: int
) -> dict[str, Any]:
    settings = RetrievalSettings(
        host="127.0.0.1",
        port=0,
        metrics_port=0,
        auth_disabled=True,
        log_json=False,
        qdrant_path=str(path),
        max_batch_texts=BATCH,
    )
    with (
        serve_in_thread(RetrievalService(settings)) as running,
        sync_channel(f"127.0.0.1:{running.port}") as channel,
    ):
        stub = retrieval_pb2_grpc.RetrievalServiceStub(channel)
        stub.CreateCollection(pb.CreateCollectionRequest(name="bench"))
        written, seconds = timed(
            lambda: upsert_batched(stub, "bench", _points(vectors), batch_size=BATCH)
        )
        assert written == len(vectors)
        samples: list[float] = []
        found: list[list[int]] = []
        for q in queries:
            request = pb.SearchRequest(collection="bench", vector=tensor_from_numpy(q), top_k=TOP_K)
            reply, took = timed(functools.partial(stub.Search, request))
            samples.append(took)
            found.append([int(r.id) for r in reply.results])
        out: dict[str, Any] = {
            "upsert_points_per_s": len(vectors) / seconds,
            **latency_stats(samples),
            "found": found,
        }
        # The embedding path: short texts through MiniLM, then text queries.
        data = keyword_set(errors=text_docs // 2, parts=text_docs - text_docs // 2)
        stub.CreateCollection(pb.CreateCollectionRequest(name="texts", sparse_enabled=True))
        text_points = [pb.Point(id=d.id, text=d.text) for d in data.documents]
        _, seconds = timed(lambda: upsert_batched(stub, "texts", text_points, batch_size=256))
        out["text_upsert_docs_per_s"] = len(text_points) / seconds
        for mode in (pb.SEARCH_MODE_DENSE, pb.SEARCH_MODE_HYBRID):
            texts = list(data.queries.values())[:100]
            lat = [
                timed(
                    functools.partial(
                        stub.Search, pb.SearchRequest(collection="texts", text=t, mode=mode)
                    )
                )[1]
                for t in texts
            ]
            out[f"text_search_{pb.SearchMode.Name(mode).lower()}"] = latency_stats(lat)
        return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=100_000, help="vectors to store")
    parser.add_argument("--queries", type=int, default=200, help="search queries")
    parser.add_argument("--text-docs", type=int, default=1000, help="texts for the embed path")
    parser.add_argument("--json", type=Path, default=None, help="write results here")
    parser.add_argument("--fusion", action="store_true", help="only the fusion quality tables")
    parser.add_argument("--keyword-docs", type=int, default=60, help="keyword-set size (fusion)")
    args = parser.parse_args()
    if args.fusion:
        with tempfile.TemporaryDirectory(prefix="gantry-retrieval-fusion-") as tmp:
            fusion = bench_fusion(Path(tmp), args.keyword_docs)
        print_fusion(fusion)
        if args.json is not None:
            args.json.write_text(json.dumps({"fusion": fusion}, indent=2) + "\n")
        return
    rng = np.random.default_rng(0)
    vectors, queries = unit_rows(rng, args.n), unit_rows(rng, args.queries)
    results: dict[str, Any] = {"n": args.n, "queries": args.queries, "dim": DIM}
    with tempfile.TemporaryDirectory(prefix="gantry-retrieval-bench-") as tmp:
        results["numpy"] = bench_numpy(vectors, queries)
        results["qdrant_client"] = bench_qdrant(Path(tmp) / "direct", vectors, queries)
        results["service"] = bench_service(Path(tmp) / "service", vectors, queries, args.text_docs)
    found = results["service"].pop("found")
    exact = [set(exact_top(vectors, q).tolist()) for q in queries]
    recall = statistics.fmean(
        len(e.intersection(f)) / TOP_K for e, f in zip(exact, found, strict=True)
    )
    results["service"]["recall_at_10_vs_exact"] = recall

    print(f"N={args.n} x {DIM}-d, {args.queries} sequential top-{TOP_K} queries")
    print(f"{'path':<15}{'upsert pts/s':>14}{'search ms':>11}{'p99 ms':>9}{'QPS':>9}")
    for name in ("service", "qdrant_client", "numpy"):
        r = results[name]
        print(
            f"{name:<15}{r['upsert_points_per_s']:>14,.0f}{r['mean_ms']:>11.2f}"
            f"{r['p99_ms']:>9.2f}{r['qps']:>9.1f}"
        )
    s, q, n = results["service"], results["qdrant_client"], results["numpy"]
    ratios = {
        "upsert service/qdrant_client": s["upsert_points_per_s"] / q["upsert_points_per_s"],
        "upsert service/numpy": s["upsert_points_per_s"] / n["upsert_points_per_s"],
        "QPS service/qdrant_client": s["qps"] / q["qps"],
        "QPS service/numpy": s["qps"] / n["qps"],
        "p99 service/qdrant_client": s["p99_ms"] / q["p99_ms"],
    }
    results["ratios"] = ratios
    for key, value in ratios.items():
        print(f"{key:<30}{value:>8.3f}x")
    print(f"recall@10 of served search vs exact: {recall:.4f}")
    print(f"text upsert (MiniLM + BM25): {s['text_upsert_docs_per_s']:.0f} docs/s")
    for mode in ("dense", "hybrid"):
        stats = s[f"text_search_search_mode_{mode}"]
        print(f"text search {mode}: mean {stats['mean_ms']:.1f} ms, p99 {stats['p99_ms']:.1f} ms")
    if args.json is not None:
        args.json.write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
