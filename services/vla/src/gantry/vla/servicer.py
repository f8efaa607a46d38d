"""The VlaService RPCs: Act, StreamControl, GetPolicyInfo.

StreamControl runs two coroutines per stream: a reader that checks each message's order
and keeps only the newest observation waiting (an older one still waiting is skipped, as
the contract allows), and the handler's own loop that runs the policy on whatever is
waiting and yields the chunk. A reset drops the waiting observation and bumps the
episode; a chunk computed for an earlier episode is dropped. A bad observation is
answered with an `error` event and the stream goes on.
"""

from __future__ import annotations

import asyncio
import logging
import math
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

import grpc
from google.protobuf import duration_pb2

from gantry.core.codecs import tensor_from_numpy
from gantry.core.errors import GantryError, InvalidArgument, Unavailable, status_from_exception
from gantry.core.server import Runtime
from gantry.proto.vla.v1 import vla_pb2, vla_pb2_grpc
from gantry.vla.observation import check_fraction, check_steps, parse_observation
from gantry.vla.runner import Inference, PolicyRunner

log = logging.getLogger("gantry.vla")
MAX_QUEUED_EVENTS = 64  # error events and reset acks not yet sent before reading stops


def _duration(seconds: float) -> duration_pb2.Duration:
    value = duration_pb2.Duration()
    value.FromNanoseconds(int(seconds * 1e9))
    return value


def _timing(result: Inference, total_s: float) -> vla_pb2.ActionTiming:
    return vla_pb2.ActionTiming(
        preprocess=_duration(result.preprocess_s),
        inference=_duration(result.inference_s),
        total=_duration(total_s),
    )


@dataclass
class _Waiting:
    frame: vla_pb2.ObservationFrame
    episode: int
    instruction: str
    received: float


class _StreamState:
    def __init__(self, config: vla_pb2.StreamConfig) -> None:
        self.instruction = config.instruction.strip()
        self.steps = config.num_denoising_steps
        self.episode = 0
        self.last_sequence: int | None = None
        self.waiting: _Waiting | None = None
        self.wake = asyncio.Event()
        self.events: asyncio.Queue[vla_pb2.StreamControlResponse] = asyncio.Queue(
            maxsize=MAX_QUEUED_EVENTS
        )
        self.finished = False


def _error_event(sequence: int, episode: int, exc: GantryError) -> vla_pb2.StreamControlResponse:
    return vla_pb2.StreamControlResponse(
        sequence=sequence,
        episode=episode,
        error=vla_pb2.ObservationError(status=status_from_exception(exc)),
    )


class VlaServicer(vla_pb2_grpc.VlaServiceServicer):
    def __init__(self, runtime: Runtime, runner: Callable[[], PolicyRunner]) -> None:
        self.runtime = runtime
        self._runner = runner

    @property
    def runner(self) -> PolicyRunner:
        """The loaded policy (the call gate lets no call in before `start()`)."""
        return self._runner()

    # ---- Act --------------------------------------------------------------------------------
    async def Act(
        self, request: vla_pb2.ActRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> vla_pb2.ActResponse:
        loop = asyncio.get_running_loop()
        start = loop.time()
        spec = self.runner.spec
        steps = check_steps(request.num_denoising_steps, "num_denoising_steps", spec)
        if not request.HasField("observation"):
            raise InvalidArgument.for_field("observation", "is required")
        obs = await self.runtime.run_blocking(
            parse_observation, request.observation, "observation", spec
        )
        seed = request.noise_seed if request.HasField("noise_seed") else None
        result = await self.runner.infer(obs, steps, seed)
        return vla_pb2.ActResponse(
            actions=tensor_from_numpy(result.actions),
            start_timestep=obs.timestep,
            timing=_timing(result, loop.time() - start),
        )

    # ---- GetPolicyInfo ------------------------------------------------------------------------
    async def GetPolicyInfo(
        self, request: vla_pb2.GetPolicyInfoRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> vla_pb2.GetPolicyInfoResponse:
        return self.runner.info()

    # ---- StreamControl --------------------------------------------------------------------
    def _check_config(self, request: vla_pb2.StreamControlRequest) -> vla_pb2.StreamConfig:
        if request.WhichOneof("payload") != "config":
            raise InvalidArgument.for_field("config", "the first message must be a StreamConfig")
        config = request.config
        spec = self.runner.spec
        if len(config.instruction.encode()) > spec.max_instruction_bytes:
            raise InvalidArgument.for_field(
                "config.instruction", f"is longer than {spec.max_instruction_bytes} bytes"
            )
        check_fraction(config.queue_threshold, "config.queue_threshold")
        check_fraction(config.blend_weight, "config.blend_weight")
        if not (math.isfinite(config.control_hz) and config.control_hz >= 0):
            raise InvalidArgument.for_field("config.control_hz", "must be a finite number >= 0")
        check_steps(config.num_denoising_steps, "config.num_denoising_steps", spec)
        return config

    async def _read(
        self, requests: AsyncIterator[vla_pb2.StreamControlRequest], state: _StreamState
    ) -> None:
        loop = asyncio.get_running_loop()
        try:
            async for request in requests:
                kind = request.WhichOneof("payload")
                event: vla_pb2.StreamControlResponse | None
                if kind == "reset":
                    event = self._reset(request.reset, state)
                elif kind == "observation":
                    event = self._accept(request.observation, state, loop.time())
                else:
                    error = InvalidArgument.for_field(
                        "payload", "after the config, send observation or reset messages"
                    )
                    event = _error_event(0, state.episode, error)
                if event is not None:
                    # Bounded: a client that does not read its answers stops being read.
                    await state.events.put(event)
                state.wake.set()
        finally:
            state.finished = True
            state.wake.set()

    def _reset(
        self, reset: vla_pb2.EpisodeReset, state: _StreamState
    ) -> vla_pb2.StreamControlResponse:
        spec = self.runner.spec
        if len(reset.instruction.encode()) > spec.max_instruction_bytes:
            error = InvalidArgument.for_field(
                "reset.instruction", f"is longer than {spec.max_instruction_bytes} bytes"
            )
            return _error_event(0, state.episode, error)
        state.waiting = None
        state.episode += 1
        if reset.instruction.strip():
            state.instruction = reset.instruction.strip()
        return vla_pb2.StreamControlResponse(episode=state.episode, reset_done=True)

    def _accept(
        self, frame: vla_pb2.ObservationFrame, state: _StreamState, now: float
    ) -> vla_pb2.StreamControlResponse | None:
        if state.last_sequence is not None and frame.sequence <= state.last_sequence:
            error = InvalidArgument.for_field(
                "observation.sequence",
                f"must be greater than {state.last_sequence} (the last one in this stream)",
            )
            return _error_event(frame.sequence, state.episode, error)
        state.last_sequence = frame.sequence
        state.waiting = _Waiting(frame, state.episode, state.instruction, now)
        return None

    async def _answer(self, item: _Waiting, steps: int) -> vla_pb2.StreamControlResponse:
        frame = item.frame
        spec = self.runner.spec
        if not frame.HasField("observation"):
            raise InvalidArgument.for_field("observation.observation", "is required")
        obs = await self.runtime.run_blocking(
            parse_observation, frame.observation, "observation.observation", spec, item.instruction
        )
        seed = frame.noise_seed if frame.HasField("noise_seed") else None
        result = await self.runner.infer(obs, steps, seed)
        return vla_pb2.StreamControlResponse(
            sequence=frame.sequence,
            start_timestep=obs.timestep,
            actions=tensor_from_numpy(result.actions),
            timing=_timing(result, asyncio.get_running_loop().time() - item.received),
            episode=item.episode,
        )

    async def StreamControl(
        self,
        request_iterator: AsyncIterator[vla_pb2.StreamControlRequest],
        context: grpc.aio.ServicerContext[Any, Any],
    ) -> AsyncIterator[vla_pb2.StreamControlResponse]:
        try:
            first = await anext(request_iterator)
        except StopAsyncIteration:
            return
        state = _StreamState(self._check_config(first))
        steps = state.steps
        reader = asyncio.create_task(self._read(request_iterator, state))
        draining = asyncio.create_task(self.runtime.draining.wait())
        try:
            while True:
                while not state.events.empty():
                    yield state.events.get_nowait()
                item, state.waiting = state.waiting, None
                if item is not None:
                    try:
                        response = await self._answer(item, steps)
                    except GantryError as exc:
                        response = _error_event(item.frame.sequence, item.episode, exc)
                    if response.HasField("error") or item.episode == state.episode:
                        yield response  # a chunk for an episode since reset is dropped
                    continue
                if state.finished:
                    break
                if not state.events.empty():
                    continue
                state.wake.clear()
                waiter = asyncio.create_task(state.wake.wait())
                await asyncio.wait({waiter, draining}, return_when=asyncio.FIRST_COMPLETED)
                waiter.cancel()
                if draining.done():
                    raise Unavailable("the server is shutting down", retry_after_s=1.0)
            while not state.events.empty():
                yield state.events.get_nowait()
        finally:
            reader.cancel()
            draining.cancel()
