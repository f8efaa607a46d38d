"""Retrieval benchmark: the service vs qdrant-client directly vs brute-force numpy.

On N random unit 384-d vectors (MiniLM's width):

- upsert throughput (points/s): the service's Upsert with precomputed vectors (batches
  through `upsert_batched`), qdrant-client's `upsert` on the same embedded store type,
  and numpy (copying rows into a preallocated matrix, the floor);
- search latency (mean, p99) and QPS for sequential top-10 vector queries;
- recall@10 of the served search against exact numpy search;
- the embedding path: Upsert of short texts (MiniLM on this machine's device) and text
  Search latency, which is what most callers pay.

The store is Qdrant's embedded (local) mode, persisted on disk, as the service runs by
default; it searches exhaustively, so recall is exact by construction and latency grows
linearly with N. A Qdrant server (HNSW) is the production path; it is not available here.

    .venv/bin/python benchmarks/retrieval.py [--n 100000] [--queries 200] [--json out.json]
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
from gantry.retrieval.keyword_set import keyword_set
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
    args = parser.parse_args()
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
