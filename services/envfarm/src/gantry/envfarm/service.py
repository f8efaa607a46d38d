"""The envfarm service: VisGym environments and sandboxed task families (terminal,
notebook) served as sessions over gRPC."""

from __future__ import annotations

import logging
import socket
from collections.abc import Sequence
from typing import TYPE_CHECKING, ClassVar

import grpc

from gantry.core.peers import Peers
from gantry.core.routing import Owner, valid_replica_name
from gantry.core.server import Service
from gantry.core.settings import ServiceSettings
from gantry.envfarm.encoding import MAX_FRAME_BYTES
from gantry.envfarm.family import Families, TaskFamily
from gantry.envfarm.heap import keep_large_buffers
from gantry.envfarm.regions import FrameRegions
from gantry.envfarm.sandbox import SandboxBackend, backend_from_settings
from gantry.envfarm.sessions import Session, SessionManager, SessionMetrics
from gantry.envfarm.settings import EnvFarmSettings
from gantry.proto.envfarm.v1 import envfarm_pb2, envfarm_pb2_grpc

if TYPE_CHECKING:
    from gantry.envfarm.terminal.generate import TaskSuites

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
            owner=Owner.start(replica_name(settings)),
        )
        self.frame_regions = FrameRegions(
            max_regions=settings.max_frame_regions,
            max_bytes=settings.frame_region_bytes,
            max_slots=settings.max_batch_items,
            frame_bytes=MAX_FRAME_BYTES,
            idle_s=settings.session_idle_timeout_s,
        )
        self._backend: SandboxBackend | None = None
        self.families = Families(self._task_families())

    def sandbox_backend(self) -> SandboxBackend:
        """The configured sandbox backend (made once; families probe it on first use)."""
        if self._backend is None:
            self._backend = backend_from_settings(self.settings)  # all sandbox_* settings
        return self._backend

    def _task_families(self) -> list[TaskFamily]:
        families: list[TaskFamily] = []
        if self.settings.terminal_enabled:
            from gantry.envfarm.terminal.family import TerminalFamily
            from gantry.envfarm.terminal.suite import SuiteStore, core_suite

            families.append(
                TerminalFamily(
                    SuiteStore(core_suite(), folder=self.settings.terminal_suites_dir),
                    self.sandbox_backend,
                    output_bytes=self.settings.terminal_output_bytes,
                    python=self.settings.terminal_python,
                )
            )
        if self.settings.notebook_enabled:
            from gantry.envfarm.notebook.family import NotebookFamily

            families.append(
                NotebookFamily(self.sandbox_backend, kernel=self.settings.notebook_kernel)
            )
        return families

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
            families=self.families,
            suites=self._task_suites(),
            frame_regions=self.frame_regions,
        )
        envfarm_pb2_grpc.add_EnvFarmServiceServicer_to_server(servicer, server)
        return [SERVICE_NAME]

    def _task_suites(self) -> TaskSuites | None:
        from gantry.envfarm.terminal.family import TerminalFamily
        from gantry.envfarm.terminal.generate import GeneratorPeers, TaskSuites

        terminal = next((f for f in self.families.all if isinstance(f, TerminalFamily)), None)
        if terminal is None:
            return None
        s = self.settings
        token = s.rollout_token.get_secret_value() if s.rollout_token else s.resolved_token()
        peers = GeneratorPeers(
            generators=Peers("generator", s.generator_target, s.generator_peers),
            rollout=Peers("rollout", s.rollout_target, s.rollout_peers),
            model=s.generator_model,
            api_key=s.generator_api_key.get_secret_value() if s.generator_api_key else None,
            token=token,
        )
        return TaskSuites(
            terminal,
            self.operations,
            self,
            max_tasks=s.max_generated_tasks,
            max_jobs=s.max_generation_jobs,
            peers=peers,
        )

    async def start(self) -> None:
        keep_large_buffers(self.settings.heap_keep_bytes)
        self.sessions.start_reaper(self.settings.reap_interval_s, also=self.frame_regions.reap)

    async def drain(self) -> None:
        """Scale-down: no new sessions; the live ones end (or expire) within the bound."""
        left = await self.sessions.drain(self.settings.drain_timeout_s)
        if left:
            log.warning("drain bound reached: %d sessions end with the replica", left)

    async def stop(self) -> None:
        await self.sessions.stop()
        self.frame_regions.close_all()
        self.families.close()

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


def replica_name(settings: EnvFarmSettings) -> str:
    """The configured name, else the host name (a pod's name in Kubernetes)."""
    if settings.replica_name:
        return settings.replica_name
    host = socket.gethostname().split(".")[0].lower()
    return host if valid_replica_name(host) else "envfarm"
