"""The trainer service: its lifecycle. Runs themselves are the orchestrator's job."""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar

import grpc

from gantry.core.peers import Peers
from gantry.core.server import Service
from gantry.core.settings import ServiceSettings
from gantry.proto.trainer.v1 import trainer_pb2, trainer_pb2_grpc
from gantry.trainer.limits import Capacity
from gantry.trainer.orchestrator import RunOperations, RunOrchestrator
from gantry.trainer.paths import Roots
from gantry.trainer.settings import TrainerSettings

SERVICE_NAME = trainer_pb2.DESCRIPTOR.services_by_name["TrainerService"].full_name


class TrainerService(Service[TrainerSettings]):
    name: ClassVar[str] = "trainer"
    settings_type: ClassVar[type[ServiceSettings]] = TrainerSettings

    def __init__(self, settings: TrainerSettings) -> None:
        super().__init__(settings)
        self.operations: RunOperations = RunOperations(prefix=f"{self.name}/operations")
        self.roots = Roots.from_settings(settings)
        self.rollout_peers = Peers("rollout", settings.rollout_target, settings.rollout_peers)
        self.verifier_peers = Peers("verifier", settings.verifier_target, settings.verifier_peers)
        self.orchestrator = RunOrchestrator(
            settings=settings,
            roots=self.roots,
            rollout_peers=self.rollout_peers,
            verifier_peers=self.verifier_peers,
            operations=self.operations,
            runtime=self,
        )

    def add_to_server(self, server: grpc.aio.Server) -> Sequence[str]:
        from gantry.trainer.servicer import TrainerServicer

        servicer = TrainerServicer(
            runtime=self,
            orchestrator=self.orchestrator,
            runs=self.orchestrator.runs,
            operations=self.operations,
            roots=self.roots,
            rollout_peers=self.rollout_peers,
            capacity=Capacity.from_settings(self.settings),
        )
        trainer_pb2_grpc.add_TrainerServiceServicer_to_server(servicer, server)
        return [SERVICE_NAME]

    async def start(self) -> None:
        import torch

        if self.settings.torch_threads:
            torch.set_num_threads(self.settings.torch_threads)
        if self.settings.deterministic:
            torch.use_deterministic_algorithms(True, warn_only=True)
        await self.orchestrator.start()

    async def stop(self) -> None:
        await self.orchestrator.stop()

    @classmethod
    def demo_call(cls, channel: grpc.Channel) -> str:
        stub = trainer_pb2_grpc.TrainerServiceStub(channel)
        runs = stub.ListRuns(trainer_pb2.ListRunsRequest(page_size=5))
        states = [trainer_pb2.RunState.Name(r.state).removeprefix("RUN_STATE_") for r in runs.runs]
        return f"{len(runs.runs)} recent runs" + (f": {', '.join(states)}" if states else "")
