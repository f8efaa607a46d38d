"""The runtime interceptor works out a method's wrapper once, not on every call."""

from __future__ import annotations

import asyncio
from typing import Any

import grpc

from gantry.core.interceptor import RuntimeInterceptor
from gantry.core.metrics import ServerMetrics

METHOD = "/gantry.testing.v1.ProbeService/Echo"


class _Details(grpc.HandlerCallDetails):  # type: ignore[misc]
    def __init__(self, method: str) -> None:
        self.method = method
        self.invocation_metadata = ()


def _handler() -> grpc.RpcMethodHandler[Any, Any]:
    async def echo(request: bytes, context: Any) -> bytes:
        return request

    return grpc.unary_unary_rpc_method_handler(echo)


def test_a_method_is_wrapped_once_per_handler() -> None:
    interceptor = RuntimeInterceptor(ServerMetrics(), auth=None)
    first, second = _handler(), _handler()

    async def wrap(handler: grpc.RpcMethodHandler[Any, Any], method: str = METHOD) -> Any:
        async def continuation(details: grpc.HandlerCallDetails) -> Any:
            return handler

        return await interceptor.intercept_service(continuation, _Details(method))

    async def run() -> None:
        wrapped = await wrap(first)
        assert wrapped is not first and wrapped.unary_unary is not None
        assert await wrap(first) is wrapped  # the same handler: the same wrapper
        assert await wrap(second) is not wrapped  # a new handler for the method: rewrapped
        assert await wrap(first, "/other.Service/Echo") is not wrapped

        async def unknown(details: grpc.HandlerCallDetails) -> None:
            return None

        assert await interceptor.intercept_service(unknown, _Details("/x.Y/Z")) is None

    asyncio.run(run())
