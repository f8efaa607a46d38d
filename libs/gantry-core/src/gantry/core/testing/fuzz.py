"""Hostile requests for any RPC, generated from its protobuf descriptor (hypothesis).

`message_strategy(descriptor)` draws messages of that type: every scalar biased towards
the values that break servers (empty, huge, negative, NaN/inf, unknown enum numbers,
path escapes, addresses, control characters), nested messages to a bounded depth,
oneofs, maps and `google.protobuf.Struct` values nested past any sane depth.
`vocabulary` adds strings that are valid for the service under test (environment ids,
collection names), so fuzzing also reaches past the first validation.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from google.protobuf import descriptor, message, struct_pb2
from google.protobuf.message_factory import GetMessageClass
from hypothesis import strategies as st

FD = descriptor.FieldDescriptor

HOSTILE_STRINGS = [
    "",
    " ",
    "../../../../etc/passwd",
    "/etc/shadow",
    "/proc/self/environ",
    "file:///etc/passwd",
    "s3://bucket/key",
    "http://127.0.0.1:1/",
    "127.0.0.1:1",
    "dns:///attacker.example:443",
    "a\x00b",
    "\n\r\t",
    "é" * 40,
    "%s%n{0}${x}",
    "x" * 300,
    "🙂" * 70,
]
INT_EDGES = [0, 1, -1, 2, 7, 64, 1000, 2**31 - 1, -(2**31)]
INT64_EDGES = [*INT_EDGES, 2**53, 2**63 - 1, -(2**63)]
FLOAT_EDGES = [0.0, -0.0, 1.0, -1.0, 0.5, 1e-30, 1e30, 1e308, math.nan, math.inf, -math.inf]


def _bounded_int(lo: int, hi: int, edges: Sequence[int]) -> st.SearchStrategy[int]:
    usable = [e for e in edges if lo <= e <= hi]
    return st.one_of(st.sampled_from(usable), st.integers(lo, hi))


def _strings(vocabulary: Sequence[str], big_bytes: int) -> st.SearchStrategy[str]:
    big = st.builds(lambda n, c: c * n, st.integers(1, big_bytes), st.sampled_from("xé/."))
    return st.one_of(
        st.sampled_from([*HOSTILE_STRINGS, *vocabulary]),
        st.text(max_size=24),
        big,
    )


def _struct_value(depth: int) -> st.SearchStrategy[struct_pb2.Value]:
    leaves = st.one_of(
        st.builds(lambda x: struct_pb2.Value(number_value=x), st.sampled_from(FLOAT_EDGES)),
        st.builds(lambda s: struct_pb2.Value(string_value=s), st.text(max_size=8)),
        st.builds(lambda b: struct_pb2.Value(bool_value=b), st.booleans()),
        st.just(struct_pb2.Value(null_value=struct_pb2.NULL_VALUE)),
    )
    if depth <= 0:
        return leaves

    def as_list(values: list[struct_pb2.Value]) -> struct_pb2.Value:
        v = struct_pb2.Value()
        v.list_value.values.extend(values)
        return v

    def as_struct(fields: dict[str, struct_pb2.Value]) -> struct_pb2.Value:
        v = struct_pb2.Value()
        for key, item in fields.items():
            v.struct_value.fields[key].CopyFrom(item)
        return v

    inner = _struct_value(depth - 1)
    return st.one_of(
        leaves,
        st.lists(inner, max_size=3).map(as_list),
        st.dictionaries(st.text(max_size=6), inner, max_size=3).map(as_struct),
    )


def deep_struct(levels: int) -> struct_pb2.Struct:
    """A Struct nested `levels` deep (deeper than protobuf's parse limit of 100 when large)."""
    root = struct_pb2.Struct()
    node = root
    for _ in range(levels):
        node = node.fields["k"].struct_value
    node.fields["leaf"].number_value = 1.0
    return root


def _struct(depth: int) -> st.SearchStrategy[struct_pb2.Struct]:
    def build(fields: dict[str, struct_pb2.Value]) -> struct_pb2.Struct:
        s = struct_pb2.Struct()
        for key, value in fields.items():
            s.fields[key].CopyFrom(value)
        return s

    nested = st.dictionaries(st.text(max_size=8), _struct_value(3), max_size=4).map(build)
    return st.one_of(nested, st.sampled_from([deep_struct(30), deep_struct(60)]))


def _scalar(
    field: descriptor.FieldDescriptor, vocabulary: Sequence[str], big_bytes: int
) -> st.SearchStrategy[Any]:
    t = field.type
    if t in (FD.TYPE_INT32, FD.TYPE_SINT32, FD.TYPE_SFIXED32):
        return _bounded_int(-(2**31), 2**31 - 1, INT_EDGES)
    if t in (FD.TYPE_INT64, FD.TYPE_SINT64, FD.TYPE_SFIXED64):
        return _bounded_int(-(2**63), 2**63 - 1, INT64_EDGES)
    if t in (FD.TYPE_UINT32, FD.TYPE_FIXED32):
        return _bounded_int(0, 2**32 - 1, INT_EDGES)
    if t in (FD.TYPE_UINT64, FD.TYPE_FIXED64):
        return _bounded_int(0, 2**64 - 1, INT64_EDGES)
    if t in (FD.TYPE_FLOAT, FD.TYPE_DOUBLE):
        finite = st.floats(
            allow_nan=False, allow_infinity=False, width=32 if t == FD.TYPE_FLOAT else 64
        )
        return st.one_of(st.sampled_from(FLOAT_EDGES), finite)
    if t == FD.TYPE_BOOL:
        return st.booleans()
    if t == FD.TYPE_STRING:
        return _strings(vocabulary, big_bytes)
    if t == FD.TYPE_BYTES:
        return st.one_of(
            st.binary(max_size=64),
            st.builds(lambda n: b"\xff" * n, st.integers(1, big_bytes)),
        )
    if t == FD.TYPE_ENUM:
        assert field.enum_type is not None
        known = [v.number for v in field.enum_type.values]
        return st.sampled_from([*known, 99, -1, 2**31 - 1])
    raise TypeError(f"unhandled field type {t} of {field.full_name}")


def message_strategy(
    desc: descriptor.Descriptor,
    *,
    vocabulary: Sequence[str] = (),
    depth: int = 3,
    big_bytes: int = 200_000,
) -> st.SearchStrategy[message.Message]:
    """Messages of type `desc`: each field unset, an edge value, or a random one."""
    cls = GetMessageClass(desc)
    if desc.full_name == "google.protobuf.Struct":
        return _struct(depth)

    def value_of(field: descriptor.FieldDescriptor) -> st.SearchStrategy[Any]:
        if field.type == FD.TYPE_MESSAGE:
            assert field.message_type is not None
            if depth <= 0:
                return st.just(GetMessageClass(field.message_type)())
            return message_strategy(
                field.message_type, vocabulary=vocabulary, depth=depth - 1, big_bytes=big_bytes
            )
        return _scalar(field, vocabulary, big_bytes)

    fields: dict[str, st.SearchStrategy[Any]] = {}
    for field in desc.fields:
        if field.message_type is not None and field.message_type.GetOptions().map_entry:
            key_f = field.message_type.fields_by_name["key"]
            val_f = field.message_type.fields_by_name["value"]
            fields[field.name] = st.dictionaries(value_of(key_f), value_of(val_f), max_size=3)
        elif field.is_repeated:
            fields[field.name] = st.lists(value_of(field), max_size=4)
        else:
            fields[field.name] = st.none() | value_of(field)

    @st.composite
    def build(draw: st.DrawFn) -> message.Message:
        msg = cls()
        chosen_oneofs: set[str] = set()
        for field in desc.fields:
            oneof = field.containing_oneof
            if oneof is not None and oneof.name in chosen_oneofs:
                continue
            value = draw(fields[field.name])
            if value is None or (isinstance(value, list | dict) and not value):
                continue
            if oneof is not None:
                chosen_oneofs.add(oneof.name)
            _assign(msg, field, value)
        return msg

    return build()


def _assign(msg: message.Message, field: descriptor.FieldDescriptor, value: Any) -> None:
    target = getattr(msg, field.name)
    if field.message_type is not None and field.message_type.GetOptions().map_entry:
        val_f = field.message_type.fields_by_name["value"]
        for key, item in value.items():
            if val_f.type == FD.TYPE_MESSAGE:
                target[key].CopyFrom(item)
            else:
                target[key] = item
    elif field.is_repeated:
        if field.type == FD.TYPE_MESSAGE:
            for item in value:
                target.add().CopyFrom(item)
        else:
            target.extend(value)
    elif field.type == FD.TYPE_MESSAGE:
        target.CopyFrom(value)
    else:
        setattr(msg, field.name, value)
