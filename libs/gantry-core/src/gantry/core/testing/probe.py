"""A small service that exercises the runtime: echo, typed failures, slow and streamed calls.

It uses `google.protobuf.StringValue` messages and a generic handler, so runtime tests
need no service contract. Not registered as a Gantry service; tests start it directly.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from typing import Any, ClassVar

import grpc
from google.protobuf import wrappers_pb2

from gantry.core import errors
from gantry.core.server import Service
from gantry.core.settings import ServiceSettings, settings_config

PROBE_SERVICE = "gantry.testing.v1.ProbeService"
TEST_TOKEN = "test-token-123"


class ProbeSettings(ServiceSettings):
    model_config = settings_config("probe")
    start_delay_s: float = 0.0


def _string(value: str) -> wrappers_pb2.StringValue:
    return wrappers_pb2.StringValue(value=value)


class ProbeService(Service[ProbeSettings]):
    name: ClassVar[str] = "probe"
    settings_type: ClassVar[type[ServiceSettings]] = ProbeSettings

    def __init__(self, settings: ProbeSettings) -> None:
        super().__init__(settings)
        self.started = False
        self.stopped = False
        self.flaky_calls = 0

    async def start(self) -> None:
        await asyncio.sleep(self.settings.start_delay_s)
        self.started = True

    async def stop(self) -> None:
        self.stopped = True

    async def echo(
        self, request: wrappers_pb2.StringValue, context: Any
    ) -> wrappers_pb2.StringValue:
        return _string(request.value)

    async def fail(
        self, request: wrappers_pb2.StringValue, context: Any
    ) -> wrappers_pb2.StringValue:
        kind = request.value
        if kind == "invalid":
            raise errors.InvalidArgument.for_field("value", "must be a known failure kind")
        if kind == "not_found":
            raise errors.NotFound("no such thing", resource_type="thing", resource_name="x")
        if kind == "exhausted":
            raise errors.ResourceExhausted("too many sessions", retry_after_s=1.5)
        if kind == "crash":
            raise RuntimeError("secret internal detail")
        return _string("ok")

    async def flaky(
        self, request: wrappers_pb2.StringValue, context: Any
    ) -> wrappers_pb2.StringValue:
        """Fails with UNAVAILABLE until called `request.value` times."""
        self.flaky_calls += 1
        if self.flaky_calls < int(request.value):
            raise errors.Unavailable("warming up", retry_after_s=0.01)
        return _string(f"ok after {self.flaky_calls}")

    async def sleep(
        self, request: wrappers_pb2.StringValue, context: Any
    ) -> wrappers_pb2.StringValue:
        await asyncio.sleep(float(request.value))
        return _string(f"slept {request.value}")

    async def count(
        self, request: wrappers_pb2.StringValue, context: Any
    ) -> AsyncIterator[wrappers_pb2.StringValue]:
        n = int(request.value)
        for i in range(n):
            yield _string(str(i))
            await asyncio.sleep(0)
        if n == 3:
            raise errors.FailedPrecondition("stream broke after 3 items")

    async def quiet_stream(
        self, request: wrappers_pb2.StringValue, context: Any
    ) -> AsyncIterator[wrappers_pb2.StringValue]:
        """A stream that sends nothing for `value` seconds, then one item."""
        await asyncio.sleep(float(request.value))
        yield _string("woke")

    async def start_job(self, request: wrappers_pb2.StringValue, context: Any) -> Any:
        seconds = float(request.value)

        async def job(handle: Any) -> wrappers_pb2.StringValue:
            handle.set_metadata(_string("running"))
            await asyncio.sleep(seconds)
            if seconds < 0:
                raise errors.FailedPrecondition("negative")
            return _string(f"done after {seconds}")

        if seconds > 1e6:
            raise errors.InvalidArgument.for_field("value", "too long")
        return self.operations.start(job, metadata=_string("queued"))

    @classmethod
    def demo_call(cls, channel: grpc.Channel) -> str:
        echo = channel.unary_unary(
            f"/{PROBE_SERVICE}/Echo",
            request_serializer=wrappers_pb2.StringValue.SerializeToString,
            response_deserializer=wrappers_pb2.StringValue.FromString,
        )
        return f"echo -> {echo(_string('ping')).value}"

    def add_to_server(self, server: grpc.aio.Server) -> Sequence[str]:
        from google.longrunning import operations_proto_pb2 as ops

        def unary(
            fn: Any, response: Any = wrappers_pb2.StringValue
        ) -> grpc.RpcMethodHandler[Any, Any]:
            return grpc.unary_unary_rpc_method_handler(
                fn,
                request_deserializer=wrappers_pb2.StringValue.FromString,
                response_serializer=response.SerializeToString,
            )

        handlers = {
            "Echo": unary(self.echo),
            "Fail": unary(self.fail),
            "Sleep": unary(self.sleep),
            "Flaky": unary(self.flaky),
            "StartJob": unary(self.start_job, ops.Operation),
            "Count": grpc.unary_stream_rpc_method_handler(
                self.count,
                request_deserializer=wrappers_pb2.StringValue.FromString,
                response_serializer=wrappers_pb2.StringValue.SerializeToString,
            ),
            "QuietStream": grpc.unary_stream_rpc_method_handler(
                self.quiet_stream,
                request_deserializer=wrappers_pb2.StringValue.FromString,
                response_serializer=wrappers_pb2.StringValue.SerializeToString,
            ),
        }
        server.add_generic_rpc_handlers(
            (grpc.method_handlers_generic_handler(PROBE_SERVICE, handlers),)
        )
        return [PROBE_SERVICE]


def probe_method(channel: grpc.aio.Channel, name: str, *, stream: bool = False) -> Any:
    """A callable for one probe method on `channel` (StringValue in, StringValue out)."""
    path = f"/{PROBE_SERVICE}/{name}"
    factory = channel.unary_stream if stream else channel.unary_unary
    return factory(
        path,
        request_serializer=wrappers_pb2.StringValue.SerializeToString,
        response_deserializer=wrappers_pb2.StringValue.FromString,
    )


if __name__ == "__main__":  # started as a real process by the integration tests
    from gantry.core.server import serve

    serve(ProbeService)
