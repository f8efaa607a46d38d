"""The store interface and its qdrant-client backend (a Qdrant server, or client local mode).

`Store` is what the servicer calls; `QdrantStore` implements it over qdrant-client (a
server by URL, or the client's pure-Python local mode), `gantry.retrieval.edge_store`
over the Qdrant engine embedded in-process (Qdrant Edge, the embedded default).

A caller's document becomes one point per chunk. Chunk points carry the reserved payload
keys `_document_id`, `_chunk_index` and `_chunk_count`; re-upserting a document first
deletes every chunk stored under its id, so a shorter new version leaves no stale tail.
Searches return documents: each document's best chunk, ranked.

Collection settings that Qdrant does not model (encoder ids, creation time) live in the
collection's own metadata, so they persist wherever the points persist.
"""

from __future__ import annotations

import functools
import logging
import sqlite3
import threading
import uuid
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Concatenate, Literal, ParamSpec, Protocol, TypeVar

import numpy as np
import numpy.typing as npt
from qdrant_client import QdrantClient, models

from gantry.retrieval.sparse import SparseVector

log = logging.getLogger("gantry.retrieval.store")

DENSE = "dense"
SPARSE = "sparse"
DOC_KEY = "_document_id"
CHUNK_KEY = "_chunk_index"
CHUNKS_KEY = "_chunk_count"
TEXT_KEY = "text"
_ID_NAMESPACE = uuid.UUID("6f1c2f0e-6a55-4d0b-9c8e-2f1a5c3b7d90")

Distance = Literal["cosine", "dot", "euclid", "manhattan"]
Mode = Literal["dense", "sparse", "hybrid"]
Fusion = Literal["rrf", "dbsf"]
Quantization = Literal["", "int8"]  # "" = full-precision vectors only
RRF_K = 2  # Qdrant's reciprocal-rank-fusion constant (the server's default)
_QDRANT_DISTANCE: dict[Distance, models.Distance] = {
    "cosine": models.Distance.COSINE,
    "dot": models.Distance.DOT,
    "euclid": models.Distance.EUCLID,
    "manhattan": models.Distance.MANHATTAN,
}
# Qdrant reports distances for these (lower is closer); the API promises higher = better.
_LOWER_IS_CLOSER = frozenset({"euclid", "manhattan"})


class CollectionMissing(KeyError):
    """No collection of that name."""


class CollectionExists(ValueError):
    """A collection of that name already exists."""


class TooManyCollections(RuntimeError):
    """Creating another collection would pass the configured limit."""


@dataclass(frozen=True)
class CollectionInfo:
    name: str
    encoder_id: str
    distance: Distance
    vector_size: int
    sparse_encoder_id: str  # "" = no sparse vectors
    points_count: int
    create_time: datetime
    quantization: Quantization = ""
    chunks_count: int = -1  # Qdrant points (document chunks); -1 = not counted
    indexed_vectors_count: int = -1  # Qdrant's count of vectors in an index (HNSW, sparse)
    indexing: bool = False  # an index build is running or due

    @property
    def sparse_enabled(self) -> bool:
        return bool(self.sparse_encoder_id)


@dataclass(frozen=True)
class SearchParams:
    """Per-search engine knobs (Qdrant's `SearchParams`); None = the engine's default."""

    hnsw_ef: int | None = None
    exact: bool = False
    quantization_ignore: bool = False
    rescore: bool | None = None
    oversampling: float | None = None


@dataclass
class Chunk:
    """One stored point: a document's chunk with its vectors and payload."""

    document_id: str
    index: int
    count: int
    dense: npt.NDArray[np.float32]
    sparse: SparseVector | None
    payload: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Hit:
    document_id: str
    score: float
    payload: dict[str, Any]
    vector: npt.NDArray[np.float32] | None


class Store(Protocol):
    """What the servicer needs from a storage backend. Blocking: call from the executor."""

    def close(self) -> None: ...

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
    ) -> CollectionInfo: ...

    def get(self, name: str, *, count: bool = True) -> CollectionInfo: ...

    def count_collections(self) -> int: ...

    def list_collections(self) -> list[CollectionInfo]: ...

    def delete(self, name: str) -> None: ...

    def upsert(self, name: str, chunks: Sequence[Chunk], *, wait: bool = True) -> None: ...

    def delete_documents(self, name: str, document_ids: Sequence[str], *, wait: bool) -> int: ...

    def delete_matching(self, name: str, flt: models.Filter, *, wait: bool) -> int: ...

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
    ) -> list[Hit]: ...


def _search_params(params: SearchParams | None) -> models.SearchParams | None:
    if params is None:
        return None
    quantization = None
    if params.quantization_ignore or params.rescore is not None or params.oversampling:
        quantization = models.QuantizationSearchParams(
            ignore=params.quantization_ignore,
            rescore=params.rescore,
            oversampling=params.oversampling,
        )
    return models.SearchParams(
        hnsw_ef=params.hnsw_ef, exact=params.exact, quantization=quantization
    )


def point_uuid(document_id: str, chunk: int) -> str:
    """Deterministic Qdrant id for a caller's document id and chunk number."""
    return str(uuid.uuid5(_ID_NAMESPACE, f"{document_id}\x00{chunk}"))


def _documents(document_ids: Sequence[str]) -> models.FieldCondition:
    return models.FieldCondition(key=DOC_KEY, match=models.MatchAny(any=list(document_ids)))


_FIRST_CHUNK = models.FieldCondition(key=CHUNK_KEY, match=models.MatchValue(value=0))


def _and(*parts: models.Filter | models.FieldCondition | None) -> models.Filter | None:
    kept = [p for p in parts if p is not None]
    if not kept:
        return None
    return models.Filter(must=kept)  # type: ignore[arg-type]


class _NoLock:
    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: object) -> None:
        return None


P = ParamSpec("P")
R = TypeVar("R")


def _serialised(
    method: Callable[Concatenate[QdrantStore, P], R],
) -> Callable[Concatenate[QdrantStore, P], R]:
    """The embedded store is not thread-safe: one executor thread in it at a time."""

    def run(self: QdrantStore, /, *args: P.args, **kwargs: P.kwargs) -> R:
        with self._lock:
            return method(self, *args, **kwargs)

    functools.update_wrapper(run, method)
    return run


class QdrantStore:
    """Blocking: call from the service's executor, never the event loop."""

    def __init__(self, client: QdrantClient, *, embedded: bool, fast_writes: bool = True) -> None:
        self.client = client
        self.embedded = embedded
        self.fast_writes = fast_writes
        # A server handles concurrency itself; the embedded store needs callers serialised.
        self._lock: threading.RLock | _NoLock = threading.RLock() if embedded else _NoLock()
        if embedded:
            for collection in client.get_collections().collections:
                self._tune_embedded(collection.name)

    def _tune_embedded(self, name: str) -> None:
        """Let the embedded store's SQLite file commit without an fsync per point.

        qdrant-client's local mode commits every point in its own transaction; with the
        default rollback journal each commit waits for the disk (~70 points/s here). WAL
        with synchronous=NORMAL keeps every committed point across a killed process (the
        log is in the OS page cache) and only risks the last commits on power loss, for
        ~70x the write rate. This reaches into qdrant-client's private objects, so any
        mismatch just leaves the default (slow, safe) settings.
        """
        if not self.fast_writes:
            return
        collections = getattr(getattr(self.client, "_client", None), "collections", None)
        collection = collections.get(name) if isinstance(collections, dict) else None
        connection = getattr(getattr(collection, "storage", None), "storage", None)
        if not isinstance(connection, sqlite3.Connection):
            log.debug("embedded collection %s: no SQLite connection to tune", name)
            return
        connection.execute("PRAGMA journal_mode=WAL")
        connection.execute("PRAGMA synchronous=NORMAL")

    @classmethod
    def open(
        cls,
        *,
        url: str = "",
        api_key: str | None = None,
        path: str = ":memory:",
        prefer_grpc: bool = True,
        timeout_s: int = 30,
        fast_writes: bool = True,
    ) -> QdrantStore:
        """A Qdrant server when `url` is set, else the embedded store at `path`."""
        if url:
            client = QdrantClient(
                url=url, api_key=api_key, prefer_grpc=prefer_grpc, timeout=timeout_s
            )
            return cls(client, embedded=False)
        if path == ":memory:":
            return cls(QdrantClient(location=":memory:"), embedded=True)
        return cls(QdrantClient(path=path), embedded=True, fast_writes=fast_writes)

    @_serialised
    def close(self) -> None:
        self.client.close()

    # ---- collections ----------------------------------------------------------------------

    @_serialised
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
        if self.client.collection_exists(name):
            raise CollectionExists(name)
        if max_collections is not None and self.count_collections() >= max_collections:
            raise TooManyCollections(name)
        created = datetime.now(UTC)
        self.client.create_collection(
            name,
            vectors_config={
                DENSE: models.VectorParams(size=vector_size, distance=_QDRANT_DISTANCE[distance])
            },
            # IDF from live collection statistics turns the stored tf weights into BM25.
            sparse_vectors_config=(
                {SPARSE: models.SparseVectorParams(modifier=models.Modifier.IDF)}
                if sparse_encoder_id
                else None
            ),
            quantization_config=(
                models.ScalarQuantization(
                    scalar=models.ScalarQuantizationConfig(
                        type=models.ScalarType.INT8, quantile=0.99, always_ram=True
                    )
                )
                if quantization == "int8"
                else None
            ),
            metadata={
                "gantry_encoder_id": encoder_id,
                "gantry_distance": distance,
                "gantry_sparse_encoder_id": sparse_encoder_id,
                "gantry_quantization": quantization,
                "gantry_create_time": created.isoformat(),
            },
        )
        if self.embedded:
            self._tune_embedded(name)
        else:  # the embedded store scans; payload indexes only help a server
            for key, schema in (
                (DOC_KEY, models.PayloadSchemaType.KEYWORD),
                (CHUNK_KEY, models.PayloadSchemaType.INTEGER),
            ):
                self.client.create_payload_index(name, key, schema, wait=True)
        return self.get(name)

    @_serialised
    def get(self, name: str, *, count: bool = True) -> CollectionInfo:
        """The collection; `count=False` skips counting documents (a scan when embedded)."""
        if not self.client.collection_exists(name):
            raise CollectionMissing(name)
        info = self.client.get_collection(name)
        meta = info.config.metadata or {}
        vectors = info.config.params.vectors
        params = vectors.get(DENSE) if isinstance(vectors, dict) else None
        if params is None or "gantry_encoder_id" not in meta:
            raise CollectionMissing(name)  # not one of ours: someone else's collection
        return CollectionInfo(
            name=name,
            encoder_id=str(meta["gantry_encoder_id"]),
            distance=meta.get("gantry_distance", "cosine"),
            vector_size=int(params.size),
            sparse_encoder_id=str(meta.get("gantry_sparse_encoder_id", "")),
            points_count=self.count_documents(name) if count else -1,
            create_time=datetime.fromisoformat(str(meta["gantry_create_time"])),
            quantization="int8" if meta.get("gantry_quantization") == "int8" else "",
            chunks_count=int(info.points_count or 0) if count else -1,
            indexed_vectors_count=int(info.indexed_vectors_count or 0) if count else -1,
            indexing=info.status != models.CollectionStatus.GREEN,
        )

    @_serialised
    def count_collections(self) -> int:
        """Every collection on the Qdrant this store talks to (a cheap name listing)."""
        return len(self.client.get_collections().collections)

    @_serialised
    def list_collections(self) -> list[CollectionInfo]:
        names = sorted(c.name for c in self.client.get_collections().collections)
        out = []
        for name in names:
            try:
                out.append(self.get(name))
            except CollectionMissing:
                continue  # deleted meanwhile, or not a Gantry collection
        return out

    @_serialised
    def delete(self, name: str) -> None:
        if not self.client.collection_exists(name):
            raise CollectionMissing(name)
        self.client.delete_collection(name)

    @_serialised
    def count_documents(self, name: str, flt: models.Filter | None = None) -> int:
        result = self.client.count(name, count_filter=_and(flt, _FIRST_CHUNK), exact=True)
        return int(result.count)

    # ---- points ---------------------------------------------------------------------------

    @_serialised
    def upsert(self, name: str, chunks: Sequence[Chunk], *, wait: bool = True) -> None:
        """Replace the documents these chunks belong to (all their old chunks go).

        Chunk ids are deterministic, so the new chunks overwrite old ones in place; only
        the old tail (when the new version has fewer chunks) is deleted, found through
        each document's first chunk: lookups by id, no filter scan.
        """
        if not chunks:
            return
        new_counts = {c.document_id: c.count for c in chunks}
        stale = [
            point_uuid(document_id, i)
            for document_id, old_count in self._stored_chunk_counts(name, new_counts).items()
            for i in range(new_counts[document_id], old_count)
        ]
        if stale:
            self.client.delete(name, points_selector=models.PointIdsList(points=stale), wait=True)
        points = []
        for chunk in chunks:
            vector: dict[str, Any] = {DENSE: chunk.dense.tolist()}
            if chunk.sparse is not None and chunk.sparse.indices:
                vector[SPARSE] = models.SparseVector(
                    indices=chunk.sparse.indices, values=chunk.sparse.values
                )
            payload = {
                **chunk.payload,
                DOC_KEY: chunk.document_id,
                CHUNK_KEY: chunk.index,
                CHUNKS_KEY: chunk.count,
            }
            points.append(
                models.PointStruct(
                    id=point_uuid(chunk.document_id, chunk.index), vector=vector, payload=payload
                )
            )
        self.client.upsert(name, points=points, wait=wait)

    def _stored_chunk_counts(self, name: str, document_ids: Iterable[str]) -> dict[str, int]:
        """How many chunks each of these documents has stored (absent ones are left out)."""
        by_first = {point_uuid(d, 0): d for d in document_ids}
        records = self.client.retrieve(
            name, ids=list(by_first), with_payload=[CHUNKS_KEY], with_vectors=False
        )
        return {by_first[str(r.id)]: int((r.payload or {}).get(CHUNKS_KEY, 1)) for r in records}

    @_serialised
    def delete_documents(self, name: str, document_ids: Sequence[str], *, wait: bool) -> int:
        """Delete these documents (every chunk); return how many existed."""
        counts = self._stored_chunk_counts(name, set(document_ids))
        ids = [point_uuid(d, i) for d, n in counts.items() for i in range(n)]
        if ids:
            self.client.delete(name, points_selector=models.PointIdsList(points=ids), wait=wait)
        return len(counts)

    @_serialised
    def delete_matching(self, name: str, flt: models.Filter, *, wait: bool) -> int:
        """Delete every document with a chunk matching `flt`; return how many documents."""
        documents: set[str] = set()
        offset: Any = None
        while True:
            records, offset = self.client.scroll(
                name,
                scroll_filter=flt,
                limit=1024,
                offset=offset,
                with_payload=[DOC_KEY],
                with_vectors=False,
            )
            documents.update(str((r.payload or {}).get(DOC_KEY)) for r in records)
            if offset is None:
                break
        if documents:
            self.client.delete(
                name,
                points_selector=models.FilterSelector(
                    filter=models.Filter(must=[_documents(sorted(documents))])
                ),
                wait=wait,
            )
        return len(documents)

    # ---- search ---------------------------------------------------------------------------

    @_serialised
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
        """Top `limit` documents (best chunk each), best first, scores higher = better.

        Payloads always come back (the caller needs `_document_id`, the re-ranker the text).
        """
        # Local mode searches exhaustively and warns about any knob; a server uses them.
        knobs = None if self.embedded else _search_params(params)
        # Several chunks of one document may rank together: fetch extra, keep the best.
        fetch = limit * 3
        sparse_query = (
            models.SparseVector(indices=sparse.indices, values=sparse.values)
            if sparse is not None
            else None
        )
        kwargs: dict[str, Any] = {
            "limit": fetch,
            "query_filter": flt,
            "with_payload": True,
            "with_vectors": [DENSE] if with_vectors else False,
            "search_params": knobs,
        }
        if mode == "dense":
            assert dense is not None
            response = self.client.query_points(name, query=dense.tolist(), using=DENSE, **kwargs)
        elif mode == "sparse":
            assert sparse_query is not None
            if not sparse_query.indices:
                return []  # no known term: nothing can match lexically
            response = self.client.query_points(name, query=sparse_query, using=SPARSE, **kwargs)
        else:
            assert dense is not None and sparse_query is not None
            prefetch = [
                models.Prefetch(
                    query=dense.tolist(),
                    using=DENSE,
                    limit=prefetch_limit,
                    filter=flt,
                    params=knobs,
                )
            ]
            if sparse_query.indices:
                prefetch.append(
                    models.Prefetch(
                        query=sparse_query, using=SPARSE, limit=prefetch_limit, filter=flt
                    )
                )
            method = models.Fusion.RRF if fusion == "rrf" else models.Fusion.DBSF
            kwargs["search_params"] = None  # the knobs apply to the dense branch
            response = self.client.query_points(
                name, prefetch=prefetch, query=models.FusionQuery(fusion=method), **kwargs
            )
        flip = mode == "dense" and distance in _LOWER_IS_CLOSER
        hits: list[Hit] = []
        seen: set[str] = set()
        for point in response.points:
            payload = dict(point.payload or {})
            document_id = str(payload.get(DOC_KEY, point.id))
            if document_id in seen:
                continue
            seen.add(document_id)
            vector = None
            if with_vectors and isinstance(point.vector, dict) and DENSE in point.vector:
                vector = np.asarray(point.vector[DENSE], dtype=np.float32)
            hits.append(
                Hit(
                    document_id=document_id,
                    score=-point.score if flip else point.score,
                    payload=payload,
                    vector=vector,
                )
            )
            if len(hits) == limit:
                break
        return hits
