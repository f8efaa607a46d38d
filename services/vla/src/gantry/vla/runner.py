"""The served policy: loading it, describing it, and running one inference at a time.

Model work runs on one dedicated thread (a policy is one set of weights; concurrent
forwards would only contend for the same cores or GPU). Admission is counted: at most
`max_pending` inferences wait or run, more are RESOURCE_EXHAUSTED with a RetryInfo.
"""

from __future__ import annotations

import asyncio
import contextvars
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from numpy.typing import NDArray

from gantry.core.errors import ResourceExhausted
from gantry.proto.vla.v1 import vla_pb2
from gantry.vla import sim_spec
from gantry.vla.model.policy import PolicyConfig, VlaPolicy
from gantry.vla.observation import Observation, ObservationSpec
from gantry.vla.settings import VlaSettings


def pick_device(name: str) -> str:
    if name == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return name


def fresh_tiny_policy(architecture: str) -> VlaPolicy:
    """An untrained policy on the tiny random VLM (local stack, tests)."""
    from gantry.models.tiny.vlm import build_tiny_vlm

    with tempfile.TemporaryDirectory(prefix="gantry-vla-") as tmp:
        vlm = build_tiny_vlm(Path(tmp) / "vlm", image_size=64, patch_size=16)
        config = PolicyConfig(architecture=architecture)  # type: ignore[arg-type]
        config.info["tasks"] = sim_spec.TASKS
        config.info["untrained"] = True
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(0)
            return VlaPolicy.from_vlm(vlm, config).eval()


def load_policy(settings: VlaSettings) -> VlaPolicy:
    if settings.torch_threads:
        torch.set_num_threads(settings.torch_threads)
    device = pick_device(settings.device)
    if settings.checkpoint:
        return VlaPolicy.load(settings.checkpoint, device=device)
    return fresh_tiny_policy(settings.architecture).to(device)


@dataclass
class Inference:
    actions: NDArray[np.float32]  # [H, D]
    preprocess_s: float
    inference_s: float


class PolicyRunner:
    def __init__(self, policy: VlaPolicy, settings: VlaSettings) -> None:
        self.policy = policy
        self.config = policy.config
        self.spec = ObservationSpec(
            cameras=tuple(policy.config.cameras),
            state_dim=policy.config.state_dim,
            max_image_pixels=settings.max_image_pixels,
            max_image_bytes=settings.max_image_bytes,
            max_instruction_bytes=settings.max_instruction_bytes,
            max_denoising_steps=settings.max_denoising_steps,
        )
        self.max_pending = settings.max_pending_acts
        self.pending = 0
        self.executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="vla-model")
        self.backend = f"torch-{policy.device.type}"

    def _infer(self, obs: Observation, steps: int, seed: int | None) -> Inference:
        start = time.perf_counter()
        prefix, state = self.policy.prepare(obs.images[None], [obs.instruction], obs.state[None])
        mid = time.perf_counter()
        chunk = self.policy.act(prefix, state, steps=steps, seeds=[seed])
        actions = chunk[0].float().cpu().numpy()
        return Inference(actions, mid - start, time.perf_counter() - mid)

    async def infer(self, obs: Observation, steps: int, seed: int | None) -> Inference:
        if self.pending >= self.max_pending:
            raise ResourceExhausted(
                f"{self.pending} inferences are already waiting for the policy",
                retry_after_s=0.05,
            )
        self.pending += 1
        try:
            context = contextvars.copy_context()
            return await asyncio.get_running_loop().run_in_executor(
                self.executor, context.run, self._infer, obs, steps, seed
            )
        finally:
            self.pending -= 1

    def close(self) -> None:
        self.executor.shutdown(wait=True, cancel_futures=True)

    def info(self) -> vla_pb2.GetPolicyInfoResponse:
        config = self.config
        info = config.info
        tasks = info.get("tasks", {})
        policy_id = info.get("policy_id") or (
            f"{config.architecture}-untrained" if info.get("untrained") else config.architecture
        )
        right = f"{config.base_model_id} (trainable right stream, +state token)"
        return vla_pb2.GetPolicyInfoResponse(
            policy_id=policy_id,
            action_dim=config.action_dim,
            chunk_size=config.chunk_size,
            state_dim=config.state_dim,
            cameras=[
                vla_pb2.CameraSpec(
                    name=name,
                    width=config.image_size,
                    height=config.image_size,
                    required=True,
                    view=sim_spec.CAMERA_VIEW if name == sim_spec.CAMERA else "",
                    orientation=sim_spec.CAMERA_ORIENTATION,
                )
                for name in config.cameras
            ],
            frozen_model_id=(
                f"{config.base_model_id} (frozen left stream, K/V only)"
                if config.architecture == "twinbrain"
                else ""
            ),
            trainable_model_id=right,
            action_expert_id=(
                f"flow-matching DiT (width {config.expert_width}, depth {config.expert_depth}, "
                f"conditioned on right layer {config.cond_layer})"
            ),
            num_denoising_steps=config.num_denoising_steps,
            control_hz=float(info.get("control_hz", sim_spec.CONTROL_HZ)),
            action_names=sim_spec.ACTION_NAMES,
            backend=self.backend,
            state_entries=[
                vla_pb2.StateEntry(name=n, unit=u)
                for n, u in zip(sim_spec.STATE_NAMES, sim_spec.STATE_UNITS, strict=True)
            ],
            action_semantics=vla_pb2.ActionSemantics(
                mode=vla_pb2.ACTION_MODE_DELTA,
                range_low=config.action_low,
                range_high=config.action_high,
                units=sim_spec.ACTION_UNITS,
                gripper=sim_spec.GRIPPER_NOTES,
                notes=sim_spec.ACTION_NOTES,
            ),
            tasks=[
                vla_pb2.TaskSpec(name=name, instruction_templates=list(templates))
                for name, templates in sorted(tasks.items())
            ],
            architecture=config.architecture,
        )
