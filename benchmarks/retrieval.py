"""Retrieval benchmark: Qdrant Edge (the service's embedded default) vs qdrant-client's
local mode vs brute-force numpy, in one run, on two vector sets:

- **real**: MiniLM embeddings of an offline real corpus, the docstrings of the packages
  installed in this environment (first 48 words each, deduplicated), with held-out
  docstrings as queries; embedded once and cached (`--cache`);
- **random**: random unit 384-d vectors (MiniLM's width; the worst case for HNSW recall).

Per path: upserts/s, index build time (Edge: from the last upsert until the background
HNSW build is swapped in), sequential top-10 QPS with p50/p99, recall@10 against exact
numpy search, and memory (process RSS growth, shard size on disk).
**edge** = the retrieval service on Edge over gRPC (`Upsert` with precomputed vectors
through `upsert_batched`, `Search`), searched at the default `hnsw_ef`, a lower and a
higher one, and `exact`; **local** = qdrant-client's local mode called directly (the
previous embedded default; same SQLite tuning the service applied); **numpy** = rows in a
matrix, exact `argpartition` search.

    .venv/bin/python benchmarks/retrieval.py [--n-real 100000] [--n 100000] [--json out.json]
    .venv/bin/python benchmarks/retrieval.py --fusion      # fusion quality only (~3 min)
"""

from __future__ import annotations

import argparse
import ast
import functools
import gc
import json
import statistics
import sysconfig
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
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
# Big, well-documented packages first: the walk stops once it has enough docstrings.
REAL_PACKAGES = ("torch", "transformers", "numpy", "scipy", "sympy", "pandas", "")


def unit_rows(rng: np.random.Generator, n: int) -> np.ndarray:
    rows = rng.standard_normal((n, DIM)).astype(np.float32)
    unit: np.ndarray = rows / np.linalg.norm(rows, axis=1, keepdims=True)
    return unit


def rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def latency_stats(samples: list[float]) -> dict[str, float]:
    ordered = sorted(samples)

    def pct(q: float) -> float:
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1e3

    mean = statistics.fmean(samples)
    return {"mean_ms": mean * 1e3, "p50_ms": pct(0.5), "p99_ms": pct(0.99), "qps": 1.0 / mean}


def timed(fn: Callable[[], Any]) -> tuple[Any, float]:
    start = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - start


def exact_top(matrix: np.ndarray, query: np.ndarray, k: int = TOP_K) -> np.ndarray:
    scores = matrix @ query
    top = np.argpartition(-scores, k - 1)[:k]
    return top[np.argsort(-scores[top])]


def recall(found: list[list[int]], exact: list[set[int]]) -> float:
    return statistics.fmean(
        len(e.intersection(f)) / TOP_K for e, f in zip(exact, found, strict=True)
    )


# ---- the real corpus: docstrings of installed packages, MiniLM-embedded ------------------


def docstrings(limit: int, packages: Sequence[str] = ()) -> list[str]:
    """Distinct docstrings (first 48 words, at least 5) of installed packages, sorted walk."""
    root = Path(sysconfig.get_paths()["purelib"])
    dirs = [root / p for p in packages] if packages else [root]
    seen: set[str] = set()
    out: list[str] = []
    for base in dirs:
        for path in sorted(base.rglob("*.py")):
            try:
                tree = ast.parse(path.read_text(encoding="utf-8"))
            except (SyntaxError, UnicodeDecodeError, ValueError, OSError):
                continue
            for node in ast.walk(tree):
                if not isinstance(
                    node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef
                ):
                    continue
                doc = ast.get_docstring(node)
                words = doc.split() if doc else []
                text = " ".join(words[:48])
                if len(words) >= 5 and text not in seen:
                    seen.add(text)
                    out.append(text)
                    if len(out) >= limit:
                        return out
    return out


def real_set(n: int, queries: int, cache: Path) -> tuple[np.ndarray, np.ndarray]:
    """MiniLM vectors of n docstrings and of `queries` held-out ones (cached in `cache`)."""
    if cache.exists():
        data = np.load(cache)
        if len(data["corpus"]) >= n and len(data["queries"]) >= queries:
            return data["corpus"][:n], data["queries"][:queries]
    from gantry.retrieval.embedders import load_embedder
    from gantry.retrieval.settings import EncoderSpec

    texts = docstrings(n + queries, REAL_PACKAGES)
    rng = np.random.default_rng(1)
    order = rng.permutation(len(texts))
    held = [texts[i] for i in order[:queries]]
    corpus = [texts[i] for i in order[queries:]]
    embedder = load_embedder(EncoderSpec(id="minilm", max_seq_length=64), device="cpu")
    start = time.perf_counter()
    doc_vectors = embedder.encode(corpus, input_type="document", batch_size=128)
    query_vectors = embedder.encode(held, input_type="query", batch_size=128)
    print(f"embedded {len(corpus)} docstrings in {time.perf_counter() - start:.0f} s")
    np.savez(cache, corpus=doc_vectors, queries=query_vectors)
    return doc_vectors, query_vectors


# ---- the three paths ---------------------------------------------------------------------


def bench_numpy(vectors: np.ndarray, queries: np.ndarray) -> dict[str, Any]:
    before = rss_mb()

    def fill() -> np.ndarray:
        matrix = np.empty_like(vectors)
        for start in range(0, len(vectors), BATCH):
            matrix[start : start + BATCH] = vectors[start : start + BATCH]
        return matrix

    matrix, seconds = timed(fill)
    samples = [timed(functools.partial(exact_top, matrix, q))[1] for q in queries]
    return {
        "upsert_points_per_s": len(vectors) / seconds,
        "rss_mb": rss_mb() - before,
        **latency_stats(samples),
    }


def bench_local(path: Path, vectors: np.ndarray, queries: np.ndarray) -> dict[str, Any]:
    before = rss_mb()
    client = QdrantClient(path=str(path))
    client.create_collection(
        "bench",
        vectors_config={"dense": models.VectorParams(size=DIM, distance=models.Distance.COSINE)},
    )
    QdrantStore(client, embedded=True)  # the SQLite tuning the service applied (like for like)

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
    samples, found = [], []
    for q in queries:
        query = functools.partial(
            client.query_points, "bench", query=q.tolist(), using="dense", limit=TOP_K
        )
        reply, took = timed(query)
        samples.append(took)
        found.append([int(p.id) for p in reply.points])
    out = {
        "upsert_points_per_s": len(vectors) / seconds,
        "rss_mb": rss_mb() - before,
        **latency_stats(samples),
        "found": found,
    }
    client.close()
    return out


def _points(vectors: np.ndarray) -> Iterator[pb.Point]:
    for i, row in enumerate(vectors):
        yield pb.Point(id=str(i), vector=tensor_from_numpy(row))


def _search_all(stub: Any, queries: np.ndarray, params: pb.SearchParams) -> dict[str, Any]:
    samples, found = [], []
    for q in queries:
        request = pb.SearchRequest(
            collection="bench", vector=tensor_from_numpy(q), top_k=TOP_K, params=params
        )
        reply, took = timed(functools.partial(stub.Search, request))
        samples.append(took)
        found.append([int(r.id) for r in reply.results])
    return {**latency_stats(samples), "found": found}


def bench_edge(
    path: Path, vectors: np.ndarray, queries: np.ndarray, timeout_s: float, min_points: int
) -> dict[str, Any]:
    """The service on Edge: upsert, searches while the index builds, then per search knob."""
    before = rss_mb()
    settings = RetrievalSettings(
        host="127.0.0.1",
        port=0,
        metrics_port=0,
        auth_disabled=True,
        log_json=False,
        qdrant_embedded="edge",
        qdrant_path=str(path),
        max_batch_texts=BATCH,
        edge_index_quiet_s=1.0,
        edge_index_min_points=min_points,
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
        out: dict[str, Any] = {"upsert_points_per_s": len(vectors) / seconds}
        loaded = time.perf_counter()
        # Exhaustive searches while the index builds in the background (availability).
        during = _search_all(stub, queries[:50], pb.SearchParams())
        out["during_build"] = {k: v for k, v in during.items() if k != "found"}
        deadline = loaded + timeout_s
        while time.perf_counter() < deadline:
            info = stub.GetCollection(pb.GetCollectionRequest(name="bench")).collection
            if not info.indexing and info.indexed_vectors_count >= info.chunks_count:
                break
            time.sleep(0.5)
        out["index_build_s"] = time.perf_counter() - loaded
        out["indexed_vectors"] = int(info.indexed_vectors_count)
        out["rss_mb"] = rss_mb() - before
        out["disk_mb"] = sum(f.stat().st_size for f in path.rglob("*") if f.is_file()) / 2**20
        for label, params in (
            ("default", pb.SearchParams()),
            ("ef64", pb.SearchParams(hnsw_ef=64)),
            ("ef256", pb.SearchParams(hnsw_ef=256)),
            ("exact", pb.SearchParams(exact=True)),
        ):
            out[label] = _search_all(stub, queries, params)
        return out


def run_set(name: str, vectors: np.ndarray, queries: np.ndarray, args: Any) -> dict[str, Any]:
    exact = [set(exact_top(vectors, q).tolist()) for q in queries]
    out: dict[str, Any] = {"n": len(vectors), "queries": len(queries)}
    with tempfile.TemporaryDirectory(prefix=f"gantry-retrieval-{name}-") as tmp:
        out["numpy"] = bench_numpy(vectors, queries)
        gc.collect()
        if args.local_queries:
            out["local"] = bench_local(Path(tmp) / "local", vectors, queries[: args.local_queries])
            out["local"]["recall_at_10"] = recall(
                out["local"].pop("found"), exact[: args.local_queries]
            )
        gc.collect()
        out["edge"] = bench_edge(
            Path(tmp) / "edge", vectors, queries, args.build_timeout, args.index_min_points
        )
    for label in ("default", "ef64", "ef256", "exact"):
        out["edge"][label]["recall_at_10"] = recall(out["edge"][label].pop("found"), exact)
    return out


def print_set(name: str, r: dict[str, Any]) -> None:
    print(f"\n{name}: N={r['n']:,} x {DIM}-d, {r['queries']} sequential top-{TOP_K} queries")
    print(f"{'path':<22}{'upsert/s':>10}{'QPS':>9}{'p50 ms':>9}{'p99 ms':>9}{'recall@10':>11}")
    rows = [("numpy (exact)", r["numpy"], 1.0)]
    if "local" in r:
        rows.append(("qdrant-client local", r["local"], r["local"]["recall_at_10"]))
    e = r["edge"]
    for label in ("default", "ef64", "ef256", "exact"):
        rows.append((f"edge {label}", {**e, **e[label]}, e[label]["recall_at_10"]))
    for label, row, rec in rows:
        print(
            f"{label:<22}{row['upsert_points_per_s']:>10,.0f}{row['qps']:>9.1f}"
            f"{row['p50_ms']:>9.2f}{row['p99_ms']:>9.2f}{rec:>11.3f}"
        )
    d = e["during_build"]
    print(
        f"edge: index build {e['index_build_s']:.1f} s; while building {d['qps']:.1f} QPS "
        f"(p99 {d['p99_ms']:.1f} ms); RSS +{e['rss_mb']:.0f} MB, disk {e['disk_mb']:.0f} MB; "
        f"numpy RSS "
        f"+{r['numpy']['rss_mb']:.0f} MB"
    )
    if "local" in r:
        print(f"edge default QPS / local QPS: {e['default']['qps'] / r['local']['qps']:.1f}x")


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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=100_000, help="random vectors (0 = skip)")
    parser.add_argument("--n-real", type=int, default=100_000, help="docstrings (0 = skip)")
    parser.add_argument("--queries", type=int, default=200, help="search queries per set")
    parser.add_argument(
        "--local-queries", type=int, default=50, help="queries for local mode (0 = skip it)"
    )
    parser.add_argument("--build-timeout", type=float, default=3600.0, help="index build cap")
    parser.add_argument(
        "--index-min-points", type=int, default=5000, help="Edge build trigger (service default)"
    )
    parser.add_argument(
        "--cache", type=Path, default=Path(tempfile.gettempdir()) / "gantry-docstrings.npz"
    )
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
    results: dict[str, Any] = {"dim": DIM}
    if args.n_real:
        corpus, queries = real_set(args.n_real, args.queries, args.cache)
        results["real"] = run_set("real", corpus, queries, args)
        print_set("real (MiniLM docstrings)", results["real"])
    if args.n:
        rng = np.random.default_rng(0)
        vectors, queries = unit_rows(rng, args.n), unit_rows(rng, args.queries)
        results["random"] = run_set("random", vectors, queries, args)
        print_set("random unit vectors", results["random"])
    if args.json is not None:
        args.json.write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
