"""video's settings: `GANTRY_VIDEO_<FIELD>` env vars over the shared runtime fields."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field

from gantry.core.ports import DEFAULT_PORTS
from gantry.core.settings import ServiceSettings, settings_config


def default_data_dir() -> Path:
    return Path.home() / ".local" / "share" / "gantry" / "video"


class VideoSettings(ServiceSettings):
    model_config = settings_config("video")

    port: int = Field(default=DEFAULT_PORTS["video"], ge=0, le=65535, description="gRPC port")
    model_path: str = Field(
        default="",
        description="Wan2.1 diffusers checkpoint folder (Wan2.1-T2V-1.3B-Diffusers layout); "
        "empty = the tiny random Wan (CPU demos and tests: its output is noise-like)",
    )
    model_id: str = Field(default="", description="Model id clients see; empty = derived")
    salad_weights: Path | None = Field(
        default=None,
        description="Tuned SALAD weights (safetensors from `gantry video tune`); unset = "
        "<model_path>/salad/salad.safetensors when present, else a zero gate",
    )
    device: str = Field(default="auto", description="auto (cuda when present), cpu, cuda:N")
    dtype: Literal["auto", "float32", "bfloat16", "float16"] = Field(
        default="auto", description="Transformer dtype; auto = bfloat16 on CUDA, float32 on CPU"
    )
    data_dir: Path = Field(
        default_factory=default_data_dir,
        description="Uploads, results and memory sessions (a PVC in Kubernetes)",
    )
    input_root: Path | None = Field(
        default=None,
        description="Folder GenerateVideo's input.uri may name files in; unset = input.uri refused",
    )
    retention_s: float = Field(
        default=24 * 3600.0, gt=0, description="Uploads and results kept this long after last use"
    )
    default_steps: int = Field(default=30, ge=1, description="Diffusion steps when unset")
    max_steps: int = Field(default=100, ge=1, description="Most diffusion steps per request")
    default_guidance_scale: float = Field(default=5.0, ge=0)
    default_strength: float = Field(default=0.8, gt=0, le=1)
    default_attention: Literal["dense", "sparse", "salad"] = Field(
        default="dense",
        description="Attention when the request leaves it unset: SALAD needs tuned weights "
        "to match dense quality, so dense is the default without them",
    )
    default_sparsity: float = Field(default=0.9, ge=0, lt=1)
    max_frames: int = Field(default=81, ge=1, description="Most frames in or out")
    max_width: int = Field(default=832, ge=16)
    max_height: int = Field(default=832, ge=16)
    max_video_bytes: int = Field(default=256 * 1024 * 1024, ge=1024)
    max_prompt_bytes: int = Field(default=2000, ge=1)
    max_concurrent_generations: int = Field(default=1, ge=1)
    max_queued_generations: int = Field(default=8, ge=0)
    default_token_budget: int = Field(
        default=2048, ge=0, description="Memory context tokens when the session sets none"
    )
    max_token_budget: int = Field(default=16384, ge=1)
    max_top_k: int = Field(default=8, ge=1)
    max_sessions: int = Field(default=1000, ge=1)
    max_session_entries: int = Field(default=500, ge=1)
    sweep_interval_s: float = Field(default=600.0, gt=0)
