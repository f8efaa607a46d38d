"""Client channels to Gantry services: limits, bearer token, deadlines and retries.

`aio_channel()` and `sync_channel()` return ordinary gRPC channels; use them with the
generated stubs. Both set the message-size limits to match the servers, add the bearer
token and a request id to every call, give unary calls a default deadline, and retry
calls that fail with UNAVAILABLE with exponential backoff (gRPC's own retry policy).
Every call is an OpenTelemetry CLIENT span whose trace context travels in the metadata
(`traceparent`), so the server's span, and whatever it calls, join the caller's trace.
"""

from __future__ import annotations

import asyncio
import json
import secrets
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

import grpc
from opentelemetry import trace

from gantry.core import tracing
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


def _metadata(
    existing: Metadata | None, token: str | None, span: trace.Span
) -> list[tuple[str, str | bytes]]:
    merged = list(existing or ())
    keys = {k.lower() for k, _ in merged}
    if token is not None and "authorization" not in keys:
        merged.append(("authorization", f"Bearer {token}"))
    if REQUEST_ID not in keys:
        merged.append((REQUEST_ID, secrets.token_hex(8)))
    return tracing.inject(merged, span)


def _method_name(details: Any) -> str:
    method = details.method
    return method.decode() if isinstance(method, bytes) else str(method)


def _client_span(details: Any) -> trace.Span:
    """The CLIENT span of one call, a child of whatever span is current."""
    return tracing.start_rpc_span(_method_name(details), trace.SpanKind.CLIENT)


def _end_failed(span: trace.Span, exc: BaseException) -> None:
    code = exc.code() if isinstance(exc, grpc.RpcError) else grpc.StatusCode.UNKNOWN
    tracing.end_rpc_span(span, code, message=type(exc).__name__)


# Tasks that read an aio call's status once it is done; held so they are not collected.
_closing: set[asyncio.Task[None]] = set()


async def _end_aio(span: trace.Span, call: Any, end_time_ns: int) -> None:
    try:
        code, message = await call.code(), await call.details()
    except Exception:  # the call object cannot report (cancelled before it started)
        code, message = grpc.StatusCode.CANCELLED, ""
    tracing.end_rpc_span(span, code, message=message or "", end_time_ns=end_time_ns)


class _AioMetadata:
    def __init__(self, token: str | None, default_timeout_s: float | None) -> None:
        self.token = token
        self.default_timeout_s = default_timeout_s

    async def _call(
        self, continuation: Any, details: Any, request: Any, *, unary_response: bool
    ) -> Any:
        timeout = details.timeout
        if timeout is None and unary_response:
            timeout = self.default_timeout_s
        span = _client_span(details)
        details = details._replace(
            metadata=_metadata(details.metadata, self.token, span), timeout=timeout
        )
        try:
            call = await continuation(details, request)
        except BaseException as exc:
            _end_failed(span, exc)
            raise

        def done(finished: Any) -> None:
            # aio calls report their status through coroutines: read it on the loop.
            task = asyncio.ensure_future(_end_aio(span, finished, time.time_ns()))
            _closing.add(task)
            task.add_done_callback(_closing.discard)

        call.add_done_callback(done)
        return call


# grpc.aio files each interceptor under the first call type it implements, so each
# call type needs its own class.
class _AioUnaryUnary(_AioMetadata, grpc.aio.UnaryUnaryClientInterceptor):
    async def intercept_unary_unary(self, continuation: Any, details: Any, request: Any) -> Any:
        return await self._call(continuation, details, request, unary_response=True)


class _AioUnaryStream(_AioMetadata, grpc.aio.UnaryStreamClientInterceptor):
    async def intercept_unary_stream(self, continuation: Any, details: Any, request: Any) -> Any:
        return await self._call(continuation, details, request, unary_response=False)


class _AioStreamUnary(_AioMetadata, grpc.aio.StreamUnaryClientInterceptor):
    async def intercept_stream_unary(self, continuation: Any, details: Any, requests: Any) -> Any:
        return await self._call(continuation, details, requests, unary_response=True)


class _AioStreamStream(_AioMetadata, grpc.aio.StreamStreamClientInterceptor):
    async def intercept_stream_stream(self, continuation: Any, details: Any, requests: Any) -> Any:
        return await self._call(continuation, details, requests, unary_response=False)


class _Details(NamedTuple):
    method: str
    timeout: float | None
    metadata: Any
    credentials: grpc.CallCredentials | None
    wait_for_ready: bool | None
    compression: grpc.Compression | None


class _CallDetails(_Details, grpc.ClientCallDetails):  # type: ignore[misc]
    """A call's details as grpc's sync interceptors take them (a tuple: cheap to make)."""


class _SyncInterceptor(
    grpc.UnaryUnaryClientInterceptor,  # type: ignore[misc]
    grpc.UnaryStreamClientInterceptor,  # type: ignore[misc]
    grpc.StreamUnaryClientInterceptor,  # type: ignore[misc]
    grpc.StreamStreamClientInterceptor,  # type: ignore[misc]
):
    def __init__(self, token: str | None, default_timeout_s: float | None) -> None:
        self.token = token
        self.default_timeout_s = default_timeout_s

    def _call(self, continuation: Any, details: Any, request: Any, *, unary_response: bool) -> Any:
        timeout = details.timeout
        if timeout is None and unary_response:
            timeout = self.default_timeout_s
        span = _client_span(details)
        details = _CallDetails(
            method=details.method,
            timeout=timeout,
            metadata=_metadata(details.metadata, self.token, span),
            credentials=details.credentials,
            wait_for_ready=getattr(details, "wait_for_ready", None),
            compression=getattr(details, "compression", None),
        )
        try:
            call = continuation(details, request)
        except BaseException as exc:
            _end_failed(span, exc)
            raise

        def done(finished: Any) -> None:  # at once for unary calls, at the end for streams
            tracing.end_rpc_span(span, finished.code(), message=finished.details() or "")

        call.add_done_callback(done)
        return call

    def intercept_unary_unary(self, continuation: Any, details: Any, request: Any) -> Any:
        return self._call(continuation, details, request, unary_response=True)

    def intercept_unary_stream(self, continuation: Any, details: Any, request: Any) -> Any:
        return self._call(continuation, details, request, unary_response=False)

    def intercept_stream_unary(self, continuation: Any, details: Any, requests: Any) -> Any:
        return self._call(continuation, details, requests, unary_response=True)

    def intercept_stream_stream(self, continuation: Any, details: Any, requests: Any) -> Any:
        return self._call(continuation, details, requests, unary_response=False)


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
