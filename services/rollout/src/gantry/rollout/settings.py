"""rollout's settings: `GANTRY_ROLLOUT_<FIELD>` env vars over the shared runtime fields."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr

from gantry.core.settings import ServiceSettings, peer_secret, settings_config

TINY_MODEL = "tiny"


class RolloutSettings(ServiceSettings):
    model_config = settings_config("rollout")

    port: int = Field(default=50051, ge=0, le=65535, description="gRPC port")
    backend: Literal["transformers", "vllm"] = Field(
        default="transformers",
        description="transformers: CPU/reference continuous-batching engine; vllm: GPUs",
    )
    model_path: str = Field(
        default=TINY_MODEL,
        description="Hugging Face checkpoint directory; 'tiny' builds a tiny random model "
        "(local development and tests only)",
    )
    vlm_model_path: str | None = Field(
        default=None,
        description="Vision-language checkpoint for image observations; 'tiny' builds a tiny "
        "random one (development); unset = text only",
    )
    model_name: str = Field(default="", description="Name reported by GetModelInfo")
    dtype: str = Field(default="auto", description="auto, float32, bfloat16 or float16")
    precision_recipe: Literal["bf16", "fp8-naive", "fp8-jet"] = Field(
        default="bf16",
        description="Jet-RL recipe (gantry.kernels.recipes): fp8-* serve FP8 linear layers "
        "(128x128 weight blocks, 1x128 activation groups); match the trainer run's recipe",
    )
    max_batch_size: int = Field(default=32, ge=1, description="Sequences decoded together")
    weight_update_mode: Literal["drain", "rerun"] = Field(
        default="drain",
        description="drain: in-flight requests finish on the old weights; rerun: they are "
        "restarted on the new ones",
    )
    vllm_gpu_memory_utilization: float = Field(default=0.85, gt=0, le=1)
    envfarm_target: str = Field(
        default="127.0.0.1:50053", description="envfarm address used by RunEpisodes by default"
    )
    envfarm_token: SecretStr | None = Field(default=None, description="Bearer token for envfarm")
    envfarm_token_file: Path | None = Field(default=None, description="File holding it")
    max_episode_concurrency: int = Field(default=64, ge=1, description="Episodes in flight")

    def resolved_envfarm_token(self) -> str | None:
        token = peer_secret(self.envfarm_token, self.envfarm_token_file)
        return token if token is not None else self.resolved_token()  # one local-stack token
