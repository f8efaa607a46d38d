"""The retrieval service: encoders + Qdrant collections + search over gRPC."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import ClassVar

import grpc

from gantry.core.inference import InferenceModel
from gantry.core.server import Service
from gantry.core.settings import ServiceSettings
from gantry.proto.retrieval.v1 import retrieval_pb2, retrieval_pb2_grpc
from gantry.retrieval.embedders import Embedder, load_embedder
from gantry.retrieval.rerank import CrossEncoderReranker, Reranker
from gantry.retrieval.settings import RetrievalSettings
from gantry.retrieval.sparse import BM25Encoder
from gantry.retrieval.store import QdrantStore, Store

log = logging.getLogger("gantry.retrieval")
SERVICE_NAME = retrieval_pb2.DESCRIPTOR.services_by_name["RetrievalService"].full_name

DEMO_COLLECTION = "gantry-demo"
DEMO_DOCS = {
    "kb-1": "Error E-4012 means the conveyor motor overheated; let it cool for ten minutes.",
    "kb-2": "To reset the controller, hold the red button for five seconds.",
    "kb-3": "Part PN-77-A113 is the replacement belt for the conveyor.",
}


@dataclass
class Backends:
    """What `start()` loads: encoders, the lexical encoder, the re-ranker and the store."""

    embedders: dict[str, Embedder]
    sparse: BM25Encoder
    reranker: Reranker | None
    store: Store


def open_store(settings: RetrievalSettings) -> Store:
    """A Qdrant server by URL; else the embedded engine `qdrant_embedded` names."""
    if settings.qdrant_url:
        api_key = None
        if settings.qdrant_api_key_file is not None:
            api_key = settings.qdrant_api_key_file.read_text().strip() or None
        return QdrantStore.open(
            url=settings.qdrant_url,
            api_key=api_key,
            prefer_grpc=settings.qdrant_prefer_grpc,
            timeout_s=settings.qdrant_timeout_s,
        )
    if settings.qdrant_embedded == "edge":
        from gantry.retrieval.edge_store import EdgeStore, IndexSettings

        index = IndexSettings(
            min_points=settings.edge_index_min_points,
            quiet_s=settings.edge_index_quiet_s,
            hnsw_m=settings.hnsw_m,
            hnsw_ef_construct=settings.hnsw_ef_construct,
            default_hnsw_ef=settings.search_hnsw_ef,
            nice=settings.edge_index_nice,
        )
        path = settings.qdrant_path or str(settings.resolved_data_dir() / "qdrant-edge")
        previous = settings.resolved_data_dir() / "qdrant"
        if not settings.qdrant_path and previous.is_dir():
            log.warning(
                "%s holds a qdrant-client local-mode store, which the Edge default does not "
                "read: set qdrant_embedded=local to keep using it, or re-upsert into Edge",
                previous,
            )
        return EdgeStore.open(path, index=index)
    path = settings.qdrant_path or str(settings.resolved_data_dir() / "qdrant")
    return QdrantStore.open(path=path, fast_writes=settings.qdrant_embedded_fast_writes)


def load_backends(settings: RetrievalSettings) -> Backends:
    """Blocking: loads every encoder and opens Qdrant."""
    embedders = {spec.id: load_embedder(spec, device=settings.device) for spec in settings.encoders}
    reranker = (
        CrossEncoderReranker(settings.reranker_path, device=settings.device)
        if settings.reranker_path
        else None
    )
    sparse = BM25Encoder(
        k1=settings.bm25_k1, b=settings.bm25_b, avg_doc_words=settings.bm25_avg_doc_words
    )
    return Backends(embedders, sparse, reranker, open_store(settings))


class RetrievalService(Service[RetrievalSettings]):
    name: ClassVar[str] = "retrieval"
    settings_type: ClassVar[type[ServiceSettings]] = RetrievalSettings

    def __init__(self, settings: RetrievalSettings) -> None:
        super().__init__(settings)
        self.backends: Backends | None = None

    def add_to_server(self, server: grpc.aio.Server) -> Sequence[str]:
        from gantry.retrieval.servicer import RetrievalLimits, RetrievalServicer

        servicer = RetrievalServicer(
            self,
            self.loaded_backends,
            self.operations,
            RetrievalLimits.from_settings(self.settings),
            datasets=lambda: self.settings.storage_root("datasets", self.settings.datasets_root),
        )
        retrieval_pb2_grpc.add_RetrievalServiceServicer_to_server(servicer, server)
        return [SERVICE_NAME]

    def inference_models(self) -> Sequence[InferenceModel]:
        """Each encoder as an Open Inference Protocol model (gantry.retrieval.oip)."""
        from gantry.retrieval.oip import embedding_models

        return embedding_models(self)

    def loaded_backends(self) -> Backends:
        """What `start()` loaded; no call reaches a servicer before (the core's call gate)."""
        if self.backends is None:
            raise RuntimeError("the retrieval backends are used before start() loaded them")
        return self.backends

    async def start(self) -> None:
        self.backends = await self.run_blocking(load_backends, self.settings)
        store = (
            "server " + self.settings.qdrant_url
            if self.settings.qdrant_url
            else f"embedded ({self.settings.qdrant_embedded})"
        )
        log.info(
            "retrieval ready: encoders %s, Qdrant %s, re-ranker %s",
            ", ".join(self.backends.embedders),
            store,
            self.settings.reranker_path or "off",
        )

    async def stop(self) -> None:
        if self.backends is not None:
            await self.run_blocking(self.backends.store.close)
            self.backends = None

    @classmethod
    def demo_call(cls, channel: grpc.Channel) -> str:
        stub = retrieval_pb2_grpc.RetrievalServiceStub(channel)
        try:
            stub.DeleteCollection(retrieval_pb2.DeleteCollectionRequest(name=DEMO_COLLECTION))
        except grpc.RpcError as exc:
            if exc.code() != grpc.StatusCode.NOT_FOUND:
                raise
        stub.CreateCollection(
            retrieval_pb2.CreateCollectionRequest(name=DEMO_COLLECTION, sparse_enabled=True)
        )
        stub.Upsert(
            retrieval_pb2.UpsertRequest(
                collection=DEMO_COLLECTION,
                points=[retrieval_pb2.Point(id=k, text=v) for k, v in DEMO_DOCS.items()],
                wait=True,
            )
        )
        reply = stub.Search(
            retrieval_pb2.SearchRequest(
                collection=DEMO_COLLECTION,
                text="what does E-4012 mean?",
                top_k=2,
                mode=retrieval_pb2.SEARCH_MODE_HYBRID,
            )
        )
        hits = ", ".join(f"{r.id} ({r.score:.3f})" for r in reply.results)
        took_ms = reply.took.ToNanoseconds() / 1e6
        return f"hybrid search 'what does E-4012 mean?' -> {hits} in {took_ms:.1f} ms"
