"""Live environment sessions: creation under a cap, per-session locking, expiry.

Each session owns one environment instance. Steps on the same session are serialised
by its lock (a batch may touch many sessions at once, never one session twice). A
session ends when closed, when idle past its TTL, or when older than the hard lifetime;
the reaper closes expired sessions so abandoned clients never leak environments.
Session ids name this replica (`gantry.core.routing.Owner`): another replica's id is
answered with a typed error naming its owner, never a bare NOT_FOUND. A draining replica
(scale-down) refuses new sessions and waits, up to a bound, for its sessions to end.
Live sessions, openings, closings (by reason) and steps are Prometheus series
(`SessionMetrics`), labelled by env id: a fixed set, unlike session ids or seeds.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from gantry.core.errors import FailedPrecondition, ResourceExhausted
from gantry.core.metrics import CollectorRegistry, Counter, Gauge
from gantry.core.routing import Owner, draining_error
from gantry.envfarm.envs.base import VisGymEnv
from gantry.envfarm.family import TaskEpisode

log = logging.getLogger("gantry.envfarm.sessions")

# Why a session ended; also the `reason` label of gantry_envfarm_sessions_closed_total
# (spaces become underscores there).
CLOSED_BY_CLIENT = "client"
IDLE_TIMEOUT = "idle timeout"
LIFETIME_EXCEEDED = "lifetime exceeded"
SERVER_STOPPING = "server stopping"


class SessionMetrics:
    """The farm's session series, on the registry `/metrics` serves."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.live = Gauge(
            "gantry_envfarm_sessions",
            "Live sessions by environment",
            ["env_id"],
            registry=registry,
        )
        self.opened = Counter(
            "gantry_envfarm_sessions_opened",
            "Sessions created, by environment",
            ["env_id"],
            registry=registry,
        )
        self.closed = Counter(
            "gantry_envfarm_sessions_closed",
            "Sessions ended, by reason: client, idle_timeout, lifetime_exceeded, "
            "creation_failed, server_stopping",
            ["reason"],
            registry=registry,
        )
        self.steps = Counter(
            "gantry_envfarm_steps",
            "Environment steps taken (Step and StepBatch items), by environment",
            ["env_id"],
            registry=registry,
        )


@dataclass
class Session:
    id: str
    env_id: str
    env: VisGymEnv | TaskEpisode  # a task episode owns a sandbox
    seed: int
    settings: Any  # gantry.common.v1.EpisodeSettings, kept as sent
    ttl_s: float
    created: float = field(default_factory=time.time)
    last_used: float = field(default_factory=time.monotonic)
    started: float = field(default_factory=time.monotonic)
    total_reward: float = 0.0
    closed: bool = False
    frame: Any = None  # the last frame sent (unchanged frames can be omitted)
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)

    def touch(self) -> None:
        self.last_used = time.monotonic()

    def expires_in(self, lifetime_s: float, now: float | None = None) -> float:
        now = time.monotonic() if now is None else now
        return min(self.last_used + self.ttl_s, self.started + lifetime_s) - now


class SessionManager:
    def __init__(
        self,
        *,
        max_sessions: int,
        idle_timeout_s: float,
        lifetime_s: float,
        on_close: Callable[[Session, str], None] | None = None,
        metrics: SessionMetrics | None = None,
        owner: Owner | None = None,
    ) -> None:
        self.owner = owner or Owner.start("local")
        self.draining = False
        self._emptied: asyncio.Event | None = None  # set when a drain sees the last one go
        self.max_sessions = max_sessions
        self.idle_timeout_s = idle_timeout_s
        self.lifetime_s = lifetime_s
        self._sessions: dict[str, Session] = {}
        self._on_close = on_close
        self._reaper: asyncio.Task[None] | None = None
        self.metrics = metrics or SessionMetrics(CollectorRegistry())

    def __len__(self) -> int:
        return len(self._sessions)

    def reserve(self) -> None:
        """Refuse early (before any env work) when the farm is full or draining."""
        if self.draining:
            raise draining_error(self.owner.name)
        if len(self._sessions) >= self.max_sessions:
            raise ResourceExhausted(
                f"the farm holds its maximum of {self.max_sessions} sessions; close some "
                "or retry later",
                retry_after_s=1.0,
            )

    def add(
        self,
        env_id: str,
        env: VisGymEnv | TaskEpisode,
        seed: int,
        settings: Any,
        ttl_s: float | None,
    ) -> Session:
        self.reserve()
        session = Session(
            id=self.owner.new_session_id(),
            env_id=env_id,
            env=env,
            seed=seed,
            settings=settings,
            ttl_s=ttl_s or self.idle_timeout_s,
        )
        self._sessions[session.id] = session
        self.metrics.opened.labels(env_id).inc()
        self.metrics.live.labels(env_id).inc()
        return session

    def get(self, session_id: str) -> Session:
        session = self._sessions.get(session_id)
        if session is None or session.closed:
            raise self.owner.missing(session_id)
        session.touch()
        return session

    def close(self, session_id: str, reason: str = CLOSED_BY_CLIENT) -> Session:
        session = self.get(session_id)
        self._drop(session, reason)
        return session

    def _drop(self, session: Session, reason: str, *, wait: bool = False) -> None:
        session.closed = True
        if self._sessions.pop(session.id, None) is not None:
            self.metrics.live.labels(session.env_id).dec()
            self.metrics.closed.labels(reason.replace(" ", "_")).inc()
            if not self._sessions and self._emptied is not None:
                self._emptied.set()
        _close_env(session.env, wait=wait)
        if self._on_close is not None:
            self._on_close(session, reason)

    def stepped(self, session: Session) -> None:
        """Count one environment step of `session`."""
        self.metrics.steps.labels(session.env_id).inc()

    def reap(self, now: float | None = None) -> list[str]:
        """Close every expired session; return their ids."""
        expired = [s for s in self._sessions.values() if s.expires_in(self.lifetime_s, now) <= 0]
        for session in expired:
            if session.lock.locked():
                continue  # mid-step: it is in use, not abandoned
            idle = session.last_used + session.ttl_s <= (now or time.monotonic())
            self._drop(session, IDLE_TIMEOUT if idle else LIFETIME_EXCEEDED)
            log.info("reaped session %s (%s)", session.id, session.env_id)
        return [s.id for s in expired if s.closed]

    def start_reaper(self, interval_s: float, also: Callable[[], object] | None = None) -> None:
        """Reap expired sessions every `interval_s` (and run `also`: other expiries)."""

        async def loop() -> None:
            while True:
                await asyncio.sleep(interval_s)
                self.reap()
                if also is not None:
                    also()

        self._reaper = asyncio.get_running_loop().create_task(loop(), name="session-reaper")

    async def drain(self, timeout_s: float) -> int:
        """Take no new sessions; wait up to `timeout_s` for the live ones to be closed or
        to expire (the reaper keeps running). Returns how many are still live."""
        self.draining = True
        if self._sessions:
            log.info("draining: waiting up to %.0fs for %d sessions", timeout_s, len(self))
            self._emptied = asyncio.Event()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._emptied.wait(), timeout_s)
        return len(self._sessions)

    async def stop(self) -> None:
        if self._reaper is not None:
            self._reaper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reaper
        for session in list(self._sessions.values()):
            self._drop(session, SERVER_STOPPING, wait=True)


def _close_env(env: VisGymEnv | TaskEpisode, *, wait: bool) -> None:
    """Close an environment; a task's sandbox (a process tree and a folder) off the loop
    unless `wait` (the server is stopping: nothing may outlive it)."""
    if isinstance(env, TaskEpisode) and not wait:
        try:
            asyncio.get_running_loop().run_in_executor(None, env.close)
            return
        except RuntimeError:  # no running loop: close here
            pass
    env.close()


def ensure_active(session: Session) -> None:
    if session.env.done:
        raise FailedPrecondition(
            f"session {session.id!r}: the episode is over; call Reset to play again"
        )
