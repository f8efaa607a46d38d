"""A real gRPC RolloutService.UpdateWeights on a fixed localhost port that can fail on cue:
answer UNAVAILABLE mid-stream, or stop and come back on the same port (a pod restart)."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import grpc

from gantry.proto.rollout.v1 import rollout_pb2, rollout_pb2_grpc


@dataclass
class Call:
    messages: int = 0
    header: rollout_pb2.WeightsHeader | None = None
    tensors: int = 0  # chunks with last=True
    authorization: str = ""
    completed: bool = False


@dataclass
class Script:
    """What the next UpdateWeights calls do."""

    unavailable: int = 0  # this many calls answer UNAVAILABLE after their first message
    restart_after_s: float | None = None  # the next call stops the server; back after this
    calls: list[Call] = field(default_factory=list)
    restarted: threading.Event = field(default_factory=threading.Event)


class _Servicer(rollout_pb2_grpc.RolloutServiceServicer):
    def __init__(self, owner: FakeRollout) -> None:
        self.owner = owner

    async def UpdateWeights(
        self, request_iterator: AsyncIterator[rollout_pb2.UpdateWeightsRequest], context: Any
    ) -> rollout_pb2.UpdateWeightsResponse:
        script = self.owner.script
        call = Call()
        script.calls.append(call)
        for key, value in context.invocation_metadata() or ():
            if key == "authorization":
                call.authorization = str(value)
        async for message in request_iterator:
            call.messages += 1
            if message.HasField("header"):
                call.header = message.header
            elif message.chunk.last:
                call.tensors += 1
            if call.messages == 1 and script.unavailable > 0:
                script.unavailable -= 1
                await context.abort(grpc.StatusCode.UNAVAILABLE, "rollout is restarting")
            if call.messages == 1 and script.restart_after_s is not None:
                delay, script.restart_after_s = script.restart_after_s, None
                self.owner.restart_soon(delay)
                await asyncio.sleep(30)  # the server stops under this call
        call.completed = True
        return rollout_pb2.UpdateWeightsResponse(
            policy_version=len(script.calls), tensors_loaded=call.tensors
        )


class FakeRollout:
    def __init__(self) -> None:
        self.script = Script()
        self.port = 0
        self._loop = asyncio.new_event_loop()
        self._server: grpc.aio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)

    @property
    def target(self) -> str:
        return f"127.0.0.1:{self.port}"

    async def _serve(self) -> None:
        server = grpc.aio.server()
        rollout_pb2_grpc.add_RolloutServiceServicer_to_server(
            _Servicer(self),  # type: ignore[abstract]  # UpdateWeights only: the rest UNIMPLEMENTED
            server,
        )
        self.port = server.add_insecure_port(f"127.0.0.1:{self.port}")
        if not self.port:
            raise OSError("could not bind the fake rollout port")
        await server.start()
        self._server = server

    async def _restart(self, delay_s: float) -> None:
        assert self._server is not None
        await self._server.stop(0)
        await asyncio.sleep(delay_s)
        await self._serve()  # the same port
        self.script.restarted.set()

    def restart_soon(self, delay_s: float) -> None:
        task = self._loop.create_task(self._restart(delay_s))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def start(self) -> None:
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._serve(), self._loop).result(30)

    def close(self) -> None:
        async def stop() -> None:
            if self._server is not None:
                await self._server.stop(0)

        asyncio.run_coroutine_threadsafe(stop(), self._loop).result(30)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(30)


@contextmanager
def fake_rollout() -> Iterator[FakeRollout]:
    fake = FakeRollout()
    fake.start()
    try:
        yield fake
    finally:
        fake.close()
