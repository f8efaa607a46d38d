"""OpenAI request bodies to Gantry generation inputs, and results back to OpenAI JSON.

Everything here is protocol translation: each field of a chat or completions body is
checked for type and range (errors name the OpenAI parameter), then the request becomes
the same `GenerationInput` a gRPC caller would send, so the shared path applies the same
limits, admission and tokenization. Parameters Gantry does not implement are refused
with a 400 naming them, never silently ignored.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from typing import Any, Literal

from gantry.core.errors import echo
from gantry.proto.common.v1 import chat_pb2
from gantry.proto.rollout.v1 import rollout_pb2
from gantry.rollout.engine.types import FinishReason
from gantry.rollout.limits import RequestLimits

Kind = Literal["chat", "completion"]
Json = dict[str, Any]

MAX_STOP = 4  # OpenAI's own bound on `stop`
MAX_TOP_LOGPROBS = 20
MAX_USER_BYTES = 256
DEFAULT_COMPLETION_MAX_TOKENS = 16  # OpenAI's default for /v1/completions
ROLES = {
    "system": chat_pb2.ROLE_SYSTEM,
    "developer": chat_pb2.ROLE_SYSTEM,
    "user": chat_pb2.ROLE_USER,
    "assistant": chat_pb2.ROLE_ASSISTANT,
    "tool": chat_pb2.ROLE_TOOL,
}
FINISH = {
    FinishReason.STOP: "stop",
    FinishReason.LENGTH: "length",
    FinishReason.CANCELLED: "abort",
    FinishReason.RESTARTED: "abort",
}
COMMON = {
    "model", "n", "temperature", "top_p", "top_k", "seed", "stop", "max_tokens", "stream",
    "stream_options", "user", "presence_penalty", "frequency_penalty", "logit_bias",
    "logprobs", "chat_template_kwargs",
}  # fmt: skip
CHAT = COMMON | {
    "messages", "max_completion_tokens", "top_logprobs", "response_format", "tools",
    "tool_choice", "parallel_tool_calls", "functions", "function_call",
}  # fmt: skip
COMPLETION = COMMON | {"prompt", "echo", "suffix", "best_of"}
MESSAGE_KEYS = {"role", "content", "name", "tool_call_id"}


class OpenAIError(Exception):
    """An error of the HTTP front, already in OpenAI's terms."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        kind: str = "invalid_request_error",
        param: str | None = None,
        code: str | None = None,
        retry_after_s: float | None = None,
    ) -> None:
        super().__init__(message)
        self.status, self.message, self.kind = status, message, kind
        self.param, self.code, self.retry_after_s = param, code, retry_after_s

    def body(self) -> Json:
        return {
            "error": {
                "message": self.message,
                "type": self.kind,
                "param": self.param,
                "code": self.code,
            }
        }


def bad(param: str, problem: str) -> OpenAIError:
    return OpenAIError(400, f"{param}: {problem}", param=param)


def unsupported(param: str, what: str) -> OpenAIError:
    return OpenAIError(400, f"{param}: {what}", param=param, code="unsupported_parameter")


@dataclass(frozen=True)
class Request:
    """A checked OpenAI request, as the generation input plus how to present results."""

    kind: Kind
    model: str
    input: rollout_pb2.GenerationInput
    stream: bool
    include_usage: bool
    logprobs: bool  # report the sampled tokens' logprobs
    top_logprobs: int  # and this many most likely alternatives at each position
    max_tokens_param: str  # which parameter set the completion budget, for errors


# ----- field readers: JSON types are checked exactly (a bool is not an int) -----
def _int(body: Json, name: str, lo: int, hi: int) -> int | None:
    value = body.get(name)
    if value is None:
        return None
    if not isinstance(value, int) or isinstance(value, bool):
        raise bad(name, "must be an integer")
    if not lo <= value <= hi:
        raise bad(name, f"must be between {lo} and {hi} (got {value})")
    return value


def _number(body: Json, name: str, lo: float, hi: float, *, open_low: bool = False) -> float | None:
    value = body.get(name)
    if value is None:
        return None
    if not isinstance(value, int | float) or isinstance(value, bool):
        raise bad(name, "must be a number")
    number = float(value)
    low_ok = number > lo if open_low else number >= lo
    if not (math.isfinite(number) and low_ok and number <= hi):
        bracket = "(" if open_low else "["
        raise bad(name, f"must be in {bracket}{lo:g}, {hi:g}] (got {echo(value)})")
    return number


def _bool(body: Json, name: str) -> bool | None:
    value = body.get(name)
    if value is None:
        return None
    if not isinstance(value, bool):
        raise bad(name, "must be a boolean")
    return value


def _string(body: Json, name: str) -> str | None:
    value = body.get(name)
    if value is None:
        return None
    if not isinstance(value, str):
        raise bad(name, "must be a string")
    return value


# ----- parsing -----
def parse(kind: Kind, body: object, limits: RequestLimits, models: tuple[str, ...]) -> Request:
    """Check an OpenAI body and translate it; `models` are the names this server answers to."""
    if not isinstance(body, dict):
        raise OpenAIError(400, "the request body must be a JSON object")
    allowed = CHAT if kind == "chat" else COMPLETION
    unknown = sorted(k for k in body if k not in allowed)
    if unknown:
        raise OpenAIError(
            400, f"unrecognized request argument: {echo(unknown[0])}", param=unknown[0][:64]
        )
    model = _string(body, "model")
    if not model:
        raise bad("model", "is required")
    if model not in models:
        raise OpenAIError(
            404,
            f"the model {echo(model)} does not exist; this server serves {models[0]!r}",
            param="model",
            code="model_not_found",
        )
    _refuse_unimplemented(kind, body)
    stream = bool(_bool(body, "stream"))
    include_usage = _stream_options(body, stream)
    request = rollout_pb2.GenerationInput()
    sampling = request.sampling
    if (n := _int(body, "n", 1, limits.settings.max_n)) is not None:
        sampling.n = n
    if (temperature := _number(body, "temperature", 0, 2)) is not None:
        sampling.temperature = temperature
    if (top_p := _number(body, "top_p", 0, 1, open_low=True)) is not None:
        sampling.top_p = top_p
    if (top_k := _int(body, "top_k", -1, 2**31 - 1)) is not None and top_k > 0:
        sampling.top_k = top_k
    if (seed := _int(body, "seed", 0, 2**63 - 1)) is not None:
        sampling.seed = seed
    sampling.stop.extend(_stops(body, limits))
    max_param, max_tokens = _max_tokens(kind, body, limits)
    sampling.max_tokens = max_tokens
    user = _string(body, "user")
    if user is not None and len(user.encode("utf-8", "replace")) > MAX_USER_BYTES:
        raise bad("user", f"is longer than {MAX_USER_BYTES} bytes")
    _template_kwargs(body, request)
    if kind == "chat" and (schema := _response_format(body)) is not None:
        sampling.structured_output.json_schema = schema
    if kind == "chat":
        logprobs = bool(_bool(body, "logprobs"))
        top = _int(body, "top_logprobs", 0, MAX_TOP_LOGPROBS)
        if top is not None and not logprobs:
            raise bad("top_logprobs", "needs logprobs: true")
        request.prompts.append(rollout_pb2.Prompt(messages=_messages(body, limits)))
    else:
        top = _int(body, "logprobs", 0, MAX_TOP_LOGPROBS)
        logprobs = top is not None
        request.prompts.extend(_prompts(body, limits))
    sampling.logprobs = logprobs
    return Request(kind, model, request, stream, include_usage, logprobs, top or 0, max_param)


def _refuse_unimplemented(kind: Kind, body: Json) -> None:
    for name in ("presence_penalty", "frequency_penalty"):
        if _number(body, name, -2, 2):
            raise unsupported(name, "only 0 is supported")
    bias = body.get("logit_bias")
    if bias is not None and (not isinstance(bias, dict) or bias):
        raise unsupported("logit_bias", "is not supported (send null or {})")
    if kind == "chat":
        for name in ("tools", "functions", "function_call"):
            if body.get(name) is not None:
                raise unsupported(name, "tool calling is not supported")
        if body.get("tool_choice") not in (None, "none"):
            raise unsupported("tool_choice", "tool calling is not supported")
        _bool(body, "parallel_tool_calls")
    else:
        if _bool(body, "echo"):
            raise unsupported("echo", "only false is supported")
        if body.get("suffix") is not None:
            raise unsupported("suffix", "is not supported")
        best_of = _int(body, "best_of", 1, 2**31 - 1)
        if best_of is not None and best_of != (body.get("n") or 1):
            raise unsupported("best_of", "must equal n (every sample is returned)")


def _response_format(body: Json) -> str | None:
    """The JSON Schema (as text) a chat's `response_format` asks for; None for free text.
    `json_object` is any JSON object; `json_schema` is its `schema` (`strict` or not, the
    output always follows it: it is enforced token by token)."""
    value = body.get("response_format")
    if value is None:
        return None
    if not isinstance(value, dict) or not isinstance(value.get("type"), str):
        raise bad("response_format", 'must be an object with a "type"')
    kind = value["type"]
    allowed = {"text": {"type"}, "json_object": {"type"}, "json_schema": {"type", "json_schema"}}
    if kind not in allowed:
        raise unsupported("response_format", 'type must be "text", "json_object" or "json_schema"')
    if extra := sorted(set(value) - allowed[kind]):
        raise bad("response_format", f"unrecognized key {echo(extra[0])} for type {kind!r}")
    if kind == "text":
        return None
    if kind == "json_object":
        return '{"type": "object"}'
    spec = value.get("json_schema")
    if not isinstance(spec, dict):
        raise bad("response_format.json_schema", "must be an object holding a schema")
    if extra := sorted(set(spec) - {"name", "description", "schema", "strict"}):
        raise bad("response_format.json_schema", f"unrecognized key {echo(extra[0])}")
    for key in ("name", "description"):
        if spec.get(key) is not None and not isinstance(spec[key], str):
            raise bad(f"response_format.json_schema.{key}", "must be a string")
    if spec.get("strict") is not None and not isinstance(spec["strict"], bool):
        raise bad("response_format.json_schema.strict", "must be a boolean")
    schema = spec.get("schema")
    if not isinstance(schema, dict):
        raise bad("response_format.json_schema.schema", "must be a JSON Schema object")
    return json.dumps(schema)


def _stream_options(body: Json, stream: bool) -> bool:
    options = body.get("stream_options")
    if options is None:
        return False
    if not stream:
        raise bad("stream_options", "is only allowed with stream: true")
    if not isinstance(options, dict) or set(options) - {"include_usage"}:
        raise bad("stream_options", 'must be {"include_usage": true|false}')
    return bool(_bool(options, "include_usage"))


def _stops(body: Json, limits: RequestLimits) -> list[str]:
    value = body.get("stop")
    if value is None:
        return []
    stops = [value] if isinstance(value, str) else value
    if not isinstance(stops, list) or not all(isinstance(s, str) for s in stops):
        raise bad("stop", "must be a string or a list of strings")
    if len(stops) > MAX_STOP:
        raise bad("stop", f"holds {len(stops)} strings; at most {MAX_STOP} are allowed")
    for stop in stops:
        if not stop:
            raise bad("stop", "stop strings must not be empty")
        if len(stop.encode("utf-8", "replace")) > limits.settings.max_stop_bytes:
            raise bad(
                "stop", f"a stop string is longer than {limits.settings.max_stop_bytes} bytes"
            )
    return stops


def _max_tokens(kind: Kind, body: Json, limits: RequestLimits) -> tuple[str, int]:
    """(parameter name, completion budget); the default fills the context (chat) or is 16."""
    cap = limits.max_tokens
    names = ("max_completion_tokens", "max_tokens") if kind == "chat" else ("max_tokens",)
    for name in names:
        if (value := _int(body, name, 1, cap)) is not None:
            return name, value
    return names[-1], cap if kind == "chat" else min(DEFAULT_COMPLETION_MAX_TOKENS, cap)


def _template_kwargs(body: Json, request: rollout_pb2.GenerationInput) -> None:
    kwargs = body.get("chat_template_kwargs")
    if kwargs is None:
        return
    if not isinstance(kwargs, dict):
        raise bad("chat_template_kwargs", "must be an object")
    try:
        request.chat_template_kwargs.update(kwargs)
    except (ValueError, TypeError) as exc:
        raise bad("chat_template_kwargs", f"holds a value JSON cannot carry ({exc})") from None


def _messages(body: Json, limits: RequestLimits) -> chat_pb2.Conversation:
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise bad("messages", "must be a non-empty list of messages")
    if len(messages) > limits.settings.max_messages:
        raise bad("messages", f"holds {len(messages)}; the limit is {limits.settings.max_messages}")
    conversation = chat_pb2.Conversation()
    for i, message in enumerate(messages):
        where = f"messages[{i}]"
        if not isinstance(message, dict):
            raise bad(where, "must be an object")
        extra = sorted(set(message) - MESSAGE_KEYS)
        if extra:
            raise unsupported(f"{where}.{extra[0][:64]}", "is not supported")
        role = message.get("role")
        if role not in ROLES:
            raise bad(f"{where}.role", f"must be one of {', '.join(ROLES)}")
        name = message.get("name")
        if name is not None and not isinstance(name, str):
            raise bad(f"{where}.name", "must be a string")
        out = conversation.messages.add(role=ROLES[role], name=name or "")
        for text in _content(message.get("content"), f"{where}.content"):
            out.content.add(text=text)
    return conversation


def _content(content: object, where: str) -> list[str]:
    if isinstance(content, str):
        return [content]
    if not isinstance(content, list):
        raise bad(where, "must be a string or a list of content parts")
    texts = []
    for j, part in enumerate(content):
        if not isinstance(part, dict) or not isinstance(part.get("type"), str):
            raise bad(f"{where}[{j}]", 'must be an object with a "type"')
        if part["type"] != "text":
            raise unsupported(
                f"{where}[{j}].type", f"{echo(part['type'])} parts are not supported (text only)"
            )
        if not isinstance(part.get("text"), str):
            raise bad(f"{where}[{j}].text", "must be a string")
        texts.append(part["text"])
    return texts


def _prompts(body: Json, limits: RequestLimits) -> list[rollout_pb2.Prompt]:
    value = body.get("prompt")
    if isinstance(value, str):
        return [rollout_pb2.Prompt(text=value)]
    if not isinstance(value, list) or not value:
        raise bad("prompt", "must be a string, a list of strings, or token ids")
    if _is_ids(value):  # one prompt as token ids (its length is checked by the shared path)
        return [rollout_pb2.Prompt(token_ids=chat_pb2.TokenSequence(token_ids=_ids(value)))]
    limit = limits.settings.max_prompts_per_request
    if len(value) > limit:
        raise bad("prompt", f"holds {len(value)} prompts; the limit is {limit}")
    if all(isinstance(p, str) for p in value):
        return [rollout_pb2.Prompt(text=p) for p in value]
    if all(isinstance(p, list) and p and _is_ids(p) for p in value):
        return [
            rollout_pb2.Prompt(token_ids=chat_pb2.TokenSequence(token_ids=_ids(p))) for p in value
        ]
    raise bad("prompt", "must be a string, a list of strings, or token ids")


def _is_ids(values: list[Any]) -> bool:
    return all(isinstance(v, int) and not isinstance(v, bool) for v in values)


def _ids(values: list[int]) -> list[int]:
    if any(not 0 <= v < 2**31 for v in values):
        raise bad("prompt", "token ids must be between 0 and 2^31 - 1")
    return values


def param_of(field: str, request: Request) -> str:
    """The OpenAI parameter a shared-path field path (`input.sampling.n`) stands for."""
    path = field.removeprefix("input.")
    if path.startswith("sampling."):
        name = re.split(r"[.\[]", path.removeprefix("sampling."))[0]
        if name == "structured_output":
            return "response_format"
        return request.max_tokens_param if name == "max_tokens" else name
    if path.startswith("prompts"):
        return "messages" if request.kind == "chat" else "prompt"
    return re.split(r"[.\[]", path)[0] or "body"


# ----- results -----
def finish(reason: FinishReason | None) -> str | None:
    return None if reason is None else FINISH[reason]


def usage(prompt_tokens: int, completion_tokens: int) -> Json:
    return {
        "prompt_tokens": prompt_tokens,
        "completion_tokens": completion_tokens,
        "total_tokens": prompt_tokens + completion_tokens,
    }


Alternatives = list[list[tuple[str, float]]]  # per position: (token text, logprob)


def _entry(token: str, logprob: float) -> Json:
    return {"token": token, "logprob": logprob, "bytes": list(token.encode("utf-8"))}


def chat_logprobs(tokens: list[str], logprobs: list[float], tops: Alternatives) -> Json:
    """`tops` is empty when no alternatives were asked for, else one list per token."""
    alternatives = tops or [[] for _ in tokens]
    return {
        "content": [
            {**_entry(token, logprob), "top_logprobs": [_entry(t, lp) for t, lp in top]}
            for token, logprob, top in zip(tokens, logprobs, alternatives, strict=True)
        ],
        "refusal": None,
    }


def completion_logprobs(
    tokens: list[str], logprobs: list[float], tops: Alternatives, offset: int
) -> Json:
    """Each position's `top_logprobs` holds the alternatives and the sampled token (so
    `logprobs: 0` lists the sampled token only, as OpenAI's legacy API does)."""
    offsets = []
    for token in tokens:
        offsets.append(offset)
        offset += len(token)
    alternatives = tops or [[] for _ in tokens]
    return {
        "tokens": tokens,
        "token_logprobs": logprobs,
        "top_logprobs": [
            {**dict(top), token: logprob}
            for token, logprob, top in zip(tokens, logprobs, alternatives, strict=True)
        ],
        "text_offset": offsets,
    }
