"""The embedded store on Qdrant's own engine in-process (Qdrant Edge, `qdrant-edge-py`).

One Edge shard per collection under the store's root:

    <root>/<collection>/collection.json   Gantry's settings (encoder, distance, ...)
    <root>/<collection>/shard/            the shard: segments + write-ahead log

Writes go through the shard's WAL, so a killed process loses nothing it acknowledged.
Recent writes sit in a plain (exhaustively searched) segment; the HNSW index is built in
the background. Edge's `optimize()` holds the GIL for the whole build, which would stall
every search and the gRPC loop, so it runs in a child process on a copy of the shard
(`gantry.retrieval.edge_index`); writes made meanwhile are kept and replayed onto the
built copy, which then replaces the live shard in one short swap.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import threading
import time
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import qdrant_edge as edge
from qdrant_client import models

from gantry.retrieval.sparse import SparseVector
from gantry.retrieval.store import (
    CHUNK_KEY,
    CHUNKS_KEY,
    DENSE,
    DOC_KEY,
    RRF_K,
    SPARSE,
    Chunk,
    CollectionExists,
    CollectionInfo,
    CollectionMissing,
    Distance,
    Fusion,
    Hit,
    Mode,
    QdrantStore,
    Quantization,
    SearchParams,
    TooManyCollections,
    point_uuid,
)

log = logging.getLogger("gantry.retrieval.edge_store")

META_FILE = "collection.json"
SHARD_DIR = "shard"
_BUILD_DIR = "shard.build"
_OLD_DIR = "shard.old"
_WRITE_BATCH = 512  # points per shard update (one WAL record each)
_EDGE_DISTANCE = {
    "cosine": edge.Distance.Cosine,
    "dot": edge.Distance.Dot,
    "euclid": edge.Distance.Euclid,
    "manhattan": edge.Distance.Manhattan,
}
_LOWER_IS_CLOSER = frozenset({"euclid", "manhattan"})


@dataclass(frozen=True)
class IndexSettings:
    """When and how the background HNSW build runs."""

    min_points: int = 5_000  # unindexed chunks before a build is worth it
    quiet_s: float = 2.0  # no writes for this long first (a bulk load builds once)
    hnsw_m: int = 16
    hnsw_ef_construct: int = 100
    default_hnsw_ef: int = 128
    nice: int = 10  # added to the builder process's niceness: serving comes first


# ---- filters: qdrant-client models → Edge ---------------------------------------------------


def _match(match: Any) -> Any:
    if isinstance(match, models.MatchValue):
        value = match.value
        # Edge reads a Python bool as an integer; numpy's bool type reaches it as a bool.
        if isinstance(value, bool):
            return edge.MatchValue(np.bool_(value))  # type: ignore[arg-type]
        return edge.MatchValue(value)
    if isinstance(match, models.MatchAny):
        return edge.MatchAny(list(match.any))  # type: ignore[arg-type]
    raise TypeError(f"unsupported match {type(match).__name__}")


def _condition(condition: Any) -> Any:
    if isinstance(condition, models.Filter):
        return edge_filter(condition)
    if isinstance(condition, models.FieldCondition):
        if condition.match is not None:
            return edge.FieldCondition(condition.key, match=_match(condition.match))
        if isinstance(condition.range, models.Range):
            r = condition.range
            return edge.FieldCondition(
                condition.key, range=edge.RangeFloat(gte=r.gte, gt=r.gt, lte=r.lte, lt=r.lt)
            )
    raise TypeError(f"unsupported condition {type(condition).__name__}")


def _clause(conditions: Any) -> list[Any] | None:
    if conditions is None:
        return None
    items = conditions if isinstance(conditions, list) else [conditions]
    return [_condition(c) for c in items] or None


def edge_filter(flt: models.Filter) -> edge.Filter:
    """The same filter for Edge (the servicer builds qdrant-client filters)."""
    return edge.Filter(
        must=_clause(flt.must), should=_clause(flt.should), must_not=_clause(flt.must_not)
    )


def _documents(document_ids: Sequence[str]) -> edge.Filter:
    return edge.Filter(must=[edge.FieldCondition(DOC_KEY, match=edge.MatchAny(list(document_ids)))])


_FIRST_CHUNK = edge.FieldCondition(CHUNK_KEY, match=edge.MatchValue(0))


def _first_chunks(flt: models.Filter | None) -> edge.Filter:
    parts: list[Any] = [_FIRST_CHUNK]
    if flt is not None:
        parts.append(edge_filter(flt))
    return edge.Filter(must=parts)


def _search_params(params: SearchParams | None, default_ef: int) -> edge.SearchParams:
    params = params or SearchParams()
    quantization = None
    if params.quantization_ignore or params.rescore is not None or params.oversampling:
        quantization = edge.QuantizationSearchParams(
            ignore=params.quantization_ignore,
            rescore=params.rescore,
            oversampling=params.oversampling,
        )
    return edge.SearchParams(
        hnsw_ef=params.hnsw_ef or default_ef, exact=params.exact, quantization=quantization
    )


# ---- one collection -------------------------------------------------------------------------


@dataclass
class _Collection:
    """A shard and its settings; `lock` serialises every use of the live shard."""

    name: str
    root: Path
    meta: dict[str, Any]
    shard: edge.EdgeShard
    lock: threading.RLock = field(default_factory=threading.RLock)
    pending: list[edge.UpdateOperation] | None = None  # writes to replay during a build
    unindexed: int = 0  # chunks written since the last build started
    last_write: float = 0.0
    building: bool = False
    deleted: bool = False

    @property
    def shard_path(self) -> Path:
        return self.root / SHARD_DIR

    def apply(self, operation: edge.UpdateOperation) -> None:
        """Caller holds `lock`."""
        self.shard.update(operation)
        if self.pending is not None:
            self.pending.append(operation)


def _edge_config(meta: dict[str, Any], index: IndexSettings) -> edge.EdgeConfig:
    quantization = None
    if meta.get("quantization") == "int8":
        quantization = edge.ScalarQuantizationConfig(
            type=edge.ScalarType.Int8, quantile=0.99, always_ram=True
        )
    return edge.EdgeConfig(
        vectors={
            DENSE: edge.EdgeVectorParams(
                size=int(meta["vector_size"]), distance=_EDGE_DISTANCE[meta["distance"]]
            )
        },
        # IDF from live collection statistics turns the stored tf weights into BM25.
        sparse_vectors=(
            {SPARSE: edge.EdgeSparseVectorParams(modifier=edge.Modifier.Idf)}
            if meta.get("sparse_encoder_id")
            else None
        ),
        hnsw_config=edge.HnswIndexConfig(
            m=index.hnsw_m, ef_construct=index.hnsw_ef_construct, full_scan_threshold=10_000
        ),
        quantization_config=quantization,
        # Edge's optimizer indexes a segment past this size (KB): match the build trigger.
        optimizers=edge.EdgeOptimizersConfig(
            indexing_threshold=max(1, index.min_points * int(meta["vector_size"]) * 4 // 1024)
        ),
        wal_enabled=True,
    )


def _recover(root: Path) -> None:
    """Finish or undo a swap a killed process left half done; drop stale build copies."""
    live, old, build = root / SHARD_DIR, root / _OLD_DIR, root / _BUILD_DIR
    if not live.exists() and old.exists():
        old.rename(live)
    for stale in (old, build):
        if stale.exists():
            trash = root.parent / f".deleted-{uuid.uuid4().hex}"
            stale.rename(trash)
            shutil.rmtree(trash, ignore_errors=True)


class EdgeStore:
    """Blocking: call from the service's executor, never the event loop."""

    embedded = True

    def __init__(self, root: Path, *, index: IndexSettings | None = None, temporary: bool = False):
        self.root = root
        self.index = index or IndexSettings()
        self._temporary = temporary
        self._lock = threading.RLock()  # the collections dict
        self._collections: dict[str, _Collection] = {}
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._child: subprocess.Popen[bytes] | None = None
        root.mkdir(parents=True, exist_ok=True)
        for entry in sorted(root.iterdir()):
            if entry.name.startswith(".deleted-"):  # a removal a killed process left
                shutil.rmtree(entry, ignore_errors=True)
            if entry.name.startswith(".") or not entry.is_dir():
                continue
            if not (entry / META_FILE).is_file():  # creation never finished
                shutil.rmtree(entry)
                continue
            _recover(entry)
            meta = json.loads((entry / META_FILE).read_text())
            shard = edge.EdgeShard.load(str(entry / SHARD_DIR))
            collection = _Collection(entry.name, entry, meta, shard)
            info = shard.info()
            collection.unindexed = max(0, info.points_count - self._indexed_points(collection))
            collection.last_write = time.monotonic()
            self._collections[entry.name] = collection
        self._indexer = threading.Thread(target=self._index_loop, name="edge-indexer", daemon=True)
        self._indexer.start()

    @classmethod
    def open(cls, path: str, *, index: IndexSettings | None = None) -> EdgeStore:
        """The store at `path`; ':memory:' = a temporary directory removed on close."""
        if path == ":memory:":
            return cls(Path(tempfile.mkdtemp(prefix="gantry-edge-")), index=index, temporary=True)
        return cls(Path(path), index=index)

    def close(self) -> None:
        self._stop.set()
        self._wake.set()
        child = self._child
        if child is not None and child.poll() is None:
            child.kill()  # the build restarts from the live shard next time
        self._indexer.join(timeout=30)
        with self._lock:
            for collection in self._collections.values():
                with collection.lock:
                    collection.shard.close()
            self._collections.clear()
        if self._temporary:
            shutil.rmtree(self.root, ignore_errors=True)

    # ---- collections ----------------------------------------------------------------------

    def _collection(self, name: str) -> _Collection:
        with self._lock:
            collection = self._collections.get(name)
        if collection is None:
            raise CollectionMissing(name)
        return collection

    def create(
        self,
        name: str,
        *,
        encoder_id: str,
        distance: Distance,
        vector_size: int,
        sparse_encoder_id: str = "",
        quantization: Quantization = "",
        max_collections: int | None = None,
    ) -> CollectionInfo:
        with self._lock:
            if name in self._collections:
                raise CollectionExists(name)
            if max_collections is not None and len(self._collections) >= max_collections:
                raise TooManyCollections(name)
            meta = {
                "encoder_id": encoder_id,
                "distance": distance,
                "vector_size": vector_size,
                "sparse_encoder_id": sparse_encoder_id,
                "quantization": quantization,
                "create_time": datetime.now(UTC).isoformat(),
            }
            root = self.root / name
            if root.exists():  # left by a failed delete
                shutil.rmtree(root)
            root.mkdir()
            shard = edge.EdgeShard.create(str(root / SHARD_DIR), _edge_config(meta, self.index))
            # Counting documents and deleting by document look these keys up, not scan.
            for key, schema in (
                (DOC_KEY, edge.PayloadSchemaType.Keyword),
                (CHUNK_KEY, edge.PayloadSchemaType.Integer),
            ):
                shard.update(edge.UpdateOperation.create_field_index(key, schema))
            shard.flush()
            # The settings file is written last and atomically: it marks a finished collection.
            tmp = root / f".{META_FILE}.tmp"
            tmp.write_text(json.dumps(meta))
            os.replace(tmp, root / META_FILE)
            self._collections[name] = _Collection(name, root, meta, shard)
        return self.get(name)

    def _indexed_points(self, collection: _Collection) -> int:
        """Qdrant counts every vector in an index, sparse ones too; this is per point."""
        info = collection.shard.info()
        kinds = 2 if collection.meta.get("sparse_encoder_id") else 1
        return min(info.points_count, info.indexed_vectors_count // kinds)

    def get(self, name: str, *, count: bool = True) -> CollectionInfo:
        collection = self._collection(name)
        meta = collection.meta
        documents = chunks = indexed = -1
        with collection.lock:
            if collection.deleted:
                raise CollectionMissing(name)
            if count:
                documents = collection.shard.count(
                    edge.CountRequest(exact=True, filter=_first_chunks(None))
                )
                info = collection.shard.info()
                chunks, indexed = info.points_count, info.indexed_vectors_count
        return CollectionInfo(
            name=name,
            encoder_id=str(meta["encoder_id"]),
            distance=meta["distance"],
            vector_size=int(meta["vector_size"]),
            sparse_encoder_id=str(meta.get("sparse_encoder_id", "")),
            points_count=documents,
            create_time=datetime.fromisoformat(str(meta["create_time"])),
            quantization="int8" if meta.get("quantization") == "int8" else "",
            chunks_count=chunks,
            indexed_vectors_count=indexed,
            indexing=collection.building or self._due(collection, time.monotonic(), quiet=0.0),
        )

    def count_collections(self) -> int:
        with self._lock:
            return len(self._collections)

    def list_collections(self) -> list[CollectionInfo]:
        with self._lock:
            names = sorted(self._collections)
        out = []
        for name in names:
            try:
                out.append(self.get(name))
            except CollectionMissing:
                continue  # deleted meanwhile
        return out

    def delete(self, name: str) -> None:
        with self._lock:
            collection = self._collections.pop(name, None)
        if collection is None:
            raise CollectionMissing(name)
        with collection.lock:
            collection.deleted = True
            collection.shard.close()
            # Rename first: a crash mid-removal leaves a hidden folder, not a half collection.
            trash = self.root / f".deleted-{uuid.uuid4().hex}"
            collection.root.rename(trash)
        shutil.rmtree(trash, ignore_errors=True)

    def count_documents(self, name: str, flt: models.Filter | None = None) -> int:
        collection = self._collection(name)
        with collection.lock:
            return int(
                collection.shard.count(edge.CountRequest(exact=True, filter=_first_chunks(flt)))
            )

    # ---- points ---------------------------------------------------------------------------

    def upsert(self, name: str, chunks: Sequence[Chunk], *, wait: bool = True) -> None:
        """Replace the documents these chunks belong to (see QdrantStore.upsert).

        Edge applies every write before returning, so `wait` changes nothing here.
        """
        if not chunks:
            return
        collection = self._collection(name)
        points = []
        for chunk in chunks:
            vector: dict[str, Any] = {DENSE: chunk.dense.tolist()}
            if chunk.sparse is not None and chunk.sparse.indices:
                vector[SPARSE] = edge.SparseVector(chunk.sparse.indices, chunk.sparse.values)
            payload = {
                **chunk.payload,
                DOC_KEY: chunk.document_id,
                CHUNK_KEY: chunk.index,
                CHUNKS_KEY: chunk.count,
            }
            points.append(edge.Point(point_uuid(chunk.document_id, chunk.index), vector, payload))
        new_counts = {c.document_id: c.count for c in chunks}
        with collection.lock:
            if collection.deleted:
                raise CollectionMissing(name)
            stale: list[Any] = [
                point_uuid(document_id, i)
                for document_id, old in self._stored_chunk_counts(collection, new_counts).items()
                for i in range(new_counts[document_id], old)
            ]
            if stale:
                collection.apply(edge.UpdateOperation.delete_points(stale))
            for start in range(0, len(points), _WRITE_BATCH):
                batch = points[start : start + _WRITE_BATCH]
                collection.apply(edge.UpdateOperation.upsert_points(batch))
            self._wrote(collection, len(points))

    def _wrote(self, collection: _Collection, points: int) -> None:
        collection.unindexed += points
        collection.last_write = time.monotonic()
        self._wake.set()

    def _stored_chunk_counts(
        self, collection: _Collection, document_ids: Iterable[str]
    ) -> dict[str, int]:
        by_first = {point_uuid(d, 0): d for d in document_ids}
        records = collection.shard.retrieve(
            list(by_first), with_payload=[CHUNKS_KEY], with_vector=False
        )
        return {by_first[str(r.id)]: int((r.payload or {}).get(CHUNKS_KEY, 1)) for r in records}

    def delete_documents(self, name: str, document_ids: Sequence[str], *, wait: bool) -> int:
        collection = self._collection(name)
        with collection.lock:
            if collection.deleted:
                raise CollectionMissing(name)
            counts = self._stored_chunk_counts(collection, set(document_ids))
            ids: list[Any] = [point_uuid(d, i) for d, n in counts.items() for i in range(n)]
            if ids:
                collection.apply(edge.UpdateOperation.delete_points(ids))
                self._wrote(collection, 0)
        return len(counts)

    def delete_matching(self, name: str, flt: models.Filter, *, wait: bool) -> int:
        collection = self._collection(name)
        selector = edge_filter(flt)
        documents: set[str] = set()
        with collection.lock:
            if collection.deleted:
                raise CollectionMissing(name)
            offset: Any = None
            while True:
                records, offset = collection.shard.scroll(
                    edge.ScrollRequest(
                        offset=offset,
                        limit=1024,
                        filter=selector,
                        with_payload=[DOC_KEY],
                        with_vector=False,
                    )
                )
                documents.update(str((r.payload or {}).get(DOC_KEY)) for r in records)
                if offset is None:
                    break
            if documents:
                collection.apply(
                    edge.UpdateOperation.delete_points_by_filter(_documents(sorted(documents)))
                )
                self._wrote(collection, 0)
        return len(documents)

    # ---- search ---------------------------------------------------------------------------

    def search(
        self,
        name: str,
        *,
        mode: Mode,
        distance: Distance,
        dense: npt.NDArray[np.float32] | None,
        sparse: SparseVector | None,
        limit: int,
        prefetch_limit: int,
        fusion: Fusion = "rrf",
        flt: models.Filter | None = None,
        with_vectors: bool = False,
        params: SearchParams | None = None,
    ) -> list[Hit]:
        """Top `limit` documents (best chunk each), best first, scores higher = better."""
        collection = self._collection(name)
        selector = edge_filter(flt) if flt is not None else None
        knobs = _search_params(params, self.index.default_hnsw_ef)
        sparse_query = edge.SparseVector(sparse.indices, sparse.values) if sparse else None
        # Several chunks of one document may rank together: fetch extra, keep the best.
        common: dict[str, Any] = {
            "limit": limit * 3,
            "filter": selector,
            "with_payload": True,
            "with_vector": [DENSE] if with_vectors else False,
        }
        if mode == "dense":
            assert dense is not None
            request = edge.QueryRequest(
                query=edge.Query.Nearest(dense.tolist(), using=DENSE), params=knobs, **common
            )
        elif mode == "sparse":
            if sparse_query is None or not sparse_query.indices:
                return []  # no known term: nothing can match lexically
            request = edge.QueryRequest(
                query=edge.Query.Nearest(sparse_query, using=SPARSE), **common
            )
        else:
            assert dense is not None
            prefetches = [
                edge.Prefetch(
                    limit=prefetch_limit,
                    query=edge.Query.Nearest(dense.tolist(), using=DENSE),
                    filter=selector,
                    params=knobs,
                )
            ]
            if sparse_query is not None and sparse_query.indices:
                prefetches.append(
                    edge.Prefetch(
                        limit=prefetch_limit,
                        query=edge.Query.Nearest(sparse_query, using=SPARSE),
                        filter=selector,
                    )
                )
            # The stubs type `query` as a Fusion; its Rrf/Dbsf members are what Edge takes.
            if fusion == "rrf":
                return self._hits(
                    self._rrf(collection, prefetches, common, limit * 3), limit, False, with_vectors
                )
            dbsf: Any = edge.Fusion.Dbsf()  # the stubs type `query` as the Fusion namespace
            request = edge.QueryRequest(query=dbsf, prefetches=prefetches, **common)
        with collection.lock:
            if collection.deleted:
                raise CollectionMissing(name)
            points = collection.shard.query(request)
        flip = mode == "dense" and distance in _LOWER_IS_CLOSER  # Edge returns distances
        # Equal scores come back in varying order: fix it by point id.
        points.sort(key=lambda p: (p.score if flip else -p.score, str(p.id)))
        return self._hits([(p, p.score) for p in points], limit, flip, with_vectors)

    def _rrf(
        self,
        collection: _Collection,
        prefetches: list[edge.Prefetch],
        common: dict[str, Any],
        limit: int,
    ) -> list[tuple[Any, float]]:
        """Reciprocal rank fusion, score = sum 1 / (k + rank), ranks from 0, as Qdrant does.

        Done here, not by Edge: BM25 ties (look-alike notes) come back from Edge in varying
        order, and ranks inside the engine would follow it; here ties rank by point id.
        """
        branches = [
            edge.QueryRequest(
                limit=p.limit,
                query=p.query,
                filter=p.filter,
                params=p.params,
                with_payload=common["with_payload"],
                with_vector=common["with_vector"],
            )
            for p in prefetches
        ]
        with collection.lock:
            if collection.deleted:
                raise CollectionMissing(collection.name)
            results = [collection.shard.query(branch) for branch in branches]
        fused: dict[str, float] = {}
        points: dict[str, Any] = {}
        for ranked in results:
            ranked.sort(key=lambda p: (-p.score, str(p.id)))
            for rank, point in enumerate(ranked):
                key = str(point.id)
                fused[key] = fused.get(key, 0.0) + 1.0 / (RRF_K + rank)
                points.setdefault(key, point)
        order = sorted(fused, key=lambda key: (-fused[key], key))[:limit]
        return [(points[key], fused[key]) for key in order]

    @staticmethod
    def _hits(
        scored: list[tuple[Any, float]], limit: int, flip: bool, with_vectors: bool
    ) -> list[Hit]:
        """Documents (best chunk each) from scored chunk points, best first."""
        hits: list[Hit] = []
        seen: set[str] = set()
        for point, score in scored:
            payload = dict(point.payload or {})
            document_id = str(payload.get(DOC_KEY, point.id))
            if document_id in seen:
                continue
            seen.add(document_id)
            vector = None
            stored = point.vector
            if with_vectors and isinstance(stored, dict) and DENSE in stored:
                vector = np.asarray(stored[DENSE], dtype=np.float32)
            hits.append(
                Hit(
                    document_id=document_id,
                    score=-score if flip else score,
                    payload=payload,
                    vector=vector,
                )
            )
            if len(hits) == limit:
                break
        return hits

    # ---- background index builds ----------------------------------------------------------

    def _due(self, collection: _Collection, now: float, *, quiet: float | None = None) -> bool:
        wait = self.index.quiet_s if quiet is None else quiet
        return (
            not collection.deleted
            and collection.unindexed >= self.index.min_points
            and now - collection.last_write >= wait
        )

    def _index_loop(self) -> None:
        while not self._stop.is_set():
            self._wake.wait(timeout=max(self.index.quiet_s / 2, 0.05))
            self._wake.clear()
            now = time.monotonic()
            with self._lock:
                due = [c for c in self._collections.values() if self._due(c, now)]
            for collection in due:
                if self._stop.is_set():
                    return
                try:
                    self._build(collection)
                except Exception:  # the live shard stays as it was; retried after more writes
                    log.exception("index build of %s failed", collection.name)
                    collection.unindexed = 0

    def _build(self, collection: _Collection) -> None:
        """Index a copy in a child process, replay the writes made meanwhile, swap it in."""
        build = collection.root / _BUILD_DIR
        with collection.lock:
            if collection.deleted:
                return
            collection.shard.flush()
            if build.exists():
                shutil.rmtree(build)
            shutil.copytree(collection.shard_path, build)
            collection.pending = []
            copied, collection.unindexed = collection.unindexed, 0  # writes from now on count
            collection.building = True
        started = time.monotonic()
        try:
            self._child = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "gantry.retrieval.edge_index",
                    str(build),
                    str(self.index.nice),
                ],
                stdout=subprocess.DEVNULL,
            )
            returncode = self._child.wait()
            self._child = None
            with collection.lock:
                if collection.deleted or self._stop.is_set() or returncode != 0:
                    if returncode != 0 and not self._stop.is_set():
                        log.warning("index build of %s exited %s", collection.name, returncode)
                    collection.unindexed += copied
                    return
                built = edge.EdgeShard.load(str(build))
                for operation in collection.pending or ():
                    built.update(operation)
                built.flush()
                built.close()
                collection.shard.close()
                live, old = collection.shard_path, collection.root / _OLD_DIR
                live.rename(old)
                build.rename(live)
                collection.shard = edge.EdgeShard.load(str(live))
                shutil.rmtree(old)
            log.info("index of %s built in %.1f s", collection.name, time.monotonic() - started)
        finally:
            collection.pending = None
            collection.building = False
            if build.exists() and not collection.deleted:
                shutil.rmtree(build, ignore_errors=True)

    def wait_indexed(self, name: str, timeout_s: float) -> bool:
        """Block until no build of `name` is running or due (tests, benchmarks)."""
        deadline = time.monotonic() + timeout_s
        collection = self._collection(name)
        while time.monotonic() < deadline:
            if not collection.building and not self._due(collection, time.monotonic(), quiet=0.0):
                return True
            time.sleep(0.05)
        return False

    # ---- moving data out -----------------------------------------------------------------

    def migrate(self, name: str, target: QdrantStore, *, batch: int = 512) -> int:
        """Copy a collection to a qdrant-client store (a server): settings, then every chunk
        point with its vectors, payload and id. Idempotent; returns the chunks copied."""
        info = self.get(name, count=False)
        # Resuming: the collection exists and upserts by id overwrite what was copied.
        with contextlib.suppress(CollectionExists):
            target.create(
                name,
                encoder_id=info.encoder_id,
                distance=info.distance,
                vector_size=info.vector_size,
                sparse_encoder_id=info.sparse_encoder_id,
                quantization=info.quantization,
            )
        collection = self._collection(name)
        copied = 0
        offset: Any = None
        while True:
            with collection.lock:
                records, offset = collection.shard.scroll(
                    edge.ScrollRequest(
                        offset=offset, limit=batch, with_payload=True, with_vector=True
                    )
                )
            points = []
            for record in records:
                stored: dict[str, Any] = record.vector if isinstance(record.vector, dict) else {}
                vector: dict[str, Any] = {DENSE: list(stored[DENSE])}
                sparse = stored.get(SPARSE)
                if isinstance(sparse, edge.SparseVector):
                    vector[SPARSE] = models.SparseVector(
                        indices=list(sparse.indices), values=list(sparse.values)
                    )
                points.append(
                    models.PointStruct(id=str(record.id), vector=vector, payload=record.payload)
                )
            if points:
                target.client.upsert(name, points=points, wait=True)
                copied += len(points)
            if offset is None:
                return copied

    # ---- snapshots ------------------------------------------------------------------------

    def export_snapshot(self, name: str, target: Path) -> Path:
        """A tar of the collection (settings + flushed shard), taken with writes paused."""
        collection = self._collection(name)
        target.parent.mkdir(parents=True, exist_ok=True)
        with collection.lock:
            if collection.deleted:
                raise CollectionMissing(name)
            collection.shard.flush()
            with tarfile.open(target, "w") as tar:
                tar.add(collection.root / META_FILE, arcname=META_FILE)
                tar.add(collection.shard_path, arcname=SHARD_DIR)
        return target

    def import_snapshot(self, source: Path, name: str) -> CollectionInfo:
        """A new collection `name` from `export_snapshot`'s tar."""
        with self._lock:
            if name in self._collections:
                raise CollectionExists(name)
            root = self.root / name
            staging = self.root / f".import-{uuid.uuid4().hex}"
            staging.mkdir()
            with tarfile.open(source) as tar:
                tar.extractall(staging, filter="data")
            meta = json.loads((staging / META_FILE).read_text())
            staging.rename(root)
            shard = edge.EdgeShard.load(str(root / SHARD_DIR))
            self._collections[name] = _Collection(name, root, meta, shard)
        return self.get(name)
