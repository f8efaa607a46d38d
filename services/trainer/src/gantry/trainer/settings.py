"""trainer's settings: `GANTRY_TRAINER_<FIELD>` env vars over the shared runtime fields."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr

from gantry.core.settings import ServiceSettings, peer_secret, settings_config


class TrainerSettings(ServiceSettings):
    model_config = settings_config("trainer")

    port: int = Field(default=50052, ge=0, le=65535, description="gRPC port")
    device: Literal["auto", "cpu", "cuda"] = Field(
        default="auto", description="Where runs train; auto = cuda when available, else cpu"
    )
    torch_threads: int = Field(
        default=0,
        ge=0,
        description="CPU threads for torch (torch.set_num_threads); 0 = torch's default. "
        "Fix it for bit-exact resume across restarts on CPU",
    )
    deterministic: bool = Field(
        default=True,
        description="torch.use_deterministic_algorithms: a resumed run reproduces the "
        "uninterrupted one",
    )
    max_buffered_trajectories: int = Field(
        default=10_000, ge=1, description="SubmitTrajectories back-pressure per run"
    )
    max_active_runs: int = Field(default=4, ge=1, description="Runs training at the same time")
    rollout_target: str = Field(
        default="",
        description="RolloutService address used when a run and a PublishWeights request "
        "name none (the local stack sets it)",
    )
    rollout_token: SecretStr | None = Field(
        default=None, description="Bearer token for rollout servers (PublishWeights)"
    )
    rollout_token_file: Path | None = Field(default=None, description="File holding it")

    def resolved_rollout_token(self) -> str | None:
        token = peer_secret(self.rollout_token, self.rollout_token_file)
        return token if token is not None else self.resolved_token()  # one local-stack token
