"""A service that calls another (like rollout -> envfarm, trainer -> rollout), for
tracing tests: `Forward` calls a probe's Echo through an aio channel on the event loop,
`ForwardBlocking` through a blocking channel on the executor, as the trainer publishes.

Not registered as a Gantry service; tests start it directly or as `python -m` it.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any, ClassVar

import grpc
from google.protobuf import wrappers_pb2

from gantry.core.client import aio_channel, sync_channel
from gantry.core.server import Service
from gantry.core.settings import ServiceSettings, settings_config
from gantry.core.testing.probe import PROBE_SERVICE, TEST_TOKEN, probe_method
from gantry.core.tracing import stage

RELAY_SERVICE = "gantry.testing.v1.RelayService"
log = logging.getLogger("gantry.testing.relay")


class RelaySettings(ServiceSettings):
    model_config = settings_config("relay")
    probe_target: str = ""
    probe_token: str = TEST_TOKEN


class RelayService(Service[RelaySettings]):
    name: ClassVar[str] = "relay"
    settings_type: ClassVar[type[ServiceSettings]] = RelaySettings

    async def forward(
        self, request: wrappers_pb2.StringValue, context: Any
    ) -> wrappers_pb2.StringValue:
        log.info("forwarding %r", request.value)
        with stage("relay.forward", value=request.value):
            async with aio_channel(
                self.settings.probe_target, token=self.settings.probe_token
            ) as channel:
                reply = await probe_method(channel, "Echo")(request)
        return wrappers_pb2.StringValue(value=f"relayed {reply.value}")

    def _forward_blocking(self, value: str) -> str:
        with (
            stage("relay.forward_blocking", value=value),
            sync_channel(self.settings.probe_target, token=self.settings.probe_token) as ch,
        ):
            echo = ch.unary_unary(
                f"/{PROBE_SERVICE}/Echo",
                request_serializer=wrappers_pb2.StringValue.SerializeToString,
                response_deserializer=wrappers_pb2.StringValue.FromString,
            )
            reply: wrappers_pb2.StringValue = echo(wrappers_pb2.StringValue(value=value))
            return reply.value

    async def forward_blocking(
        self, request: wrappers_pb2.StringValue, context: Any
    ) -> wrappers_pb2.StringValue:
        value = await self.run_blocking(self._forward_blocking, request.value)
        return wrappers_pb2.StringValue(value=f"relayed {value}")

    @classmethod
    def demo_call(cls, channel: grpc.Channel) -> str:
        return "relay"

    def add_to_server(self, server: grpc.aio.Server) -> Sequence[str]:
        def unary(fn: Any) -> grpc.RpcMethodHandler[Any, Any]:
            return grpc.unary_unary_rpc_method_handler(
                fn,
                request_deserializer=wrappers_pb2.StringValue.FromString,
                response_serializer=wrappers_pb2.StringValue.SerializeToString,
            )

        handlers = {"Forward": unary(self.forward), "ForwardBlocking": unary(self.forward_blocking)}
        server.add_generic_rpc_handlers(
            (grpc.method_handlers_generic_handler(RELAY_SERVICE, handlers),)
        )
        return [RELAY_SERVICE]


def relay_method(channel: grpc.Channel | grpc.aio.Channel, name: str) -> Any:
    return channel.unary_unary(
        f"/{RELAY_SERVICE}/{name}",
        request_serializer=wrappers_pb2.StringValue.SerializeToString,
        response_deserializer=wrappers_pb2.StringValue.FromString,
    )


if __name__ == "__main__":  # started as a real process by the tracing integration test
    from gantry.core.server import serve

    serve(RelayService)
