"""What the judge reads and the JSON schemas its answers are constrained to.

Every schema bounds its strings and arrays, so a constrained answer always fits the
step's token budget and the contract's limits (at most 3 sub-questions, 3 instructions).
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from typing import Any

from gantry.core.errors import clip
from gantry.proto.verifier.v1 import verifier_pb2 as pb

FIELD_CHARS = 300  # per trajectory field, in prompts
SYSTEM = (
    "You verify an AI agent's answer to a task. Be strict: an answer is correct only if "
    "the evidence supports it. Reply with JSON only, exactly in the requested format."
)


def _string(max_length: int) -> dict[str, Any]:
    return {"type": "string", "maxLength": max_length}


def _object(properties: dict[str, Any]) -> dict[str, Any]:
    return {
        "type": "object",
        "properties": properties,
        "required": list(properties),
        "additionalProperties": False,
    }


def step_enum(steps: int) -> dict[str, Any]:
    return {"enum": list(range(-1, steps))}


def identification_schema(labels: Sequence[str], steps: int, chars: int) -> dict[str, Any]:
    failure = _object(
        {
            "label": {"enum": list(labels)},
            "step_index": step_enum(steps),
            "description": _string(chars // 2),
        }
    )
    return _object({"failures": {"type": "array", "items": failure, "maxItems": 3}})


def decomposition_schema(sources: Sequence[str], steps: int, chars: int) -> dict[str, Any]:
    item = _object(
        {
            "question": _string(chars // 2),
            "source": {"enum": list(sources)},
            "steps": {"type": "array", "items": step_enum(steps), "maxItems": 4},
        }
    )
    return _object(
        {"sub_questions": {"type": "array", "items": item, "minItems": 1, "maxItems": 3}}
    )


def answers_schema(count: int) -> dict[str, Any]:
    answers = {"type": "array", "items": {"enum": ["yes", "no"]}}
    return _object({"answers": answers | {"minItems": count, "maxItems": count}})


def judge_schema(chars: int) -> dict[str, Any]:
    """The score comes last: the rationale is written first, and the score token is the
    one whose alternatives give the distribution."""
    return _object({"rationale": _string(chars), "score": {"enum": [1, 2, 3, 4]}})


def feedback_schema(chars: int) -> dict[str, Any]:
    return _object(
        {
            "reflection": _string(chars),
            "instructions": {"type": "array", "items": _string(chars // 2), "maxItems": 3},
        }
    )


# One JSON string character: anything but a quote, a backslash or a control character
# (the judge writes no escapes; what it writes is valid JSON by construction).
_CHAR = r'[^"\\\x00-\x1f]'


_SPECIAL = re.compile(r"([\\^$.|?*+()\[\]{}/])")


def _literal(text: str) -> str:
    """`text` as a regex literal (only the syntax characters escaped)."""
    return _SPECIAL.sub(r"\\\1", text)


def schema_regex(schema: dict[str, Any]) -> str:
    """The compact JSON (no optional whitespace) matching `schema`, as a regular expression.

    Covers the schemas above: objects with every property required in order, bounded
    strings, enums of strings or integers, bounded arrays. Weak models spend their token
    budget on optional whitespace when a grammar allows it; this form allows none.
    """
    if "enum" in schema:
        return "(" + "|".join(_literal(json.dumps(v)) for v in schema["enum"]) + ")"
    kind = schema["type"]
    if kind == "string":
        return f'"{_CHAR}{{0,{schema["maxLength"]}}}"'
    if kind == "array":
        item = schema_regex(schema["items"])
        low, high = schema.get("minItems", 0), schema["maxItems"]
        if high == 0:
            return r"\[\]"
        more = f"(,{item}){{{max(low - 1, 0)},{high - 1}}}"
        body = f"{item}{more}"
        return rf"\[{body}\]" if low else rf"\[({body})?\]"
    assert kind == "object" and list(schema["required"]) == list(schema["properties"])
    fields = ",".join(
        f"{_literal(json.dumps(name))}:{schema_regex(value)}"
        for name, value in schema["properties"].items()
    )
    return rf"\{{{fields}\}}"


def max_output_bytes(schema: dict[str, Any]) -> int:
    """The longest compact JSON `schema` admits, in UTF-8 bytes (4 per string character).

    A byte-level tokenizer spends at least one byte per token, so this many tokens always
    fit a complete answer: a judge call is never cut off mid-string.
    """
    if "enum" in schema:
        return max(len(json.dumps(v).encode()) for v in schema["enum"])
    kind = schema["type"]
    if kind == "string":
        return 2 + 4 * int(schema["maxLength"])
    if kind == "array":
        high = int(schema["maxItems"])
        return 2 + high * max_output_bytes(schema["items"]) + max(high - 1, 0)
    fields = schema["properties"]
    keys = sum(len(json.dumps(name).encode()) + 1 for name in fields)  # "name":
    return 2 + keys + sum(max_output_bytes(v) for v in fields.values()) + len(fields) - 1


def render_step(step: pb.TraceStep, position: int) -> str:
    parts = [f"[{position}]"]
    for name in ("thought", "action", "observation"):
        value = getattr(step, name)
        if value:
            parts.append(f"{name}: {clip(value, FIELD_CHARS)}")
    facts = []
    if step.HasField("reward"):
        facts.append(f"reward={step.reward:g}")
    if step.terminated:
        facts.append("terminated")
    if step.truncated:
        facts.append("truncated")
    if step.HasField("action_parsed") and not step.action_parsed:
        facts.append("action did not parse")
    if facts:
        parts.append(f"({', '.join(facts)})")
    return " ".join(parts)


def render_trajectory(
    trajectory: Sequence[pb.TraceStep], budget: int, only: Sequence[int] = ()
) -> str:
    """The steps as text within `budget` characters: the middle is elided first."""
    chosen = sorted(set(only)) if only else list(range(len(trajectory)))
    lines = [render_step(trajectory[i], i) for i in chosen if 0 <= i < len(trajectory)]
    if not lines:
        return "(no steps)"
    text = "\n".join(lines)
    if len(text) <= budget:
        return text
    head: list[str] = []
    tail: list[str] = []
    used = 40
    for i in range(len(lines)):
        line = lines[i] if i % 2 == 0 else lines[-1 - i // 2]
        if used + len(line) + 1 > budget:
            break
        used += len(line) + 1
        (head if i % 2 == 0 else tail).append(line)
    elided = len(lines) - len(head) - len(tail)
    return "\n".join([*head, f"... ({elided} steps elided) ...", *reversed(tail)])


def facts(trajectory: Sequence[pb.TraceStep], max_steps: int) -> str:
    ended = any(s.terminated for s in trajectory)
    text = f"The trajectory has {len(trajectory)} steps"
    if max_steps:
        text += f" of the task's limit of {max_steps}"
    text += "; the episode reached a terminal step." if ended else "."
    if any(s.truncated for s in trajectory):
        text += " The episode was cut off (truncated)."
    unparsed = [
        i for i, s in enumerate(trajectory) if s.HasField("action_parsed") and not s.action_parsed
    ]
    if unparsed:
        text += f" Actions that did not parse: steps {unparsed[:10]}."
    return text


def task_block(request: pb.VerifyRequest, budget: int) -> str:
    return (
        f"Task:\n{clip(request.task, budget // 3)}\n\nAgent's answer:\n"
        f"{clip(request.answer, budget // 3)}\n\n"
        f"Trajectory:\n{render_trajectory(request.trajectory, budget)}\n\n"
        f"{facts(request.trajectory, request.max_steps)}"
    )


def as_json(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False)
