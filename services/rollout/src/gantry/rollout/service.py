"""The rollout service: generation, agent episodes and weight updates over gRPC."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING, ClassVar

import grpc

from gantry.core.inference import InferenceModel
from gantry.core.server import Service
from gantry.core.settings import ServiceSettings
from gantry.proto.common.v1 import episode_pb2
from gantry.proto.rollout.v1 import rollout_pb2, rollout_pb2_grpc
from gantry.rollout.settings import TINY_MODEL, RolloutSettings

if TYPE_CHECKING:  # the model stack (torch, transformers) loads when a service is built
    import torch
    from torch import nn

    from gantry.rollout.generator import GenerationMetrics, Generator
    from gantry.rollout.openai_http import OpenAIServer
    from gantry.rollout.vlm import VlmGenerator

log = logging.getLogger("gantry.rollout")
SERVICE_NAME = rollout_pb2.DESCRIPTOR.services_by_name["RolloutService"].full_name


def load_generator(
    settings: RolloutSettings, metrics: GenerationMetrics | None = None
) -> Generator:
    """Build the configured backend (blocking: loads the model)."""
    from gantry.models.names import resolve_model_path

    if settings.model_path == TINY_MODEL:
        log.warning("serving a tiny random model (model_path=tiny): for development only")
    # A model name ("tiny", "smollm2-135m-instruct") becomes its cached checkpoint directory.
    path = resolve_model_path(settings.model_path)
    if settings.backend == "vllm":
        from gantry.rollout.vllm_backend import VllmGenerator

        return VllmGenerator.from_settings(
            settings.model_copy(update={"model_path": path}), metrics
        )
    from gantry.models.loading import load_causal_lm
    from gantry.rollout.generator import TransformersGenerator

    device = engine_device(settings.device)  # before the load: a missing GPU fails fast
    bundle = load_causal_lm(path, dtype=settings.dtype)
    bundle.model.to(device)  # type: ignore[arg-type]
    if settings.attn_implementation:
        bundle.model.set_attn_implementation(settings.attn_implementation)
    fp8_layers = apply_precision(bundle.model, settings.precision_recipe)
    if fp8_layers:
        log.info("serving %d linear layers in FP8 (%s)", fp8_layers, settings.precision_recipe)
    return TransformersGenerator(
        bundle,
        max_batch_size=settings.max_batch_size,
        max_prefill_tokens=settings.max_prefill_tokens_per_step,
        max_queued=settings.max_queued_sequences,
        max_queued_per_client=settings.max_queued_sequences_per_client,
        retry_after_s=settings.overload_retry_after_s,
        metrics=metrics,
        prefix_cache_bytes=settings.prefix_cache_mb * 2**20,
    )


def engine_device(name: str) -> torch.device:
    """The transformers engine's device; asking for a GPU this host lacks is an error."""
    import torch

    device = torch.device(name)
    if device.type != "cuda":
        return device
    if not torch.cuda.is_available():
        raise ValueError(
            f"rollout device={name!r}, but torch {torch.__version__} sees no CUDA device "
            "(set GANTRY_ROLLOUT_DEVICE=cpu, or run on a CUDA host with a CUDA build of torch)"
        )
    count = torch.cuda.device_count()
    if device.index is not None and device.index >= count:
        raise ValueError(f"rollout device={name!r}, but this host has {count} CUDA device(s)")
    return device


def apply_precision(model: nn.Module, recipe: str) -> int:
    """Convert the model to the recipe's rollout forward; return the FP8 layer count."""
    from gantry.kernels.recipes import get_recipe

    return len(get_recipe(recipe).apply(model, "rollout"))


def load_vlm_generator(path: str) -> VlmGenerator:
    from gantry.models.loading import load_vlm
    from gantry.models.names import resolve_model_path
    from gantry.rollout.vlm import VlmGenerator

    return VlmGenerator(load_vlm(resolve_model_path(path, kind="vlm")))


class RolloutService(Service[RolloutSettings]):
    name: ClassVar[str] = "rollout"
    settings_type: ClassVar[type[ServiceSettings]] = RolloutSettings

    def __init__(self, settings: RolloutSettings) -> None:
        super().__init__(settings)
        from gantry.rollout.episodes import EpisodeRunner
        from gantry.rollout.generation import Generation
        from gantry.rollout.generator import GenerationMetrics
        from gantry.rollout.model import ServedModel

        self.model = ServedModel(
            settings, settings.storage_root("checkpoints", settings.checkpoints_root)
        )
        self.generation = Generation(self.model, self, settings.drain_retry_after_s)
        self.episodes = EpisodeRunner(self.model, self, settings)
        self.openai: OpenAIServer | None = None
        self.generation_metrics = GenerationMetrics(self.registry)

    @property
    def generator(self) -> Generator | None:
        """The loaded text generator (None before start())."""
        return self.model.loaded

    def add_to_server(self, server: grpc.aio.Server) -> Sequence[str]:
        from gantry.rollout.servicer import RolloutServicer

        servicer = RolloutServicer(self.model, self.generation, self, self.episodes)
        rollout_pb2_grpc.add_RolloutServiceServicer_to_server(servicer, server)
        return [SERVICE_NAME]

    def inference_models(self) -> Sequence[InferenceModel]:
        """Text generation as an Open Inference Protocol model (gantry.rollout.oip)."""
        from gantry.rollout.oip import TextGenerationModel

        return [TextGenerationModel(self)]

    async def start(self) -> None:
        if self.settings.openai_port:
            # Up before the model loads, like the gRPC port: it answers 503 until ready.
            from gantry.core.metrics import HttpMetrics
            from gantry.rollout.openai_http import OpenAIServer

            self.openai = OpenAIServer(
                self.settings, self.model, self.generation, self.gate, HttpMetrics(self.registry)
            )
            await self.openai.start()
        if self.settings.torch_threads:
            import torch

            torch.set_num_threads(self.settings.torch_threads)
        self.model.load(
            await self.run_blocking(load_generator, self.settings, self.generation_metrics)
        )
        if self.settings.vlm_model_path:
            self.model.attach_vlm(
                await self.run_blocking(load_vlm_generator, self.settings.vlm_model_path)
            )
        # Before the service reports ready: no request sees weights older than published.
        await self.model.catch_up(self.run_blocking)

    async def stop(self) -> None:
        if self.openai is not None:
            await self.openai.stop()
        await self.episodes.close()
        await self.model.close()

    @classmethod
    def demo_call(cls, channel: grpc.Channel) -> str:
        stub = rollout_pb2_grpc.RolloutServiceStub(channel)
        info = stub.GetModelInfo(rollout_pb2.GetModelInfoRequest())
        request = rollout_pb2.GenerateRequest(
            input=rollout_pb2.GenerationInput(
                prompts=[rollout_pb2.Prompt(text="The agent looked at the maze and")],
            )
        )
        request.input.sampling.max_tokens = 8
        request.input.sampling.n = 2
        request.input.sampling.seed = 0
        reply = stub.Generate(request)
        completions = reply.results[0].completions
        tokens = sum(len(c.tokens.token_ids) for c in completions)
        summary = (
            f"{info.backend} backend, {info.model_name}: {len(completions)} samples, "
            f"{tokens} tokens with logprobs, policy v{reply.policy_version}"
        )
        spec = rollout_pb2.EpisodeSpec(env_id="visgym/maze_2d", seeds=[0], max_turns=3)
        spec.settings.observation_mode = episode_pb2.OBSERVATION_MODE_TEXT
        spec.sampling.max_tokens = 8
        episodes = stub.RunEpisodes(rollout_pb2.RunEpisodesRequest(spec=spec))
        if episodes.errors:
            return f"{summary}; episode failed: {episodes.errors[0].status.message}"
        (trajectory,) = episodes.trajectories
        return (
            f"{summary}; maze_2d episode via envfarm: {len(trajectory.turns)} turns, "
            f"reward {trajectory.final_reward:.1f}"
        )
