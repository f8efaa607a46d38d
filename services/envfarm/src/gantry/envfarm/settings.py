"""envfarm's settings: `GANTRY_ENVFARM_<FIELD>` env vars over the shared runtime fields."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field

from gantry.core.ports import DEFAULT_PORTS
from gantry.core.settings import ServiceSettings, settings_config


class EnvFarmSettings(ServiceSettings):
    model_config = settings_config("envfarm")

    port: int = Field(default=DEFAULT_PORTS["envfarm"], ge=0, le=65535, description="gRPC port")
    max_sessions: int = Field(
        default=1024,
        ge=1,
        description="Live sessions; CreateSession past it gets RESOURCE_EXHAUSTED",
    )
    session_idle_timeout_s: float = Field(
        default=300.0, gt=0, description="Close a session nobody has touched for this long"
    )
    session_max_lifetime_s: float = Field(
        default=3600.0, gt=0, description="Close any session this old, however busy"
    )
    reap_interval_s: float = Field(default=5.0, gt=0, description="How often expiry is checked")
    max_batch_items: int = Field(default=4096, ge=1, description="Largest StepBatch")
    max_state_json_bytes: int = Field(
        default=1024 * 1024,
        ge=2,
        description="Largest initial_state_json (CreateSession, Reset), UTF-8 bytes",
    )
    max_demonstrations: int = Field(
        default=10_000,
        ge=1,
        description="Demonstrations (seeds x strategies) one ExportDemonstrations call streams",
    )
    max_page_size: int = Field(
        default=1000, ge=1, description="Larger ListEnvironments page_size values are lowered"
    )
    dataset_dir: Path | None = Field(
        default=None,
        description="Real-image datasets, one subdirectory per environment id "
        "(e.g. <dir>/counting); environments without one render procedural scenes. "
        "Operator-configured only: no request names a folder; a state names a file by "
        "plain name, resolved inside the environment's subdirectory",
    )
