"""trainer's settings: `GANTRY_TRAINER_<FIELD>` env vars over the shared runtime fields."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr

from gantry.core.ports import DEFAULT_PORTS
from gantry.core.settings import MiB, ServiceSettings, peer_secret, settings_config


class TrainerSettings(ServiceSettings):
    model_config = settings_config("trainer")

    port: int = Field(default=DEFAULT_PORTS["trainer"], ge=0, le=65535, description="gRPC port")
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
    tensorboard: bool = Field(
        default=True,
        description="Write each run's step metrics as TensorBoard event files under the "
        "outputs root (`tensorboard --logdir <outputs_root>`)",
    )
    max_buffered_trajectories: int = Field(
        default=10_000, ge=1, description="SubmitTrajectories back-pressure per run"
    )
    max_active_runs: int = Field(default=4, ge=1, description="Runs training at the same time")
    max_world_size: int = Field(
        default=1,
        ge=1,
        le=1024,
        description="Most ranks (processes, one per device) a run may ask for in "
        "config.world_size; 1 = single-process runs only",
    )
    ranks: Literal["local", "pods"] = Field(
        default="local",
        description="Where a multi-process run's ranks 1..N-1 run: local = processes this "
        "service starts on its own machine (one per GPU on CUDA); pods = processes started "
        "elsewhere with `python -m gantry.trainer.rank --serve` (the chart's rank pods), "
        "which join each run's rendezvous here",
    )
    rendezvous_host: str = Field(
        default="127.0.0.1",
        description="Address the ranks dial to join rank 0 (this process): its pod's "
        "stable DNS name under `pods`",
    )
    rendezvous_port: int = Field(
        default=0,
        ge=0,
        le=65535,
        description="TCP port of the rendezvous store rank 0 opens for each multi-process "
        "run; 0 = a free port (local ranks only)",
    )
    rank_timeout_s: float = Field(
        default=600.0,
        gt=0,
        le=86_400,
        description="How long ranks wait for one another (joining, and any one collective) "
        "before the run fails",
    )
    rank_restarts: int = Field(
        default=3,
        ge=0,
        le=100,
        description="Times a multi-process run restarts its ranks from its latest "
        "checkpoint after one dies, before it fails (counted since the last new checkpoint)",
    )
    max_runs: int = Field(
        default=10_000,
        ge=1,
        description="Runs kept in <data_dir>/runs (any state); StartRun beyond it is "
        "RESOURCE_EXHAUSTED until an operator removes finished runs",
    )
    max_trajectories_per_message: int = Field(
        default=4096, ge=1, description="Trajectories in one SubmitTrajectories message"
    )
    max_tokens_per_trajectory: int = Field(
        default=262_144,
        ge=1,
        description="Prompt + completion token ids over all turns of one submitted trajectory",
    )
    max_dataset_bytes: int = Field(
        default=1024 * MiB, ge=1, description="Total size of the JSONL files of one dataset_uri"
    )
    datasets_root: Path | None = Field(
        default=None,
        description="config.data.dataset_uri resolves inside this folder "
        "(default <data_dir>/datasets)",
    )
    outputs_root: Path | None = Field(
        default=None,
        description="config.output_uri resolves inside this folder (default <data_dir>/outputs)",
    )
    models_root: Path | None = Field(
        default=None,
        description="config.base_model resolves inside this folder (default <data_dir>/models); "
        "checkpoints of this trainer's runs and 'tiny' are accepted too",
    )
    rollout_target: str = Field(
        default="",
        description="RolloutService address used when a run and a PublishWeights request "
        "name none (the local stack sets it)",
    )
    rollout_peers: dict[str, str] = Field(
        default_factory=dict,
        description="Further rollout servers by name (JSON in the env var): requests may name "
        "one of these or a configured address, never another address",
    )
    rollout_replicas: list[str] = Field(
        default_factory=list,
        description="Rollout replicas a publish reaches when the request names no single "
        "target (JSON list in the env var): configured rollout peers (names or addresses); "
        "a dns:///<host>:<port> peer (a headless Service) expands to every address it "
        "resolves to at each publish. Empty = the run's one rollout target",
    )
    published_weights_dir: Path | None = Field(
        default=None,
        description="Where the latest published weights are recorded (latest.json and a "
        "hard-linked copy of the checkpoint) for replicas that start later: point rollout's "
        "published_weights here. Default <data_dir>/published",
    )
    publish_attempts: int = Field(
        default=6,
        ge=1,
        le=100,
        description="UpdateWeights calls per publish when rollout answers UNAVAILABLE (the "
        "whole stream again, backoff 0.5 s doubling to 8 s, or the server's RetryInfo)",
    )
    rollout_token: SecretStr | None = Field(
        default=None, description="Bearer token for rollout servers (PublishWeights)"
    )
    rollout_token_file: Path | None = Field(default=None, description="File holding it")

    verifier_target: str = Field(
        default="",
        description="VerifierService address a run may name in config.data.verifier_target "
        "(the local stack sets it); an empty verifier_target means no verifier rewards",
    )
    verifier_peers: dict[str, str] = Field(
        default_factory=dict,
        description="Further verifier servers by name (JSON in the env var): runs may name "
        "one of these or a configured address, never another address",
    )
    verifier_mode: Literal["full", "decomposed", "plain"] = Field(
        default="full",
        description="VerifyRequest.mode for verifier rewards: full DeepVerifier, the "
        "decomposed judge, or one plain judge prompt (cheapest)",
    )
    verifier_judge: str = Field(
        default="", description="Judge name the verifier should use ('' = its default judge)"
    )
    verifier_timeout_s: float = Field(
        default=600.0,
        gt=0,
        le=86_400,
        description="Deadline of one VerifyBatch call (judge models on CPU are slow)",
    )
    verifier_batch_size: int = Field(
        default=16, ge=1, le=4096, description="Trajectories per VerifyBatch call"
    )
    verifier_token: SecretStr | None = Field(
        default=None, description="Bearer token for verifier servers"
    )
    verifier_token_file: Path | None = Field(default=None, description="File holding it")

    def resolved_published_dir(self) -> Path:
        return self.published_weights_dir or self.resolved_data_dir() / "published"

    def resolved_verifier_token(self) -> str | None:
        token = peer_secret(self.verifier_token, self.verifier_token_file)
        return token if token is not None else self.resolved_token()

    def resolved_rollout_token(self) -> str | None:
        token = peer_secret(self.rollout_token, self.rollout_token_file)
        return token if token is not None else self.resolved_token()  # one local-stack token
