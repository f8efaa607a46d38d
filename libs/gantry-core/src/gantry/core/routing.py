"""Sessions that live in one replica's memory, and channels that send calls to them.

A stateful service (envfarm) keeps each session in the replica that created it. The
session id names that replica: `<replica>.<incarnation>.<random>`, the replica's stable
name (its StatefulSet pod name) and a token drawn when its process started, so a moved
or restarted owner is told apart from an unknown id:

- a replica asked about a session another replica owns answers FAILED_PRECONDITION,
  ErrorInfo reason `SESSION_ELSEWHERE`, metadata `owner` (and `replica`, its own name);
- the owner, restarted since (same name, new incarnation), answers ABORTED, reason
  `SESSION_LOST`: the state is gone; start again (or recover from exported state);
- a client that cannot reach the owner raises UNAVAILABLE, reason `OWNER_UNAVAILABLE`;
- a replica that is draining refuses new sessions: UNAVAILABLE, reason `REPLICA_DRAINING`.

`RoutingChannel` (blocking) and `AioRoutingChannel` (asyncio) are gRPC channels over a
replica set: one address, a static list (`name=host:port,...` or `host:port,...`), or a
`dns:///` headless Service. Generated stubs work on them unchanged: a creation call goes
to the least loaded replica (sessions each replica reported at its last creation, round
robin among equals; a refusing replica is skipped for a while and the next one tried), a
call naming a `session_id` goes to its owner, a batch (`items[].session_id`) fans out per
owner and is merged in order, and any other call goes to the next replica in turn.
"""

from __future__ import annotations

import asyncio
import itertools
import re
import secrets
import socket
import threading
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import grpc
from google.protobuf.wrappers_pb2 import StringValue
from google.rpc import status_pb2

from gantry.core.client import RetryPolicy, aio_channel, sync_channel
from gantry.core.errors import (
    Aborted,
    FailedPrecondition,
    GantryError,
    InvalidArgument,
    NotFound,
    Unavailable,
    clip,
    echo,
    from_rpc_error,
)

SESSION_ELSEWHERE = "SESSION_ELSEWHERE"
SESSION_LOST = "SESSION_LOST"
OWNER_UNAVAILABLE = "OWNER_UNAVAILABLE"
REPLICA_DRAINING = "REPLICA_DRAINING"
NO_REPLICA = "NO_REPLICA_AVAILABLE"
# Trailing metadata of a creation: "<live sessions>/<capacity>" of the answering replica.
LOAD_KEY = "gantry-replica-load"

_NAME = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")
_INCARNATION = re.compile(r"^[0-9a-f]{8}$")
# A replica that refused a session (down, draining, full) is not asked again for this long.
SKIP_S = 5.0
# The router's own channels retry once: a dead replica fails over fast.
ROUTED_RETRY = RetryPolicy(max_attempts=2, initial_backoff_s=0.05, max_backoff_s=0.2)


def valid_replica_name(name: str) -> bool:
    """A DNS label (a StatefulSet pod name is one)."""
    return bool(_NAME.match(name))


@dataclass(frozen=True)
class Owner:
    """A replica's identity in the ids of the sessions it creates."""

    name: str
    incarnation: str

    @classmethod
    def start(cls, name: str) -> Owner:
        """This process, under replica name `name`, with a fresh incarnation."""
        if not valid_replica_name(name):
            raise ValueError(f"replica name {name[:64]!r} is not a DNS label ([a-z0-9-], <= 63)")
        return cls(name, secrets.token_hex(4))

    @property
    def key(self) -> str:
        return f"{self.name}.{self.incarnation}"

    def new_session_id(self) -> str:
        return f"{self.key}.{uuid.uuid4().hex}"

    def missing(self, session_id: str) -> GantryError:
        """The error for a session id this replica does not hold."""
        owner = owner_of(session_id)
        if owner is None or owner == self:
            return NotFound(
                f"session {echo(session_id)} not found (closed, expired or never created)",
                resource_type="session",
                resource_name=session_id,
            )
        meta = {"owner": owner.name, "replica": self.name, "session_id": session_id}
        if owner.name == self.name:
            return Aborted(
                f"session {echo(session_id)} was lost: replica {self.name} restarted since it "
                "was created; start a new session (VisGym sessions can be recreated from "
                "their exported state)",
                reason=SESSION_LOST,
                metadata=meta,
            )
        return FailedPrecondition(
            f"session {echo(session_id)} lives on replica {owner.name}, not {self.name}; "
            "send its calls to the owner (gantry.core.routing does)",
            reason=SESSION_ELSEWHERE,
            metadata=meta,
        )


def owner_of(session_id: str) -> Owner | None:
    """The owner named in a session id; None for ids without one (a single-replica id)."""
    parts = session_id.split(".")
    if len(parts) != 3 or not _NAME.match(parts[0]) or not _INCARNATION.match(parts[1]):
        return None
    return Owner(parts[0], parts[1])


def draining_error(replica: str) -> Unavailable:
    return Unavailable(
        f"replica {replica} is draining and takes no new sessions; create it on another "
        "replica (routing channels do)",
        retry_after_s=1.0,
        reason=REPLICA_DRAINING,
        metadata={"replica": replica},
    )


def load_metadata(sessions: int, capacity: int) -> tuple[tuple[str, str]]:
    return ((LOAD_KEY, f"{sessions}/{capacity}"),)


class RoutedRpcError(grpc.RpcError, grpc.Call):  # type: ignore[misc]
    """A typed error raised by a routing channel, readable like a server's (from_rpc_error)."""

    def __init__(self, error: GantryError) -> None:
        super().__init__(error.message)
        self.error = error
        self._status = error.to_status()

    def code(self) -> grpc.StatusCode:
        return self.error.code

    def details(self) -> str:
        return self.error.message

    def trailing_metadata(self) -> Any:
        return (("grpc-status-details-bin", self._status.SerializeToString()),)

    def initial_metadata(self) -> tuple[()]:
        return ()

    def is_active(self) -> bool:
        return False

    def time_remaining(self) -> Any:
        return None

    def cancel(self) -> bool:
        return False

    def add_callback(self, callback: Any) -> bool:
        return False


def gone_with_its_replica(error: grpc.RpcError) -> bool:
    """Whether a call failed because the session's owner is unreachable or restarted:
    nothing is left to close, say."""
    return from_rpc_error(error).reason in (OWNER_UNAVAILABLE, SESSION_LOST)


def owner_unavailable(session_id: str, owner: str, cause: GantryError) -> RoutedRpcError:
    return RoutedRpcError(
        Unavailable(
            f"replica {owner}, which holds session {echo(session_id)}, is unreachable or "
            f"stopping ({clip(cause.message, 120)}); if it restarted the session is lost: "
            "start a new one, or recover it from its exported state",
            retry_after_s=1.0,
            reason=OWNER_UNAVAILABLE,
            metadata={"owner": owner, "session_id": session_id},
        )
    )


# ---- the replica set -----------------------------------------------------------------


def _host_port(address: str) -> tuple[str, int]:
    host, sep, port = address.rpartition(":")
    if not sep or not port.isdigit():
        raise ValueError(f"replica address {address[:100]!r} is not host:port")
    return host.strip("[]"), int(port)


@dataclass
class Replicas:
    """The replicas behind one target, their load, and who owns which session.

    `spec`: `host:port`, a comma-separated list of `host:port` or `name=host:port`, or
    `dns:///host:port` (every address the name resolves to, re-resolved every
    `refresh_s`; an owner `name` is then reached at `name.host:port`, the DNS name a
    StatefulSet pod gets under its headless Service).
    """

    spec: str
    refresh_s: float = 10.0
    resolve: Callable[[str, int], list[str]] | None = None
    _static: list[str] = field(default_factory=list)
    _named: dict[str, str] = field(default_factory=dict)
    _dns: tuple[str, int] | None = None
    _resolved: list[str] = field(default_factory=list)
    _resolved_at: float = -1e9
    _learned: dict[str, str] = field(default_factory=dict)  # owner key -> address
    _sessions: dict[str, float] = field(default_factory=dict)  # address -> live sessions
    _capacity: dict[str, float] = field(default_factory=dict)
    _skip_until: dict[str, float] = field(default_factory=dict)
    _turn: Iterator[int] = field(default_factory=itertools.count)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def __post_init__(self) -> None:
        spec = self.spec.strip()
        if not spec:
            raise ValueError("no replicas: the target is empty")
        if spec.startswith("dns:///"):
            self._dns = _host_port(spec.removeprefix("dns:///"))
            return
        for entry in (e.strip() for e in spec.split(",")):
            if not entry:
                continue
            name, _, address = entry.rpartition("=")
            _host_port(address)
            if name:
                if not valid_replica_name(name):
                    raise ValueError(f"replica name {name[:64]!r} is not a DNS label")
                self._named[name] = address
            if address not in self._static:
                self._static.append(address)

    def stale(self) -> bool:
        """Whether `addresses()` would resolve DNS now (a blocking lookup)."""
        return self._dns is not None and (
            time.monotonic() - self._resolved_at >= self.refresh_s or not self._resolved
        )

    def addresses(self) -> list[str]:
        if self._dns is None:
            return list(self._static)
        now = time.monotonic()
        if self.stale():
            host, port = self._dns
            try:
                found = (self.resolve or _resolve)(host, port)
            except OSError:
                found = []
            with self._lock:
                self._resolved = found or self._resolved
                self._resolved_at = now
        return list(self._resolved)

    def candidates(self) -> list[str]:
        """Addresses to try for a new session: least loaded first, in turn among equals."""
        addresses = self.addresses()
        if not addresses:
            return []
        now = time.monotonic()
        start = next(self._turn) % len(addresses)
        rotated = addresses[start:] + addresses[:start]
        return sorted(rotated, key=lambda a: (self._skip_until.get(a, 0.0) > now, self._load(a)))

    def _load(self, address: str) -> float:
        return self._sessions.get(address, 0.0) / max(self._capacity.get(address, 1.0), 1.0)

    def address_of(self, session_id: str) -> str | None:
        """The owner's address, or None when this set cannot tell (then ask around)."""
        owner = owner_of(session_id)
        if owner is None:
            addresses = self.addresses()
            return addresses[0] if len(addresses) == 1 else None
        if owner.key in self._learned:
            return self._learned[owner.key]
        if owner.name in self._named:
            return self._named[owner.name]
        if self._dns is not None:
            host, port = self._dns
            return f"{owner.name}.{host}:{port}"
        addresses = self.addresses()
        return addresses[0] if len(addresses) == 1 else None

    def created(self, session_id: str, address: str, trailing: Sequence[Any] | None) -> None:
        """A session was created at `address`; `trailing` may carry the replica's load."""
        owner = owner_of(session_id)
        with self._lock:
            if owner is not None:
                self._learned[owner.key] = address
            self._sessions[address] = self._sessions.get(address, 0.0) + 1
            for key, value in trailing or ():
                if key == LOAD_KEY and isinstance(value, str):
                    live, _, capacity = value.partition("/")
                    try:  # the count before this creation
                        self._sessions[address] = float(live) + 1
                        self._capacity[address] = float(capacity)
                    except ValueError:
                        pass

    def learn(self, session_id: str, address: str) -> None:
        owner = owner_of(session_id)
        if owner is not None:
            with self._lock:
                self._learned[owner.key] = address

    def closed(self, session_id: str) -> None:
        address = self.address_of(session_id)
        if address is not None:
            with self._lock:
                self._sessions[address] = max(self._sessions.get(address, 0.0) - 1, 0.0)

    def skip(self, address: str, seconds: float = SKIP_S) -> None:
        with self._lock:
            self._skip_until[address] = time.monotonic() + seconds


def _resolve(host: str, port: int) -> list[str]:
    found = []
    for family, _, _, _, sockaddr in socket.getaddrinfo(host, port, type=socket.SOCK_STREAM):
        ip = str(sockaddr[0])
        address = f"[{ip}]:{port}" if family == socket.AF_INET6 else f"{ip}:{port}"
        if address not in found:
            found.append(address)
    return found


# ---- how each call is routed ---------------------------------------------------------

CREATE, OWNED, BATCH, ANY = "create", "owned", "batch", "any"
_CREATE_METHODS = frozenset({"CreateSession"})
_CLOSE_METHODS = frozenset({"CloseSession"})


def route_kind(method: str, request: Any) -> str:
    """How a call is routed: CREATE, OWNED (by `session_id`), BATCH (`items`) or ANY."""
    name = method.rsplit("/", 1)[-1]
    if name in _CREATE_METHODS:
        return CREATE
    if getattr(request, "session_id", ""):
        return OWNED
    items = getattr(request, "items", None)
    if items and all(getattr(item, "session_id", "") for item in items):
        return BATCH
    return ANY


def _moves_on(error: GantryError) -> bool:
    """Whether a refused creation should be tried on another replica."""
    return error.code in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.RESOURCE_EXHAUSTED)


def _owner_failure(error: GantryError) -> bool:
    """The owner could not answer: unreachable, or shutting down (its sessions go with it)."""
    return error.code == grpc.StatusCode.UNAVAILABLE and error.reason in ("UNAVAILABLE", "DRAINING")


def _no_replica(last: GantryError | None) -> RoutedRpcError:
    why = f" (last: {clip(last.message, 160)})" if last is not None else ""
    return RoutedRpcError(
        Unavailable(
            f"no replica accepted the session{why}; retry later",
            retry_after_s=2.0,
            reason=NO_REPLICA,
        )
    )


def _check_batch(request: Any) -> None:
    """What a sub-batch cannot see: a session twice in the whole batch."""
    seen: set[str] = set()
    for i, item in enumerate(request.items):
        if item.session_id in seen:
            raise RoutedRpcError(
                InvalidArgument.for_field(
                    f"items[{i}].session_id", "each session may appear once per batch"
                )
            )
        seen.add(item.session_id)


def _owner_gone(
    exc: grpc.RpcError, request: Any, indices: list[int], address: str
) -> dict[int, status_pb2.Status]:
    """A sub-batch failed: its owner is gone (each item says so) or the call itself was
    refused (unauthenticated, deadline...), which fails the whole batch as it would alone."""
    error = from_rpc_error(exc)
    if not _owner_failure(error):
        raise exc
    failed = {}
    for i in indices:
        session_id = request.items[i].session_id
        owner = owner_of(session_id)
        gone = owner_unavailable(session_id, owner.name if owner else address, error)
        failed[i] = gone.error.to_status()
    return failed


def _sub_batch(request: Any, indices: list[int]) -> Any:
    """The batch for one owner: every request-wide field (encoding, options) kept, the
    owner's items only."""
    sub = type(request)()
    sub.CopyFrom(request)
    del sub.items[:]
    sub.items.extend(request.items[i] for i in indices)
    return sub


def _merged(
    method: Method, request: Any, results: dict[int, Any], failed: dict[int, status_pb2.Status]
) -> Any:
    """The sub-batches' results in the request's order."""
    merged = method.deserializer(b"")
    for i, item in enumerate(request.items):
        if i in results:
            merged.results.append(results[i])
        else:
            merged.results.add(session_id=item.session_id, error=failed[i])
    return merged


Request = Any
Response = Any


@dataclass(frozen=True)
class Method:
    """One RPC as a stub names it: path and (de)serializers."""

    path: str
    serializer: Any
    deserializer: Any


# ---- blocking ------------------------------------------------------------------------


class RoutingChannel(grpc.Channel):  # type: ignore[misc]
    """A blocking channel over a replica set (see the module docstring)."""

    def __init__(
        self,
        target: str,
        *,
        token: str | None = None,
        default_timeout_s: float | None = 30.0,
        tls: bool = False,
        root_certificates: bytes | None = None,
        channel: Callable[[str], grpc.Channel] | None = None,
    ) -> None:
        self.replicas = Replicas(target)
        self._make = channel or (
            lambda address: sync_channel(
                address,
                token=token,
                default_timeout_s=default_timeout_s,
                tls=tls,
                root_certificates=root_certificates,
                retry=ROUTED_RETRY,
            )
        )
        self._channels: dict[str, grpc.Channel] = {}
        self._lock = threading.Lock()
        self._anyturn = itertools.count()

    def channel(self, address: str) -> grpc.Channel:
        with self._lock:
            if address not in self._channels:
                self._channels[address] = self._make(address)
            return self._channels[address]

    # -- routing --
    def create(self, method: Method, request: Request, **kwargs: Any) -> Response:
        last: GantryError | None = None
        for address in self.replicas.candidates():
            call = self.channel(address).unary_unary(
                method.path, method.serializer, method.deserializer
            )
            try:
                reply, done = call.with_call(request, **kwargs)
            except grpc.RpcError as exc:
                last = from_rpc_error(exc)
                if not _moves_on(last):
                    raise
                self.replicas.skip(address)
                continue
            self.replicas.created(reply.session.id, address, done.trailing_metadata())
            return reply
        raise _no_replica(last)

    def owned(self, method: Method, request: Request, **kwargs: Any) -> Response:
        session_id = request.session_id
        address = self.replicas.address_of(session_id) or self.find(method, session_id)
        call = self.channel(address).unary_unary(
            method.path, method.serializer, method.deserializer
        )
        try:
            reply = call(request, **kwargs)
        except grpc.RpcError as exc:
            error = from_rpc_error(exc)
            if _owner_failure(error):
                owner = owner_of(session_id)
                raise owner_unavailable(
                    session_id, owner.name if owner else address, error
                ) from exc
            raise
        if method.path.rsplit("/", 1)[-1] in _CLOSE_METHODS:
            self.replicas.closed(session_id)
        return reply

    def find(self, method: Method, session_id: str) -> str:
        """Ask every replica for a session whose owner's address this set cannot tell
        (the service's `GetSession{session_id}`); the one that has it is the owner."""
        last: GantryError | None = None
        get_session = method.path.rsplit("/", 1)[0] + "/GetSession"
        unreachable = False
        for address in self.replicas.addresses():
            stub_call = self.channel(address).unary_unary(
                get_session, StringValue.SerializeToString, _ignore
            )
            try:
                # GetSessionRequest{session_id = 1} on the wire; core imports no service stubs.
                stub_call(StringValue(value=session_id), timeout=5.0)
            except grpc.RpcError as exc:
                last = from_rpc_error(exc)
                if last.reason == SESSION_LOST:
                    raise
                unreachable = unreachable or _owner_failure(last)
                continue
            self.replicas.learn(session_id, address)
            return address
        if last is not None and last.code == grpc.StatusCode.NOT_FOUND and not unreachable:
            raise RoutedRpcError(last)  # every replica answered: nobody has it
        owner = owner_of(session_id)
        cause = last or Unavailable("no replica answered")
        raise owner_unavailable(session_id, owner.name if owner else "unknown", cause)

    def batch(self, method: Method, request: Request, **kwargs: Any) -> Response:
        _check_batch(request)
        groups: dict[str, list[int]] = {}
        failed: dict[int, status_pb2.Status] = {}
        for i, item in enumerate(request.items):
            try:
                address = self.replicas.address_of(item.session_id) or self.find(
                    method, item.session_id
                )
            except RoutedRpcError as exc:
                failed[i] = exc.error.to_status()
                continue
            groups.setdefault(address, []).append(i)
        if len(groups) == 1 and not failed:  # one owner: the request as it is
            ((address, indices),) = groups.items()
            call = self.channel(address).unary_unary(
                method.path, method.serializer, method.deserializer
            )
            try:
                return call(request, **kwargs)
            except grpc.RpcError as exc:
                return _merged(method, request, {}, _owner_gone(exc, request, indices, address))
        futures = {}
        for address, indices in groups.items():
            sub = _sub_batch(request, indices)
            call = self.channel(address).unary_unary(
                method.path, method.serializer, method.deserializer
            )
            futures[address] = call.future(sub, **kwargs)
        results: dict[int, Any] = {}
        for address, future in futures.items():
            indices = groups[address]
            try:
                reply = future.result()
            except grpc.RpcError as exc:
                failed.update(_owner_gone(exc, request, indices, address))
                continue
            results.update(zip(indices, reply.results, strict=True))
        return _merged(method, request, results, failed)

    def any(self, method: Method, request: Request, **kwargs: Any) -> Response:
        addresses = self.replicas.addresses()
        if not addresses:
            raise _no_replica(None)
        address = addresses[next(self._anyturn) % len(addresses)]
        return self.channel(address).unary_unary(
            method.path, method.serializer, method.deserializer
        )(request, **kwargs)

    def route(self, method: Method, request: Request, **kwargs: Any) -> Response:
        kind = route_kind(method.path, request)
        if kind == CREATE:
            return self.create(method, request, **kwargs)
        if kind == OWNED:
            return self.owned(method, request, **kwargs)
        if kind == BATCH:
            return self.batch(method, request, **kwargs)
        return self.any(method, request, **kwargs)

    # -- grpc.Channel --
    def unary_unary(  # type: ignore[override]
        self,
        method: str,
        request_serializer: Any = None,
        response_deserializer: Any = None,
        **_: Any,
    ) -> _UnaryUnary:
        return _UnaryUnary(self, Method(method, request_serializer, response_deserializer))

    def unary_stream(
        self,
        method: str,
        request_serializer: Any = None,
        response_deserializer: Any = None,
        **_: Any,
    ) -> Any:
        return _Streaming(self, Method(method, request_serializer, response_deserializer))

    def stream_unary(self, *args: Any, **kwargs: Any) -> Any:
        raise NotImplementedError("routing channels carry unary and server-streaming calls")

    def stream_stream(self, *args: Any, **kwargs: Any) -> Any:
        raise NotImplementedError("routing channels carry unary and server-streaming calls")

    def subscribe(self, callback: Any, try_to_connect: bool = False) -> None:
        raise NotImplementedError("subscribe to a replica's own channel")

    def unsubscribe(self, callback: Any) -> None:
        raise NotImplementedError("subscribe to a replica's own channel")

    def close(self) -> None:
        with self._lock:
            channels, self._channels = list(self._channels.values()), {}
        for channel in channels:
            channel.close()

    def __enter__(self) -> RoutingChannel:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class _UnaryUnary:
    def __init__(self, channel: RoutingChannel, method: Method) -> None:
        self.channel, self.method = channel, method

    def __call__(self, request: Request, **kwargs: Any) -> Response:
        return self.channel.route(self.method, request, **kwargs)


class _Streaming:
    """Server-streaming calls (exports) carry no session: the next replica in turn."""

    def __init__(self, channel: RoutingChannel, method: Method) -> None:
        self.channel, self.method = channel, method

    def __call__(self, request: Request, **kwargs: Any) -> Any:
        addresses = self.channel.replicas.addresses()
        if not addresses:
            raise _no_replica(None)
        address = addresses[next(self.channel._anyturn) % len(addresses)]
        return self.channel.channel(address).unary_stream(
            self.method.path, self.method.serializer, self.method.deserializer
        )(request, **kwargs)


def _ignore(data: bytes) -> bytes:
    return data


# ---- asyncio -------------------------------------------------------------------------


class AioRoutingChannel(grpc.aio.Channel):  # type: ignore[misc]
    """The asyncio counterpart of `RoutingChannel`, for generated stubs awaited in a loop
    (`await stub.Step(request)`); streaming calls go to the next replica in turn."""

    def __init__(
        self,
        target: str,
        *,
        token: str | None = None,
        default_timeout_s: float | None = 30.0,
        tls: bool = False,
        root_certificates: bytes | None = None,
        channel: Callable[[str], grpc.aio.Channel] | None = None,
    ) -> None:
        self.replicas = Replicas(target)
        self._make = channel or (
            lambda address: aio_channel(
                address,
                token=token,
                default_timeout_s=default_timeout_s,
                tls=tls,
                root_certificates=root_certificates,
                retry=ROUTED_RETRY,
            )
        )
        self._channels: dict[str, grpc.aio.Channel] = {}
        self._anyturn = itertools.count()

    def channel(self, address: str) -> grpc.aio.Channel:
        if address not in self._channels:
            self._channels[address] = self._make(address)
        return self._channels[address]

    def _call(self, address: str, method: Method) -> Any:
        return self.channel(address).unary_unary(
            method.path, method.serializer, method.deserializer
        )

    async def _resolved(self) -> None:
        """Resolve a `dns:///` target off the event loop when it is due."""
        if self.replicas.stale():
            await asyncio.to_thread(self.replicas.addresses)

    async def create(self, method: Method, request: Request, **kwargs: Any) -> Response:
        last: GantryError | None = None
        await self._resolved()
        for address in self.replicas.candidates():
            call = self._call(address, method)(request, **kwargs)
            try:
                reply = await call
            except grpc.RpcError as exc:
                last = from_rpc_error(exc)
                if not _moves_on(last):
                    raise
                self.replicas.skip(address)
                continue
            self.replicas.created(reply.session.id, address, await call.trailing_metadata())
            return reply
        raise _no_replica(last)

    async def owned(self, method: Method, request: Request, **kwargs: Any) -> Response:
        session_id = request.session_id
        address = self.replicas.address_of(session_id)
        owner = owner_of(session_id)
        if address is None:
            raise owner_unavailable(
                session_id,
                owner.name if owner else "unknown",
                Unavailable("its address is unknown to this client"),
            )
        try:
            reply = await self._call(address, method)(request, **kwargs)
        except grpc.RpcError as exc:
            error = from_rpc_error(exc)
            if _owner_failure(error):
                raise owner_unavailable(
                    session_id, owner.name if owner else address, error
                ) from exc
            raise
        if method.path.rsplit("/", 1)[-1] in _CLOSE_METHODS:
            self.replicas.closed(session_id)
        return reply

    async def batch(self, method: Method, request: Request, **kwargs: Any) -> Response:
        _check_batch(request)
        groups: dict[str, list[int]] = {}
        failed: dict[int, status_pb2.Status] = {}
        for i, item in enumerate(request.items):
            address = self.replicas.address_of(item.session_id)
            if address is None:
                failed[i] = owner_unavailable(
                    item.session_id, "unknown", Unavailable("its address is unknown")
                ).error.to_status()
            else:
                groups.setdefault(address, []).append(i)

        async def one(address: str, indices: list[int]) -> Any:
            if len(indices) == len(request.items):  # one owner: the request as it is
                return await self._call(address, method)(request, **kwargs)
            sub = _sub_batch(request, indices)
            return await self._call(address, method)(sub, **kwargs)

        replies = await asyncio.gather(
            *(one(a, ix) for a, ix in groups.items()), return_exceptions=True
        )
        results: dict[int, Any] = {}
        for (address, indices), reply in zip(groups.items(), replies, strict=True):
            if isinstance(reply, grpc.RpcError):
                failed.update(_owner_gone(reply, request, indices, address))
            elif isinstance(reply, BaseException):
                raise reply
            else:
                results.update(zip(indices, reply.results, strict=True))
        return _merged(method, request, results, failed)

    async def any(self, method: Method, request: Request, **kwargs: Any) -> Response:
        await self._resolved()
        addresses = self.replicas.addresses()
        if not addresses:
            raise _no_replica(None)
        address = addresses[next(self._anyturn) % len(addresses)]
        return await self._call(address, method)(request, **kwargs)

    def route(self, method: Method, request: Request, **kwargs: Any) -> Awaitable[Response]:
        kind = route_kind(method.path, request)
        if kind == CREATE:
            return self.create(method, request, **kwargs)
        if kind == OWNED:
            return self.owned(method, request, **kwargs)
        if kind == BATCH:
            return self.batch(method, request, **kwargs)
        return self.any(method, request, **kwargs)

    def unary_unary(  # type: ignore[override]
        self,
        method: str,
        request_serializer: Any = None,
        response_deserializer: Any = None,
        **_: Any,
    ) -> Callable[..., Awaitable[Response]]:
        routed = Method(method, request_serializer, response_deserializer)
        return lambda request, **kwargs: self.route(routed, request, **kwargs)

    def unary_stream(  # type: ignore[override]
        self,
        method: str,
        request_serializer: Any = None,
        response_deserializer: Any = None,
        **_: Any,
    ) -> Callable[..., Any]:
        def call(request: Request, **kwargs: Any) -> Any:
            addresses = self.replicas.addresses()
            if not addresses:
                raise _no_replica(None)
            address = addresses[next(self._anyturn) % len(addresses)]
            return self.channel(address).unary_stream(
                method, request_serializer, response_deserializer
            )(request, **kwargs)

        return call

    def stream_unary(self, *args: Any, **kwargs: Any) -> Any:
        raise NotImplementedError("routing channels carry unary and server-streaming calls")

    def stream_stream(self, *args: Any, **kwargs: Any) -> Any:
        raise NotImplementedError("routing channels carry unary and server-streaming calls")

    def get_state(self, try_to_connect: bool = False) -> grpc.ChannelConnectivity:
        raise NotImplementedError("a routing channel spans several connections")

    async def wait_for_state_change(self, last_observed_state: Any) -> None:
        raise NotImplementedError("a routing channel spans several connections")

    async def channel_ready(self) -> None:
        raise NotImplementedError("a routing channel spans several connections")

    async def close(self, grace: float | None = None) -> None:
        channels, self._channels = list(self._channels.values()), {}
        for channel in channels:
            await channel.close(grace)

    async def __aenter__(self) -> AioRoutingChannel:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()
