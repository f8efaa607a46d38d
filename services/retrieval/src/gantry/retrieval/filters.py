"""Proto payload filters → Qdrant filters, validated with field paths in the errors.

Checked on arrival: nesting (8 levels), the number of conditions over every level, key
and keyword sizes, and finite range bounds.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from qdrant_client import models

from gantry.core.errors import InvalidArgument
from gantry.core.limits import check_bytes
from gantry.proto.retrieval.v1 import retrieval_pb2

RESERVED_PREFIX = "_"
MAX_DEPTH = 8
MAX_KEY_BYTES = 256
MAX_KEYWORD_BYTES = 4096
DEFAULT_MAX_CONDITIONS = 256


@dataclass
class _Budget:
    """Conditions left for the whole filter, nested ones included."""

    left: int
    limit: int

    def spend(self, field: str) -> None:
        self.left -= 1
        if self.left < 0:
            raise InvalidArgument.for_field(
                field, f"the filter has more than {self.limit} conditions (nested included)"
            )


def _match(value: retrieval_pb2.MatchValue, field: str) -> models.MatchValue:
    which = value.WhichOneof("value")
    if which is None:
        raise InvalidArgument.for_field(field, "set one of keyword, integer, boolean")
    if which == "keyword":
        check_bytes(value.keyword, field=f"{field}.keyword", limit=MAX_KEYWORD_BYTES)
    return models.MatchValue(value=getattr(value, which))


def _range(bounds: retrieval_pb2.Range, field: str) -> models.Range:
    kwargs = {b: getattr(bounds, b) for b in ("gt", "gte", "lt", "lte") if bounds.HasField(b)}
    if not kwargs:
        raise InvalidArgument.for_field(field, "set at least one of gt, gte, lt, lte")
    for name, bound in kwargs.items():
        if not math.isfinite(bound):
            raise InvalidArgument.for_field(f"{field}.{name}", "must be a finite number")
    return models.Range(**kwargs)


def _condition(
    condition: retrieval_pb2.Condition, field: str, depth: int, budget: _Budget
) -> models.FieldCondition | models.Filter:
    budget.spend(field)
    which = condition.WhichOneof("condition")
    if which is None:
        raise InvalidArgument.for_field(field, "set one of match, range, filter")
    if which == "filter":
        return _filter(condition.filter, f"{field}.filter", depth + 1, budget)
    if not condition.key:
        raise InvalidArgument.for_field(f"{field}.key", "a payload key is required")
    check_bytes(condition.key, field=f"{field}.key", limit=MAX_KEY_BYTES)
    if which == "match":
        return models.FieldCondition(
            key=condition.key, match=_match(condition.match, f"{field}.match")
        )
    return models.FieldCondition(key=condition.key, range=_range(condition.range, f"{field}.range"))


def _filter(spec: retrieval_pb2.Filter, field: str, depth: int, budget: _Budget) -> models.Filter:
    if depth > MAX_DEPTH:
        raise InvalidArgument.for_field(field, f"filters nest at most {MAX_DEPTH} levels deep")
    total = len(spec.must) + len(spec.should) + len(spec.must_not)
    if total > budget.left:  # refuse a wide filter before converting any of it
        raise InvalidArgument.for_field(
            field, f"the filter has more than {budget.limit} conditions (nested included)"
        )
    clauses: dict[str, list[models.FieldCondition | models.Filter]] = {}
    for name in ("must", "should", "must_not"):
        conditions = getattr(spec, name)
        clauses[name] = [
            _condition(c, f"{field}.{name}[{i}]", depth, budget) for i, c in enumerate(conditions)
        ]
    return models.Filter(
        must=clauses["must"] or None,  # type: ignore[arg-type]
        should=clauses["should"] or None,  # type: ignore[arg-type]
        must_not=clauses["must_not"] or None,  # type: ignore[arg-type]
    )


def to_qdrant_filter(
    spec: retrieval_pb2.Filter,
    field: str = "filter",
    *,
    max_conditions: int = DEFAULT_MAX_CONDITIONS,
) -> models.Filter:
    """The Qdrant filter for `spec`, or InvalidArgument naming the first bad field."""
    return _filter(spec, field, 0, _Budget(max_conditions, max_conditions))


def is_empty(spec: retrieval_pb2.Filter) -> bool:
    return not (spec.must or spec.should or spec.must_not)
