"""A channel to a farm of envfarm replicas, for `RemoteEnv`, `RemoteVectorEnv` and stubs.

`farm_channel(target)` routes like `gantry.core.routing.RoutingChannel` (sessions created
on the least loaded replica, every later call at the session's owner, StepBatch fanned
out per owner and merged in order). With `recover=True` it also keeps each VisGym
session recoverable: after every CreateSession and Reset it fetches the session's
ExportState (one extra call per episode), and it remembers the actions stepped since.
When the owner is unreachable (`OWNER_UNAVAILABLE`) or restarted (`SESSION_LOST`), it
recreates the session from that state on a live replica, replays the actions (VisGym
steps are deterministic given the state and seed) and retries the call; the caller keeps
using the old id. Terminal and notebook sessions live in their sandbox and are never
recovered: their calls fail with the typed error.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Any

import grpc

from gantry.core.errors import error_from_status, from_rpc_error
from gantry.core.routing import (
    OWNER_UNAVAILABLE,
    SESSION_LOST,
    Method,
    RoutingChannel,
)
from gantry.envfarm import convert
from gantry.proto.envfarm.v1 import envfarm_pb2

SERVICE = "/gantry.envfarm.v1.EnvFarmService/"
RECOVERABLE = frozenset({OWNER_UNAVAILABLE, SESSION_LOST})


def _method(name: str, request: type[Any], response: type[Any]) -> Method:
    return Method(SERVICE + name, request.SerializeToString, response.FromString)


CREATE = _method(
    "CreateSession", envfarm_pb2.CreateSessionRequest, envfarm_pb2.CreateSessionResponse
)
EXPORT = _method("ExportState", envfarm_pb2.ExportStateRequest, envfarm_pb2.ExportStateResponse)
STEP = _method("Step", envfarm_pb2.StepRequest, envfarm_pb2.StepResponse)


@dataclass
class _Episode:
    """What recreates a session: how it was made, its exported state, the actions since."""

    create: envfarm_pb2.CreateSessionRequest
    seed: int = 0
    state_json: str = ""
    actions: list[str] = field(default_factory=list)


def farm_channel(
    target: str,
    *,
    token: str | None = None,
    default_timeout_s: float | None = 30.0,
    tls: bool = False,
    root_certificates: bytes | None = None,
    recover: bool = False,
) -> RoutingChannel:
    """A channel over the replicas at `target` (`host:port`, `name=host:port,...` or
    `dns:///headless:port`), each reached like `sync_channel` would; `recover` as in the
    module docstring."""
    kind = RecoveringChannel if recover else RoutingChannel
    return kind(
        target,
        token=token,
        default_timeout_s=default_timeout_s,
        tls=tls,
        root_certificates=root_certificates,
    )


class RecoveringChannel(RoutingChannel):
    """A routing channel that recreates VisGym sessions whose owner is gone."""

    def __init__(self, target: str, **kwargs: Any) -> None:
        super().__init__(target, **kwargs)
        self._episodes: dict[str, _Episode] = {}  # current session id -> its episode
        self._current: dict[str, str] = {}  # any id a caller holds -> the current id
        self._guard = threading.Lock()
        self.recoveries = 0

    def route(self, method: Method, request: Any, **kwargs: Any) -> Any:
        name = method.path.rsplit("/", 1)[-1]
        request = self._current_ids(request)
        if name == "StepBatch":
            return self._step_batch(method, request, **kwargs)
        try:
            reply = super().route(method, request, **kwargs)
        except grpc.RpcError as exc:
            session_id = getattr(request, "session_id", "")
            if name == "CloseSession" or not self._recoverable(session_id, exc):
                raise
            request.session_id = self._recover(session_id, **kwargs)
            reply = super().route(method, request, **kwargs)
        self._observe(name, request, reply, **kwargs)
        return reply

    def _current_ids(self, request: Any) -> Any:
        if not self._current:
            return request
        items = getattr(request, "items", ())
        if getattr(request, "session_id", "") in self._current or any(
            getattr(item, "session_id", "") in self._current for item in items
        ):
            request = _copy(request)
        if getattr(request, "session_id", "") in self._current:
            request.session_id = self._current[request.session_id]
        for item in getattr(request, "items", ()):
            if getattr(item, "session_id", "") in self._current:
                item.session_id = self._current[item.session_id]
        return request

    def _recoverable(self, session_id: str, exc: grpc.RpcError) -> bool:
        return session_id in self._episodes and from_rpc_error(exc).reason in RECOVERABLE

    def _observe(self, name: str, request: Any, reply: Any, **kwargs: Any) -> None:
        if name == "CreateSession" and reply.session.env_id.startswith(convert.VISGYM_PREFIX):
            episode = _Episode(create=_copy(request))
            with self._guard:
                self._episodes[reply.session.id] = episode
            self._export(reply.session.id, episode, **kwargs)
        elif name == "Reset" and request.session_id in self._episodes:
            episode = self._episodes[request.session_id]
            episode.actions.clear()
            self._export(request.session_id, episode, **kwargs)
        elif name == "Step" and request.session_id in self._episodes:
            self._episodes[request.session_id].actions.append(request.action)
        elif name == "CloseSession":
            with self._guard:
                self._episodes.pop(request.session_id, None)
                for held in [k for k, v in self._current.items() if v == request.session_id]:
                    del self._current[held]

    def _export(self, session_id: str, episode: _Episode, **kwargs: Any) -> None:
        exported = super().route(
            EXPORT, envfarm_pb2.ExportStateRequest(session_id=session_id), **kwargs
        )
        episode.seed, episode.state_json = exported.seed, exported.state_json

    def _recover(self, session_id: str, **kwargs: Any) -> str:
        """Recreate `session_id`'s episode on a live replica; return the new id."""
        episode = self._episodes[session_id]
        owner = self.replicas.address_of(session_id)
        if owner is not None:
            self.replicas.skip(owner)
        request = _copy(episode.create)
        request.seed, request.initial_state_json = episode.seed, episode.state_json
        created = super().route(CREATE, request, **kwargs)
        new_id: str = created.session.id
        for action in episode.actions:
            super().route(STEP, envfarm_pb2.StepRequest(session_id=new_id, action=action), **kwargs)
        with self._guard:
            self._episodes[new_id] = self._episodes.pop(session_id)
            for held, current in list(self._current.items()):
                if current == session_id:
                    self._current[held] = new_id
            self._current[session_id] = new_id
            self.recoveries += 1
        return new_id

    def _step_batch(self, method: Method, request: Any, **kwargs: Any) -> Any:
        """Items whose owner is gone are recovered and stepped alone, in their place."""
        reply = super().route(method, request, **kwargs)
        for i, (item, result) in enumerate(zip(request.items, reply.results, strict=True)):
            if item.session_id not in self._episodes:
                continue
            if result.HasField("error"):
                if error_from_status(result.error).reason not in RECOVERABLE:
                    continue
                new_id = self._recover(item.session_id, **kwargs)
                stepped = super().route(
                    STEP, envfarm_pb2.StepRequest(session_id=new_id, action=item.action), **kwargs
                )
                reply.results[i].Clear()
                reply.results[i].session_id = new_id
                reply.results[i].result.CopyFrom(stepped.result)
                self._episodes[new_id].actions.append(item.action)
            else:
                self._episodes[item.session_id].actions.append(item.action)
        return reply


def _copy(message: Any) -> Any:
    copied = type(message)()
    copied.CopyFrom(message)
    return copied
