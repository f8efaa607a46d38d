"""envfarm's settings: `GANTRY_ENVFARM_<FIELD>` env vars over the shared runtime fields."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr

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
    # ----- scale-out (docs/deploy.md "Scaling envfarm") -----
    replica_name: str = Field(
        default="",
        max_length=63,
        pattern=r"^([a-z0-9]([-a-z0-9]*[a-z0-9])?)?$",
        description="This replica's stable name, written into every session id it creates "
        "(the chart sets the StatefulSet pod name); empty = the host name. Replicas of one "
        "farm need distinct names",
    )
    drain_timeout_s: float = Field(
        default=0.0,
        ge=0,
        description="On SIGTERM (scale-down), refuse new sessions and wait up to this long "
        "for the live ones to end before the in-flight drain (grace_period_s) starts; 0 = "
        "end them at once (local stacks); the chart sets envfarm.sessions.drainSeconds",
    )
    max_batch_items: int = Field(default=4096, ge=1, description="Largest StepBatch")
    heap_keep_bytes: int = Field(
        default=256 * 1024 * 1024,
        ge=0,
        description="Freed memory the process keeps for reuse (glibc malloc): buffers up to "
        "32 MiB come from the heap, so raw-frame replies do not page-fault in fresh memory "
        "on every copy; 0 leaves malloc's defaults",
    )
    frame_region_bytes: int = Field(
        default=256 * 1024 * 1024,
        ge=0,
        description="Shared memory (reserved when a region is made) all frame regions may "
        "take together: raw frames for clients on this host travel there instead of in the "
        "replies; 0 turns frame regions off",
    )
    max_frame_regions: int = Field(
        default=256,
        ge=0,
        description="Frame regions alive at once (each holds a file descriptor until its "
        "first use); 0 turns them off",
    )
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
    sandbox_backend: str = Field(
        default="bubblewrap",
        description="Sandbox of terminal and notebook tasks: bubblewrap, kubernetes, docker, "
        "or subprocess (unsafe: trusted tasks only)",
    )
    # ----- sandboxes (gantry.envfarm.sandbox; docs/envfarm.md "Sandboxes") -----
    sandbox_uid: int = Field(
        default=61000,
        ge=1,
        le=0xFFFFFFFE - 0xFFFF,
        description="First host uid (and gid) of bubblewrap sandboxes when envfarm is root; "
        "each live sandbox holds its own uid of the range",
    )
    sandbox_uid_count: int = Field(
        default=2048,
        ge=1,
        le=0x10000,
        description="Size of the sandbox uid range (sandbox_uid onwards): bubblewrap "
        "sandboxes live at once on this host, warm pool included; past it a session "
        "start is UNAVAILABLE",
    )
    sandbox_uid_lock_dir: Path | None = Field(
        default=None,
        description="Folder of the per-uid lock files every envfarm of the host shares "
        "(default /run/gantry-sandbox-uids, else <tmp>/gantry-sandbox-uids)",
    )
    sandbox_root: Path | None = Field(
        default=None,
        description="Folder of local sandbox workspaces (default <tmp>/gantry-sandboxes); "
        "the sandbox uid must be able to search every folder above it",
    )
    sandbox_python: str = Field(
        default="/usr/bin/python3",
        description="Interpreter of the in-sandbox agent (bubblewrap), visible inside",
    )
    sandbox_proc: bool | None = Field(
        default=None,
        description="Mount /proc in bubblewrap sandboxes; unset = probe, falling back to "
        "the degraded no-/proc mode where it cannot be mounted",
    )
    sandbox_image: str = Field(
        default="python:3.11-slim",
        description="Image of docker and kubernetes sandboxes (a task may name its own)",
    )
    sandbox_namespace: str = Field(
        default="gantry-sandboxes", description="Kubernetes namespace of sandbox Pods"
    )
    sandbox_runtime_class: str = Field(
        default="", description="Kubernetes runtimeClassName of sandbox Pods (gvisor, kata...)"
    )
    sandbox_warm_pool: int = Field(
        default=2,
        ge=0,
        le=256,
        description="Sandboxes (bubblewrap, kubernetes) kept started and idle",
    )
    sandbox_cpu: str = Field(default="1", description="CPU limit of a Kubernetes sandbox Pod")
    sandbox_memory_bytes: int = Field(
        default=1 << 30, ge=16 << 20, description="Memory limit of a Kubernetes sandbox Pod"
    )
    sandbox_docker_url: str = Field(
        default="unix:///var/run/docker.sock", description="Docker Engine API address"
    )

    # ----- terminal tasks (Endless Terminals; docs/envfarm.md) -----
    terminal_enabled: bool = Field(
        default=True, description="Serve terminal tasks (the built-in suite and generated ones)"
    )
    terminal_suites_dir: Path | None = Field(
        default=None,
        description="Folder keeping generated task suites (one JSON file each) across "
        "restarts; unset = in memory only",
    )
    terminal_output_bytes: int = Field(
        default=16384, ge=256, le=1 << 20, description="Command output kept per step"
    )
    terminal_python: str = Field(
        default="python3", description="Python inside the sandbox that runs the task tests"
    )
    max_generated_tasks: int = Field(
        default=1000, ge=1, description="Largest GenerateTasks num_tasks"
    )
    max_generation_jobs: int = Field(
        default=2, ge=1, description="GenerateTasks operations running at once"
    )
    # ----- notebook tasks (DSGym; docs/envfarm.md "Notebook tasks") -----
    notebook_enabled: bool = Field(
        default=True, description="Serve notebook (DSGym) data-science tasks"
    )
    notebook_kernel: Literal["auto", "jupyter", "repl"] = Field(
        default="auto",
        description="Kernel of notebook sessions: jupyter (ipykernel over IPC), repl (plain "
        "pipe REPL, light), auto (jupyter, falling back to repl)",
    )
    generator_target: str = Field(
        default="",
        description="Default text generator of GenerateTasks MODE_MODEL: a RolloutService "
        "address (host:port, Generate) or an OpenAI-compatible base URL (http(s)://.../v1)",
    )
    generator_peers: dict[str, str] = Field(
        default_factory=dict,
        description="Named extra generators a request may pick with generator_target "
        "(env: JSON); no other address is ever dialled",
    )
    generator_model: str = Field(
        default="", description="Model name sent to the generator (empty = its default)"
    )
    generator_api_key: SecretStr | None = Field(
        default=None, description="Bearer key for an OpenAI-compatible generator"
    )
    rollout_target: str = Field(
        default="",
        description="RolloutService playing the solvability filter (RunEpisodes); its "
        "envfarm target must be this server",
    )
    rollout_peers: dict[str, str] = Field(
        default_factory=dict, description="Named extra rollout targets (solver_target)"
    )
    rollout_token: SecretStr | None = Field(
        default=None, description="Bearer token for rollout and gRPC generators"
    )
