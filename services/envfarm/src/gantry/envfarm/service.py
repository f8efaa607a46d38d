"""The envfarm service: VisGym environments served as sessions over gRPC."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import ClassVar

import grpc

from gantry.core.server import Service
from gantry.core.settings import ServiceSettings
from gantry.envfarm.sessions import Session, SessionManager, SessionMetrics
from gantry.envfarm.settings import EnvFarmSettings
from gantry.proto.envfarm.v1 import envfarm_pb2, envfarm_pb2_grpc

log = logging.getLogger("gantry.envfarm")
SERVICE_NAME = envfarm_pb2.DESCRIPTOR.services_by_name["EnvFarmService"].full_name


class EnvFarmService(Service[EnvFarmSettings]):
    name: ClassVar[str] = "envfarm"
    settings_type: ClassVar[type[ServiceSettings]] = EnvFarmSettings

    def __init__(self, settings: EnvFarmSettings) -> None:
        super().__init__(settings)
        self.sessions = SessionManager(
            max_sessions=settings.max_sessions,
            idle_timeout_s=settings.session_idle_timeout_s,
            lifetime_s=settings.session_max_lifetime_s,
            on_close=self._closed,
            metrics=SessionMetrics(self.registry),
        )

    @staticmethod
    def _closed(session: Session, reason: str) -> None:
        log.info("session %s closed: %s", session.id, reason, extra={"env_id": session.env_id})

    def add_to_server(self, server: grpc.aio.Server) -> Sequence[str]:
        from gantry.envfarm.servicer import EnvFarmLimits, EnvFarmServicer

        servicer = EnvFarmServicer(
            self,
            self.sessions,
            EnvFarmLimits.from_settings(self.settings),
            dataset_dir=self.settings.dataset_dir,
        )
        envfarm_pb2_grpc.add_EnvFarmServiceServicer_to_server(servicer, server)
        return [SERVICE_NAME]

    async def start(self) -> None:
        self.sessions.start_reaper(self.settings.reap_interval_s)

    async def stop(self) -> None:
        await self.sessions.stop()

    @classmethod
    def demo_call(cls, channel: grpc.Channel) -> str:
        """Play maze_2d (hard) to the goal with the solver's plan, through the RPCs."""
        from gantry.envfarm.client import RemoteEnv

        listed = envfarm_pb2_grpc.EnvFarmServiceStub(channel).ListEnvironments(
            envfarm_pb2.ListEnvironmentsRequest()
        )
        with RemoteEnv(channel, "visgym/maze_2d", difficulty="hard") as env:
            env.reset(seed=0)
            plan = env.solve()
            reward = 0.0
            for action in plan:
                _, reward, terminated, truncated, _ = env.step(action)
                if terminated or truncated:
                    break
        return (
            f"{len(listed.environments)} environments; maze_2d/hard seed 0 solved "
            f"in {len(plan)} steps, reward {reward:.1f}"
        )
