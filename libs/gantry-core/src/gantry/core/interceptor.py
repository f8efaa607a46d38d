"""The one server interceptor: request ids, auth, metrics, logging and error mapping.

Every handler of every service runs inside `_CallScope`, so a typed `GantryError`
always leaves as its status code with `google.rpc` details, an unexpected exception
leaves as INTERNAL carrying the request id (never a stack trace), and every call is
counted and timed whatever its outcome.

Requests arrive as raw bytes and are parsed here, after authentication: a message that
does not parse (garbage, nesting past protobuf's recursion limit) is INVALID_ARGUMENT
for an authenticated caller and UNAUTHENTICATED for anyone else, never UNKNOWN. While
the server drains (SIGTERM), new calls get UNAVAILABLE with a RetryInfo.

Each call (health and reflection aside) is one OpenTelemetry SERVER span, current while
the handler runs, so stage spans and outgoing calls nest under it. Only an
authenticated caller's trace context is honoured: a refused call is a root span.

What does not change from call to call (a method's names, metric series, span
attributes, its wrapped handler) is worked out once per method, on its first call: the
runtime's own share of a unary call is a few tens of microseconds.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import grpc
from opentelemetry import context as otel_context
from opentelemetry import trace

from gantry.core import tracing
from gantry.core.auth import BearerAuth
from gantry.core.errors import GantryError, Internal, InvalidArgument, Unavailable, Unimplemented
from gantry.core.logs import request_id_var
from gantry.core.metrics import ServerMetrics

log = logging.getLogger("gantry.rpc")

REQUEST_ID = "x-request-id"
# Health probes and reflection fire constantly; keep them out of the info log.
_QUIET_PREFIXES = ("/grpc.health.v1.Health/", "/grpc.reflection.")
# Probes that report readiness themselves (KServe/Triton clients poll them while a model
# loads): the call gate must let them answer "not ready" rather than refuse them.
_STATE_PROBES = frozenset(
    f"/inference.GRPCInferenceService/{name}"
    for name in ("ServerLive", "ServerReady", "ModelReady", "ServerMetadata")
)


def _split(method: str) -> tuple[str, str]:
    service, _, name = method.lstrip("/").partition("/")
    return service, name


@dataclass
class _Method:
    """What every call of one method shares: names, metric series, span attributes."""

    method: str
    metrics: ServerMetrics
    service: str = field(init=False)
    name: str = field(init=False)
    quiet: bool = field(init=False)
    gated: bool = field(init=False)  # refused while the server is not ready or draining
    in_flight: Any = field(init=False)
    latency: Any = field(init=False)
    _requests: dict[grpc.StatusCode, Any] = field(init=False, default_factory=dict)

    def __post_init__(self) -> None:
        self.service, self.name = _split(self.method)
        self.quiet = self.method.startswith(_QUIET_PREFIXES)
        self.gated = not self.quiet and self.method not in _STATE_PROBES
        self.in_flight = self.metrics.in_flight.labels(self.service, self.name)
        self.latency = self.metrics.latency.labels(self.service, self.name)

    def requests(self, code: grpc.StatusCode) -> Any:
        counter = self._requests.get(code)
        if counter is None:
            counter = self._requests[code] = self.metrics.requests.labels(
                self.service, self.name, code.name
            )
        return counter


def _metadata_value(metadata: Any, key: str) -> str | None:
    for k, v in metadata or ():
        if k.lower() == key:
            return v.decode() if isinstance(v, bytes) else str(v)
    return None


def _context_code(context: grpc.aio.ServicerContext[Any, Any]) -> grpc.StatusCode:
    code = context.code()
    if code is None:
        return grpc.StatusCode.OK
    if isinstance(code, grpc.StatusCode):
        return code
    return next((c for c in grpc.StatusCode if c.value[0] == code), grpc.StatusCode.UNKNOWN)


def _context_details(context: grpc.aio.ServicerContext[Any, Any]) -> str:
    """The status message a handler set itself (context.abort / set_details), if any."""
    try:
        details = context.details()
    except Exception:  # not every grpc version keeps it readable
        return ""
    if isinstance(details, bytes):
        return details.decode("utf-8", "replace")
    return details or ""


class _CallScope:
    """Book-keeping for one RPC; `run` and `run_stream` wrap the handler body."""

    def __init__(
        self,
        info: _Method,
        context: grpc.aio.ServicerContext[Any, Any],
        auth: BearerAuth | None,
        gate: CallGate | None = None,
    ) -> None:
        self.info = info
        self.method = info.method
        self.gate = gate
        self.context = context
        self.auth = auth
        metadata = context.invocation_metadata()
        self.request_id = _metadata_value(metadata, REQUEST_ID) or uuid.uuid4().hex[:16]
        self.metadata: Any = metadata
        self.quiet = self.info.quiet
        self._span: tracing.Attached | None = None
        self._error: GantryError | None = None

    def _enter(self) -> None:
        self._token = request_id_var.set(self.request_id)
        self._start = time.perf_counter()
        self._start_ns = time.time_ns()
        self.info.in_flight.inc()

    def _authenticate(self) -> None:
        try:
            if self.auth is not None:
                self.auth.check(self.method, self.metadata)
        except GantryError:
            self._open_span(trusted=False)
            raise
        self._open_span(trusted=True)
        if self.gate is not None and self.info.gated:
            self.gate.check()

    def _open_span(self, *, trusted: bool) -> None:
        """The call's span, current from here on; a parent only from a trusted caller."""
        if self.quiet:
            return
        parent = tracing.extract(self.metadata) if trusted else otel_context.Context()
        span = tracing.start_rpc_span(
            self.method,
            trace.SpanKind.SERVER,
            parent=parent,
            start_time_ns=self._start_ns,
            attributes={"gantry.request_id": self.request_id},
        )
        self._span = tracing.Attached(span)

    def _close_span(self, code: grpc.StatusCode) -> None:
        if self._span is None:
            return
        error = self._error
        message = error.message if error is not None else _context_details(self.context)
        reason = error.reason if error is not None else ""
        tracing.end_rpc_span(self._span.span, code, message=message, reason=reason)
        self._span.detach()
        self._span = None

    def _exit(self, code: grpc.StatusCode) -> None:
        elapsed = time.perf_counter() - self._start
        info = self.info
        info.in_flight.dec()
        info.requests(code).inc()
        info.latency.observe(elapsed)
        if not info.quiet and log.isEnabledFor(logging.INFO):
            log.info(
                "rpc %s %s %.1fms",
                self.method,
                code.name,
                elapsed * 1e3,
                extra={"method": self.method, "code": code.name, "ms": round(elapsed * 1e3, 3)},
            )
        self._close_span(code)  # after the log line, which carries the trace id
        # A stream may finish in another context: then there is nothing to restore.
        with contextlib.suppress(ValueError):
            request_id_var.reset(self._token)

    def _error_for(self, exc: BaseException) -> GantryError:
        """The typed error a handler's exception leaves as (kept for the span)."""
        self._error = self._classify(exc)
        return self._error

    def _classify(self, exc: BaseException) -> GantryError:
        if isinstance(exc, GantryError):
            if exc.code == grpc.StatusCode.INTERNAL:
                log.error("rpc %s failed: %s", self.method, exc.message)
            return exc
        if isinstance(exc, NotImplementedError):  # generated base servicers raise it
            return Unimplemented(f"{self.method} is not implemented by this server")
        log.exception("rpc %s raised an unexpected error", self.method, exc_info=exc)
        return Internal(
            f"internal error (request id {self.request_id})",
            metadata={"request_id": self.request_id},
        )

    async def _abort(self, error: GantryError) -> None:
        """Send `error` as the call's status. Raises AbortError (by design)."""
        status = error.to_grpc_status()
        await self.context.abort(status.code, status.details, status.trailing_metadata)

    async def run(self, body: Callable[[], Awaitable[Any]]) -> Any:
        self._enter()
        code = grpc.StatusCode.UNKNOWN
        try:
            self._authenticate()
            result = await body()
            code = _context_code(self.context)
            return result
        except asyncio.CancelledError:
            code = grpc.StatusCode.CANCELLED
            raise
        except grpc.aio.AbortError:
            code = _context_code(self.context)
            raise
        except Exception as exc:
            error = self._error_for(exc)
            code = error.code
            await self._abort(error)
        finally:
            self._exit(code)

    async def run_stream(self, body: Callable[[], AsyncIterator[Any]]) -> AsyncIterator[Any]:
        self._enter()
        code = grpc.StatusCode.UNKNOWN
        try:
            self._authenticate()
            # Headers now: a client that has them has committed the call, so if this
            # process dies before the first message the client sees UNAVAILABLE. Without
            # them, gRPC's retry policy keeps an uncommitted stream pending forever.
            await self.context.send_initial_metadata(())
            async for item in body():
                yield item
            code = _context_code(self.context)
        except (asyncio.CancelledError, GeneratorExit):
            code = grpc.StatusCode.CANCELLED
            raise
        except grpc.aio.AbortError:
            code = _context_code(self.context)
            raise
        except Exception as exc:
            error = self._error_for(exc)
            code = error.code
            await self._abort(error)
        finally:
            self._exit(code)


class CallGate:
    """Whether the server takes new calls: not before its models load, not while draining."""

    def __init__(self) -> None:
        self.ready = asyncio.Event()
        self.draining = asyncio.Event()

    def check(self) -> None:
        if self.draining.is_set():
            raise Unavailable(
                "the server is shutting down; retry (another replica will answer)",
                retry_after_s=1.0,
                reason="DRAINING",
            )
        if not self.ready.is_set():
            raise Unavailable(
                "the server is still loading its models; retry shortly",
                retry_after_s=2.0,
                reason="NOT_READY",
            )


def _parser(deserializer: Callable[[bytes], Any] | None, method: str) -> Callable[[bytes], Any]:
    """Parse one request message; anything unparseable is the caller's mistake."""

    def parse(data: bytes) -> Any:
        if deserializer is None:
            return data
        try:
            return deserializer(data)
        except Exception as exc:
            raise InvalidArgument(
                f"request: the message for {method} could not be parsed "
                f"({type(exc).__name__}; nesting is limited to 100 levels)",
                reason="MALFORMED_REQUEST",
            ) from None

    return parse


async def _parsed_stream(
    requests: AsyncIterator[bytes], parse: Callable[[bytes], Any]
) -> AsyncIterator[Any]:
    async for raw in requests:
        yield parse(raw)


class RuntimeInterceptor(grpc.aio.ServerInterceptor):
    def __init__(
        self,
        metrics: ServerMetrics,
        auth: BearerAuth | None,
        gate: CallGate | None = None,
    ) -> None:
        self.metrics = metrics
        self.auth = auth
        self.gate = gate
        # Per method: the handler the server gave and its wrapped form (made once).
        self._wrapped: dict[
            str, tuple[grpc.RpcMethodHandler[Any, Any], grpc.RpcMethodHandler[Any, Any]]
        ] = {}

    async def intercept_service(
        self,
        continuation: Callable[
            [grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler[Any, Any] | None]
        ],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler[Any, Any] | None:
        handler = await continuation(handler_call_details)
        if handler is None:
            return handler
        method = handler_call_details.method
        cached = self._wrapped.get(method)
        if cached is not None and cached[0] is handler:
            return cached[1]
        wrapped = self._wrap(handler, method)
        self._wrapped[method] = (handler, wrapped)
        return wrapped

    def _wrap(
        self, handler: grpc.RpcMethodHandler[Any, Any], method: str
    ) -> grpc.RpcMethodHandler[Any, Any]:
        auth, gate = self.auth, self.gate
        info = _Method(method, self.metrics)
        parse = _parser(handler.request_deserializer, method)
        streaming_request = handler.request_streaming

        def request_of(raw: Any) -> Any:
            return _parsed_stream(raw, parse) if streaming_request else parse(raw)

        def unary_response(behavior: Callable[..., Any]) -> Callable[..., Any]:
            async def wrapped(raw: Any, context: grpc.aio.ServicerContext[Any, Any]) -> Any:
                scope = _CallScope(info, context, auth, gate)

                async def body() -> Any:
                    return await behavior(request_of(raw), context)

                return await scope.run(body)

            return wrapped

        def stream_response(behavior: Callable[..., Any]) -> Callable[..., Any]:
            if not inspect.isasyncgenfunction(behavior):
                # A handler that writes with context.write() and returns: treat as unary.
                return unary_response(behavior)

            async def wrapped(
                raw: Any, context: grpc.aio.ServicerContext[Any, Any]
            ) -> AsyncIterator[Any]:
                scope = _CallScope(info, context, auth, gate)
                async for item in scope.run_stream(lambda: behavior(request_of(raw), context)):
                    yield item

            return wrapped

        # Requests reach the wrapper as bytes; `parse` runs inside the call scope.
        ser = handler.response_serializer
        if handler.unary_unary is not None:
            return grpc.unary_unary_rpc_method_handler(
                unary_response(handler.unary_unary), None, ser
            )
        if handler.stream_unary is not None:
            return grpc.stream_unary_rpc_method_handler(
                unary_response(handler.stream_unary), None, ser
            )
        if handler.unary_stream is not None:
            return grpc.unary_stream_rpc_method_handler(
                stream_response(handler.unary_stream), None, ser
            )
        assert handler.stream_stream is not None
        return grpc.stream_stream_rpc_method_handler(
            stream_response(handler.stream_stream), None, ser
        )
