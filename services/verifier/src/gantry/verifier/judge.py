"""Judge backends behind one small interface, and the call that makes their output parse.

A backend turns chat messages plus a JSON schema into text constrained to that schema:
rollout `Generate` with `structured_output.json_schema` (XGrammar), or an operator's
OpenAI-compatible endpoint with `response_format: json_schema`. Both can return the top
alternatives at each position; at the score token they give the judge's distribution
over 1-4 (the expected score). `Judge.ask` retries output that does not parse or
validate (a new seed, some temperature), then refuses with FAILED_PRECONDITION naming
the step; an unreachable backend is UNAVAILABLE naming the peer; never INTERNAL.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import grpc
import httpx
import jsonschema  # type: ignore[import-untyped]

from gantry.core.client import aio_channel
from gantry.core.errors import (
    Cancelled,
    DeadlineExceeded,
    FailedPrecondition,
    GantryError,
    Unavailable,
    clip,
    from_rpc_error,
)
from gantry.proto.common.v1 import chat_pb2, sampling_pb2
from gantry.proto.rollout.v1 import rollout_pb2, rollout_pb2_grpc
from gantry.verifier.prompts import max_output_bytes, schema_regex

Messages = Sequence[tuple[str, str]]  # (role, text)
SCORES = ("1", "2", "3", "4")
RETRY_TEMPERATURE = 0.7  # a retry after unparseable output must not repeat it greedily


@dataclass(frozen=True)
class Sampling:
    """What a judge call samples with (the request's JudgeConfig over the defaults)."""

    temperature: float = 0.0
    top_p: float = 1.0
    top_k: int = 0  # 0 = off
    seed: int | None = None
    max_tokens: int = 0  # 0 = the judge's configured max_tokens


@dataclass
class RawReply:
    text: str
    model: str
    prompt_tokens: int = 0
    completion_tokens: int = 0
    # Per generated token: its text and the (text, logprob) alternatives; empty when the
    # backend gave none.
    tokens: list[str] = field(default_factory=list)
    tops: list[list[tuple[str, float]]] = field(default_factory=list)


class JudgeBackend(Protocol):
    """Chat messages plus a JSON schema in, schema-constrained text out."""

    description: str  # for error messages: "rollout peer 'default' (host:port)"

    async def complete(
        self,
        messages: Messages,
        schema: dict[str, Any],
        sampling: Sampling,
        timeout_s: float,
    ) -> RawReply: ...

    async def close(self) -> None: ...


@dataclass
class Reply:
    """A judge answer that parsed and validated."""

    data: dict[str, Any]
    text: str
    model: str
    attempts: int
    prompt_tokens: int
    completion_tokens: int
    score_probabilities: list[float] = field(default_factory=list)  # P(1..4) when known
    rejected: list[str] = field(default_factory=list)  # why earlier attempts were refused


def _peer_error(error: grpc.RpcError, description: str) -> GantryError:
    code = error.code() if isinstance(error, grpc.aio.AioRpcError | grpc.Call) else None
    if code == grpc.StatusCode.DEADLINE_EXCEEDED:
        return DeadlineExceeded(f"{description} did not answer within the deadline")
    if code == grpc.StatusCode.CANCELLED:
        return Cancelled(f"the call to {description} was cancelled")
    if code in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.RESOURCE_EXHAUSTED):
        return Unavailable(
            f"{description} is unavailable: {clip(str(error.details() or ''))}",
            reason="PEER_UNAVAILABLE",
        )
    remote = from_rpc_error(error)
    return FailedPrecondition(
        f"{description} refused the call ({remote.code.name}): {clip(str(remote))}",
        reason="PEER_REFUSED",
    )


class RolloutJudge:
    """A model served by rollout, asked through `Generate` with a JSON-schema constraint."""

    def __init__(
        self, target: str, token: str | None, model: str, max_tokens: int, top_logprobs: int
    ) -> None:
        self.target, self.model = target, model
        self.max_tokens, self.top_logprobs = max_tokens, top_logprobs
        self.description = f"rollout judge at {target}"
        self._token = token
        # Opened on first use: an aio channel belongs to the event loop it was made on,
        # and the service is built before the server's loop runs.
        self._channel: grpc.aio.Channel | None = None
        self._served: str | None = None

    async def complete(
        self, messages: Messages, schema: dict[str, Any], sampling: Sampling, timeout_s: float
    ) -> RawReply:
        roles = {"system": chat_pb2.ROLE_SYSTEM, "user": chat_pb2.ROLE_USER}
        conversation = chat_pb2.Conversation(
            messages=[
                chat_pb2.ChatMessage(role=roles[role], content=[chat_pb2.ContentPart(text=text)])
                for role, text in messages
            ]
        )
        params = sampling_pb2.SamplingParams(
            temperature=sampling.temperature,
            top_p=sampling.top_p,
            top_k=sampling.top_k,
            max_tokens=sampling.max_tokens or self.max_tokens or max_output_bytes(schema) + 1,
            # Compact JSON only: no optional whitespace for a weak model to loop on.
            structured_output=sampling_pb2.StructuredOutput(regex=schema_regex(schema)),
            top_logprobs=self.top_logprobs,
            logprobs=self.top_logprobs > 0,
        )
        if sampling.seed is not None:
            params.seed = sampling.seed
        request = rollout_pb2.GenerateRequest(
            input=rollout_pb2.GenerationInput(
                prompts=[rollout_pb2.Prompt(messages=conversation)],
                sampling=params,
                model=self.model,
            )
        )
        try:
            response = await self._stub().Generate(request, timeout=timeout_s)
        except grpc.RpcError as error:
            raise _peer_error(error, self.description) from None
        result = response.results[0]
        completion = result.completions[0]
        sequence = completion.tokens
        tops = [[(a.text, a.logprob) for a in top.alternatives] for top in sequence.top_logprobs]
        # The sampled token's text, where it is among the listed alternatives ('' where the
        # format's mask made an unlisted token the choice).
        tokens = [
            next((a.text for a in top.alternatives if a.token_id == token_id), "")
            for token_id, top in zip(sequence.token_ids, sequence.top_logprobs, strict=False)
        ]
        return RawReply(
            text=completion.text,
            model=await self._model_name(timeout_s),
            prompt_tokens=result.usage.prompt_tokens,
            completion_tokens=result.usage.completion_tokens,
            tokens=tokens,
            tops=tops,
        )

    def _stub(self) -> rollout_pb2_grpc.RolloutServiceAsyncStub:
        if self._channel is None:
            self._channel = aio_channel(self.target, token=self._token, default_timeout_s=None)
        return rollout_pb2_grpc.RolloutServiceStub(self._channel)  # type: ignore[return-value]

    async def _model_name(self, timeout_s: float) -> str:
        """The served model's name as rollout reports it (asked once)."""
        if self._served is None:
            try:
                info = await self._stub().GetModelInfo(
                    rollout_pb2.GetModelInfoRequest(model=self.model), timeout=timeout_s
                )
            except grpc.RpcError:
                return self.model or "default"  # asked again next time
            self._served = info.model_name or self.model
        return self._served

    async def close(self) -> None:
        if self._channel is not None:
            await self._channel.close()


class OpenAIJudge:
    """An OpenAI-compatible chat endpoint the operator configured."""

    def __init__(
        self,
        url: str,
        model: str,
        api_key: str | None,
        max_tokens: int,
        top_logprobs: int,
    ) -> None:
        self.url = url.rstrip("/") + "/chat/completions"
        self.model, self.max_tokens, self.top_logprobs = model, max_tokens, top_logprobs
        self.description = f"OpenAI-compatible judge at {url}"
        headers = {"authorization": f"Bearer {api_key}"} if api_key else {}
        self._client = httpx.AsyncClient(headers=headers)

    async def complete(
        self, messages: Messages, schema: dict[str, Any], sampling: Sampling, timeout_s: float
    ) -> RawReply:
        body: dict[str, Any] = {
            "model": self.model,
            "messages": [{"role": role, "content": text} for role, text in messages],
            "temperature": sampling.temperature,
            "top_p": sampling.top_p,
            # Room for the whitespace a JSON-schema response format allows.
            "max_tokens": sampling.max_tokens or self.max_tokens or max_output_bytes(schema) + 64,
            "response_format": {
                "type": "json_schema",
                "json_schema": {"name": "judgement", "schema": schema, "strict": True},
            },
        }
        if sampling.seed is not None:
            body["seed"] = sampling.seed
        if self.top_logprobs:
            body |= {"logprobs": True, "top_logprobs": self.top_logprobs}
        data = await post_json(self._client, self.url, body, timeout_s, self.description)
        try:
            choice = data["choices"][0]
            text = choice["message"]["content"] or ""
            content = (choice.get("logprobs") or {}).get("content") or []
            tokens = [str(item["token"]) for item in content]
            tops = [
                [(str(alt["token"]), float(alt["logprob"])) for alt in item.get("top_logprobs", [])]
                for item in content
            ]
            usage = data.get("usage") or {}
            return RawReply(
                text=str(text),
                model=str(data.get("model") or self.model),
                prompt_tokens=int(usage.get("prompt_tokens", 0)),
                completion_tokens=int(usage.get("completion_tokens", 0)),
                tokens=tokens,
                tops=tops,
            )
        except (KeyError, IndexError, TypeError, ValueError) as exc:
            raise FailedPrecondition(
                f"{self.description} answered without choices[0].message.content ({exc!r})",
                reason="PEER_BAD_REPLY",
            ) from None

    async def close(self) -> None:
        await self._client.aclose()


async def post_json(
    client: httpx.AsyncClient,
    url: str,
    body: dict[str, Any],
    timeout_s: float,
    description: str,
    *,
    api_key: str | None = None,
) -> dict[str, Any]:
    """POST JSON, map transport and HTTP failures to UNAVAILABLE / FAILED_PRECONDITION."""
    headers = {"authorization": f"Bearer {api_key}"} if api_key else None
    try:
        response = await client.post(url, json=body, timeout=timeout_s, headers=headers)
    except httpx.TimeoutException:
        raise DeadlineExceeded(f"{description} did not answer within the deadline") from None
    except httpx.HTTPError as exc:
        raise Unavailable(
            f"{description} is unreachable ({type(exc).__name__})", reason="PEER_UNAVAILABLE"
        ) from None
    if response.status_code in (429, 502, 503, 504):
        raise Unavailable(
            f"{description} is unavailable (HTTP {response.status_code})", reason="PEER_UNAVAILABLE"
        )
    if response.status_code != 200:
        raise FailedPrecondition(
            f"{description} refused the call (HTTP {response.status_code}): {clip(response.text)}",
            reason="PEER_REFUSED",
        )
    try:
        data = response.json()
    except ValueError:
        data = None
    if not isinstance(data, dict):
        raise FailedPrecondition(f"{description} answered with non-JSON", reason="PEER_BAD_REPLY")
    return data


def score_distribution(reply: RawReply, text: str) -> list[float]:
    """P(score = 1..4) at the token that wrote the score (the schema's last value).

    The score token is the last one holding the digit with only the closing brace after
    it; the listed alternatives there that would have written a 1-4 digit instead are
    renormalised. Empty when the backend listed no alternatives or none is a score.
    """
    match = re.search(r'"score"\s*:\s*([1-4])\s*}\s*$', text)
    if match is None or not reply.tops or len(reply.tokens) != len(reply.tops):
        return []
    digit = match.group(1)
    for i in range(len(reply.tokens) - 1, -1, -1):
        token = reply.tokens[i]
        if digit in token and "".join(reply.tokens[i + 1 :]).strip() in ("}", ""):
            prefix = token[: token.index(digit)]
            mass = dict.fromkeys(SCORES, 0.0)
            for alt, logprob in reply.tops[i]:
                rest = alt[len(prefix) :].strip() if alt.startswith(prefix) else ""
                if rest in mass and math.isfinite(logprob):
                    mass[rest] += math.exp(logprob)
            total = sum(mass.values())
            return [mass[s] / total for s in SCORES] if total > 0 else []
        if token.strip() not in ("}", ""):
            return []
    return []


class Judge:
    """A configured judge: a backend plus the retry-until-it-parses contract."""

    def __init__(self, name: str, backend: JudgeBackend, model: str, attempts: int) -> None:
        self.name, self.backend, self.model, self.attempts = name, backend, model, attempts

    async def ask(
        self,
        step: str,
        messages: Messages,
        schema: dict[str, Any],
        sampling: Sampling,
        timeout_s: float,
        *,
        want_distribution: bool = False,
    ) -> Reply:
        problems: list[str] = []
        prompt_tokens = completion_tokens = 0
        for attempt in range(self.attempts):
            current = sampling
            if attempt:  # a new seed and some temperature: greedy would repeat the failure
                current = Sampling(
                    temperature=max(sampling.temperature, RETRY_TEMPERATURE),
                    top_p=sampling.top_p,
                    top_k=sampling.top_k,
                    seed=None if sampling.seed is None else sampling.seed + 1000 * attempt,
                    max_tokens=sampling.max_tokens,
                )
            raw = await self.backend.complete(messages, schema, current, timeout_s)
            prompt_tokens += raw.prompt_tokens
            completion_tokens += raw.completion_tokens
            try:
                data = json.loads(raw.text)
                jsonschema.validate(data, schema)
            except (ValueError, jsonschema.ValidationError) as exc:
                problems.append(
                    f"{clip(str(exc).splitlines()[0], 160)} in {clip(raw.text, 120)!r} "
                    f"({raw.completion_tokens} tokens)"
                )
                continue
            return Reply(
                data=data,
                text=raw.text,
                model=raw.model or self.model,
                attempts=attempt + 1,
                prompt_tokens=prompt_tokens,
                completion_tokens=completion_tokens,
                score_probabilities=score_distribution(raw, raw.text) if want_distribution else [],
                rejected=problems,
            )
        raise FailedPrecondition(
            f"{step}: judge {self.name!r} gave no output matching the step's schema in "
            f"{self.attempts} attempts (last: {problems[-1] if problems else 'none'})",
            reason="JUDGE_OUTPUT_INVALID",
            metadata={"step": step, "judge": self.name},
        )
