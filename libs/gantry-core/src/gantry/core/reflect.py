"""Call any RPC with JSON through server reflection (for people without grpcurl)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import grpc
from google.protobuf import descriptor_pool, json_format, message_factory
from google.protobuf.descriptor import MethodDescriptor, ServiceDescriptor
from grpc_reflection.v1alpha.proto_reflection_descriptor_database import (
    ProtoReflectionDescriptorDatabase,
)


class ReflectionClient:
    def __init__(self, channel: grpc.Channel) -> None:
        self.channel = channel
        self._db = ProtoReflectionDescriptorDatabase(channel)
        self._pool = descriptor_pool.DescriptorPool(self._db)

    def services(self) -> list[str]:
        return sorted(self._db.get_services())

    def service(self, name: str) -> ServiceDescriptor:
        return self._pool.FindServiceByName(name)

    def find_method(self, name: str) -> MethodDescriptor:
        """Accepts `pkg.Service/Method`, `pkg.Service.Method`, `Service/Method` or `Method`."""
        wanted = name.replace("/", ".").lstrip(".")
        candidates: list[MethodDescriptor] = []
        for service_name in self.services():
            try:
                service = self.service(service_name)
            except KeyError:  # listed but published without a descriptor
                continue
            for method in service.methods:
                full = method.full_name
                if full == wanted or full.endswith("." + wanted):
                    candidates.append(method)
        if not candidates:
            raise KeyError(f"no method {name!r}; services: {', '.join(self.services())}")
        if len(candidates) > 1:
            names = ", ".join(m.full_name for m in candidates)
            raise KeyError(f"{name!r} is ambiguous: {names}")
        return candidates[0]

    def call(
        self, method: MethodDescriptor, request_json: str, *, timeout_s: float | None = None
    ) -> Iterator[str]:
        """Invoke `method`; yield each response as JSON. Client streams take a JSON array."""
        request_type = message_factory.GetMessageClass(method.input_type)
        response_type = message_factory.GetMessageClass(method.output_type)
        path = f"/{method.containing_service.full_name}/{method.name}"
        text = request_json.strip() or "{}"

        def parse(obj: Any) -> Any:
            return json_format.ParseDict(obj, request_type())

        if method.client_streaming:
            items = json.loads(text)
            if not isinstance(items, list):
                raise ValueError("a client-streaming method takes a JSON array of requests")
            payload: Any = iter([parse(item) for item in items])
        else:
            payload = json_format.Parse(text, request_type())
        kwargs = {
            "request_serializer": request_type.SerializeToString,
            "response_deserializer": response_type.FromString,
        }
        kind = (
            ("stream" if method.client_streaming else "unary")
            + "_"
            + ("stream" if method.server_streaming else "unary")
        )
        callable_ = getattr(self.channel, kind)(path, **kwargs)
        if method.server_streaming:
            for reply in callable_(payload, timeout=timeout_s):
                yield _to_json(reply)
        else:
            yield _to_json(callable_(payload, timeout=timeout_s))


def _to_json(message: Any) -> str:
    return json_format.MessageToJson(message, indent=2, preserving_proto_field_name=False)
