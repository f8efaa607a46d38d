"""`VlaClient`: Act, policy info, and closed-loop control of a gymnasium env over StreamControl.

The control loop follows the contract's queue semantics: actions are executed from a
local queue keyed by timestep; when fewer than `queue_threshold * chunk_size` remain, the
newest observation goes to the server (one request in flight at a time) and the loop
keeps executing. A chunk starts at its observation's timestep: actions for timesteps
already executed are dropped (a chunk with none left counts as late), and where it
overlaps queued actions the two are blended (latest wins, or a weighted average). Only
when the queue is empty does the loop wait for the server. A rejected observation (an
error event) is retried with the next one; three in a row with nothing left to execute
raise the server's error.

The env must return observations as a dict with `image` (uint8 [H, W, 3], the policy's
first camera) and `state` (float [state_dim]) and report `info["success"]`, as
`gantry.vla.sim.MetaWorldEnv` does.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import grpc
import numpy as np
from numpy.typing import NDArray

from gantry.core.client import sync_channel
from gantry.core.codecs import tensor_from_numpy, tensor_to_numpy
from gantry.core.errors import GantryError, error_from_status, from_rpc_error
from gantry.proto.vla.v1 import vla_pb2, vla_pb2_grpc


def observation_message(
    obs: dict[str, NDArray[Any]], camera: str, instruction: str, timestep: int
) -> vla_pb2.RobotObservation:
    return vla_pb2.RobotObservation(
        cameras=[vla_pb2.CameraFrame(camera=camera, raw=tensor_from_numpy(obs["image"]))],
        state=tensor_from_numpy(np.asarray(obs["state"], dtype=np.float32)),
        instruction=instruction,
        timestep=timestep,
    )


@dataclass
class EpisodeResult:
    success: bool
    steps: int
    chunks: int = 0
    late_chunks: int = 0
    errors: list[str] = field(default_factory=list)
    chunk_latency_s: list[float] = field(default_factory=list)  # send -> chunk received
    waits: int = 0  # times the queue ran dry and the robot waited for a chunk


MAX_REJECTED = 3  # consecutive rejected observations with an empty queue end the episode


class ActionQueue:
    """Actions keyed by timestep, with the contract's blending of overlapping chunks."""

    def __init__(self, blend: int, weight: float) -> None:
        self.blend = blend
        self.weight = weight
        self.actions: dict[int, NDArray[np.float32]] = {}

    def __len__(self) -> int:
        return len(self.actions)

    def merge(self, start: int, chunk: NDArray[np.float32], now: int) -> bool:
        """Add a chunk starting at `start`; False when every action in it is already past."""
        fresh = False
        for offset, action in enumerate(chunk):
            t = start + offset
            if t < now:
                continue  # late: that timestep is executed
            fresh = True
            old = self.actions.get(t)
            if old is None or self.blend == vla_pb2.BLEND_MODE_LATEST:
                self.actions[t] = action
            else:
                self.actions[t] = self.weight * action + (1.0 - self.weight) * old
        return fresh

    def pop(self, t: int) -> NDArray[np.float32] | None:
        for stale in [k for k in self.actions if k < t]:
            del self.actions[stale]
        return self.actions.pop(t, None)


class ControlSession:
    """One open StreamControl stream; runs episodes one after another (reset between)."""

    def __init__(
        self,
        stub: vla_pb2_grpc.VlaServiceStub,
        info: vla_pb2.GetPolicyInfoResponse,
        config: vla_pb2.StreamConfig,
        timeout_s: float,
    ) -> None:
        self.info = info
        self.config = config
        self.timeout_s = timeout_s
        self._requests: queue.Queue[vla_pb2.StreamControlRequest | None] = queue.Queue()
        self._responses: queue.Queue[vla_pb2.StreamControlResponse | BaseException | None] = (
            queue.Queue()
        )
        self._requests.put(vla_pb2.StreamControlRequest(config=config))
        self._call = stub.StreamControl(self._iterate())
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        self._sequence = 0
        self.episode = 0
        self.threshold = config.queue_threshold or 0.5

    def _iterate(self) -> Iterator[vla_pb2.StreamControlRequest]:
        while (item := self._requests.get()) is not None:
            yield item

    def _read(self) -> None:
        try:
            for response in self._call:
                self._responses.put(response)
            self._responses.put(None)
        except grpc.RpcError as exc:
            self._responses.put(exc)

    def _next(self, block: bool) -> vla_pb2.StreamControlResponse | None:
        try:
            item = self._responses.get(block=block, timeout=self.timeout_s if block else None)
        except queue.Empty:
            if block:
                raise TimeoutError(f"no chunk within {self.timeout_s} s") from None
            return None
        if isinstance(item, grpc.RpcError):
            raise item
        if item is None:
            raise ConnectionError("the server ended the stream")
        assert not isinstance(item, BaseException)
        return item

    def reset(self, instruction: str = "") -> None:
        """Start a new episode; waits for the acknowledgement (chunks before it are dropped)."""
        self._requests.put(
            vla_pb2.StreamControlRequest(reset=vla_pb2.EpisodeReset(instruction=instruction))
        )
        while True:
            response = self._next(block=True)
            if response is not None and response.reset_done:
                self.episode = response.episode
                return

    def run_episode(
        self, env: Any, *, instruction: str = "", max_steps: int | None = None
    ) -> EpisodeResult:
        action_dim = self.info.action_dim
        shape = getattr(env.action_space, "shape", None)
        if shape != (action_dim,):
            raise ValueError(f"env actions have shape {shape}; the policy's are ({action_dim},)")
        camera = self.info.cameras[0].name
        text = instruction or getattr(env, "instruction", "") or self.config.instruction
        obs, _ = env.reset()
        actions = ActionQueue(self.config.blend, self.config.blend_weight or 0.5)
        result = EpisodeResult(success=False, steps=0)
        limit = int(max_steps or getattr(env, "max_steps", None) or 500)
        in_flight: tuple[int, float] | None = None  # (sequence, sent at)
        last_answered = -1
        rejected = 0  # observations rejected in a row
        t = 0
        while t < limit:
            if in_flight is None and len(actions) < self.threshold * self.info.chunk_size:
                self._sequence += 1
                frame = vla_pb2.ObservationFrame(
                    sequence=self._sequence,
                    observation=observation_message(obs, camera, text, t),
                    queue_size=len(actions),
                )
                self._requests.put(vla_pb2.StreamControlRequest(observation=frame))
                in_flight = (self._sequence, time.perf_counter())
            block = len(actions) == 0 and in_flight is not None
            if block:
                result.waits += 1  # the robot idles until the chunk arrives
            while (response := self._next(block=block)) is not None:
                block = False
                if response.reset_done or response.episode != self.episode:
                    continue
                if in_flight is not None and response.sequence == in_flight[0]:
                    result.chunk_latency_s.append(time.perf_counter() - in_flight[1])
                    in_flight = None
                if response.HasField("error"):
                    error = error_from_status(response.error.status)
                    result.errors.append(error.message)
                    rejected += 1
                    if rejected >= MAX_REJECTED and len(actions) == 0:
                        raise error  # nothing left to execute and the env keeps failing
                    continue
                rejected = 0
                if response.sequence <= last_answered:
                    result.late_chunks += 1
                    continue
                last_answered = response.sequence
                chunk = tensor_to_numpy(response.actions, field="actions").astype(np.float32)
                result.chunks += 1
                if not actions.merge(response.start_timestep, chunk, t):
                    result.late_chunks += 1
                if len(actions) == 0 and in_flight is not None:
                    block = True
            action = actions.pop(t)
            if action is None:
                continue  # late or rejected chunk: ask again (or wait) for this step
            obs, _, terminated, truncated, info = env.step(action)
            t += 1
            result.steps = t
            if info.get("success"):
                result.success = True
                break
            if terminated or truncated:
                break
        return result

    def close(self) -> None:
        self._requests.put(None)
        self._reader.join(timeout=self.timeout_s)
        self._call.cancel()


class VlaClient:
    def __init__(self, target: str, *, token: str | None = None, timeout_s: float = 30.0):
        # No channel-wide deadline: a control stream lasts as long as its episodes.
        self.channel = sync_channel(target, token=token, default_timeout_s=None)
        self.stub = vla_pb2_grpc.VlaServiceStub(self.channel)
        self.timeout_s = timeout_s
        self._info: vla_pb2.GetPolicyInfoResponse | None = None

    def info(self) -> vla_pb2.GetPolicyInfoResponse:
        if self._info is None:
            self._info = self.stub.GetPolicyInfo(
                vla_pb2.GetPolicyInfoRequest(), timeout=self.timeout_s
            )
        return self._info

    def act(
        self,
        obs: dict[str, NDArray[Any]],
        instruction: str,
        *,
        timestep: int = 0,
        seed: int | None = None,
        steps: int = 0,
    ) -> NDArray[np.float32]:
        camera = self.info().cameras[0].name
        request = vla_pb2.ActRequest(
            observation=observation_message(obs, camera, instruction, timestep),
            num_denoising_steps=steps,
        )
        if seed is not None:
            request.noise_seed = seed
        try:
            reply = self.stub.Act(request, timeout=self.timeout_s)
        except grpc.RpcError as exc:
            raise _gantry_error(exc) from exc
        return tensor_to_numpy(reply.actions, field="actions").astype(np.float32)

    def session(
        self,
        *,
        instruction: str = "",
        queue_threshold: float = 0.5,
        blend: vla_pb2.BlendMode = vla_pb2.BLEND_MODE_WEIGHTED_AVERAGE,
        blend_weight: float = 0.5,
        steps: int = 0,
    ) -> ControlSession:
        info = self.info()
        config = vla_pb2.StreamConfig(
            instruction=instruction,
            control_hz=info.control_hz,
            queue_threshold=queue_threshold,
            blend=blend,
            blend_weight=blend_weight,
            num_denoising_steps=steps,
        )
        return ControlSession(self.stub, info, config, self.timeout_s)

    def control(self, env: Any, *, instruction: str = "", **options: Any) -> EpisodeResult:
        """Run one episode of `env` with streamed control; the stream closes after it."""
        session = self.session(instruction=instruction, **options)
        try:
            return session.run_episode(env, instruction=instruction)
        finally:
            session.close()

    def close(self) -> None:
        self.channel.close()


def _gantry_error(exc: grpc.RpcError) -> GantryError:
    return from_rpc_error(exc)
