"""Clients that make remote envfarm sessions look local.

`RemoteEnv` is a `gymnasium.Env` backed by one session (each `step` is a Step RPC);
`RemoteVectorEnv` drives many sessions with one StepBatch RPC per step. Both take any
gRPC channel, e.g. `gantry.core.client.sync_channel(target, token=...)`. Unless told
otherwise they ask for raw frames from a server on this host and WebP lossless from
any other (`best_encoding`), and for unchanged frames to be left out (they reuse the
last one). With raw frames from a server on this host, the frames of steps and resets
come through a frame region (shared memory the server makes and both map;
`gantry.envfarm.regions`) instead of the replies, unless `shared_memory=False`; where the
region cannot be mapped (a server in another container) they come in the replies.
"""

from __future__ import annotations

import contextlib
import json
import math
import mmap
import os
import re
import stat
import string
from collections.abc import Sequence
from types import TracebackType
from typing import Any

import grpc
import gymnasium as gym
import numpy as np
from gymnasium import spaces

from gantry.core import errors
from gantry.core.codecs import image_to_array
from gantry.core.routing import gone_with_its_replica
from gantry.proto.common.v1 import episode_pb2, tensor_pb2
from gantry.proto.envfarm.v1 import envfarm_pb2, envfarm_pb2_grpc

Observation = dict[str, Any]
# Largest StepBatch asked for raw frames (~330 KiB each): the reply stays well inside the
# default 64 MiB message limit; larger batches use WebP lossless.
RAW_BATCH = 128
# Reset calls in flight at once when many episodes restart together (a server may bound
# its concurrent calls).
RESET_WINDOW = 16
_DIFFICULTY = {"easy": episode_pb2.DIFFICULTY_EASY, "hard": episode_pb2.DIFFICULTY_HARD}


def decode_observation(
    obs: episode_pb2.Observation, pixels: tensor_pb2.Tensor | None = None
) -> Observation:
    """Text and frame; the frame comes from `pixels` (raw encoding) when it holds one."""
    decoded: Observation = {"text": obs.text}
    if pixels is not None and pixels.shape:  # set (not reading `data`, which copies)
        decoded["image"] = _frame(pixels)
    else:
        decoded["image"] = image_to_array(obs.image) if obs.HasField("image") else None
    return decoded


def _frame(pixels: tensor_pb2.Tensor) -> np.ndarray[Any, Any]:
    """A raw frame, uint8 [H, W, C], reading `data` once (each read copies ~330 KiB)."""
    data = pixels.data
    shape = tuple(pixels.shape)
    if pixels.dtype != tensor_pb2.DTYPE_UINT8 or len(shape) != 3 or math.prod(shape) != len(data):
        raise errors.InvalidArgument.for_field(
            "observation_pixels", f"is not a uint8 [H, W, C] frame of {len(data)} bytes"
        )
    return np.frombuffer(data, dtype=np.uint8).reshape(shape)


def is_local(target: str) -> bool:
    """Whether a gRPC target names this host: a loopback address or a Unix socket."""
    if target.startswith(("unix:", "unix-abstract:")):
        return True
    address = target
    for scheme in ("dns:///", "ipv4:", "ipv6:"):
        address = address.removeprefix(scheme)
    if address.startswith("["):  # [v6]:port
        host = address[1:].partition("]")[0]
    elif address.count(":") == 1:  # host:port
        host = address.partition(":")[0]
    else:  # a bare host or IPv6 address
        host = address
    return host == "localhost" or host.startswith("127.") or host == "::1"


def best_encoding(target: str | None) -> envfarm_pb2.ObservationEncoding:
    """Raw frames for a server on this host (no codec work on either side); otherwise WebP
    lossless, the same pixels as PNG in fewer bytes and less time."""
    if target is not None and is_local(target):
        return envfarm_pb2.OBSERVATION_ENCODING_RAW
    return envfarm_pb2.OBSERVATION_ENCODING_WEBP_LOSSLESS


def channel_target(channel: grpc.Channel) -> str | None:
    """The target a channel was opened with, where grpc exposes it (best effort)."""
    current: Any = channel
    for _ in range(4):  # interceptor wrappers hold the real channel in `_channel`
        target = getattr(current, "_target", None)
        if isinstance(target, bytes | str):
            return target.decode() if isinstance(target, bytes) else target
        current = getattr(current, "_channel", None)
    return None


class FrameRegionView:
    """A frame region (`gantry.envfarm.regions`) mapped read-only into this process."""

    def __init__(self, stub: Any, region: envfarm_pb2.FrameRegion, memory: mmap.mmap) -> None:
        self.stub = stub
        self.region = region
        self.memory = memory

    @property
    def id(self) -> str:
        return str(self.region.id)

    @classmethod
    def open(cls, stub: Any, slots: int) -> FrameRegionView | None:
        """A new region of `slots` frames, or None where frames must come in the replies
        (an older server, regions turned off or full, a server in another container)."""
        try:
            region = stub.CreateFrameRegion(envfarm_pb2.CreateFrameRegionRequest(slots=slots))
        except grpc.RpcError:
            return None
        memory = _map(region.region)
        if memory is None:
            _delete_region(stub, region.region.id)
            return None
        return cls(stub, region.region, memory)

    def frame(self, slot: int, pixels: tensor_pb2.Tensor) -> np.ndarray[Any, Any]:
        """A copy of the uint8 [H, W, C] frame in `slot` (the next step overwrites it)."""
        shape = tuple(pixels.shape)
        size = math.prod(shape)
        if (
            pixels.dtype != tensor_pb2.DTYPE_UINT8
            or len(shape) != 3
            or not 0 <= slot < self.region.slots
            or size > self.region.slot_bytes
        ):
            raise errors.InvalidArgument.for_field(
                "observation_pixels", f"is not a uint8 [H, W, C] frame in slot {slot}"
            )
        start = self.region.slot_offset + slot * self.region.slot_bytes
        return np.frombuffer(self.memory, np.uint8, size, start).reshape(shape).copy()

    def close(self) -> None:
        if not self.memory.closed:
            self.memory.close()
            _delete_region(self.stub, self.id)


_REGION_PATH = re.compile(r"/proc/[0-9]{1,10}/fd/[0-9]{1,10}")


def _map(region: envfarm_pb2.FrameRegion) -> mmap.mmap | None:
    """The region's memory, if this process reaches the same file (its nonce matches)."""
    if not _REGION_PATH.fullmatch(region.path):
        return None
    if region.slot_offset + region.slots * region.slot_bytes > region.size_bytes:
        return None
    try:  # non-blocking: whatever another process's descriptor is, never wait on it
        fd = os.open(region.path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError:
        return None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode) or info.st_size != region.size_bytes:
            return None
        memory = mmap.mmap(fd, region.size_bytes, prot=mmap.PROT_READ)
    except (OSError, ValueError):
        return None
    finally:
        os.close(fd)
    if not region.nonce or memory[: len(region.nonce)] != region.nonce:
        memory.close()
        return None
    return memory


def _delete_region(stub: Any, region_id: str) -> None:
    # Expired or gone with its server: nothing left to free.
    with contextlib.suppress(grpc.RpcError):
        stub.DeleteFrameRegion(envfarm_pb2.DeleteFrameRegionRequest(region_id=region_id))


def _decoded(
    message: envfarm_pb2.StepResult | envfarm_pb2.ResetResponse,
    region: FrameRegionView | None,
    slot: int,
) -> Observation:
    """A step's or reset's observation, its frame from `region` when the server put it there."""
    if not message.frame_in_region:
        return decode_observation(message.observation, message.observation_pixels)
    if region is None:
        raise errors.InvalidArgument.for_field(
            "frame_in_region", "is set, but no frame region was asked for"
        )
    return {
        "text": message.observation.text,
        "image": region.frame(slot, message.observation_pixels),
    }


def _result(
    result: envfarm_pb2.StepResult,
    frame: np.ndarray[Any, Any] | None = None,
    region: FrameRegionView | None = None,
    slot: int = 0,
) -> tuple[Observation, float, bool, bool, dict[str, Any]]:
    """The gymnasium step tuple; `frame` stands in for a frame the server left out, and
    `region` holds the frame the server wrote there."""
    info: dict[str, Any] = dict(result.info.items())
    info.update(
        env_feedback=result.feedback, step=result.step_index, valid_action=result.action_valid
    )
    if result.HasField("outcome"):  # the graded end of a terminal or notebook episode
        outcome = result.outcome
        info["outcome"] = {
            "success": outcome.success,
            "score": outcome.score,
            "metric": outcome.metric,
            "test_output": outcome.test_output,
            "answer": outcome.answer,
            "test_timed_out": outcome.test_timed_out,
        }
    observation = _decoded(result, region, slot)
    if result.HasField("observation_changed") and not result.observation_changed:
        observation["image"] = frame
    return (
        observation,
        result.reward,
        result.terminated,
        result.truncated,
        info,
    )


def _region_ok(encoding: int, target: str | None) -> bool:
    """Whether frames may come through a frame region: raw, from this host."""
    return (
        encoding == envfarm_pb2.OBSERVATION_ENCODING_RAW and target is not None and is_local(target)
    )


def _settings(settings: episode_pb2.EpisodeSettings | None) -> episode_pb2.EpisodeSettings:
    return settings if settings is not None else episode_pb2.EpisodeSettings()


def _call(fn: Any, request: Any) -> Any:
    """Invoke an RPC, re-raising failures as Gantry's typed errors."""
    try:
        return fn(request)
    except grpc.RpcError as exc:
        raise errors.from_rpc_error(exc) from exc


class RemoteEnv(gym.Env[Observation, str]):
    """One envfarm session as a gymnasium environment."""

    def __init__(
        self,
        channel: grpc.Channel,
        env_id: str,
        difficulty: str = "easy",
        *,
        settings: episode_pb2.EpisodeSettings | None = None,
        seed: int | None = None,
        ttl_s: float | None = None,
        observation_encoding: envfarm_pb2.ObservationEncoding | None = None,
        shared_memory: bool | None = None,
    ) -> None:
        if difficulty not in _DIFFICULTY:
            raise ValueError(f"difficulty must be 'easy' or 'hard', got {difficulty!r}")
        self.stub = envfarm_pb2_grpc.EnvFarmServiceStub(channel)
        target = channel_target(channel)
        if observation_encoding is None:
            observation_encoding = best_encoding(target)
        self.observation_encoding = observation_encoding
        # Step frames through a frame region (made at the first step): raw frames from a
        # server on this host, on a plain channel (a routing channel names no target).
        self._shared_memory = shared_memory is not False and _region_ok(
            observation_encoding, target
        )
        self._region: FrameRegionView | None = None
        request = envfarm_pb2.CreateSessionRequest(
            env_id=env_id,
            difficulty=_DIFFICULTY[difficulty],
            settings=_settings(settings),
            observation_encoding=observation_encoding,
        )
        if seed is not None:
            request.seed = seed
        if ttl_s is not None:
            request.ttl.FromNanoseconds(int(ttl_s * 1e9))
        created = _call(self.stub.CreateSession, request)
        self.session: envfarm_pb2.Session = created.session
        self._first: Observation | None = decode_observation(
            created.observation, created.observation_pixels
        )
        self._frame = self._first["image"]  # stands in for frames the server leaves out
        self.goal_image = (
            image_to_array(created.goal_image) if created.HasField("goal_image") else None
        )
        image = self._first["image"]
        self.observation_space = spaces.Dict(
            {
                "image": spaces.Box(
                    0, 255, image.shape if image is not None else (0, 0, 3), np.uint8
                ),
                "text": spaces.Text(max_length=8192, min_length=0, charset=string.printable),
            }
        )
        self.action_space = spaces.Text(max_length=512, min_length=1, charset=string.printable)
        self._closed = False

    @property
    def session_id(self) -> str:
        return str(self.session.id)

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[Observation, dict[str, Any]]:
        """A new episode from `seed` or `options["state"]`; neither replays the current one."""
        region = self._frame_region()
        request = self._reset_request(seed, options, region)
        return self._reset_done(_call(self.stub.Reset, request), region)

    def _frame_region(self) -> FrameRegionView | None:
        """This env's frame region, made on first use where frames may come through one."""
        if self._shared_memory:  # once: None from here on means frames in the replies
            self._shared_memory = False
            self._region = FrameRegionView.open(self.stub, 1)
        return self._region

    def _reset_request(
        self,
        seed: int | None,
        options: dict[str, Any] | None,
        region: FrameRegionView | None = None,
        slot: int = 0,
    ) -> envfarm_pb2.ResetRequest:
        super().reset(seed=seed)
        request = envfarm_pb2.ResetRequest(
            session_id=self.session_id,
            observation_encoding=self.observation_encoding,
        )
        if region is not None:
            request.frame_region, request.frame_slot = region.id, slot
        if seed is not None:
            request.seed = seed
        state = (options or {}).get("state")
        if state is not None:
            request.initial_state_json = state if isinstance(state, str) else json.dumps(state)
        return request

    def _reset_done(
        self,
        reply: envfarm_pb2.ResetResponse,
        region: FrameRegionView | None = None,
        slot: int = 0,
    ) -> tuple[Observation, dict[str, Any]]:
        self.session = reply.session
        if reply.HasField("goal_image"):
            self.goal_image = image_to_array(reply.goal_image)
        observation = _decoded(reply, region, slot)
        self._frame = observation["image"]
        return observation, {
            "env_feedback": "",
            "step": 0,
            "seed": reply.session.seed,
        }

    def step(self, action: str) -> tuple[Observation, float, bool, bool, dict[str, Any]]:
        region = self._frame_region()
        request = envfarm_pb2.StepRequest(
            session_id=self.session_id,
            action=action,
            observation_encoding=self.observation_encoding,
            omit_unchanged_frame=True,
            frame_region=region.id if region is not None else "",
        )
        return self._stepped(_call(self.stub.Step, request).result, region)

    def _stepped(
        self, result: envfarm_pb2.StepResult, region: FrameRegionView | None = None, slot: int = 0
    ) -> tuple[Observation, float, bool, bool, dict[str, Any]]:
        stepped = _result(result, self._frame, region, slot)
        self._frame = stepped[0]["image"]
        return stepped

    def solve(self, strategy: str = "", detours: int = 0) -> list[str]:
        """The solver's plan from the session's current state, ending in "stop"."""
        reply = _call(
            self.stub.Solve,
            envfarm_pb2.SolveRequest(
                session_id=self.session_id, strategy=strategy, detour_count=detours
            ),
        )
        return list(reply.actions)

    def initial_state(self) -> dict[str, Any]:
        reply = _call(
            self.stub.ExportState, envfarm_pb2.ExportStateRequest(session_id=self.session_id)
        )
        state: dict[str, Any] = json.loads(reply.state_json)
        return state

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self._region is not None:
            self._region.close()
        try:
            self.stub.CloseSession(envfarm_pb2.CloseSessionRequest(session_id=self.session_id))
        except grpc.RpcError as exc:
            # Already expired, or gone with its replica (a routing channel's typed error).
            if exc.code() != grpc.StatusCode.NOT_FOUND and not gone_with_its_replica(exc):
                raise


class RemoteVectorEnv:
    """`num_envs` sessions stepped together: one StepBatch RPC per `step`.

    Finished episodes are reset within the same `step` call (gymnasium's same-step
    autoreset): the returned observation starts the next episode and
    `infos[i]["final_observation"]` holds the last one of the finished episode.
    """

    def __init__(
        self,
        channel: grpc.Channel,
        env_id: str,
        num_envs: int,
        difficulty: str = "easy",
        *,
        settings: episode_pb2.EpisodeSettings | None = None,
        observation_encoding: envfarm_pb2.ObservationEncoding | None = None,
        shared_memory: bool | None = None,
    ) -> None:
        if num_envs < 1:
            raise ValueError("num_envs must be >= 1")
        self.envs: list[RemoteEnv] = []
        try:
            for _ in range(num_envs):
                self.envs.append(
                    RemoteEnv(
                        channel,
                        env_id,
                        difficulty,
                        settings=settings,
                        observation_encoding=observation_encoding,
                        shared_memory=False,  # the batch has one region for all
                    )
                )
        except BaseException:
            self.close()
            raise
        self.stub = self.envs[0].stub
        self.num_envs = num_envs
        self._batch_encoding = self.envs[0].observation_encoding
        self._region: FrameRegionView | None = None
        if shared_memory is not False and _region_ok(self._batch_encoding, channel_target(channel)):
            self._region = FrameRegionView.open(self.stub, num_envs)
        raw = self._batch_encoding == envfarm_pb2.OBSERVATION_ENCODING_RAW
        if raw and self._region is None and num_envs > RAW_BATCH:
            self._batch_encoding = envfarm_pb2.OBSERVATION_ENCODING_WEBP_LOSSLESS

    def reset(self, seeds: Sequence[int] | None = None) -> list[Observation]:
        if seeds is not None and len(seeds) != self.num_envs:
            raise ValueError(f"expected {self.num_envs} seeds")
        return self._reset(range(self.num_envs), seeds)

    def _reset(
        self, indices: Sequence[int], seeds: Sequence[int] | None = None
    ) -> list[Observation]:
        """Reset these envs. On a plain channel the Reset calls run concurrently (at most
        `RESET_WINDOW` in flight), so their latencies overlap instead of adding up; a
        routing channel (which may recover sessions call by call) takes them in turn."""
        region = self._region  # env i's frame goes into slot i
        requests = [
            (i, self.envs[i]._reset_request(None if seeds is None else seeds[i], None, region, i))
            for i in indices
        ]
        start_call = getattr(self.stub.Reset, "future", None)
        if start_call is None:
            return [
                self.envs[i]._reset_done(_call(self.stub.Reset, request), region, i)[0]
                for i, request in requests
            ]
        observations: list[Observation] = []
        for first in range(0, len(requests), RESET_WINDOW):
            window = [
                (i, start_call(request)) for i, request in requests[first : first + RESET_WINDOW]
            ]
            for i, call in window:
                try:
                    reply = call.result()
                except grpc.RpcError as exc:
                    raise errors.from_rpc_error(exc) from exc
                observations.append(self.envs[i]._reset_done(reply, region, i)[0])
        return observations

    def step(
        self, actions: Sequence[str]
    ) -> tuple[
        list[Observation],
        np.ndarray[Any, Any],
        np.ndarray[Any, Any],
        np.ndarray[Any, Any],
        list[dict[str, Any]],
    ]:
        if len(actions) != self.num_envs:
            raise ValueError(f"expected {self.num_envs} actions, got {len(actions)}")
        request = envfarm_pb2.StepBatchRequest(
            items=[
                envfarm_pb2.StepBatchItem(session_id=env.session_id, action=action)
                for env, action in zip(self.envs, actions, strict=True)
            ],
            observation_encoding=self._batch_encoding,
            omit_unchanged_frames=True,
            frame_region=self._region.id if self._region is not None else "",
        )
        reply = _call(self.stub.StepBatch, request)
        observations: list[Observation] = []
        rewards = np.zeros(self.num_envs, dtype=np.float32)
        terminated = np.zeros(self.num_envs, dtype=bool)
        truncated = np.zeros(self.num_envs, dtype=bool)
        infos: list[dict[str, Any]] = []
        for i, item in enumerate(reply.results):
            if item.HasField("error"):
                raise errors.error_from_status(item.error)
            obs, rewards[i], terminated[i], truncated[i], info = self.envs[i]._stepped(
                item.result, self._region, i
            )
            observations.append(obs)
            infos.append(info)
        ended = [i for i in range(self.num_envs) if terminated[i] or truncated[i]]
        for i, fresh in zip(ended, self._reset(ended), strict=True):
            infos[i]["final_observation"] = observations[i]
            observations[i] = fresh
        return observations, rewards, terminated, truncated, infos

    def close(self) -> None:
        region, self._region = getattr(self, "_region", None), None
        if region is not None:
            region.close()
        for env in self.envs:
            env.close()

    def __enter__(self) -> RemoteVectorEnv:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        value: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
