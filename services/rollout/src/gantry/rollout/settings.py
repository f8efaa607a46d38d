"""rollout's settings: `GANTRY_ROLLOUT_<FIELD>` env vars over the shared runtime fields."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, model_validator

from gantry.core.ports import DEFAULT_PORTS, default_target
from gantry.core.settings import MiB, ServiceSettings, peer_secret, settings_config

TINY_MODEL = "tiny"
KiB = 1024


class RolloutSettings(ServiceSettings):
    model_config = settings_config("rollout")

    port: int = Field(default=DEFAULT_PORTS["rollout"], ge=0, le=65535, description="gRPC port")
    backend: Literal["transformers", "vllm"] = Field(
        default="transformers",
        description="transformers: CPU/reference continuous-batching engine; vllm: GPUs",
    )
    model_path: str = Field(
        default=TINY_MODEL,
        description="Hugging Face checkpoint directory; 'tiny' builds a tiny random model "
        "(local development and tests only); 'smollm2-135m-instruct' serves the packaged "
        "SmolLM2-135M-Instruct (converted once into the model cache)",
    )
    vlm_model_path: str | None = Field(
        default=None,
        description="Vision-language checkpoint for image observations; 'tiny' builds a tiny "
        "random one (development); unset = text only",
    )
    model_name: str = Field(default="", description="Name reported by GetModelInfo")
    dtype: str = Field(default="auto", description="auto, float32, bfloat16 or float16")
    device: str = Field(
        default="cpu",
        pattern=r"^(cpu|cuda(:[0-9]{1,2})?)$",
        description="transformers backend: where the model runs: cpu, or cuda / cuda:N (a "
        "CUDA GPU: the same engine, KV cache and sampling, checked at start). The vllm "
        "backend places itself",
    )
    precision_recipe: Literal["bf16", "fp8-naive", "fp8-jet"] = Field(
        default="bf16",
        description="Jet-RL recipe (gantry.kernels.recipes): fp8-* serve FP8 linear layers "
        "(128x128 weight blocks, 1x128 activation groups); match the trainer run's recipe",
    )
    attn_implementation: Literal["", "sdpa", "eager"] = Field(
        default="",
        description="transformers backend attention; '' keeps the model's (SDPA). 'eager' "
        "here and in the trainer run (extra.attn_implementation) makes decode logprobs "
        "equal the trainer's on CPU, bit for bit",
    )
    max_batch_size: int = Field(default=32, ge=1, description="Sequences decoded together")
    torch_threads: int = Field(
        default=0,
        ge=0,
        description="CPU threads for torch (torch.set_num_threads); 0 = torch's default. On "
        "a CPU shared with other processes, fewer threads avoid oversubscription stalls",
    )
    weight_update_mode: Literal["drain", "rerun"] = Field(
        default="drain",
        description="drain: in-flight requests finish on the old weights; rerun: they are "
        "restarted on the new ones",
    )
    vllm_gpu_memory_utilization: float = Field(default=0.85, gt=0, le=1)
    vllm_logprobs_mode: Literal["raw", "processed"] = Field(
        default="raw",
        description="vllm backend: the logprobs the engine reports (vLLM fixes this per "
        "engine); requests asking for the other SamplingParams.logprobs_mode are refused",
    )
    envfarm_target: str = Field(
        default=default_target("envfarm"),
        description="envfarm address used by RunEpisodes by default",
    )
    envfarm_peers: dict[str, str] = Field(
        default_factory=dict,
        description="Named extra envfarm targets a request may choose with spec.envfarm_target "
        '(env: JSON, e.g. \'{"blue": "envfarm-blue:50053"}\'); no other address is ever dialled',
    )
    checkpoints_root: Path | None = Field(
        default=None,
        description="UpdateWeights.checkpoint_uri resolves inside this folder "
        "(default <data_dir>/checkpoints)",
    )
    published_weights: str = Field(
        default="",
        description="Folder inside checkpoints_root where the trainer records the weights it "
        "last published (its published_weights_dir); at start the replica serves them when "
        "they are newer than its base. Empty = start from the base weights",
    )
    envfarm_token: SecretStr | None = Field(default=None, description="Bearer token for envfarm")
    envfarm_token_file: Path | None = Field(default=None, description="File holding it")
    max_episode_concurrency: int = Field(default=64, ge=1, description="Episodes in flight")

    # ----- OpenAI-compatible HTTP front (docs/openai.md) -----
    openai_port: int | None = Field(
        default=None,
        ge=0,
        le=65535,
        description="Port of the OpenAI-compatible HTTP API (/v1/chat/completions, "
        "/v1/completions, /v1/models) served next to the gRPC port; unset or 0 = off",
    )
    openai_host: str | None = Field(
        default=None, description="Address the OpenAI HTTP API binds (default: host)"
    )
    openai_max_body_bytes: int = Field(
        default=8 * MiB,
        ge=KiB,
        description="Largest OpenAI request body, refused with 413 before it is parsed",
    )

    # ----- limits, checked on arrival before any tokenization -----
    max_prompts_per_request: int = Field(default=256, ge=1, description="Prompts per Generate")
    max_n: int = Field(default=64, ge=1, description="Samples per prompt (sampling.n)")
    max_sequences_per_request: int = Field(
        default=512, ge=1, description="prompts x n of one Generate/GenerateStream call"
    )
    max_prompt_bytes: int = Field(
        default=1 * MiB,
        ge=1,
        description="UTF-8 bytes of one prompt (text, or all text of its messages); also "
        "capped at 32 bytes per token of the model's context window",
    )
    max_request_bytes: int = Field(
        default=4 * MiB, ge=1, description="Prompt bytes of all prompts of one request"
    )
    max_completion_tokens: int = Field(
        default=32768,
        ge=1,
        description="Largest sampling.max_tokens (also always below the context length)",
    )
    max_stop_strings: int = Field(
        default=16, ge=0, description="sampling.stop (and stop_token_ids) entries"
    )
    max_stop_bytes: int = Field(default=256, ge=1, description="UTF-8 bytes of one stop string")
    max_messages: int = Field(default=1024, ge=1, description="Chat messages (turns) per prompt")
    max_content_parts: int = Field(
        default=4096, ge=1, description="Content parts of all messages of one prompt"
    )
    max_images_per_request: int = Field(default=16, ge=0, description="Image parts per request")
    max_chat_template_kwargs: int = Field(
        default=32, ge=0, description="Keys of chat_template_kwargs"
    )
    max_episodes_per_request: int = Field(
        default=1024,
        ge=1,
        description="seeds x episodes_per_seed of one RunEpisodes (and of one StreamEpisodes "
        "pass when not continuous); also caps the number of seeds",
    )
    max_episode_turns: int = Field(default=1000, ge=1, description="spec.max_turns")
    max_weights_bytes: int | None = Field(
        default=None,
        ge=1,
        description="Largest UpdateWeights (streamed or checkpoint); default: the served "
        "model's parameters as float32 plus 25% (vllm backend: 256 GiB)",
    )

    # ----- scheduling (transformers engine) -----
    max_prefill_tokens_per_step: int = Field(
        default=2048,
        ge=16,
        description="Prompt tokens prefilled per engine step, shared round-robin across "
        "clients; longer prompts are prefilled in chunks",
    )
    prefix_cache_mb: int = Field(
        default=512,
        ge=0,
        description="Keys and values of finished sequences kept for prompts that start with "
        "their tokens (an episode's next turn, a group's samples); 0 = off",
    )
    max_queued_sequences: int = Field(
        default=2048,
        ge=1,
        description="Sequences admitted but not in the running batch; beyond it new calls "
        "get RESOURCE_EXHAUSTED with RetryInfo",
    )
    max_queued_sequences_per_client: int = Field(
        default=1024,
        ge=1,
        description="The same bound for one client (x-client-id metadata, else peer host)",
    )
    overload_retry_after_s: float = Field(
        default=2.0, gt=0, description="RetryInfo delay sent with RESOURCE_EXHAUSTED"
    )
    drain_retry_after_s: float = Field(
        default=1.0,
        gt=0,
        description="RetryInfo delay of the UNAVAILABLE that ends long calls on SIGTERM",
    )

    @model_validator(mode="after")
    def _queues_hold_a_request(self) -> RolloutSettings:
        if self.max_queued_sequences_per_client < self.max_sequences_per_request:
            raise ValueError(
                "max_queued_sequences_per_client must be >= max_sequences_per_request "
                "(else the largest allowed request could never be admitted)"
            )
        if self.max_queued_sequences < self.max_queued_sequences_per_client:
            raise ValueError("max_queued_sequences must be >= max_queued_sequences_per_client")
        return self

    def resolved_envfarm_token(self) -> str | None:
        token = peer_secret(self.envfarm_token, self.envfarm_token_file)
        return token if token is not None else self.resolved_token()  # one local-stack token
