"""From wire prompts and sampling parameters to token ids and engine parameters."""

from __future__ import annotations

import inspect
from typing import Any

from google.protobuf import struct_pb2
from transformers import PreTrainedTokenizerBase

from gantry.core.errors import FieldViolation, InvalidArgument, echo
from gantry.core.limits import struct_to_python
from gantry.proto.common.v1 import chat_pb2, sampling_pb2
from gantry.proto.rollout.v1 import rollout_pb2
from gantry.rollout.engine.grammar import Grammars, StructuredOutputError
from gantry.rollout.engine.types import (
    FinishReason,
    LogprobsMode,
    SamplingParams,
    StructuredOutput,
)

ROLES = {
    chat_pb2.ROLE_SYSTEM: "system",
    chat_pb2.ROLE_USER: "user",
    chat_pb2.ROLE_ASSISTANT: "assistant",
    chat_pb2.ROLE_TOOL: "tool",
}
FINISH = {
    FinishReason.STOP: sampling_pb2.FINISH_REASON_STOP,
    FinishReason.LENGTH: sampling_pb2.FINISH_REASON_LENGTH,
    FinishReason.CANCELLED: sampling_pb2.FINISH_REASON_CANCELLED,
    FinishReason.RESTARTED: sampling_pb2.FINISH_REASON_CANCELLED,
}
LOGPROBS_MODES: dict[int, LogprobsMode] = {
    sampling_pb2.LOGPROBS_MODE_UNSPECIFIED: "raw",
    sampling_pb2.LOGPROBS_MODE_RAW: "raw",
    sampling_pb2.LOGPROBS_MODE_PROCESSED: "processed",
}


def sampling(
    params: sampling_pb2.SamplingParams, field: str, *, default_max: int = 256
) -> SamplingParams:
    """Engine parameters from the wire (unset fields take vLLM-like defaults)."""
    if params.logprobs_mode not in LOGPROBS_MODES:
        raise InvalidArgument.for_field(
            f"{field}.logprobs_mode",
            "must be LOGPROBS_MODE_UNSPECIFIED, LOGPROBS_MODE_RAW or LOGPROBS_MODE_PROCESSED",
        )
    result = SamplingParams(
        max_tokens=params.max_tokens or default_max,
        temperature=params.temperature if params.HasField("temperature") else 1.0,
        top_p=params.top_p if params.HasField("top_p") else 1.0,
        top_k=params.top_k if params.HasField("top_k") else 0,
        seed=params.seed if params.HasField("seed") else None,
        stop=tuple(params.stop),
        n=params.n or 1,
        logprobs_mode=LOGPROBS_MODES[params.logprobs_mode],
        structured_output=structured_output(params),
        top_logprobs=params.top_logprobs,
    )
    problems = result.validate()
    if params.max_tokens < 0:
        problems.append(("max_tokens", "must be >= 0 (0 = default)"))
    if params.n < 0:
        problems.append(("n", "must be >= 0 (0 = 1)"))
    if problems:
        violations = [FieldViolation(f"{field}.{name}", text) for name, text in problems]
        raise InvalidArgument(
            "; ".join(f"{v.field}: {v.description}" for v in violations), violations=violations
        )
    return result


def structured_output(params: sampling_pb2.SamplingParams) -> StructuredOutput | None:
    """The format asked for, or None (also for a StructuredOutput with no field set,
    which `SamplingParams.validate` then refuses)."""
    if not params.HasField("structured_output"):
        return None
    spec = params.structured_output
    kind = spec.WhichOneof("kind")
    if kind == "json_schema":
        return StructuredOutput(json_schema=spec.json_schema)
    if kind == "regex":
        return StructuredOutput(regex=spec.regex)
    if kind == "choice":
        return StructuredOutput(choice=tuple(spec.choice.choices))
    if kind == "grammar":
        return StructuredOutput(grammar=spec.grammar)
    return StructuredOutput()


def compile_format(grammars: Grammars, params: SamplingParams, field: str) -> None:
    """Compile the request's format (blocking: run it on the executor), so that the
    engine finds it cached; a format that does not compile is INVALID_ARGUMENT naming
    `field`.structured_output.<kind>, with XGrammar's reason."""
    spec = params.structured_output
    if spec is None:
        return
    try:
        grammars.compile(spec)
    except StructuredOutputError as exc:
        raise InvalidArgument.for_field(
            f"{field}.structured_output.{exc.kind}", f"does not compile: {exc}"
        ) from exc


def chat_messages(conversation: chat_pb2.Conversation, field: str) -> list[dict[str, Any]]:
    """`field` names the conversation's messages, e.g. `input.prompts[0].messages`."""
    messages = []
    for i, message in enumerate(conversation.messages):
        if message.role not in ROLES:
            raise InvalidArgument.for_field(
                f"{field}[{i}].role",
                "must be one of ROLE_SYSTEM, ROLE_USER, ROLE_ASSISTANT, ROLE_TOOL",
            )
        parts = []
        for j, part in enumerate(message.content):
            if part.HasField("image"):
                raise InvalidArgument.for_field(
                    f"{field}[{i}].content[{j}].image",
                    "image parts need a vision-language model; this server serves text only",
                )
            parts.append(part.text)
        messages.append({"role": ROLES[message.role], "content": "".join(parts)})
    if not messages:
        raise InvalidArgument.for_field(field, "must hold at least one message")
    return messages


def encode(
    tokenizer: PreTrainedTokenizerBase,
    prompt: rollout_pb2.Prompt,
    field: str,
    chat_kwargs: dict[str, Any] | None = None,
) -> list[int]:
    kind = prompt.WhichOneof("kind")
    if kind == "text":
        ids: list[int] = tokenizer.encode(prompt.text, add_special_tokens=False)
    elif kind == "messages":
        messages = chat_messages(prompt.messages, f"{field}.messages")
        ids = apply_chat(tokenizer, messages, chat_kwargs, field=f"{field}.messages")
    elif kind == "token_ids":
        ids = list(prompt.token_ids.token_ids)
        vocab = len(tokenizer)
        bad = next((t for t in ids if not 0 <= t < vocab), None)
        if bad is not None:
            raise InvalidArgument.for_field(
                f"{field}.token_ids", f"token id {bad} is outside the vocabulary [0, {vocab})"
            )
    else:
        raise InvalidArgument.for_field(field, "set one of text, messages or token_ids")
    if not ids:
        raise InvalidArgument.for_field(field, "the prompt encodes to no tokens")
    return ids


def apply_chat(
    tokenizer: PreTrainedTokenizerBase,
    messages: list[dict[str, Any]],
    chat_kwargs: dict[str, Any] | None = None,
    *,
    field: str = "messages",
) -> list[int]:
    """Render and tokenize a chat (blocking; CPU work: run it off the event loop)."""
    from jinja2 import TemplateError

    try:
        rendered = tokenizer.apply_chat_template(
            messages, add_generation_prompt=True, tokenize=True, **(chat_kwargs or {})
        )
    except TemplateError as exc:  # the template refused this conversation (e.g. role order)
        raise InvalidArgument.for_field(
            field, f"the model's chat template refused it: {echo(str(exc), 200)}"
        ) from exc
    result: Any = rendered  # a BatchEncoding or a plain list, by tokenizer
    ids = result["input_ids"] if hasattr(result, "keys") else result
    return [int(t) for t in ids]


def template_kwargs(
    tokenizer: PreTrainedTokenizerBase, struct: struct_pb2.Struct, field: str
) -> dict[str, Any]:
    """chat_template_kwargs as template variables: finite numbers, bounded nesting, and
    never one of apply_chat_template's own parameters (`chat_template`, `tokenize`, ...),
    so a caller can pass `enable_thinking` but cannot swap the template or its output."""
    if not struct.fields:
        return {}
    kwargs = struct_to_python(struct, field=field)
    reserved = set(inspect.signature(tokenizer.apply_chat_template).parameters)
    reserved |= {"messages", "add_generation_prompt", "tokenize", "chat_template", "tools"}
    for key in kwargs:
        if key in reserved or not key.isidentifier():
            raise InvalidArgument.for_field(
                f"{field}.{key}", "is not a template variable a request may set"
            )
    return kwargs
