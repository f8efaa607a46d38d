"""The rollout service: generation, agent episodes and weight updates over gRPC."""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from typing import Any, ClassVar

import grpc

from gantry.core.server import Service
from gantry.core.settings import ServiceSettings
from gantry.core.storage import StorageRoot
from gantry.proto.common.v1 import episode_pb2
from gantry.proto.rollout.v1 import rollout_pb2, rollout_pb2_grpc
from gantry.rollout.limits import RequestLimits
from gantry.rollout.settings import TINY_MODEL, RolloutSettings

log = logging.getLogger("gantry.rollout")
VLLM_MAX_WEIGHTS_BYTES = 256 * 2**30
SERVICE_NAME = rollout_pb2.DESCRIPTOR.services_by_name["RolloutService"].full_name


def load_generator(settings: RolloutSettings) -> Any:
    """Build the configured backend (blocking: loads the model)."""
    if settings.backend == "vllm":
        from gantry.rollout.vllm_backend import VllmGenerator

        return VllmGenerator.from_settings(settings)
    from gantry.models.loading import load_causal_lm
    from gantry.rollout.generator import TransformersGenerator

    path = settings.model_path
    if path == TINY_MODEL:
        from gantry.models.tiny import tiny_model_dir

        log.warning("serving a tiny random model (model_path=tiny): for development only")
        path = str(tiny_model_dir("causal_lm"))
    bundle = load_causal_lm(path, dtype=settings.dtype)
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
    )


def apply_precision(model: Any, recipe: str) -> int:
    """Convert the model to the recipe's rollout forward; return the FP8 layer count."""
    from gantry.kernels.recipes import get_recipe

    return len(get_recipe(recipe).apply(model, "rollout"))


def load_vlm_generator(path: str) -> Any:
    from gantry.models.loading import load_vlm
    from gantry.rollout.vlm import VlmGenerator

    if path == TINY_MODEL:
        from gantry.models.tiny import tiny_model_dir

        path = str(tiny_model_dir("vlm"))
    return VlmGenerator(load_vlm(path))


class RolloutService(Service[RolloutSettings]):
    name: ClassVar[str] = "rollout"
    settings_type: ClassVar[type[ServiceSettings]] = RolloutSettings

    def __init__(self, settings: RolloutSettings) -> None:
        super().__init__(settings)
        self.generator: Any = None
        self.vlm: Any = None
        self.run_id = ""
        self.weights_time: float | None = None
        self.model_name = settings.model_name or settings.model_path
        self.checkpoints: StorageRoot = settings.storage_root(
            "checkpoints", settings.checkpoints_root
        )
        self.limits = RequestLimits(settings, context_length=2)  # set from the model in start()
        self.max_weights_bytes = settings.max_weights_bytes or VLLM_MAX_WEIGHTS_BYTES
        from gantry.rollout.episodes import EpisodeRunner

        self.episodes = EpisodeRunner(self)

    def weights_updated(self, run_id: str) -> None:
        self.run_id, self.weights_time = run_id or self.run_id, time.time()

    def add_to_server(self, server: grpc.aio.Server) -> Sequence[str]:
        from gantry.rollout.servicer import RolloutServicer

        rollout_pb2_grpc.add_RolloutServiceServicer_to_server(RolloutServicer(self), server)
        return [SERVICE_NAME]

    async def start(self) -> None:
        if self.settings.torch_threads:
            import torch

            torch.set_num_threads(self.settings.torch_threads)
        self.generator = await self.run_blocking(load_generator, self.settings)
        self.limits = RequestLimits(self.settings, context_length=self.generator.context_length)
        if self.settings.max_weights_bytes is None:
            self.max_weights_bytes = getattr(
                self.generator, "max_weights_bytes", VLLM_MAX_WEIGHTS_BYTES
            )
        if self.settings.vlm_model_path:
            self.vlm = await self.run_blocking(load_vlm_generator, self.settings.vlm_model_path)

    async def stop(self) -> None:
        await self.episodes.close()
        if self.generator is not None:
            await self.generator.close()
        if self.vlm is not None:
            await self.vlm.close()

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
