"""The vla service: TwinBrainVLA action chunks over gRPC (Act, StreamControl)."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING, ClassVar

import grpc
import numpy as np

from gantry.core.codecs import tensor_from_numpy
from gantry.core.server import Service
from gantry.core.settings import ServiceSettings
from gantry.proto.vla.v1 import vla_pb2, vla_pb2_grpc
from gantry.vla.settings import VlaSettings

log = logging.getLogger("gantry.vla")
SERVICE_NAME = vla_pb2.DESCRIPTOR.services_by_name["VlaService"].full_name

if TYPE_CHECKING:  # the runner imports torch; the module loads without it
    from gantry.vla.runner import PolicyRunner


class VlaService(Service[VlaSettings]):
    name: ClassVar[str] = "vla"
    settings_type: ClassVar[type[ServiceSettings]] = VlaSettings

    def __init__(self, settings: VlaSettings) -> None:
        super().__init__(settings)
        self.runner: PolicyRunner | None = None

    def add_to_server(self, server: grpc.aio.Server) -> Sequence[str]:
        from gantry.vla.servicer import VlaServicer

        vla_pb2_grpc.add_VlaServiceServicer_to_server(VlaServicer(self, self.loaded), server)
        return [SERVICE_NAME]

    def loaded(self) -> PolicyRunner:
        """The runner `start()` built; no call reaches a servicer before (the call gate)."""
        if self.runner is None:
            raise RuntimeError("the policy is used before start() loaded it")
        return self.runner

    async def start(self) -> None:
        from gantry.vla.runner import PolicyRunner, load_policy

        policy = await self.run_blocking(load_policy, self.settings)
        self.runner = PolicyRunner(policy, self.settings)
        log.info(
            "vla ready: %s policy, chunk %d x %d on %s",
            policy.config.architecture,
            policy.config.chunk_size,
            policy.config.action_dim,
            self.runner.backend,
        )

    async def stop(self) -> None:
        if self.runner is not None:
            await self.run_blocking(self.runner.close)
        self.runner = None

    @classmethod
    def demo_call(cls, channel: grpc.Channel) -> str:
        stub = vla_pb2_grpc.VlaServiceStub(channel)
        info = stub.GetPolicyInfo(vla_pb2.GetPolicyInfoRequest())
        cameras = [
            vla_pb2.CameraFrame(
                camera=cam.name,
                raw=tensor_from_numpy(np.zeros((cam.height, cam.width, 3), dtype=np.uint8)),
            )
            for cam in info.cameras
        ]
        templates = [t for task in info.tasks for t in task.instruction_templates]
        reply = stub.Act(
            vla_pb2.ActRequest(
                observation=vla_pb2.RobotObservation(
                    cameras=cameras,
                    state=tensor_from_numpy(np.zeros(info.state_dim, dtype=np.float32)),
                    instruction=templates[0] if templates else "reach the goal position",
                ),
                noise_seed=0,
            )
        )
        ms = reply.timing.total.ToNanoseconds() / 1e6
        return (
            f"Act: policy {info.policy_id} ({info.architecture}) returned a "
            f"{list(reply.actions.shape)} action chunk in {ms:.1f} ms"
        )
