"""Clients that make remote envfarm sessions look local.

`RemoteEnv` is a `gymnasium.Env` backed by one session (each `step` is a Step RPC);
`RemoteVectorEnv` drives many sessions with one StepBatch RPC per step. Both take any
gRPC channel, e.g. `gantry.core.client.sync_channel(target, token=...)`.
"""

from __future__ import annotations

import json
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
from gantry.proto.common.v1 import episode_pb2
from gantry.proto.envfarm.v1 import envfarm_pb2, envfarm_pb2_grpc

Observation = dict[str, Any]
_DIFFICULTY = {"easy": episode_pb2.DIFFICULTY_EASY, "hard": episode_pb2.DIFFICULTY_HARD}


def decode_observation(obs: episode_pb2.Observation) -> Observation:
    decoded: Observation = {"text": obs.text}
    decoded["image"] = image_to_array(obs.image) if obs.HasField("image") else None
    return decoded


def _result(
    result: envfarm_pb2.StepResult,
) -> tuple[Observation, float, bool, bool, dict[str, Any]]:
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
    return (
        decode_observation(result.observation),
        result.reward,
        result.terminated,
        result.truncated,
        info,
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
    ) -> None:
        if difficulty not in _DIFFICULTY:
            raise ValueError(f"difficulty must be 'easy' or 'hard', got {difficulty!r}")
        self.stub = envfarm_pb2_grpc.EnvFarmServiceStub(channel)
        request = envfarm_pb2.CreateSessionRequest(
            env_id=env_id, difficulty=_DIFFICULTY[difficulty], settings=_settings(settings)
        )
        if seed is not None:
            request.seed = seed
        if ttl_s is not None:
            request.ttl.FromNanoseconds(int(ttl_s * 1e9))
        created = _call(self.stub.CreateSession, request)
        self.session: envfarm_pb2.Session = created.session
        self._first: Observation | None = decode_observation(created.observation)
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
        super().reset(seed=seed)
        request = envfarm_pb2.ResetRequest(session_id=self.session_id)
        if seed is not None:
            request.seed = seed
        state = (options or {}).get("state")
        if state is not None:
            request.initial_state_json = state if isinstance(state, str) else json.dumps(state)
        reply = _call(self.stub.Reset, request)
        self.session = reply.session
        if reply.HasField("goal_image"):
            self.goal_image = image_to_array(reply.goal_image)
        return decode_observation(reply.observation), {
            "env_feedback": "",
            "step": 0,
            "seed": reply.session.seed,
        }

    def step(self, action: str) -> tuple[Observation, float, bool, bool, dict[str, Any]]:
        reply = _call(
            self.stub.Step, envfarm_pb2.StepRequest(session_id=self.session_id, action=action)
        )
        return _result(reply.result)

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
        try:
            self.stub.CloseSession(envfarm_pb2.CloseSessionRequest(session_id=self.session_id))
        except grpc.RpcError as exc:
            if exc.code() != grpc.StatusCode.NOT_FOUND:  # already expired is fine
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
    ) -> None:
        if num_envs < 1:
            raise ValueError("num_envs must be >= 1")
        self.envs: list[RemoteEnv] = []
        try:
            for _ in range(num_envs):
                self.envs.append(RemoteEnv(channel, env_id, difficulty, settings=settings))
        except BaseException:
            self.close()
            raise
        self.stub = self.envs[0].stub
        self.num_envs = num_envs

    def reset(self, seeds: Sequence[int] | None = None) -> list[Observation]:
        if seeds is not None and len(seeds) != self.num_envs:
            raise ValueError(f"expected {self.num_envs} seeds")
        return [
            env.reset(seed=None if seeds is None else seeds[i])[0]
            for i, env in enumerate(self.envs)
        ]

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
            ]
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
            obs, rewards[i], terminated[i], truncated[i], info = _result(item.result)
            if terminated[i] or truncated[i]:
                info["final_observation"] = obs
                obs, _ = self.envs[i].reset()
            observations.append(obs)
            infos.append(info)
        return observations, rewards, terminated, truncated, infos

    def close(self) -> None:
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
