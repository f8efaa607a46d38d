"""vla's settings: `GANTRY_VLA_<FIELD>` env vars over the shared runtime fields."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from gantry.core.ports import DEFAULT_PORTS
from gantry.core.settings import ServiceSettings, settings_config


class VlaSettings(ServiceSettings):
    model_config = settings_config("vla")

    port: int = Field(default=DEFAULT_PORTS["vla"], ge=0, le=65535, description="gRPC port")
    checkpoint: str = Field(
        default="",
        description="Policy checkpoint directory (`gantry vla train` output); empty = a "
        "fresh, untrained TwinBrain policy on the tiny VLM (for the local stack and tests)",
    )
    architecture: Literal["twinbrain", "single_stream"] = Field(
        default="twinbrain", description="Architecture of the fresh policy (no checkpoint)"
    )
    device: str = Field(default="auto", description="auto (cuda when present), cpu, cuda:0, ...")
    torch_threads: int = Field(
        default=0, ge=0, description="torch intra-op threads on CPU; 0 = torch's default"
    )
    max_image_pixels: int = Field(
        default=1024 * 1024, ge=1, description="Most pixels (H x W) in one camera frame"
    )
    max_image_bytes: int = Field(
        default=4 * 1024 * 1024, ge=1, description="Largest encoded camera frame (bytes)"
    )
    max_instruction_bytes: int = Field(
        default=1024, ge=1, description="Longest instruction (UTF-8 bytes)"
    )
    max_denoising_steps: int = Field(
        default=64, ge=1, description="Most flow-matching steps a request may ask for"
    )
    max_pending_acts: int = Field(
        default=8,
        ge=1,
        description="Act calls and stream inferences waiting for the model; beyond them "
        "RESOURCE_EXHAUSTED with a RetryInfo",
    )
