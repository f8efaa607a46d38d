"""Retrieval benchmark: Qdrant Edge (the service's embedded default) vs qdrant-client's
local mode vs brute-force numpy, in one run, on two vector sets:

- **real**: MiniLM embeddings of an offline real corpus, distinct 48-word chunks of the
  docstrings of the packages installed here, with 1,000 held-out chunks as queries;
  encoded in blocks cached under `--cache` (resumable; `--encode-shard i/k` lets k
  processes fill it side by side, `--cached-only` benchmarks the blocks already there);
- **random**: random unit 384-d vectors (MiniLM's width; the worst case for HNSW recall).

Per path: upserts/s, index build time (Edge: from the last upsert until the background
HNSW build is swapped in), sequential top-10 QPS with p50/p99, recall@10 against exact
search (tie-aware), memory (process RSS growth, the builder's peak, shard size on disk)
and the load average when each row finished; QPS ratios to numpy (exact, the strongest
baseline) and to local mode. **edge** = the retrieval service on Edge over gRPC
(`Upsert` with precomputed vectors through `upsert_batched`, `Search`), searched at the
default `hnsw_ef`, each `--ef`, and `exact`; **local** = qdrant-client's local mode called
directly (the previous embedded default); **numpy** = rows in a matrix, `argpartition`.
Every engine setting is a flag (`--hnsw-ef`, `--hnsw-m`, `--ef-construct`,
`--quantization`, `--index-*`), so a table in docs/retrieval.md can be re-run exactly.

    .venv/bin/python benchmarks/retrieval.py [--n-real 100000] [--n 100000] [--json out.json]
    .venv/bin/python benchmarks/retrieval.py --n-real 100000 --n 0 --encode-only  # fill cache
    .venv/bin/python benchmarks/retrieval.py --fusion      # fusion quality only (~3 min)
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import gc
import json
import os
import re
import shutil
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
ENCODE_BLOCK = 1024  # texts per cached block of embeddings
REAL_POOL = 100_000  # docstrings collected for the real set (its cache key)
TOP_K = 10
# Big, well-documented packages first: the walk stops once it has enough docstrings.
REAL_PACKAGES = ("torch", "transformers", "numpy", "scipy", "sympy", "pandas", "")


def unit_rows(rng: np.random.Generator, n: int) -> np.ndarray:
    """n random unit rows, drawn in blocks (1M rows never exist as float64)."""
    unit = np.empty((n, DIM), np.float32)
    for start in range(0, n, 65536):
        rows = rng.standard_normal((min(65536, n - start), DIM))
        unit[start : start + len(rows)] = rows / np.linalg.norm(rows, axis=1, keepdims=True)
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


def kth_scores(matrix: np.ndarray, queries: np.ndarray, k: int = TOP_K) -> np.ndarray:
    """Each query's k-th best exact score (queries scored in blocks: one matmul each)."""
    out = np.empty(len(queries), np.float32)
    for start in range(0, len(queries), 64):
        scores = queries[start : start + 64] @ matrix.T
        out[start : start + 64] = -np.partition(-scores, k - 1, axis=1)[:, k - 1]
    return out


def recall(
    found: list[list[int]], matrix: np.ndarray, queries: np.ndarray, kth: np.ndarray
) -> float:
    """Recall@k against exact search, tie-aware: a found point counts when its exact score
    reaches the k-th best one (near-duplicate texts tie; any of them is a right answer)."""
    hits = [
        int(np.count_nonzero(matrix[ids] @ q >= t - 1e-5)) if ids else 0
        for ids, q, t in zip(found, queries, kth, strict=True)
    ]
    return statistics.fmean(min(h, TOP_K) / TOP_K for h in hits)


def load_avg() -> float:
    return os.getloadavg()[0]


def note(what: str, row: dict[str, Any] | None = None) -> None:
    """A progress line as each figure is measured (a run stopped early keeps them)."""
    figures = ""
    if row is not None and "qps" in row:
        figures = f": {row['qps']:.1f} QPS, p50 {row['p50_ms']:.2f} ms, p99 {row['p99_ms']:.2f} ms"
        if "recall_at_10" in row:
            figures += f", recall@10 {row['recall_at_10']:.3f}"
    stamp = time.strftime("%H:%M:%S")
    print(f"[{stamp} load {load_avg():.1f}] {what}{figures}", flush=True)


# ---- the real corpus: docstrings of installed packages, MiniLM-embedded ------------------


_DOCSTRING = re.compile(
    r'^[ \t]*(?:(?:async[ \t]+)?def|class)[ \t][^\n]*:[ \t]*\n[ \t]*[rRuU]?("""|\'\'\')(.*?)\1',
    re.DOTALL | re.MULTILINE,
)


def docstrings(limit: int, packages: Sequence[str] = ()) -> list[str]:
    """Distinct 48-word chunks (at least 5 words) of the docstrings of the functions and
    classes of installed packages, in a sorted walk (a regular expression: `ast` is 10x
    slower)."""
    root = Path(sysconfig.get_paths()["purelib"])
    dirs = [root / p for p in packages] if packages else [root]
    seen: set[str] = set()
    out: list[str] = []
    for base in dirs:
        for path in sorted(base.rglob("*.py")):
            try:
                source = path.read_text(encoding="utf-8")
            except (UnicodeDecodeError, OSError):
                continue
            for match in _DOCSTRING.finditer(source):
                words = match.group(2).split()
                for start in range(0, len(words), 48):  # chunks of 48 words
                    text = " ".join(words[start : start + 48])
                    if len(words) - start >= 5 and text not in seen:
                        seen.add(text)
                        out.append(text)
                        if len(out) >= limit:
                            return out
    return out


def real_texts(pool: int, queries: int, folder: Path) -> tuple[list[str], list[str]]:
    """`queries` held-out docstrings and up to `pool` corpus ones, in a fixed shuffled order
    (saved in `folder`, so a resumed or shorter run sees the same texts)."""
    folder.mkdir(parents=True, exist_ok=True)
    saved = folder / "texts.json"
    if saved.exists():
        texts = json.loads(saved.read_text())
    else:
        texts = docstrings(pool + queries, REAL_PACKAGES)
        saved.write_text(json.dumps(texts))
    order = np.random.default_rng(1).permutation(len(texts))
    return [texts[i] for i in order[:queries]], [texts[i] for i in order[queries:]]


def _encode_blocks(
    embedder: Any, texts: list[str], kind: str, folder: Path, args: Any
) -> np.ndarray:
    """Encode in blocks of ENCODE_BLOCK texts, each saved as it finishes (resumable);
    `args.cached_only` stops at the first block not on disk; `args.encode_shard` (i/k)
    encodes every k-th block only, so k processes can fill the cache side by side."""
    shard, shards = (int(x) for x in args.encode_shard.split("/"))
    blocks = []
    for number, start in enumerate(range(0, len(texts), ENCODE_BLOCK)):
        if number % shards != shard:
            continue
        path = folder / f"{kind}-{start:08d}.npy"
        block = texts[start : start + ENCODE_BLOCK]
        if path.exists() and len(np.load(path, mmap_mode="r")) == len(block):
            blocks.append(np.load(path))
            continue
        if args.cached_only:
            break
        began = time.perf_counter()
        vectors = embedder.encode(block, input_type=kind, batch_size=128)
        took = time.perf_counter() - began
        np.save(path, vectors)
        blocks.append(vectors)
        print(
            f"encoded {kind} {start + len(block):,}/{len(texts):,} "
            f"({len(block) / took:.1f} texts/s, load {load_avg():.1f})",
            flush=True,
        )
    return np.concatenate(blocks) if blocks else np.zeros((0, DIM), np.float32)


def real_set(n: int, queries: int, args: Any) -> tuple[np.ndarray, np.ndarray]:
    """MiniLM vectors of the first n pool docstrings and of `queries` held-out ones.

    Cached under `args.cache` block by block, so an interrupted run resumes and a smaller
    n reuses a prefix; `args.cached_only` takes just the blocks already encoded.
    """
    from gantry.retrieval.embedders import load_embedder
    from gantry.retrieval.settings import EncoderSpec

    pool = max(n, REAL_POOL)
    folder = args.cache / f"pool{pool}-q{queries}-len{args.max_tokens}"
    held, corpus = real_texts(pool, queries, folder)
    if len(corpus) < n:
        print(f"only {len(corpus):,} distinct docstrings installed (asked for {n:,})")
    spec = EncoderSpec(id="minilm", max_seq_length=args.max_tokens)
    embedder = load_embedder(spec, device="cpu")
    query_vectors = _encode_blocks(embedder, held, "query", folder, args)
    doc_vectors = _encode_blocks(embedder, corpus[:n], "document", folder, args)
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
        "queries": len(queries),
        "load": load_avg(),
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
        "queries": len(queries),
        "load": load_avg(),
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
    return {**latency_stats(samples), "queries": len(queries), "load": load_avg(), "found": found}


def _builder_rss_mb() -> float:
    """RSS of the background index builder (a child process), 0 when none runs."""
    total = 0.0
    for proc in Path("/proc").glob("[0-9]*"):
        with contextlib.suppress(OSError):
            if b"gantry.retrieval.edge_index" not in (proc / "cmdline").read_bytes():
                continue
            for line in (proc / "status").read_text().splitlines():
                if line.startswith("PPid:") and int(line.split()[1]) != os.getpid():
                    break
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1]) / 1024
    return total


def edge_settings(path: Path, args: Any) -> RetrievalSettings:
    """The service's settings for this run; unset flags keep the service's defaults."""
    engine = {
        "search_hnsw_ef": args.hnsw_ef,
        "hnsw_m": args.hnsw_m,
        "hnsw_ef_construct": args.ef_construct,
    }
    return RetrievalSettings(
        host="127.0.0.1",
        port=0,
        metrics_port=0,
        auth_disabled=True,
        log_json=False,
        qdrant_embedded="edge",
        qdrant_path=str(path),
        max_batch_texts=BATCH,
        edge_index_quiet_s=args.index_quiet_s,
        edge_index_nice=args.index_nice,
        edge_index_min_points=args.index_min_points,
        **{k: v for k, v in engine.items() if v is not None},
    )


def edge_knobs(args: Any) -> list[tuple[str, pb.SearchParams]]:
    """`default` (what a caller gets), each --ef in the sweep, and `exact`."""
    quantization = None
    if args.quantization == "int8" and args.oversampling:
        quantization = pb.QuantizationSearchParams(rescore=True, oversampling=args.oversampling)
    knobs = [("default", pb.SearchParams(quantization=quantization))]
    knobs += [(f"ef{ef}", pb.SearchParams(hnsw_ef=ef, quantization=quantization)) for ef in args.ef]
    return [*knobs, ("exact", pb.SearchParams(exact=True))]


def bench_edge(
    path: Path, vectors: np.ndarray, queries: np.ndarray, kth: np.ndarray, args: Any
) -> dict[str, Any]:
    """The service on Edge: upsert, searches while the index builds, then per search knob."""
    settings = edge_settings(path, args)
    quantization = (
        pb.QUANTIZATION_SCALAR_INT8 if args.quantization == "int8" else pb.QUANTIZATION_UNSPECIFIED
    )
    with (
        # A loaded machine can take minutes to import and load the service's encoder.
        serve_in_thread(RetrievalService(settings), startup_timeout_s=900) as running,
        sync_channel(f"127.0.0.1:{running.port}") as channel,
    ):
        before = rss_mb()  # the service is up (encoder loaded): count only the data
        stub = retrieval_pb2_grpc.RetrievalServiceStub(channel)
        stub.CreateCollection(pb.CreateCollectionRequest(name="bench", quantization=quantization))
        load_before = load_avg()
        written, seconds = timed(
            lambda: upsert_batched(stub, "bench", _points(vectors), batch_size=BATCH)
        )
        assert written == len(vectors)
        note(f"edge: upserted {written:,} in {seconds:.0f} s, RSS +{rss_mb() - before:.0f} MB")
        out: dict[str, Any] = {
            "upsert_points_per_s": len(vectors) / seconds,
            "upsert_load": max(load_before, load_avg()),
            "settings": {
                "search_hnsw_ef": settings.search_hnsw_ef,
                "hnsw_m": settings.hnsw_m,
                "hnsw_ef_construct": settings.hnsw_ef_construct,
                "quantization": args.quantization,
                "edge_index_min_points": settings.edge_index_min_points,
                "edge_index_nice": settings.edge_index_nice,
            },
        }
        loaded = time.perf_counter()
        # Exhaustive searches while the index builds in the background (availability).
        during = _search_all(stub, queries[:50], pb.SearchParams())
        out["during_build"] = {k: v for k, v in during.items() if k != "found"}
        note("edge: searches right after the load (before the index)", during)
        deadline = loaded + args.build_timeout
        loads, builder, shown = [load_avg()], 0.0, loaded
        while True:
            info = stub.GetCollection(pb.GetCollectionRequest(name="bench")).collection
            done = not info.indexing and info.indexed_vectors_count >= info.chunks_count
            if done or time.perf_counter() >= deadline:
                break
            time.sleep(0.5)
            loads.append(load_avg())
            builder = max(builder, _builder_rss_mb())
            if time.perf_counter() - shown >= 60:
                shown = time.perf_counter()
                note(
                    f"edge: building {shown - loaded:.0f} s, {info.indexed_vectors_count:,} "
                    f"indexed, builder RSS {_builder_rss_mb():.0f} MB, "
                    f"service RSS +{rss_mb() - before:.0f} MB"
                )
        out["index_build_s"] = time.perf_counter() - loaded
        out["build_load"] = statistics.fmean(loads)
        out["indexed_vectors"] = int(info.indexed_vectors_count)
        out["rss_mb"] = rss_mb() - before
        out["builder_peak_rss_mb"] = builder
        out["disk_mb"] = sum(f.stat().st_size for f in path.rglob("*") if f.is_file()) / 2**20
        note(
            f"edge: index {'built' if out['indexed_vectors'] >= len(vectors) else 'NOT built'} "
            f"after {out['index_build_s']:.0f} s ({out['indexed_vectors']:,} indexed); service "
            f"RSS +{out['rss_mb']:.0f} MB, builder peak {builder:.0f} MB, "
            f"disk {out['disk_mb']:.0f} MB"
        )
        for label, params in edge_knobs(args):
            out[label] = _search_all(stub, queries, params)
            out[label]["recall_at_10"] = recall(out[label].pop("found"), vectors, queries, kth)
            note(f"edge {label}", out[label])
        return out


def run_set(name: str, vectors: np.ndarray, queries: np.ndarray, args: Any) -> dict[str, Any]:
    kth = kth_scores(vectors, queries)
    note(f"{name}: {len(vectors):,} vectors, exact top-{TOP_K} of {len(queries)} queries")
    out: dict[str, Any] = {"n": len(vectors), "queries": len(queries)}
    with tempfile.TemporaryDirectory(prefix=f"gantry-retrieval-{name}-", dir=args.tmp) as tmp:
        if args.numpy_queries:
            out["numpy"] = bench_numpy(vectors, queries[: args.numpy_queries])
            note(f"numpy (RSS +{out['numpy']['rss_mb']:.0f} MB)", out["numpy"])
        gc.collect()
        if args.local_queries:
            few = queries[: args.local_queries]
            out["local"] = bench_local(Path(tmp) / "local", vectors, few)
            out["local"]["recall_at_10"] = recall(
                out["local"].pop("found"), vectors, few, kth[: len(few)]
            )
            shutil.rmtree(Path(tmp) / "local", ignore_errors=True)
            note(f"local (RSS +{out['local']['rss_mb']:.0f} MB)", out["local"])
        gc.collect()
        out["edge"] = bench_edge(Path(tmp) / "edge", vectors, queries, kth, args)
    return out


def print_set(name: str, r: dict[str, Any]) -> None:
    """One row per path; QPS ratios to numpy (exact, the strongest baseline) and local."""
    print(f"\n{name}: N={r['n']:,} x {DIM}-d, sequential top-{TOP_K} queries")
    print(
        f"{'path':<20}{'queries':>8}{'upsert/s':>10}{'QPS':>9}{'p50 ms':>9}{'p99 ms':>9}"
        f"{'recall@10':>10}{'load':>6}{'x numpy':>9}{'x local':>9}"
    )
    e = r["edge"]
    rows = []
    if "numpy" in r:
        rows.append(("numpy (exact)", r["numpy"], 1.0))
    if "local" in r:
        rows.append(("qdrant-client local", r["local"], r["local"]["recall_at_10"]))
    labels = [k for k in e if isinstance(e[k], dict) and "qps" in e[k] and k != "during_build"]
    for label in labels:
        row = {**e[label], "upsert_points_per_s": e["upsert_points_per_s"]}
        rows.append((f"edge {label}", row, e[label]["recall_at_10"]))
    base = {k: r[k]["qps"] for k in ("numpy", "local") if k in r}
    for label, row, rec in rows:
        ratios = "".join(
            f"{row['qps'] / base[k]:>8.1f}x" if k in base else f"{'-':>9}"
            for k in ("numpy", "local")
        )
        print(
            f"{label:<20}{row['queries']:>8}{row['upsert_points_per_s']:>10,.0f}{row['qps']:>9.1f}"
            f"{row['p50_ms']:>9.2f}{row['p99_ms']:>9.2f}{rec:>10.3f}{row['load']:>6.1f}{ratios}"
        )
    d = e["during_build"]
    print(
        f"edge ({e['settings']}): upsert at load {e['upsert_load']:.1f}; index build "
        f"{e['index_build_s']:.1f} s at load {e['build_load']:.1f}; while building "
        f"{d['qps']:.1f} QPS (p99 {d['p99_ms']:.1f} ms); service RSS +{e['rss_mb']:.0f} MB "
        f"after the load (builder process peak {e['builder_peak_rss_mb']:.0f} MB), "
        f"disk {e['disk_mb']:.0f} MB"
    )
    for k in ("numpy", "local"):
        if k in r:
            print(f"{k}: RSS +{r[k]['rss_mb']:.0f} MB")


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
    parser.add_argument("--queries", type=int, default=1000, help="search queries per set")
    parser.add_argument(
        "--numpy-queries", type=int, default=1000, help="queries for numpy (0 = skip it)"
    )
    parser.add_argument(
        "--local-queries", type=int, default=200, help="queries for local mode (0 = skip it)"
    )
    parser.add_argument("--build-timeout", type=float, default=3600.0, help="index build cap")
    parser.add_argument(
        "--index-min-points", type=int, default=5000, help="Edge build trigger (service default)"
    )
    parser.add_argument(
        "--index-quiet-s",
        type=float,
        default=2.0,
        help="Edge: idle seconds before a build (service default; raise it on a loaded machine "
        "so a slow bulk load is not indexed halfway)",
    )
    parser.add_argument(
        "--index-nice",
        type=int,
        default=10,
        help="Edge: builder niceness over the service's (service default 10; 0 on a busy "
        "machine, or a niced run's build gets almost no CPU)",
    )
    parser.add_argument("--hnsw-ef", type=int, default=None, help="service SEARCH_HNSW_EF")
    parser.add_argument("--hnsw-m", type=int, default=None, help="service HNSW_M")
    parser.add_argument("--ef-construct", type=int, default=None, help="service HNSW_EF_CONSTRUCT")
    parser.add_argument(
        "--ef",
        type=lambda v: [int(x) for x in v.split(",") if x],
        default=[64, 256],
        help="extra hnsw_ef values searched besides the default (comma-separated)",
    )
    parser.add_argument("--quantization", choices=("none", "int8"), default="none")
    parser.add_argument(
        "--oversampling", type=float, default=0.0, help="int8: rescore with this oversampling"
    )
    parser.add_argument("--tmp", type=Path, default=None, help="where the stores are written")
    parser.add_argument(
        "--cache",
        type=Path,
        default=Path(tempfile.gettempdir()) / "gantry-retrieval-embeddings",
        help="folder of cached MiniLM embeddings (resumable)",
    )
    parser.add_argument(
        "--max-tokens", type=int, default=16, help="MiniLM input length (tokens) of the real set"
    )
    parser.add_argument(
        "--cached-only", action="store_true", help="real set: only the blocks already encoded"
    )
    parser.add_argument(
        "--encode-shard", default="0/1", help="i/k: encode every k-th block (k processes)"
    )
    parser.add_argument("--encode-only", action="store_true", help="fill the cache, then stop")
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
        corpus, queries = real_set(args.n_real, args.queries, args)
        if args.encode_only:
            print(f"cached {len(corpus):,} + {len(queries)} vectors under {args.cache}")
            return
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
