"""The RetrievalService RPCs: validation, then blocking work on the service's executor."""

from __future__ import annotations

import asyncio
import math
import os
import re
import threading
import time
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, fields
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
from google.longrunning import operations_proto_pb2 as operations_pb2
from google.protobuf import duration_pb2, timestamp_pb2
from qdrant_client.models import Filter

from gantry.core.codecs import tensor_from_numpy
from gantry.core.errors import (
    AlreadyExists,
    InvalidArgument,
    NotFound,
    ResourceExhausted,
    echo,
)
from gantry.core.limits import check_bytes, check_count, check_id, check_total_bytes
from gantry.core.operations import OperationHandle, OperationStore
from gantry.core.paging import Page
from gantry.core.server import Runtime
from gantry.core.storage import StorageRoot, safe_name
from gantry.proto.retrieval.v1 import retrieval_pb2, retrieval_pb2_grpc
from gantry.retrieval.chunking import chunk_text
from gantry.retrieval.convert import (
    DISTANCE_FROM_PROTO,
    DISTANCE_TO_PROTO,
    QUANTIZATION_FROM_PROTO,
    collection_to_proto,
    dense_vector,
    payload_from_struct,
    payload_to_struct,
    sparse_vector,
)
from gantry.retrieval.embedders import Embedder, InputKind
from gantry.retrieval.encoder_eval import (
    DatasetError,
    EvalDocument,
    EvalSet,
    dataset_files,
    evaluate,
    load_eval_set,
)
from gantry.retrieval.filters import RESERVED_PREFIX, is_empty, to_qdrant_filter
from gantry.retrieval.settings import RetrievalSettings
from gantry.retrieval.sparse import SPARSE_ENCODER_ID, SparseVector
from gantry.retrieval.store import (
    TEXT_KEY,
    Chunk,
    CollectionExists,
    CollectionInfo,
    CollectionMissing,
    Hit,
    SearchParams,
    TooManyCollections,
)

if TYPE_CHECKING:
    from gantry.retrieval.service import Backends

COLLECTION_NAME = re.compile(r"^[a-z0-9_-]{1,64}$")
ENCODER_ID_BYTES = 64  # EncoderSpec.id is at most 64 characters of [A-Za-z0-9._-]
MAX_CUTOFFS = 16
MAX_EVAL_BATCH = 1024
MAX_OVERSAMPLING = 16.0
DEFAULT_PAGE_SIZE = 100  # ListCollections; ListEncoders returns every encoder by default
RERANK_HEADER = "x-gantry-rerank"
_MODES: dict[int, Literal["dense", "sparse", "hybrid"]] = {
    retrieval_pb2.SEARCH_MODE_UNSPECIFIED: "dense",
    retrieval_pb2.SEARCH_MODE_DENSE: "dense",
    retrieval_pb2.SEARCH_MODE_SPARSE: "sparse",
    retrieval_pb2.SEARCH_MODE_HYBRID: "hybrid",
}


@dataclass(frozen=True)
class RetrievalLimits:
    """The settings the RPCs read: bounds checked on arrival and per-request defaults."""

    default_encoder_id: str
    batch_size: int
    chunk_words: int
    chunk_overlap_words: int
    rerank_candidates: int
    max_batch_texts: int
    max_text_bytes: int
    max_request_text_bytes: int
    max_query_bytes: int
    max_id_bytes: int
    max_payload_bytes: int
    max_sparse_terms: int
    max_top_k: int
    max_prefetch_limit: int
    search_hnsw_ef: int
    max_hnsw_ef: int
    max_filter_conditions: int
    max_collections: int
    max_page_size: int
    max_dataset_bytes: int
    max_eval_documents: int
    max_eval_queries: int
    max_running_evaluations: int

    @classmethod
    def from_settings(cls, settings: RetrievalSettings) -> RetrievalLimits:
        return cls(**{f.name: getattr(settings, f.name) for f in fields(cls)})


class EvaluationCancelled(Exception):
    """Raised in the evaluation thread at its next progress report after a cancel."""


def _duration(seconds: float) -> duration_pb2.Duration:
    out = duration_pb2.Duration()
    out.FromNanoseconds(int(seconds * 1e9))
    return out


def _not_found(name: str) -> NotFound:
    return NotFound(
        f"collection {echo(name)} not found", resource_type="collection", resource_name=name
    )


def _check_collection_name(name: str, field: str) -> None:
    if not name:
        raise InvalidArgument.for_field(field, "a collection name is required")
    if not COLLECTION_NAME.match(name):
        raise InvalidArgument.for_field(field, f"{echo(name)} must match [a-z0-9_-]{{1,64}}")


def _rerank_requested(context: Any) -> bool | None:
    """The per-call override header: 'true'/'false', or None to follow the server setting."""
    for key, value in context.invocation_metadata() or ():
        if key == RERANK_HEADER:
            return str(value).lower() in ("1", "true", "on", "yes")
    return None


class RetrievalServicer(retrieval_pb2_grpc.RetrievalServiceServicer):
    """`backends` gives what `start()` loaded (the core's call gate refuses calls before);
    `datasets` gives the root `dataset_uri` resolves in (it creates the folder, so it is
    called on first use)."""

    def __init__(
        self,
        runtime: Runtime,
        backends: Callable[[], Backends],
        operations: OperationStore,
        limits: RetrievalLimits,
        datasets: Callable[[], StorageRoot],
    ) -> None:
        self.runtime = runtime
        self._backends = backends
        self.operations = operations
        self.limits = limits
        self._datasets_root = datasets
        self._creating = asyncio.Lock()  # count + create as one step (max_collections)
        self._evaluations: list[str] = []  # EvaluateEncoder operations started
        self._loading_evaluations = 0  # admitted, still reading their set
        self._datasets: StorageRoot | None = None

    # ---- shared helpers -------------------------------------------------------------------

    @property
    def backends(self) -> Backends:
        return self._backends()

    def _embedder(self, encoder_id: str, field: str = "encoder_id") -> Embedder:
        """A served encoder by id: ids name encoders the operator configured, never paths."""
        wanted = encoder_id or self.limits.default_encoder_id
        embedder = self.backends.embedders.get(wanted)
        if embedder is None:
            check_id(wanted, field=field, limit=ENCODER_ID_BYTES)
            raise NotFound(
                f"{field}: unknown encoder {echo(wanted)}; served: "
                f"{', '.join(sorted(self.backends.embedders))}",
                resource_type="encoder",
                resource_name=wanted,
            )
        return embedder

    async def _collection(
        self, name: str, field: str = "collection", *, count: bool = False
    ) -> CollectionInfo:
        _check_collection_name(name, field)
        try:
            return await self.runtime.run_blocking(
                lambda: self.backends.store.get(name, count=count)
            )
        except CollectionMissing as exc:
            raise _not_found(name) from exc

    async def _encode(
        self, embedder: Embedder, texts: Sequence[str], kind: InputKind, normalize: bool = True
    ) -> np.ndarray:
        return await self.runtime.run_blocking(
            lambda: embedder.encode(
                texts, input_type=kind, normalize=normalize, batch_size=self.limits.batch_size
            )
        )

    # ---- collections ----------------------------------------------------------------------

    async def CreateCollection(
        self, request: retrieval_pb2.CreateCollectionRequest, context: Any
    ) -> retrieval_pb2.CreateCollectionResponse:
        _check_collection_name(request.name, "name")
        embedder = self._embedder(request.encoder_id)
        if request.distance and request.distance not in DISTANCE_FROM_PROTO:
            raise InvalidArgument.for_field("distance", "unknown Distance value")
        distance = DISTANCE_FROM_PROTO.get(request.distance, embedder.spec.distance)
        if request.quantization not in QUANTIZATION_FROM_PROTO:
            raise InvalidArgument.for_field("quantization", "unknown Quantization value")
        quantization = QUANTIZATION_FROM_PROTO[request.quantization]
        sparse_id = ""
        if request.sparse_encoder_id and not request.sparse_enabled:
            raise InvalidArgument.for_field(
                "sparse_encoder_id", "set sparse_enabled=true to use a sparse encoder"
            )
        if request.sparse_enabled:
            sparse_id = request.sparse_encoder_id or SPARSE_ENCODER_ID
            if sparse_id != SPARSE_ENCODER_ID:
                raise NotFound(
                    f"sparse_encoder_id: unknown sparse encoder {sparse_id!r}; served: "
                    f"{SPARSE_ENCODER_ID}",
                    resource_type="encoder",
                    resource_name=sparse_id,
                )
        limit = self.limits.max_collections
        try:
            async with self._creating:
                info = await self.runtime.run_blocking(
                    lambda: self.backends.store.create(
                        request.name,
                        encoder_id=embedder.spec.id,
                        distance=distance,
                        vector_size=embedder.dimension,
                        sparse_encoder_id=sparse_id,
                        quantization=quantization,
                        max_collections=limit,
                    )
                )
        except CollectionExists as exc:
            raise AlreadyExists(
                f"collection {request.name!r} already exists",
                resource_type="collection",
                resource_name=request.name,
            ) from exc
        except TooManyCollections as exc:
            raise ResourceExhausted(
                f"this server holds its limit of {limit} collections (max_collections); "
                "delete one (DeleteCollection) before creating another",
                reason="TOO_MANY_COLLECTIONS",
                metadata={"limit": str(limit)},
            ) from exc
        return retrieval_pb2.CreateCollectionResponse(collection=collection_to_proto(info))

    async def GetCollection(
        self, request: retrieval_pb2.GetCollectionRequest, context: Any
    ) -> retrieval_pb2.GetCollectionResponse:
        info = await self._collection(request.name, "name", count=True)
        return retrieval_pb2.GetCollectionResponse(collection=collection_to_proto(info))

    async def ListCollections(
        self, request: retrieval_pb2.ListCollectionsRequest, context: Any
    ) -> retrieval_pb2.ListCollectionsResponse:
        page = Page.from_request(
            request,
            default_size=DEFAULT_PAGE_SIZE,
            max_size=self.limits.max_page_size,
            scope="collections",
        )
        every = await self.runtime.run_blocking(self.backends.store.list_collections)
        return retrieval_pb2.ListCollectionsResponse(
            collections=[collection_to_proto(c) for c in every[page.start : page.stop]],
            next_page_token=page.next_token(len(every)),
        )

    async def DeleteCollection(
        self, request: retrieval_pb2.DeleteCollectionRequest, context: Any
    ) -> retrieval_pb2.DeleteCollectionResponse:
        await self._collection(request.name, "name")
        try:
            await self.runtime.run_blocking(self.backends.store.delete, request.name)
        except CollectionMissing as exc:
            raise _not_found(request.name) from exc
        return retrieval_pb2.DeleteCollectionResponse()

    # ---- points ---------------------------------------------------------------------------

    def _check_point(
        self, point: retrieval_pb2.Point, index: int, info: CollectionInfo
    ) -> tuple[np.ndarray | None, SparseVector | None, dict[str, Any]]:
        field = f"points[{index}]"
        dense = None
        if point.HasField("vector"):
            dense = dense_vector(point.vector, info.vector_size, f"{field}.vector")
        elif not point.text.strip():
            raise InvalidArgument.for_field(
                f"{field}.text", "set text to embed or a precomputed vector"
            )
        sparse = None
        if point.HasField("sparse_vector"):
            if not info.sparse_enabled:
                raise InvalidArgument.for_field(
                    f"{field}.sparse_vector",
                    f"collection {info.name!r} was created without sparse vectors",
                )
            sparse = sparse_vector(point.sparse_vector, f"{field}.sparse_vector")
        payload = payload_from_struct(point.payload, f"{field}.payload")
        reserved = sorted(k for k in payload if k.startswith(RESERVED_PREFIX) or k == TEXT_KEY)
        if reserved:
            raise InvalidArgument.for_field(
                f"{field}.payload",
                f"keys {[k[:64] for k in reserved[:8]]} are reserved "
                "('text' holds the point's text; "
                f"'{RESERVED_PREFIX}'-prefixed keys hold chunk bookkeeping)",
            )
        return dense, sparse, payload

    def _build_chunks(
        self, points: Sequence[retrieval_pb2.Point], info: CollectionInfo, embedder: Embedder
    ) -> list[Chunk]:
        """Blocking: chunk, embed and BM25-encode every point of a batch."""
        chunks: list[Chunk] = []
        to_embed: list[Chunk] = []
        texts: list[str] = []
        for index, point in enumerate(points):
            dense, sparse, payload = self._check_point(point, index, info)
            # Precomputed vectors describe the whole text: only plain text is chunked.
            pieces = (
                [point.text]
                if dense is not None or sparse is not None
                else chunk_text(
                    point.text,
                    max_words=self.limits.chunk_words,
                    overlap_words=self.limits.chunk_overlap_words,
                )
            )
            for n, piece in enumerate(pieces):
                chunk_payload = {**payload, TEXT_KEY: piece} if piece else dict(payload)
                chunk = Chunk(
                    document_id=point.id,
                    index=n,
                    count=len(pieces),
                    dense=dense if dense is not None else np.zeros(0, np.float32),
                    sparse=sparse,
                    payload=chunk_payload,
                )
                if dense is None:
                    to_embed.append(chunk)
                    texts.append(piece)
                if info.sparse_enabled and sparse is None and piece.strip():
                    chunk.sparse = self.backends.sparse.encode_documents([piece])[0]
                chunks.append(chunk)
        if texts:
            vectors = embedder.encode(
                texts, input_type="document", batch_size=self.limits.batch_size
            )
            for chunk, vector in zip(to_embed, vectors, strict=True):
                chunk.dense = vector
        return chunks

    async def Upsert(
        self, request: retrieval_pb2.UpsertRequest, context: Any
    ) -> retrieval_pb2.UpsertResponse:
        info = await self._collection(request.collection)
        written = await self._write_batch(info, request.points, wait=request.wait)
        return retrieval_pb2.UpsertResponse(upserted_count=written)

    async def UpsertStream(
        self, request_iterator: AsyncIterator[retrieval_pb2.UpsertStreamRequest], context: Any
    ) -> retrieval_pb2.UpsertStreamResponse:
        info: CollectionInfo | None = None
        reply = retrieval_pb2.UpsertStreamResponse()
        async for message in request_iterator:
            if info is None:
                info = await self._collection(message.collection)
            elif message.collection and message.collection != info.name:
                raise InvalidArgument.for_field(
                    "collection",
                    f"message {reply.batch_count} names {message.collection!r}; "
                    f"the stream writes to {info.name!r}",
                )
            try:
                reply.upserted_count += await self._write_batch(
                    info, message.points, wait=message.wait
                )
            except InvalidArgument as exc:
                # Name the batch: the earlier ones are written and need not be resent.
                raise InvalidArgument(
                    f"batch {reply.batch_count} (after {reply.upserted_count} points "
                    f"written): {exc.message}",
                    violations=exc.violations,
                ) from exc
            reply.batch_count += 1
        if info is None:
            raise InvalidArgument.for_field("collection", "the stream sent no message")
        return reply

    async def _write_batch(
        self, info: CollectionInfo, points: Sequence[retrieval_pb2.Point], *, wait: bool
    ) -> int:
        """Validate, chunk, embed and write one batch of points; returns how many."""
        self._check_points(points)
        embedder = self._embedder(info.encoder_id, "collection.encoder_id")

        def write() -> None:
            chunks = self._build_chunks(points, info, embedder)
            self.backends.store.upsert(info.name, chunks, wait=wait)

        try:
            await self.runtime.run_blocking(write)
        except CollectionMissing as exc:
            raise _not_found(info.name) from exc
        return len(points)

    def _check_points(self, points: Sequence[retrieval_pb2.Point]) -> None:
        """Sizes and counts of a batch, checked on arrival before any conversion or embedding."""
        limits = self.limits
        if not points:
            raise InvalidArgument.for_field("points", "at least one point is required")
        if len(points) > limits.max_batch_texts:
            raise InvalidArgument.for_field(
                "points",
                f"has {len(points)} points; send at most "
                f"{limits.max_batch_texts} per message (see upsert_batched)",
            )
        check_total_bytes(
            (p.text for p in points), field="points", limit=limits.max_request_text_bytes
        )
        seen: dict[str, int] = {}
        for index, point in enumerate(points):
            field = f"points[{index}]"
            if not point.id:
                raise InvalidArgument.for_field(f"{field}.id", "a point id is required")
            check_id(point.id, field=f"{field}.id", limit=limits.max_id_bytes)
            if point.id in seen:
                raise InvalidArgument.for_field(
                    f"{field}.id", f"repeats points[{seen[point.id]}].id {echo(point.id)}"
                )
            seen[point.id] = index
            check_bytes(point.text, field=f"{field}.text", limit=limits.max_text_bytes)
            size = point.payload.ByteSize()
            if size > limits.max_payload_bytes:
                raise InvalidArgument.for_field(
                    f"{field}.payload",
                    f"is {size} bytes encoded; the limit is {limits.max_payload_bytes}",
                )
            check_count(
                len(point.sparse_vector.indices),
                field=f"{field}.sparse_vector.indices",
                limit=limits.max_sparse_terms,
            )

    async def Delete(
        self, request: retrieval_pb2.DeleteRequest, context: Any
    ) -> retrieval_pb2.DeleteResponse:
        info = await self._collection(request.collection)
        which = request.WhichOneof("selector")
        store = self.backends.store
        if which == "ids":
            if not request.ids.ids or not all(request.ids.ids):
                raise InvalidArgument.for_field("ids.ids", "list at least one non-empty id")
            check_count(request.ids.ids, field="ids.ids", limit=self.limits.max_batch_texts)
            for index, point_id in enumerate(request.ids.ids):
                check_id(point_id, field=f"ids.ids[{index}]", limit=self.limits.max_id_bytes)
            ids = list(request.ids.ids)
            count = await self.runtime.run_blocking(
                lambda: store.delete_documents(info.name, ids, wait=request.wait)
            )
        elif which == "filter":
            if is_empty(request.filter):
                raise InvalidArgument.for_field(
                    "filter", "is empty; to remove everything use DeleteCollection"
                )
            flt = self._filter(request.filter)
            count = await self.runtime.run_blocking(
                lambda: store.delete_matching(info.name, flt, wait=request.wait)
            )
        else:
            raise InvalidArgument.for_field("ids", "set ids or filter to choose what to delete")
        return retrieval_pb2.DeleteResponse(deleted_count=count)

    # ---- search ---------------------------------------------------------------------------

    def _search_args(
        self, request: retrieval_pb2.SearchRequest, info: CollectionInfo
    ) -> tuple[Literal["dense", "sparse", "hybrid"], int, int]:
        if request.mode not in _MODES:
            raise InvalidArgument.for_field("mode", "unknown SearchMode value")
        mode = _MODES[request.mode]
        if mode != "dense" and not info.sparse_enabled:
            raise InvalidArgument.for_field(
                "mode",
                f"{retrieval_pb2.SearchMode.Name(request.mode)} needs sparse vectors; "
                f"collection {info.name!r} was created with sparse_enabled=false",
            )
        max_top_k = self.limits.max_top_k
        if not 0 <= request.top_k <= max_top_k:
            raise InvalidArgument.for_field("top_k", f"must be in [0, {max_top_k}] (0 = 10)")
        top_k = request.top_k or 10
        max_prefetch = self.limits.max_prefetch_limit
        if not 0 <= request.prefetch_limit <= max_prefetch:
            raise InvalidArgument.for_field(
                "prefetch_limit", f"must be in [0, {max_prefetch}] (0 = 4 * top_k)"
            )
        prefetch = request.prefetch_limit or 4 * top_k
        if request.fusion not in (
            retrieval_pb2.FUSION_UNSPECIFIED,
            retrieval_pb2.FUSION_RRF,
            retrieval_pb2.FUSION_DBSF,
        ):
            raise InvalidArgument.for_field("fusion", "unknown Fusion value")
        if request.HasField("score_threshold") and not math.isfinite(request.score_threshold):
            raise InvalidArgument.for_field("score_threshold", "must be finite")
        return mode, top_k, prefetch

    def _search_params(self, request: retrieval_pb2.SearchRequest) -> SearchParams:
        """The engine knobs of a search, checked; unset values take the server defaults."""
        params = request.params
        max_ef = self.limits.max_hnsw_ef
        if params.HasField("hnsw_ef") and not 1 <= params.hnsw_ef <= max_ef:
            raise InvalidArgument.for_field("params.hnsw_ef", f"must be in [1, {max_ef}]")
        quantization = params.quantization
        oversampling = None
        if quantization.HasField("oversampling"):
            oversampling = quantization.oversampling
            if not (math.isfinite(oversampling) and 1.0 <= oversampling <= MAX_OVERSAMPLING):
                raise InvalidArgument.for_field(
                    "params.quantization.oversampling", f"must be in [1, {MAX_OVERSAMPLING:g}]"
                )
        return SearchParams(
            hnsw_ef=params.hnsw_ef if params.HasField("hnsw_ef") else self.limits.search_hnsw_ef,
            exact=params.exact,
            quantization_ignore=quantization.ignore,
            rescore=quantization.rescore if quantization.HasField("rescore") else None,
            oversampling=oversampling,
        )

    def _filter(self, spec: retrieval_pb2.Filter) -> Filter:
        return to_qdrant_filter(spec, max_conditions=self.limits.max_filter_conditions)

    async def Search(
        self, request: retrieval_pb2.SearchRequest, context: Any
    ) -> retrieval_pb2.SearchResponse:
        started = time.perf_counter()
        which = request.WhichOneof("query")
        if which == "text":
            check_bytes(request.text, field="text", limit=self.limits.max_query_bytes)
        info = await self._collection(request.collection)
        if which is None:
            raise InvalidArgument.for_field("text", "set the query: text or vector")
        if which == "text" and not request.text.strip():
            raise InvalidArgument.for_field("text", "the query text must not be empty")
        mode, top_k, prefetch = self._search_args(request, info)
        dense = None
        if which == "vector":
            if mode != "dense":
                raise InvalidArgument.for_field(
                    "vector", "a vector query searches DENSE only; send text for SPARSE/HYBRID"
                )
            dense = dense_vector(request.vector, info.vector_size, "vector")
        flt = self._filter(request.filter) if request.HasField("filter") else None
        params = self._search_params(request)
        reranker = self.backends.reranker
        wants_rerank = _rerank_requested(context)
        rerank = which == "text" and reranker is not None and wants_rerank is not False
        if wants_rerank and reranker is None:
            raise InvalidArgument.for_field(
                RERANK_HEADER, "no re-ranker is configured (set reranker_path)"
            )
        fetch = max(top_k, self.limits.rerank_candidates) if rerank else top_k
        embedder = self._embedder(info.encoder_id, "collection.encoder_id")
        fusion: Literal["rrf", "dbsf"] = (
            "dbsf" if request.fusion == retrieval_pb2.FUSION_DBSF else "rrf"
        )

        def run() -> list[tuple[Hit, float]]:
            query_dense = dense
            if query_dense is None and mode != "sparse":
                query_dense = embedder.encode([request.text], input_type="query", batch_size=1)[0]
            query_sparse = (
                self.backends.sparse.encode_queries([request.text])[0] if mode != "dense" else None
            )
            hits = self.backends.store.search(
                info.name,
                mode=mode,
                distance=info.distance,
                dense=query_dense,
                sparse=query_sparse,
                limit=fetch,
                prefetch_limit=max(prefetch, fetch),
                fusion=fusion,
                flt=flt,
                with_vectors=request.with_vectors,
                params=params,
            )
            if request.HasField("score_threshold"):
                hits = [h for h in hits if h.score >= request.score_threshold]
            if not rerank or reranker is None or not hits:
                return [(h, h.score) for h in hits[:top_k]]
            passages = [str(h.payload.get(TEXT_KEY, "")) for h in hits]
            scores = reranker.score(request.text, passages, batch_size=self.limits.batch_size)
            order = np.argsort(-scores, kind="stable")[:top_k]
            return [(hits[i], float(scores[i])) for i in order]

        try:
            ranked = await self.runtime.run_blocking(run)
        except CollectionMissing as exc:
            raise _not_found(info.name) from exc
        results = []
        for hit, score in ranked:
            scored = retrieval_pb2.ScoredPoint(id=hit.document_id, score=score)
            if request.with_payload:
                scored.payload.CopyFrom(payload_to_struct(hit.payload))
            if request.with_vectors and hit.vector is not None:
                scored.vector.CopyFrom(tensor_from_numpy(hit.vector))
            results.append(scored)
        return retrieval_pb2.SearchResponse(
            results=results, took=_duration(time.perf_counter() - started)
        )

    # ---- encoders -------------------------------------------------------------------------

    async def Embed(
        self, request: retrieval_pb2.EmbedRequest, context: Any
    ) -> retrieval_pb2.EmbedResponse:
        limits = self.limits
        if not request.texts:
            raise InvalidArgument.for_field("texts", "at least one text is required")
        check_count(request.texts, field="texts", limit=limits.max_batch_texts)
        check_total_bytes(request.texts, field="texts", limit=limits.max_request_text_bytes)
        for index, text in enumerate(request.texts):
            check_bytes(text, field=f"texts[{index}]", limit=limits.max_text_bytes)
        if request.input_type not in retrieval_pb2.InputType.values():
            raise InvalidArgument.for_field("input_type", "unknown InputType value")
        embedder = self._embedder(request.encoder_id)
        kind: InputKind = (
            "query" if request.input_type == retrieval_pb2.INPUT_TYPE_QUERY else ("document")
        )
        texts = list(request.texts)

        def run() -> tuple[np.ndarray, int]:
            vectors = embedder.encode(
                texts,
                input_type=kind,
                normalize=request.normalize,
                batch_size=self.limits.batch_size,
            )
            return vectors, sum(embedder.count_tokens(texts, input_type=kind))

        vectors, tokens = await self.runtime.run_blocking(run)
        return retrieval_pb2.EmbedResponse(
            embeddings=tensor_from_numpy(vectors), encoder_id=embedder.spec.id, total_tokens=tokens
        )

    async def ListEncoders(
        self, request: retrieval_pb2.ListEncodersRequest, context: Any
    ) -> retrieval_pb2.ListEncodersResponse:
        encoders = [
            retrieval_pb2.Encoder(
                id=e.spec.id,
                kind=retrieval_pb2.ENCODER_KIND_DENSE,
                model_path=e.model_path,
                dimension=e.dimension,
                max_seq_length=e.max_seq_length,
                distance=DISTANCE_TO_PROTO[e.spec.distance],  # type: ignore[arg-type]
                query_prefix=e.spec.query_prefix,
                document_prefix=e.spec.document_prefix,
                tags=e.spec.tags,
                description=e.spec.description,
            )
            for e in self.backends.embedders.values()
        ]
        encoders.append(
            retrieval_pb2.Encoder(
                id=SPARSE_ENCODER_ID,
                kind=retrieval_pb2.ENCODER_KIND_SPARSE,
                description="BM25 term weights over hashed word/identifier terms; "
                "IDF applied by Qdrant",
            )
        )
        encoders.sort(key=lambda e: e.id)
        page = Page.from_request(
            request,
            default_size=len(encoders),
            max_size=self.limits.max_page_size,
            scope="encoders",
        )
        return retrieval_pb2.ListEncodersResponse(
            encoders=encoders[page.start : page.stop],
            next_page_token=page.next_token(len(encoders)),
        )

    # ---- evaluation -----------------------------------------------------------------------

    @property
    def datasets(self) -> StorageRoot:
        """Where `dataset_uri` may point (created on first use)."""
        if self._datasets is None:
            self._datasets = self._datasets_root()
        return self._datasets

    def _check_eval_request(self, request: retrieval_pb2.EvaluateEncoderRequest) -> None:
        """Counts and sizes, on arrival (the per-item checks of an inline set run later)."""
        limits = self.limits
        for name in ("ndcg_at", "recall_at"):
            cutoffs = getattr(request, name)
            check_count(cutoffs, field=name, limit=MAX_CUTOFFS)
            for index, k in enumerate(cutoffs):
                if not 0 < k <= limits.max_top_k:
                    raise InvalidArgument.for_field(
                        f"{name}[{index}]", f"cut-offs must be in [1, {limits.max_top_k}]"
                    )
        if request.max_queries < 0:
            raise InvalidArgument.for_field("max_queries", "must not be negative")
        if not 0 <= request.batch_size <= MAX_EVAL_BATCH:
            raise InvalidArgument.for_field(
                "batch_size", f"must be in [0, {MAX_EVAL_BATCH}] (0 = server default)"
            )
        which = request.WhichOneof("dataset")
        if which is None:
            raise InvalidArgument.for_field("dataset_uri", "set dataset_uri or inline")
        if which == "dataset_uri":
            if request.split:
                safe_name(request.split, field="split")
            return
        inline = request.inline
        check_count(inline.documents, field="inline.documents", limit=limits.max_eval_documents)
        check_count(inline.queries, field="inline.queries", limit=limits.max_eval_queries)
        check_count(inline.qrels, field="inline.qrels", limit=limits.max_eval_documents)

    def _check_inline_items(self, inline: retrieval_pb2.InlineEvalSet) -> None:
        """Blocking: every id and text of an inline set within its limit."""
        id_limit, text_limit = self.limits.max_id_bytes, self.limits.max_text_bytes
        for i, doc in enumerate(inline.documents):
            check_id(doc.id, field=f"inline.documents[{i}].id", limit=id_limit)
            check_bytes(doc.title, field=f"inline.documents[{i}].title", limit=text_limit)
            check_bytes(doc.text, field=f"inline.documents[{i}].text", limit=text_limit)
        for i, query in enumerate(inline.queries):
            check_id(query.id, field=f"inline.queries[{i}].id", limit=id_limit)
            check_bytes(query.text, field=f"inline.queries[{i}].text", limit=text_limit)
        for i, qrel in enumerate(inline.qrels):
            check_id(qrel.query_id, field=f"inline.qrels[{i}].query_id", limit=id_limit)
            check_id(qrel.document_id, field=f"inline.qrels[{i}].document_id", limit=id_limit)

    def _load_dataset(self, uri: str, split: str) -> EvalSet:
        """Blocking: the set `uri` names inside the datasets root, within the size limits."""
        root = self.datasets
        location = root.resolve(uri, field="dataset_uri", must_exist=True)
        # Each file the loader opens must resolve inside the root too (a symlink in a BEIR
        # directory could point anywhere).
        files = [root.resolve(str(f), field="dataset_uri") for f in dataset_files(location, split)]
        total = sum(f.stat().st_size for f in files if f.is_file())
        if total > self.limits.max_dataset_bytes:
            raise InvalidArgument.for_field(
                "dataset_uri",
                f"holds {total} bytes; the limit is {self.limits.max_dataset_bytes} "
                "(max_dataset_bytes)",
            )
        base = f"{os.path.realpath(root.path or '')}{os.sep}"
        try:
            data = load_eval_set(location, split)
        except DatasetError as exc:  # name files relative to the root, not the server's layout
            raise InvalidArgument.for_field("dataset_uri", str(exc).replace(base, "")) from exc
        if len(data.documents) > self.limits.max_eval_documents:
            raise InvalidArgument.for_field(
                "dataset_uri",
                f"has {len(data.documents)} documents; the limit is "
                f"{self.limits.max_eval_documents} (max_eval_documents)",
            )
        if len(data.queries) > self.limits.max_eval_queries:
            raise InvalidArgument.for_field(
                "dataset_uri",
                f"has {len(data.queries)} queries; the limit is "
                f"{self.limits.max_eval_queries} (max_eval_queries)",
            )
        return data

    def _eval_set(self, request: retrieval_pb2.EvaluateEncoderRequest) -> EvalSet:
        """Blocking: the evaluation set of a checked request."""
        if request.WhichOneof("dataset") == "dataset_uri":
            return self._load_dataset(request.dataset_uri, request.split or "test")
        inline = request.inline
        self._check_inline_items(inline)
        data = EvalSet(
            documents=[EvalDocument(d.id, d.text, d.title) for d in inline.documents],
            queries={q.id: q.text for q in inline.queries},
            qrels={},
        )
        for qrel in inline.qrels:
            data.qrels.setdefault(qrel.query_id, {})[qrel.document_id] = qrel.relevance
        try:
            data.check()
        except DatasetError as exc:
            raise InvalidArgument.for_field("inline", str(exc)) from exc
        return data

    def _running_evaluations(self) -> list[str]:
        """Names of this servicer's EvaluateEncoder operations that are not done yet."""
        running = []
        for name in self._evaluations:
            try:
                if not self.operations.get(name).done:
                    running.append(name)
            except NotFound:  # deleted or evicted
                continue
        self._evaluations = running
        return running

    async def EvaluateEncoder(
        self, request: retrieval_pb2.EvaluateEncoderRequest, context: Any
    ) -> operations_pb2.Operation:
        embedder = self._embedder(request.encoder_id)
        self._check_eval_request(request)
        limit = self.limits.max_running_evaluations
        if len(self._running_evaluations()) + self._loading_evaluations >= limit:
            raise ResourceExhausted(
                f"{limit} evaluations are running (max_running_evaluations); retry when one "
                "finishes",
                retry_after_s=30.0,
                reason="TOO_MANY_EVALUATIONS",
            )
        self._loading_evaluations += 1
        try:
            data = await self.runtime.run_blocking(self._eval_set, request)
            operation = self._start_evaluation(request, embedder, data)
        finally:
            self._loading_evaluations -= 1
        self._evaluations.append(operation.name)
        return operation

    def _start_evaluation(
        self, request: retrieval_pb2.EvaluateEncoderRequest, embedder: Embedder, data: EvalSet
    ) -> operations_pb2.Operation:
        ndcg_at = sorted(set(request.ndcg_at)) or [10]
        recall_at = sorted(set(request.recall_at)) or [1, 5, 10, 100]
        loop = asyncio.get_running_loop()
        start = timestamp_pb2.Timestamp()
        start.GetCurrentTime()

        stop = threading.Event()  # set when the operation is cancelled: the thread stops too

        async def job(handle: OperationHandle) -> retrieval_pb2.EvaluateEncoderResponse:
            def progress(docs: int, docs_total: int, queries: int, queries_total: int) -> None:
                if stop.is_set():
                    raise EvaluationCancelled(handle.name)
                done = (docs + queries) / max(docs_total + queries_total, 1)
                meta = retrieval_pb2.EvaluateEncoderMetadata(
                    documents_encoded=docs,
                    documents_total=docs_total,
                    queries_evaluated=queries,
                    queries_total=queries_total,
                    progress=done,
                    start_time=start,
                )
                loop.call_soon_threadsafe(handle.set_metadata, meta)

            work = self.runtime.run_blocking(
                lambda: evaluate(
                    embedder,
                    data,
                    name=embedder.spec.id,
                    ndcg_at_k=ndcg_at,
                    recall_at_k=recall_at,
                    max_queries=request.max_queries,
                    batch_size=request.batch_size or self.limits.batch_size,
                    progress=progress,
                )
            )
            try:
                result = await work
            except asyncio.CancelledError:
                stop.set()
                raise
            return retrieval_pb2.EvaluateEncoderResponse(
                encoder_id=embedder.spec.id,
                ndcg=result.ndcg,
                recall=result.recall,
                mrr_at_10=result.mrr_at_10,
                queries_count=result.queries_count,
                documents_count=result.documents_count,
                encode_time=_duration(result.encode_time_s),
            )

        queued = retrieval_pb2.EvaluateEncoderMetadata(
            documents_total=len(data.documents),
            queries_total=len(data.judged_queries()),
            start_time=start,
        )
        return self.operations.start(job, metadata=queued)
