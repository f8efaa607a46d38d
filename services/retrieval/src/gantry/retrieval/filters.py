"""Proto payload filters → Qdrant filters, validated with field paths in the errors."""

from __future__ import annotations

from qdrant_client import models

from gantry.core.errors import InvalidArgument
from gantry.proto.retrieval.v1 import retrieval_pb2

RESERVED_PREFIX = "_"


def _match(value: retrieval_pb2.MatchValue, field: str) -> models.MatchValue:
    which = value.WhichOneof("value")
    if which is None:
        raise InvalidArgument.for_field(field, "set one of keyword, integer, boolean")
    return models.MatchValue(value=getattr(value, which))


def _range(bounds: retrieval_pb2.Range, field: str) -> models.Range:
    kwargs = {b: getattr(bounds, b) for b in ("gt", "gte", "lt", "lte") if bounds.HasField(b)}
    if not kwargs:
        raise InvalidArgument.for_field(field, "set at least one of gt, gte, lt, lte")
    return models.Range(**kwargs)


def _condition(
    condition: retrieval_pb2.Condition, field: str, depth: int
) -> models.FieldCondition | models.Filter:
    which = condition.WhichOneof("condition")
    if which is None:
        raise InvalidArgument.for_field(field, "set one of match, range, filter")
    if which == "filter":
        return to_qdrant_filter(condition.filter, f"{field}.filter", depth + 1)
    if not condition.key:
        raise InvalidArgument.for_field(f"{field}.key", "a payload key is required")
    if which == "match":
        return models.FieldCondition(
            key=condition.key, match=_match(condition.match, f"{field}.match")
        )
    return models.FieldCondition(key=condition.key, range=_range(condition.range, f"{field}.range"))


def to_qdrant_filter(
    spec: retrieval_pb2.Filter, field: str = "filter", depth: int = 0
) -> models.Filter:
    if depth > 8:
        raise InvalidArgument.for_field(field, "filters nest at most 8 levels deep")
    clauses: dict[str, list[models.FieldCondition | models.Filter]] = {}
    for name in ("must", "should", "must_not"):
        conditions = getattr(spec, name)
        clauses[name] = [
            _condition(c, f"{field}.{name}[{i}]", depth) for i, c in enumerate(conditions)
        ]
    return models.Filter(
        must=clauses["must"] or None,  # type: ignore[arg-type]
        should=clauses["should"] or None,  # type: ignore[arg-type]
        must_not=clauses["must_not"] or None,  # type: ignore[arg-type]
    )


def is_empty(spec: retrieval_pb2.Filter) -> bool:
    return not (spec.must or spec.should or spec.must_not)
