"""What a generation backend takes and gives back, independent of gRPC and of torch."""

from __future__ import annotations

import enum
import math
from dataclasses import dataclass, field
from typing import Literal

MAX_TOP_LOGPROBS = 20
# "raw": log softmax of the raw logits (temperature 1, no cuts); "processed": under the
# distribution actually sampled from (temperature, top-k, top-p, renormalised). See sampling.
LogprobsMode = Literal["raw", "processed"]
LOGPROBS_MODES: tuple[LogprobsMode, ...] = ("raw", "processed")
TopLogprobs = list[tuple[int, float]]  # one position's alternatives, most likely first


class FinishReason(enum.Enum):
    STOP = "stop"  # an end-of-sequence token or a stop string
    LENGTH = "length"  # max_tokens or the context window
    CANCELLED = "cancelled"  # the caller went away or aborted
    RESTARTED = "restarted"  # discarded by a weight update in "rerun" mode; resubmit


@dataclass(frozen=True)
class StructuredOutput:
    """A format the output must follow; exactly one field is set (hashable: a cache key)."""

    json_schema: str | None = None  # a JSON Schema document, as JSON text
    regex: str | None = None
    choice: tuple[str, ...] | None = None
    grammar: str | None = None  # EBNF with a `root` rule

    @property
    def kind(self) -> str:
        """The field that is set (its wire name)."""
        for name in ("json_schema", "regex", "choice", "grammar"):
            if getattr(self, name) is not None:
                return name
        return ""

    def validate(self) -> list[tuple[str, str]]:
        """(field, problem) pairs, fields relative to the StructuredOutput."""
        kinds = [
            n for n in ("json_schema", "regex", "choice", "grammar") if getattr(self, n) is not None
        ]
        if len(kinds) != 1:
            return [("", "set exactly one of json_schema, regex, choice or grammar")]
        if not getattr(self, kinds[0]):
            return [(kinds[0], "must not be empty")]
        if self.choice is not None and any(not c for c in self.choice):
            return [("choice", "choices must not be empty strings")]
        return []


@dataclass(frozen=True)
class SamplingParams:
    max_tokens: int = 256
    temperature: float = 1.0  # 0 = greedy
    top_p: float = 1.0
    top_k: int = 0  # 0 = no top-k cut
    seed: int | None = None
    stop: tuple[str, ...] = ()
    n: int = 1
    ignore_eos: bool = False
    top_logprobs: int = 0  # also report the k most likely tokens at each step (raw logprobs)
    logprobs_mode: LogprobsMode = "raw"  # what the sampled tokens' logprobs are measured under
    structured_output: StructuredOutput | None = None  # constrain every sample to a format

    def validate(self) -> list[tuple[str, str]]:
        """(field, problem) pairs; empty when valid. Field names match the wire."""
        problems = []
        if self.max_tokens < 1:
            problems.append(("max_tokens", "must be >= 1"))
        if not (math.isfinite(self.temperature) and self.temperature >= 0):
            problems.append(("temperature", "must be a finite number >= 0"))
        if not (math.isfinite(self.top_p) and 0 < self.top_p <= 1):
            problems.append(("top_p", "must be in (0, 1]"))
        if self.top_k < 0:
            problems.append(("top_k", "must be >= 0"))
        if not 1 <= self.n <= 64:
            problems.append(("n", "must be between 1 and 64"))
        if any(not s for s in self.stop):
            problems.append(("stop", "stop strings must not be empty"))
        if not 0 <= self.top_logprobs <= MAX_TOP_LOGPROBS:
            problems.append(("top_logprobs", f"must be between 0 and {MAX_TOP_LOGPROBS}"))
        if self.logprobs_mode not in LOGPROBS_MODES:
            problems.append(("logprobs_mode", f"must be one of {', '.join(LOGPROBS_MODES)}"))
        if self.structured_output is not None:
            for name, problem in self.structured_output.validate():
                problems.append((f"structured_output{'.' if name else ''}{name}", problem))
        return problems


@dataclass
class Delta:
    """New output of one sample since its previous delta."""

    request_id: str
    index: int  # which of the request's n samples
    token_ids: list[int]
    logprobs: list[float]
    text: str
    finish_reason: FinishReason | None = None
    policy_version: int = 0
    # Per token, the `top_logprobs` most likely (token id, raw logprob); empty when not asked.
    top_logprobs: list[TopLogprobs] = field(default_factory=list)


@dataclass
class Sample:
    """One finished sample, accumulated from its deltas."""

    index: int
    token_ids: list[int] = field(default_factory=list)
    logprobs: list[float] = field(default_factory=list)
    text: str = ""
    finish_reason: FinishReason | None = None
    policy_version: int = 0
    top_logprobs: list[TopLogprobs] = field(default_factory=list)

    def add(self, delta: Delta) -> None:
        self.token_ids += delta.token_ids
        self.logprobs += delta.logprobs
        self.top_logprobs += delta.top_logprobs
        self.text += delta.text
        self.policy_version = delta.policy_version
        if delta.finish_reason is not None:
            self.finish_reason = delta.finish_reason


class PromptTooLong(ValueError):
    def __init__(self, tokens: int, limit: int) -> None:
        super().__init__(f"the prompt has {tokens} tokens; the context window is {limit}")
        self.tokens = tokens
        self.limit = limit


class Overloaded(Exception):
    """The engine's queue is full: the caller should retry after `retry_after_s`."""

    def __init__(self, message: str, retry_after_s: float) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s
