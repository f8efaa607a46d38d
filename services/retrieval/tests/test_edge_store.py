"""Qdrant Edge specifics: the background HNSW build keeps search (and writes) available,
GetCollection reports it, recall at the default beam width, snapshots, crash recovery.

A server with a tiny encoder (precomputed vectors only) and a low build trigger keeps the
index build to a few seconds.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import grpc
import numpy as np
import pytest

from gantry.core.client import sync_channel
from gantry.core.codecs import tensor_from_numpy
from gantry.core.testing.threaded import serve_in_thread
from gantry.proto.retrieval.v1 import retrieval_pb2 as pb
from gantry.proto.retrieval.v1 import retrieval_pb2_grpc
from gantry.retrieval.edge_store import SHARD_DIR, EdgeStore, IndexSettings
from gantry.retrieval.service import RetrievalService
from gantry.retrieval.settings import EncoderSpec, RetrievalSettings
from gantry.retrieval.sparse import SparseVector
from gantry.retrieval.store import Chunk, QdrantStore, Store

from .tiny_models import tiny_encoder

Stub = retrieval_pb2_grpc.RetrievalServiceStub
N = 1200
DIM = 64  # the tiny encoder's width


def _unit(rng: np.random.Generator, n: int, dim: int = DIM) -> np.ndarray:
    rows = rng.standard_normal((n, dim)).astype(np.float32)
    unit: np.ndarray = rows / np.linalg.norm(rows, axis=1, keepdims=True)
    return unit


@pytest.fixture(scope="module")
def stub(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stub]:
    settings = RetrievalSettings(
        host="127.0.0.1",
        port=0,
        metrics_port=0,
        auth_disabled=True,
        log_json=False,
        qdrant_embedded="edge",
        data_dir=tmp_path_factory.mktemp("edge"),
        encoders=[EncoderSpec(id="tiny", path=str(tiny_encoder()))],
        default_encoder_id="tiny",
        device="cpu",
        max_batch_texts=N,
        edge_index_min_points=300,
        edge_index_quiet_s=0.3,
    )
    with (
        serve_in_thread(RetrievalService(settings)) as running,
        sync_channel(f"127.0.0.1:{running.port}") as channel,
    ):
        yield Stub(channel)


def _info(stub: Stub, name: str) -> pb.Collection:
    return stub.GetCollection(pb.GetCollectionRequest(name=name)).collection


def _top(stub: Stub, name: str, vector: np.ndarray, **params: object) -> list[str]:
    request = pb.SearchRequest(
        collection=name,
        vector=tensor_from_numpy(vector),
        top_k=10,
        params=pb.SearchParams(**params),  # type: ignore[arg-type]
    )
    return [r.id for r in stub.Search(request, timeout=30).results]


@pytest.mark.slow
def test_index_builds_in_the_background_while_search_and_writes_go_on(stub: Stub) -> None:
    name = f"bg-{uuid.uuid4().hex[:8]}"
    stub.CreateCollection(pb.CreateCollectionRequest(name=name))
    rng = np.random.default_rng(0)
    vectors = _unit(rng, N + 40)
    points = [pb.Point(id=f"v{i}", vector=tensor_from_numpy(vectors[i])) for i in range(N)]
    stub.Upsert(pb.UpsertRequest(collection=name, points=points, wait=True))
    before = _info(stub, name)
    assert before.chunks_count == N and before.indexed_vectors_count == 0 and before.indexing
    # While the build runs: searches answer (each finds its own point first) and writes land.
    searched, slowest, wrote = 0, 0.0, False
    deadline = time.monotonic() + 180
    while _info(stub, name).indexing and time.monotonic() < deadline:
        i = 100 + searched % (N - 100)  # v0..v19 get deleted below
        started = time.monotonic()
        assert _top(stub, name, vectors[i])[0] == f"v{i}"
        slowest = max(slowest, time.monotonic() - started)
        searched += 1
        if not wrote and searched == 5:
            extra = [
                pb.Point(id=f"v{i}", vector=tensor_from_numpy(vectors[i])) for i in range(N, N + 40)
            ]
            stub.Upsert(pb.UpsertRequest(collection=name, points=extra, wait=True))
            gone = pb.PointIds(ids=[f"v{i}" for i in range(20)])
            assert stub.Delete(pb.DeleteRequest(collection=name, ids=gone)).deleted_count == 20
            wrote = True
    after = _info(stub, name)
    assert not after.indexing, "the build did not finish in 180 s"
    assert searched >= 5 and wrote and slowest < 5.0, (searched, slowest)
    # The built index holds the bulk load; writes made during the build were replayed.
    assert after.chunks_count == after.points_count == N + 40 - 20
    assert after.indexed_vectors_count >= N - 20 - 40
    assert _top(stub, name, vectors[N + 7])[0] == f"v{N + 7}"
    assert "v3" not in _top(stub, name, vectors[3])
    # HNSW at the default beam width against exhaustive search.
    queries = _unit(np.random.default_rng(1), 20)
    overlap = [
        len(set(_top(stub, name, q)) & set(_top(stub, name, q, exact=True))) / 10 for q in queries
    ]
    assert float(np.mean(overlap)) >= 0.95
    assert _top(stub, name, queries[0], hnsw_ef=256) == _top(stub, name, queries[0], exact=True)


def _chunks(vectors: np.ndarray, prefix: str) -> list[Chunk]:
    return [
        Chunk(document_id=f"{prefix}{i}", index=0, count=1, dense=v, sparse=None, payload={})
        for i, v in enumerate(vectors)
    ]


def _store(root: Path) -> EdgeStore:
    return EdgeStore(root, index=IndexSettings(min_points=10**9))


def _dense(store: Store, name: str, query: np.ndarray) -> list[tuple[str, float]]:
    hits = store.search(
        name,
        mode="dense",
        distance="cosine",
        dense=query,
        sparse=None,
        limit=5,
        prefetch_limit=20,
    )
    return [(h.document_id, round(h.score, 5)) for h in hits]


def test_snapshot_round_trip_and_a_half_done_swap_recovers(tmp_path: Path) -> None:
    vectors = _unit(np.random.default_rng(2), 50)
    store = _store(tmp_path / "a")
    store.create("kb", encoder_id="tiny", distance="cosine", vector_size=DIM)
    store.upsert("kb", _chunks(vectors, "d"))
    expected = _dense(store, "kb", vectors[3])
    assert expected[0][0] == "d3"
    snapshot = store.export_snapshot("kb", tmp_path / "kb.tar")
    store.close()
    # Another store restores it under a new name: same points, same scores.
    other = _store(tmp_path / "b")
    info = other.import_snapshot(snapshot, "copy")
    assert (info.points_count, info.vector_size, info.encoder_id) == (50, DIM, "tiny")
    assert _dense(other, "copy", vectors[3]) == expected
    other.close()
    # A process killed between the two renames of an index swap: the old shard comes back.
    root = tmp_path / "a" / "kb"
    (root / SHARD_DIR).rename(root / "shard.old")
    (root / "shard.build").mkdir()
    reopened = _store(tmp_path / "a")
    try:
        assert _dense(reopened, "kb", vectors[3]) == expected
        assert not (root / "shard.build").exists() and not (root / "shard.old").exists()
    finally:
        reopened.close()


def test_unknown_collection_and_deleted_collection(tmp_path: Path) -> None:
    store = _store(tmp_path)
    try:
        store.create("gone", encoder_id="tiny", distance="cosine", vector_size=DIM)
        store.delete("gone")
        assert store.count_collections() == 0 and not (tmp_path / "gone").exists()
        with pytest.raises(KeyError):
            store.get("gone")
    finally:
        store.close()


def test_grpc_errors_stay_typed(stub: Stub) -> None:
    with pytest.raises(grpc.RpcError) as info:
        stub.GetCollection(pb.GetCollectionRequest(name="missing-edge"))
    assert info.value.code() == grpc.StatusCode.NOT_FOUND


def test_migrate_copies_settings_ids_vectors_and_payloads(tmp_path: Path) -> None:
    """Edge → a qdrant-client store (local mode here; a server takes the same calls)."""
    vectors = _unit(np.random.default_rng(3), 30)
    source = _store(tmp_path / "edge")
    target = QdrantStore.open(path=":memory:")
    try:
        source.create(
            "kb", encoder_id="tiny", distance="cosine", vector_size=DIM, sparse_encoder_id="bm25"
        )
        chunks = _chunks(vectors, "d")
        for i, chunk in enumerate(chunks):
            chunk.sparse = SparseVector([i, 1000], [1.0, 0.5])
            chunk.payload = {"n": i}
        source.upsert("kb", chunks)
        assert source.migrate("kb", target) == 30
        assert source.migrate("kb", target) == 30  # rerunning is harmless
        info = target.get("kb")
        assert (info.points_count, info.encoder_id, info.sparse_encoder_id) == (30, "tiny", "bm25")
        assert _dense(target, "kb", vectors[4]) == _dense(source, "kb", vectors[4])
        sparse = target.search(
            "kb",
            mode="sparse",
            distance="cosine",
            dense=None,
            sparse=SparseVector([7], [1.0]),
            limit=1,
            prefetch_limit=4,
        )
        assert sparse[0].document_id == "d7" and sparse[0].payload["n"] == 7
    finally:
        source.close()
        target.close()
