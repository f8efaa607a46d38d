"""StepBatch: many sessions stepped in a few executor calls, not one call per item.

An executor call per item costs more than a maze step (an asyncio task, a thread hop,
a lock, a result copied into the reply). So the batch locks its free VisGym sessions up
front and a few workers (one per executor thread) each take items from a shared queue,
stepping them for about `HOP_S` per call; every result is written in place into its
slot of the reply. A session busy with another call, and a task session (a sandbox whose
step may take seconds), take the per-item path instead. Each session is unlocked as soon
as it has been stepped, and a call's share of time bounds how long another client's call
waits for an executor thread.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Coroutine
from dataclasses import dataclass
from typing import Any, Protocol

from gantry.core.errors import GantryError
from gantry.core.server import Runtime
from gantry.envfarm.family import TaskEpisode
from gantry.envfarm.regions import FrameRegion, FrameSlot
from gantry.envfarm.sessions import Session, SessionManager, ensure_active
from gantry.proto.envfarm.v1 import envfarm_pb2

# How long one executor call keeps stepping a batch's items before handing its thread
# back (at least one item per call): other calls interleave at this grain.
HOP_S = 0.01


class Stepper(Protocol):
    """The servicer's step primitives a batch uses."""

    runtime: Runtime
    sessions: SessionManager

    def check_action(self, session: Session, action: str, field: str) -> None: ...

    async def step_locked(
        self,
        session: Session,
        action: str,
        frames: int,
        omit_unchanged: bool,
        result: envfarm_pb2.StepResult,
        slot: FrameSlot | None = None,
    ) -> None: ...

    def step_blocking(
        self,
        session: Session,
        action: str,
        frames: int,
        omit_unchanged: bool,
        result: envfarm_pb2.StepResult,
        slot: FrameSlot | None = None,
    ) -> float: ...

    def stepped(self, session: Session, reward: float) -> None: ...


@dataclass(eq=False)
class _Locked:
    """An item whose session this batch holds locked until it is stepped."""

    slot: envfarm_pb2.StepBatchResult
    session: Session
    action: str
    frame_slot: FrameSlot | None
    reward: float = 0.0
    error: Exception | None = None
    held: bool = True


class StepBatch:
    """One StepBatch call: `admit` each item, `run`, then (always) `unlock`; the reply
    holds a result or an error per item, in request order. With a frame `region`, item
    i's raw frame goes into its slot i."""

    def __init__(
        self,
        stepper: Stepper,
        frames: int,
        omit: bool,
        workers: int,
        region: FrameRegion | None = None,
    ) -> None:
        self.stepper = stepper
        self.frames = frames
        self.omit = omit
        self.workers = workers
        self.region = region
        self.reply = envfarm_pb2.StepBatchResponse()
        self._queue: deque[_Locked] = deque()
        self._locked: list[_Locked] = []
        self._per_item: list[Coroutine[Any, Any, None]] = []
        self._failure: Exception | None = None  # not a caller's mistake: fails the call

    async def admit(self, index: int, item: envfarm_pb2.StepBatchItem) -> None:
        slot = self.reply.results.add(session_id=item.session_id)
        try:  # one bad item does not fail the others
            session = self.stepper.sessions.get(item.session_id)
            self.stepper.check_action(session, item.action, f"items[{index}].action")
        except GantryError as exc:
            slot.error.CopyFrom(exc.to_status())
            return
        frame_slot = None if self.region is None else (self.region, index)
        if isinstance(session.env, TaskEpisode) or session.lock.locked():
            self._per_item.append(self._one(slot, session, item.action, frame_slot))
            return
        await session.lock.acquire()  # free: taken without yielding
        locked = _Locked(slot, session, item.action, frame_slot)
        self._locked.append(locked)
        try:
            ensure_active(session)
        except GantryError as exc:
            self._release(locked)
            slot.error.CopyFrom(exc.to_status())
            return
        self._queue.append(locked)

    async def run(self) -> None:
        count = min(self.workers, len(self._queue))
        workers = [asyncio.ensure_future(self._work()) for _ in range(count)]
        # The per-item path keeps at most one item per executor thread in flight.
        in_flight = asyncio.Semaphore(self.workers)
        others = [asyncio.ensure_future(self._bounded(in_flight, c)) for c in self._per_item]
        self._per_item = []
        if not workers and not others:
            return
        try:
            await asyncio.wait([*workers, *others])
        except asyncio.CancelledError:
            # Take no more items; a call in a thread finishes (within about HOP_S) before
            # its sessions are unlocked, so no session is stepped while unlocked.
            self._queue.clear()
            for task in others:
                task.cancel()
            if workers:
                await asyncio.wait(workers)
            raise
        for task in [*workers, *others]:
            task.result()  # an unexpected error fails the call (INTERNAL), as for Step
        if self._failure is not None:
            raise self._failure

    def unlock(self) -> None:
        """Release every lock still held (the batch ended early, or was cancelled)."""
        for step in self._per_item:  # never started
            step.close()
        self._per_item = []
        for locked in self._locked:
            if locked.held:
                self._release(locked)

    @staticmethod
    def _release(locked: _Locked) -> None:
        locked.held = False
        locked.session.lock.release()

    async def _bounded(self, in_flight: asyncio.Semaphore, step: Coroutine[Any, Any, None]) -> None:
        async with in_flight:
            await step

    async def _one(
        self,
        slot: envfarm_pb2.StepBatchResult,
        session: Session,
        action: str,
        frame_slot: FrameSlot | None,
    ) -> None:
        try:
            await self.stepper.step_locked(
                session, action, self.frames, self.omit, slot.result, frame_slot
            )
        except GantryError as exc:
            slot.error.CopyFrom(exc.to_status())

    async def _work(self) -> None:
        while self._queue:
            for locked in await self.stepper.runtime.run_blocking(self._hop):
                self._finish(locked)

    def _hop(self) -> list[_Locked]:
        """In an executor thread: step queued items for about HOP_S."""
        done: list[_Locked] = []
        deadline = time.monotonic() + HOP_S
        while not done or time.monotonic() < deadline:
            try:
                locked = self._queue.popleft()  # atomic: workers share the queue
            except IndexError:
                break
            try:
                locked.reward = self.stepper.step_blocking(
                    locked.session,
                    locked.action,
                    self.frames,
                    self.omit,
                    locked.slot.result,
                    locked.frame_slot,
                )
            except Exception as exc:  # reported on the loop, where the lock is released
                locked.error = exc
            done.append(locked)
        return done

    def _finish(self, locked: _Locked) -> None:
        self._release(locked)
        if locked.error is None:
            self.stepper.stepped(locked.session, locked.reward)
        elif isinstance(locked.error, GantryError):
            locked.slot.error.CopyFrom(locked.error.to_status())
        elif self._failure is None:
            self._failure = locked.error
