"""Limits first: sizes, counts and free-form values checked on arrival, before any work.

Every check raises `InvalidArgument` naming the field, with at most a short prefix of
the offending value, so a hostile request costs the server a length check, not a
tokenization or a decode.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sized
from typing import Any

import grpc
from google.protobuf import struct_pb2

from gantry.core.errors import InvalidArgument

MAX_ID_BYTES = 256
MAX_STRUCT_DEPTH = 16


def check_bytes(value: str | bytes, *, field: str, limit: int) -> None:
    """`value` (text counted in UTF-8 bytes) is at most `limit` bytes."""
    size = len(value.encode("utf-8", "replace")) if isinstance(value, str) else len(value)
    if size > limit:
        raise InvalidArgument.for_field(field, f"is {size} bytes; the limit is {limit}")


def check_id(value: str, *, field: str, limit: int = MAX_ID_BYTES) -> None:
    """An identifier a client sends back (run id, session id): short and printable."""
    check_bytes(value, field=field, limit=limit)
    if any(ord(c) < 32 for c in value):
        raise InvalidArgument.for_field(field, "must not contain control characters")


def check_count(value: int | Sized, *, field: str, limit: int, minimum: int = 0) -> None:
    """A number (or a collection's length) within [minimum, limit]."""
    n = value if isinstance(value, int) else len(value)
    if n < minimum:
        raise InvalidArgument.for_field(field, f"must be at least {minimum} (got {n})")
    if n > limit:
        raise InvalidArgument.for_field(field, f"is {n}; the limit is {limit}")


def check_total_bytes(values: Iterable[str | bytes], *, field: str, limit: int) -> None:
    """The sum of the sizes of `values` is at most `limit` bytes."""
    total = 0
    for value in values:
        total += len(value.encode("utf-8", "replace")) if isinstance(value, str) else len(value)
        if total > limit:
            raise InvalidArgument.for_field(field, f"exceeds {limit} bytes in total")


def struct_to_python(
    struct: struct_pb2.Struct, *, field: str, max_depth: int = MAX_STRUCT_DEPTH
) -> dict[str, Any]:
    """A `Struct` as plain Python, refusing NaN/inf numbers and nesting beyond `max_depth`."""

    def convert(value: struct_pb2.Value, path: str, depth: int) -> Any:
        if depth > max_depth:
            raise InvalidArgument.for_field(path, f"nests deeper than {max_depth} levels")
        kind = value.WhichOneof("kind")
        if kind == "number_value":
            if not math.isfinite(value.number_value):
                raise InvalidArgument.for_field(path, "must be a finite number")
            return value.number_value
        if kind == "string_value":
            return value.string_value
        if kind == "bool_value":
            return value.bool_value
        if kind == "struct_value":
            return {
                k: convert(v, f"{path}.{k}", depth + 1)
                for k, v in value.struct_value.fields.items()
            }
        if kind == "list_value":
            return [
                convert(v, f"{path}[{i}]", depth + 1) for i, v in enumerate(value.list_value.values)
            ]
        return None

    return {k: convert(v, f"{field}.{k}", 1) for k, v in struct.fields.items()}


def client_key(context: grpc.aio.ServicerContext[Any, Any]) -> str:
    """Who is calling, for fair scheduling: `x-client-id` metadata, else the peer's host."""
    for key, value in context.invocation_metadata() or ():
        if key.lower() == "x-client-id":
            text = value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)
            return text[:128]
    peer = context.peer() or ""
    host, _, _ = peer.rpartition(":")
    return host or peer
