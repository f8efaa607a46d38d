"""The one server interceptor: request ids, auth, metrics, logging and error mapping.

Every handler of every service runs inside `_CallScope`, so a typed `GantryError`
always leaves as its status code with `google.rpc` details, an unexpected exception
leaves as INTERNAL carrying the request id (never a stack trace), and every call is
counted and timed whatever its outcome.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import grpc

from gantry.core.auth import BearerAuth
from gantry.core.errors import GantryError, Internal
from gantry.core.logs import request_id_var
from gantry.core.metrics import ServerMetrics

log = logging.getLogger("gantry.rpc")

REQUEST_ID = "x-request-id"
# Health probes and reflection fire constantly; keep them out of the info log.
_QUIET_PREFIXES = ("/grpc.health.v1.Health/", "/grpc.reflection.")


def _split(method: str) -> tuple[str, str]:
    service, _, name = method.lstrip("/").partition("/")
    return service, name


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


class _CallScope:
    """Book-keeping for one RPC; `run` and `run_stream` wrap the handler body."""

    def __init__(
        self,
        method: str,
        context: grpc.aio.ServicerContext[Any, Any],
        metrics: ServerMetrics,
        auth: BearerAuth | None,
    ) -> None:
        self.method = method
        self.service, self.name = _split(method)
        self.context = context
        self.metrics = metrics
        self.auth = auth
        metadata = context.invocation_metadata()
        self.request_id = _metadata_value(metadata, REQUEST_ID) or uuid.uuid4().hex[:16]
        self.metadata: Any = metadata

    def _enter(self) -> None:
        self._token = request_id_var.set(self.request_id)
        self._start = time.perf_counter()
        self.metrics.in_flight.labels(self.service, self.name).inc()

    def _authenticate(self) -> None:
        if self.auth is not None:
            self.auth.check(self.method, self.metadata)

    def _exit(self, code: grpc.StatusCode) -> None:
        elapsed = time.perf_counter() - self._start
        self.metrics.in_flight.labels(self.service, self.name).dec()
        self.metrics.requests.labels(self.service, self.name, code.name).inc()
        self.metrics.latency.labels(self.service, self.name).observe(elapsed)
        if not self.method.startswith(_QUIET_PREFIXES):
            log.info(
                "rpc %s %s %.1fms",
                self.method,
                code.name,
                elapsed * 1e3,
                extra={"method": self.method, "code": code.name, "ms": round(elapsed * 1e3, 3)},
            )
        # A stream may finish in another context: then there is nothing to restore.
        with contextlib.suppress(ValueError):
            request_id_var.reset(self._token)

    async def _fail(self, exc: BaseException) -> grpc.StatusCode:
        """Send the status for `exc`; return its code. Raises AbortError (by design)."""
        if isinstance(exc, GantryError):
            error = exc
            if error.code == grpc.StatusCode.INTERNAL:
                log.error("rpc %s failed: %s", self.method, error.message)
        else:
            log.exception("rpc %s raised an unexpected error", self.method, exc_info=exc)
            error = Internal(
                f"internal error (request id {self.request_id})",
                metadata={"request_id": self.request_id},
            )
        status = error.to_grpc_status()
        await self.context.abort(status.code, status.details, status.trailing_metadata)
        return error.code  # unreachable: abort raises

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
            code = exc.code if isinstance(exc, GantryError) else grpc.StatusCode.INTERNAL
            await self._fail(exc)
        finally:
            self._exit(code)

    async def run_stream(self, body: Callable[[], AsyncIterator[Any]]) -> AsyncIterator[Any]:
        self._enter()
        code = grpc.StatusCode.UNKNOWN
        try:
            self._authenticate()
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
            code = exc.code if isinstance(exc, GantryError) else grpc.StatusCode.INTERNAL
            await self._fail(exc)
        finally:
            self._exit(code)


class RuntimeInterceptor(grpc.aio.ServerInterceptor):
    def __init__(self, metrics: ServerMetrics, auth: BearerAuth | None) -> None:
        self.metrics = metrics
        self.auth = auth

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
        return self._wrap(handler, handler_call_details.method)

    def _wrap(
        self, handler: grpc.RpcMethodHandler[Any, Any], method: str
    ) -> grpc.RpcMethodHandler[Any, Any]:
        metrics, auth = self.metrics, self.auth

        def unary_response(behavior: Callable[..., Any]) -> Callable[..., Any]:
            async def wrapped(request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> Any:
                scope = _CallScope(method, context, metrics, auth)
                return await scope.run(lambda: behavior(request, context))

            return wrapped

        def stream_response(behavior: Callable[..., Any]) -> Callable[..., Any]:
            if not inspect.isasyncgenfunction(behavior):
                # A handler that writes with context.write() and returns: treat as unary.
                return unary_response(behavior)

            async def wrapped(
                request: Any, context: grpc.aio.ServicerContext[Any, Any]
            ) -> AsyncIterator[Any]:
                scope = _CallScope(method, context, metrics, auth)
                async for item in scope.run_stream(lambda: behavior(request, context)):
                    yield item

            return wrapped

        des, ser = handler.request_deserializer, handler.response_serializer
        if handler.unary_unary is not None:
            return grpc.unary_unary_rpc_method_handler(
                unary_response(handler.unary_unary), des, ser
            )
        if handler.stream_unary is not None:
            return grpc.stream_unary_rpc_method_handler(
                unary_response(handler.stream_unary), des, ser
            )
        if handler.unary_stream is not None:
            return grpc.unary_stream_rpc_method_handler(
                stream_response(handler.unary_stream), des, ser
            )
        assert handler.stream_stream is not None
        return grpc.stream_stream_rpc_method_handler(
            stream_response(handler.stream_stream), des, ser
        )
