"""The loop's configuration: one YAML file, validated before anything starts.

Every service target left empty is started locally (`gantry up` style) with embedded
defaults; a filled target points at a running service, e.g. one deployed by Helm.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

Recipe = Literal["bf16", "fp8-naive", "fp8-jet"]
Difficulty = Literal["easy", "hard"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ServicesConfig(_Strict):
    """Where the services listen. Empty targets are started locally for the run."""

    envfarm: str = ""
    rollout: str = ""
    trainer: str = ""
    token_file: Path | None = Field(
        default=None, description="Bearer token for remote services (a mounted Secret)"
    )
    tls: bool = False
    root_certificates_file: Path | None = None
    rollout_for_trainer: str = Field(
        default="",
        description="Where the trainer publishes: empty = the trainer's configured "
        "rollout_target, else a peer name (GANTRY_TRAINER_ROLLOUT_PEERS) or an address "
        "configured on the trainer; the trainer refuses any other address",
    )
    shared_dir: Path | None = Field(
        default=None,
        description="Directory this process writes SFT data to and the trainer reads from "
        "(a shared volume when the trainer is remote, inside the trainer's datasets root "
        "and mounted at the same path); default: <report dir>/data",
    )
    startup_timeout_s: float = Field(default=300.0, gt=0)

    @property
    def all_local(self) -> bool:
        return not (self.envfarm or self.rollout or self.trainer)

    @model_validator(mode="after")
    def _all_or_none(self) -> ServicesConfig:
        given = [bool(self.envfarm), bool(self.rollout), bool(self.trainer)]
        if any(given) and not all(given):
            raise ValueError("give all three targets (envfarm, rollout, trainer) or none")
        return self


class TinyModel(_Strict):
    """Size of the random Qwen3 built when base_model is "tiny"."""

    hidden_size: int = Field(default=64, ge=16)
    num_layers: int = Field(default=2, ge=1)
    seed: int = 0


class PolicyConfig(_Strict):
    base_model: str = Field(
        default="tiny",
        description='A HF checkpoint directory both rollout and trainer can read, "tiny" '
        '(local services only) or a packaged model ("smollm2-135m-instruct")',
    )
    tiny: TinyModel = TinyModel()
    precision: Recipe = "fp8-jet"
    gradient_checkpointing: bool = Field(
        default=False,
        description="Recompute activations in the backward pass (trainer extra): less "
        "memory for ~1/3 more training compute",
    )
    trainable_layers: int = Field(
        default=0,
        ge=0,
        description="Partial unfreezing (trainer extra): train only the last N decoder "
        "layers and the final norm; 0 trains every parameter",
    )


class TaskConfig(_Strict):
    env_id: str
    difficulty: Difficulty = "easy"
    max_turns: int = Field(
        default=0, ge=0, description="Turn limit per episode; 0 = the environment's (20/30)"
    )


class SftConfig(_Strict):
    demonstrations: int = Field(default=600, ge=1, description="Solver demonstrations per task")
    steps: int = Field(default=600, ge=1)
    batch_size: int = Field(default=8, ge=1)
    learning_rate: float = Field(default=3e-3, gt=0)
    warmup_steps: int = Field(default=20, ge=0)


class GrpoConfig(_Strict):
    iterations: int = Field(default=4, ge=0)
    seeds_per_iteration: int = Field(default=8, ge=1)
    group_size: int = Field(default=8, ge=2)
    steps_per_iteration: int = Field(default=1, ge=1)
    learning_rate: float = Field(default=5e-4, gt=0)
    temperature: float = Field(default=1.0, gt=0)
    clip_low: float = Field(default=0.2, gt=0)
    clip_high: float = Field(default=0.28, gt=0)
    kl_coef: float = Field(default=0.0, ge=0)
    max_tokens: int = Field(default=24, ge=1, description="Tokens per agent turn")
    mode: Literal["sync", "async"] = Field(
        default="sync",
        description="sync: rollouts, then the steps on them, then publish, per iteration; "
        "async: the trainer streams episodes from rollout while it trains and publishes "
        "every publish_interval steps without stopping rollout (one task only)",
    )
    max_staleness: int = Field(
        default=1, ge=1, description="async: policy versions a trajectory may lag behind"
    )
    publish_interval: int = Field(default=1, ge=1, description="async: steps between publishes")
    off_policy_correction: Literal["none", "tis", "mis"] = Field(
        default="none", description="Behaviour-policy correction of the loss (trainer docs)"
    )
    importance_cap: float = Field(default=2.0, gt=1.0)
    micro_batch_tokens: int = Field(
        default=4096,
        ge=0,
        description="Padded tokens per trainer forward/backward pass (the step's gradient "
        "is the same; memory follows it); 0 = up to 32 sequences per pass",
    )


class EvalConfig(_Strict):
    episodes: int = Field(default=100, ge=1, description="Held-out seeds per task")
    seed_offset: int = Field(
        default=1_000_000, ge=0, description="Held-out seeds start here; training seeds below"
    )
    every_iteration: bool = Field(
        default=True, description="Evaluate after every GRPO iteration (else only at the end)"
    )


class TelemetryConfig(_Strict):
    """What the loop records besides its report: TensorBoard events and traces."""

    tensorboard: bool = Field(
        default=True, description="Write TensorBoard event files to <report dir>/tensorboard"
    )
    otlp_endpoint: str | None = Field(
        default=None,
        description="Export traces over OTLP/gRPC here (e.g. http://localhost:4317), also "
        "from the local stack's services; unset: the OTEL_* environment decides (off)",
    )


class LoopConfig(_Strict):
    name: str = "gantry-loop"
    services: ServicesConfig = ServicesConfig()
    policy: PolicyConfig = PolicyConfig()
    tasks: list[TaskConfig] = Field(min_length=1)
    system_prompt: str = Field(
        default="",
        description="Replaces the environments' instructions in SFT data and rollouts alike",
    )
    sft: SftConfig = SftConfig()
    grpo: GrpoConfig = GrpoConfig()
    eval: EvalConfig = EvalConfig()
    telemetry: TelemetryConfig = TelemetryConfig()
    report_dir: Path = Path("reports")
    seed: int = 0

    @model_validator(mode="after")
    def _async_has_one_task(self) -> LoopConfig:
        if self.grpo.mode == "async" and len(self.tasks) != 1:
            raise ValueError(
                "grpo.mode async trains on one task (the trainer streams its episodes)"
            )
        return self

    @model_validator(mode="after")
    def _seeds_disjoint(self) -> LoopConfig:
        used = self.sft.demonstrations + self.grpo.iterations * self.grpo.seeds_per_iteration
        if used > self.eval.seed_offset:
            raise ValueError(
                f"eval.seed_offset ({self.eval.seed_offset}) must exceed the {used} training "
                "seeds so evaluation runs on held-out seeds"
            )
        return self


class ConfigError(ValueError):
    """A config file that cannot be used, with the offending field named."""


def load_config(path: Path) -> LoopConfig:
    try:
        raw = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as exc:
        raise ConfigError(f"{path}: {exc}") from exc
    return parse_config(raw, source=str(path))


def parse_config(raw: object, *, source: str = "config") -> LoopConfig:
    if not isinstance(raw, dict):
        raise ConfigError(f"{source}: expected a mapping at the top level")
    try:
        return LoopConfig.model_validate(raw)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc']) or '(top)'}: {err['msg']}"
            for err in exc.errors()
        )
        raise ConfigError(f"{source}: {problems}") from exc
