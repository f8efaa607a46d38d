"""verifier's settings: `GANTRY_VERIFIER_<FIELD>` env vars over the shared runtime fields.

Judges and agent endpoints are named by the operator; requests choose among the names and
never supply an address (DESIGN.md, Peers). Each peer kind (rollout, retrieval, envfarm)
has a default target, optional named extra targets and a bearer token.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, model_validator

from gantry.core.peers import Peers
from gantry.core.ports import DEFAULT_PORTS, default_target
from gantry.core.settings import ServiceSettings, peer_secret, settings_config

PeerKind = Literal["rollout", "retrieval", "envfarm"]
NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")


class JudgeSpec(BaseModel):
    """One configured judge: a model behind rollout `Generate` or an OpenAI-compatible URL."""

    model_config = ConfigDict(extra="forbid")

    backend: Literal["rollout", "openai"] = "rollout"
    peer: str = Field(default="", description="rollout backend: a rollout peer name; '' = default")
    model: str = Field(default="", description="Served model name; '' = the backend's default")
    url: str = Field(default="", description="openai backend: base URL (…/v1)")
    api_key_file: Path | None = Field(default=None, description="openai backend: key file")
    max_tokens: int = Field(
        default=0,
        ge=0,
        le=8192,
        description="Tokens per judge call; 0 = the step's longest possible answer (no cut-offs)",
    )
    top_logprobs: int = Field(
        default=5, ge=0, le=20, description="Alternatives read at the score token (0 = off)"
    )

    @model_validator(mode="after")
    def _complete(self) -> JudgeSpec:
        if self.backend == "openai" and not self.url.startswith(("http://", "https://")):
            raise ValueError("an openai judge needs url (http:// or https://)")
        return self


class AgentEndpoint(BaseModel):
    """An OpenAI-compatible chat endpoint VerifyAndRefine may call as the agent."""

    model_config = ConfigDict(extra="forbid")

    url: str = Field(description="Base URL (…/v1)")
    model: str = Field(default="", description="Model name sent in the request")
    api_key_file: Path | None = None

    @model_validator(mode="after")
    def _http(self) -> AgentEndpoint:
        if not self.url.startswith(("http://", "https://")):
            raise ValueError("an agent endpoint url must start with http:// or https://")
        return self


class VerifierSettings(ServiceSettings):
    model_config = settings_config("verifier")

    port: int = Field(default=DEFAULT_PORTS["verifier"], ge=0, le=65535, description="gRPC port")

    # ----- peers -----
    rollout_target: str = Field(
        default=default_target("rollout"), description="rollout (judge and agent) address"
    )
    rollout_peers: dict[str, str] = Field(
        default_factory=dict,
        description='Named extra rollout targets (env: JSON, {"blue": "rollout-blue:50051"})',
    )
    rollout_token: SecretStr | None = Field(default=None, description="Bearer token for rollout")
    rollout_token_file: Path | None = Field(default=None, description="File holding it")
    retrieval_target: str = Field(
        default=default_target("retrieval"), description="retrieval (evidence search) address"
    )
    retrieval_peers: dict[str, str] = Field(default_factory=dict)
    retrieval_token: SecretStr | None = None
    retrieval_token_file: Path | None = None
    envfarm_target: str = Field(
        default=default_target("envfarm"), description="envfarm (executable checks) address"
    )
    envfarm_peers: dict[str, str] = Field(default_factory=dict)
    envfarm_token: SecretStr | None = None
    envfarm_token_file: Path | None = None

    # ----- judges and agents -----
    judges: dict[str, JudgeSpec] = Field(
        default_factory=lambda: {"default": JudgeSpec()},
        description='Named judges (env: JSON, e.g. {"smol": {"backend": "rollout", '
        '"model": "smollm2-135m-instruct"}})',
    )
    default_judge: str = Field(default="default", description="Judge used when none is named")
    agents: dict[str, AgentEndpoint] = Field(
        default_factory=dict,
        description="Named OpenAI-compatible agent endpoints for VerifyAndRefine.agent.endpoint",
    )
    judge_text_chars: int = Field(
        default=200,
        ge=8,
        le=4000,
        description="Longest free text the judge may write (rationale, reflection); labels' "
        "descriptions, questions and instructions get half",
    )
    judge_attempts: int = Field(
        default=3, ge=1, le=10, description="Judge calls per step before its output is refused"
    )
    taxonomy_file: Path | None = Field(
        default=None, description="YAML/JSON file adding subclasses to the taxonomy"
    )

    # ----- limits -----
    max_task_bytes: int = Field(default=65_536, ge=1)
    max_answer_bytes: int = Field(default=65_536, ge=1)
    max_rubric_bytes: int = Field(default=16_384, ge=1)
    max_trajectory_steps: int = Field(default=256, ge=1)
    max_step_field_bytes: int = Field(default=16_384, ge=1, description="Per TraceStep field")
    max_trajectory_bytes: int = Field(default=1_048_576, ge=1)
    max_prompt_chars: int = Field(
        default=6_000,
        ge=500,
        description="Trajectory text shown to the judge per prompt (middle steps elided)",
    )
    max_checks: int = Field(default=4, ge=0, le=64)
    max_batch: int = Field(default=64, ge=1, le=4096)
    batch_concurrency: int = Field(default=4, ge=1, le=256, description="Batch items at once")
    max_rounds: int = Field(default=8, ge=1, le=32, description="Largest max_rounds accepted")
    max_concurrent_verifications: int = Field(
        default=8, ge=1, description="Verify/VerifyBatch/VerifyAndRefine calls running at once"
    )
    max_queued_verifications: int = Field(
        default=16, ge=0, description="Calls waiting for a slot; beyond: RESOURCE_EXHAUSTED"
    )
    peer_timeout_s: float = Field(
        default=120.0, gt=0, description="Longest single peer call when the caller set no deadline"
    )

    @model_validator(mode="after")
    def _names(self) -> VerifierSettings:
        for kind, names in (("judges", self.judges), ("agents", self.agents)):
            for name in names:
                if not NAME.match(name):
                    raise ValueError(f"{kind}: {name!r} is not a valid name ({NAME.pattern})")
        if self.default_judge not in self.judges:
            raise ValueError(f"default_judge {self.default_judge!r} is not one of judges")
        for name, judge in self.judges.items():
            if judge.backend == "rollout" and judge.peer and judge.peer not in self.rollout_peers:
                raise ValueError(f"judges.{name}.peer: {judge.peer!r} is not in rollout_peers")
        return self

    def peers(self, kind: PeerKind) -> Peers:
        default, named = {
            "rollout": (self.rollout_target, self.rollout_peers),
            "retrieval": (self.retrieval_target, self.retrieval_peers),
            "envfarm": (self.envfarm_target, self.envfarm_peers),
        }[kind]
        return Peers(kind, default, dict(named))

    def peer_token(self, kind: PeerKind) -> str | None:
        value, file = {
            "rollout": (self.rollout_token, self.rollout_token_file),
            "retrieval": (self.retrieval_token, self.retrieval_token_file),
            "envfarm": (self.envfarm_token, self.envfarm_token_file),
        }[kind]
        token = peer_secret(value, file)
        return token if token is not None else self.resolved_token()  # one local-stack token
