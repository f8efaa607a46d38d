"""Client channels to Gantry services: limits, bearer token, deadlines and retries.

`aio_channel()` and `sync_channel()` return ordinary gRPC channels; use them with the
generated stubs. Both set the message-size limits to match the servers, add the bearer
token and a request id to every call, give unary calls a default deadline, and retry
calls that fail with UNAVAILABLE with exponential backoff (gRPC's own retry policy).
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import grpc

from gantry.core.interceptor import REQUEST_ID
from gantry.core.settings import MiB

Metadata = Sequence[tuple[str, str | bytes]]


@dataclass(frozen=True)
class RetryPolicy:
    """Retries on UNAVAILABLE: the server was not reached or is restarting."""

    max_attempts: int = 5
    initial_backoff_s: float = 0.1
    max_backoff_s: float = 5.0
    multiplier: float = 2.0

    def service_config(self) -> str:
        policy = {
            "maxAttempts": self.max_attempts,
            "initialBackoff": f"{self.initial_backoff_s}s",
            "maxBackoff": f"{self.max_backoff_s}s",
            "backoffMultiplier": self.multiplier,
            "retryableStatusCodes": ["UNAVAILABLE"],
        }
        return json.dumps({"methodConfig": [{"name": [{}], "retryPolicy": policy}]})


def channel_options(
    max_message_bytes: int = 64 * MiB,
    retry: RetryPolicy | None = RetryPolicy(),
    *,
    target: str = "",
) -> list[tuple[str, Any]]:
    options: list[tuple[str, Any]] = [
        ("grpc.max_send_message_length", max_message_bytes),
        ("grpc.max_receive_message_length", max_message_bytes),
        ("grpc.keepalive_time_ms", 30_000),
        ("grpc.keepalive_permit_without_calls", 0),
    ]
    if retry is not None and retry.max_attempts > 1:
        options += [("grpc.enable_retries", 1), ("grpc.service_config", retry.service_config())]
    else:
        options.append(("grpc.enable_retries", 0))
    if target.startswith("dns:///"):  # spread calls over every resolved address
        options.append(("grpc.lb_policy_name", "round_robin"))
    return options


def _metadata(existing: Metadata | None, token: str | None) -> list[tuple[str, str | bytes]]:
    merged = list(existing or ())
    keys = {k.lower() for k, _ in merged}
    if token is not None and "authorization" not in keys:
        merged.append(("authorization", f"Bearer {token}"))
    if REQUEST_ID not in keys:
        merged.append((REQUEST_ID, uuid.uuid4().hex[:16]))
    return merged


class _AioMetadata:
    def __init__(self, token: str | None, default_timeout_s: float | None) -> None:
        self.token = token
        self.default_timeout_s = default_timeout_s

    def _details(self, details: Any, *, unary_response: bool) -> Any:
        timeout = details.timeout
        if timeout is None and unary_response:
            timeout = self.default_timeout_s
        return details._replace(metadata=_metadata(details.metadata, self.token), timeout=timeout)


# grpc.aio files each interceptor under the first call type it implements, so each
# call type needs its own class.
class _AioUnaryUnary(_AioMetadata, grpc.aio.UnaryUnaryClientInterceptor):
    async def intercept_unary_unary(self, continuation: Any, details: Any, request: Any) -> Any:
        return await continuation(self._details(details, unary_response=True), request)


class _AioUnaryStream(_AioMetadata, grpc.aio.UnaryStreamClientInterceptor):
    async def intercept_unary_stream(self, continuation: Any, details: Any, request: Any) -> Any:
        return await continuation(self._details(details, unary_response=False), request)


class _AioStreamUnary(_AioMetadata, grpc.aio.StreamUnaryClientInterceptor):
    async def intercept_stream_unary(self, continuation: Any, details: Any, requests: Any) -> Any:
        return await continuation(self._details(details, unary_response=True), requests)


class _AioStreamStream(_AioMetadata, grpc.aio.StreamStreamClientInterceptor):
    async def intercept_stream_stream(self, continuation: Any, details: Any, requests: Any) -> Any:
        return await continuation(self._details(details, unary_response=False), requests)


@dataclass(frozen=True)
class _CallDetails(grpc.ClientCallDetails):  # type: ignore[misc]
    method: str
    timeout: float | None
    metadata: Any
    credentials: grpc.CallCredentials | None
    wait_for_ready: bool | None
    compression: grpc.Compression | None


class _SyncInterceptor(
    grpc.UnaryUnaryClientInterceptor,  # type: ignore[misc]
    grpc.UnaryStreamClientInterceptor,  # type: ignore[misc]
    grpc.StreamUnaryClientInterceptor,  # type: ignore[misc]
    grpc.StreamStreamClientInterceptor,  # type: ignore[misc]
):
    def __init__(self, token: str | None, default_timeout_s: float | None) -> None:
        self.token = token
        self.default_timeout_s = default_timeout_s

    def _details(self, details: Any, *, unary_response: bool) -> _CallDetails:
        timeout = details.timeout
        if timeout is None and unary_response:
            timeout = self.default_timeout_s
        return _CallDetails(
            method=details.method,
            timeout=timeout,
            metadata=_metadata(details.metadata, self.token),
            credentials=details.credentials,
            wait_for_ready=getattr(details, "wait_for_ready", None),
            compression=getattr(details, "compression", None),
        )

    def intercept_unary_unary(self, continuation: Any, details: Any, request: Any) -> Any:
        return continuation(self._details(details, unary_response=True), request)

    def intercept_unary_stream(self, continuation: Any, details: Any, request: Any) -> Any:
        return continuation(self._details(details, unary_response=False), request)

    def intercept_stream_unary(self, continuation: Any, details: Any, requests: Any) -> Any:
        return continuation(self._details(details, unary_response=True), requests)

    def intercept_stream_stream(self, continuation: Any, details: Any, requests: Any) -> Any:
        return continuation(self._details(details, unary_response=False), requests)


def _credentials(
    tls: bool,
    root_certificates: bytes | None,
    client_cert_chain: bytes | None,
    client_private_key: bytes | None,
) -> grpc.ChannelCredentials | None:
    if not tls:
        return None
    return grpc.ssl_channel_credentials(
        root_certificates, private_key=client_private_key, certificate_chain=client_cert_chain
    )


def aio_channel(
    target: str,
    *,
    token: str | None = None,
    tls: bool = False,
    root_certificates: bytes | None = None,
    client_cert_chain: bytes | None = None,
    client_private_key: bytes | None = None,
    default_timeout_s: float | None = 30.0,
    max_message_bytes: int = 64 * MiB,
    retry: RetryPolicy | None = RetryPolicy(),
) -> grpc.aio.Channel:
    """An asyncio channel to `target` (`host:port`, or `dns:///svc:port` for round robin)."""
    options = channel_options(max_message_bytes, retry, target=target)
    interceptors: list[grpc.aio.ClientInterceptor] = [
        kind(token, default_timeout_s)
        for kind in (_AioUnaryUnary, _AioUnaryStream, _AioStreamUnary, _AioStreamStream)
    ]
    creds = _credentials(tls, root_certificates, client_cert_chain, client_private_key)
    if creds is not None:
        return grpc.aio.secure_channel(target, creds, options=options, interceptors=interceptors)
    return grpc.aio.insecure_channel(target, options=options, interceptors=interceptors)


def sync_channel(
    target: str,
    *,
    token: str | None = None,
    tls: bool = False,
    root_certificates: bytes | None = None,
    client_cert_chain: bytes | None = None,
    client_private_key: bytes | None = None,
    default_timeout_s: float | None = 30.0,
    max_message_bytes: int = 64 * MiB,
    retry: RetryPolicy | None = RetryPolicy(),
) -> grpc.Channel:
    """A blocking channel with the same behaviour as `aio_channel`."""
    options = channel_options(max_message_bytes, retry, target=target)
    creds = _credentials(tls, root_certificates, client_cert_chain, client_private_key)
    raw = (
        grpc.secure_channel(target, creds, options=options)
        if creds is not None
        else grpc.insecure_channel(target, options=options)
    )
    return grpc.intercept_channel(raw, _SyncInterceptor(token, default_timeout_s))
