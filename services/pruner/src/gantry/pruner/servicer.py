"""The PrunerService RPCs.

Limits are checked on arrival, before any tokenization. `Prune` (model work, seconds to
minutes) runs on the service's own prune threads behind an admission gate: at most
`max_concurrent_prunes` score at once and `max_queued_prunes` wait; more are
RESOURCE_EXHAUSTED with a RetryInfo. `CheckPrompt` (regular expressions, milliseconds)
runs on the shared executor, so it never waits behind a Prune. A Prune whose caller
cancels or runs out of deadline, or that is still running when the server drains, stops
at its next model batch.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import threading
import time
from collections.abc import AsyncIterator, Callable
from concurrent.futures import Executor
from dataclasses import dataclass
from typing import Any

from google.protobuf import duration_pb2

from gantry.core.errors import InvalidArgument, ResourceExhausted, Unavailable, echo
from gantry.core.limits import check_bytes, check_count
from gantry.core.server import Runtime
from gantry.proto.pruner.v1 import pruner_pb2, pruner_pb2_grpc
from gantry.pruner.guidelines import Guideline, Report, check_prompt
from gantry.pruner.pruner import PruneInputError, Pruner, PruneResult
from gantry.pruner.scoring import checkpoints
from gantry.pruner.settings import PrunerSettings
from gantry.pruner.structure import SUPPORTED_LANGUAGES, normalize_language

MAX_LANGUAGE_BYTES = 32


@dataclass(frozen=True)
class PrunerLimits:
    """The operator's bounds the RPCs enforce (from `PrunerSettings`)."""

    max_text_bytes: int
    max_text_lines: int
    max_goal_hint_bytes: int
    max_prompt_bytes: int
    max_concurrent_prunes: int
    max_queued_prunes: int

    @classmethod
    def from_settings(cls, settings: PrunerSettings) -> PrunerLimits:
        return cls(
            max_text_bytes=settings.max_text_bytes,
            max_text_lines=settings.max_text_lines,
            max_goal_hint_bytes=settings.max_goal_hint_bytes,
            max_prompt_bytes=settings.max_prompt_bytes,
            max_concurrent_prunes=settings.max_concurrent_prunes,
            max_queued_prunes=settings.max_queued_prunes,
        )


class PruneStopped(Exception):
    """Raised on a prune thread at a checkpoint once its call is abandoned."""


def _language(value: str, field: str) -> str:
    check_bytes(value, field=field, limit=MAX_LANGUAGE_BYTES)
    canonical = normalize_language(value)
    if canonical is None:
        raise InvalidArgument.for_field(
            field,
            f"unknown language {echo(value)}; use one of {', '.join(SUPPORTED_LANGUAGES)} "
            "or leave it empty to detect",
        )
    return canonical


class PruneGate:
    """Admission for Prune: `running` at once, `queued` more waiting, the rest refused."""

    def __init__(self, running: int, queued: int) -> None:
        self.running = running
        self.capacity = running + queued
        self._slots = asyncio.Semaphore(running)
        self._admitted = 0
        self._mean_s = 5.0  # moving average of a Prune's duration, for RetryInfo

    def retry_after_s(self) -> float:
        """About when a slot frees: the queue ahead, at the recent pace."""
        return round(max(1.0, self._mean_s * self._admitted / self.running), 1)

    @contextlib.asynccontextmanager
    async def admit(self) -> AsyncIterator[None]:
        if self._admitted >= self.capacity:
            raise ResourceExhausted(
                f"{self._admitted} Prune calls are running or queued (max_concurrent_prunes "
                f"+ max_queued_prunes = {self.capacity}); retry later",
                retry_after_s=self.retry_after_s(),
                reason="PRUNE_QUEUE_FULL",
            )
        self._admitted += 1
        try:
            async with self._slots:
                started = time.monotonic()
                yield
                self._mean_s = 0.8 * self._mean_s + 0.2 * (time.monotonic() - started)
        finally:
            self._admitted -= 1


class PrunerServicer(pruner_pb2_grpc.PrunerServiceServicer):
    """`pruner` gives the loaded pipeline; the core's call gate refuses calls before then."""

    def __init__(
        self,
        runtime: Runtime,
        pruner: Callable[[], Pruner],
        prune_executor: Executor,
        limits: PrunerLimits,
    ) -> None:
        self.runtime = runtime
        self.pruner = pruner
        self.prune_executor = prune_executor
        self.limits = limits
        self.gate = PruneGate(limits.max_concurrent_prunes, limits.max_queued_prunes)

    def _check_prune(self, request: pruner_pb2.PruneRequest) -> None:
        """Sizes first (bytes, lines), then the values; nothing is tokenized yet."""
        limits = self.limits
        check_bytes(request.text, field="text", limit=limits.max_text_bytes)
        check_bytes(request.goal_hint, field="goal_hint", limit=limits.max_goal_hint_bytes)
        lines = request.text.count("\n") + (not request.text.endswith("\n"))
        if lines > limits.max_text_lines:
            raise InvalidArgument.for_field(
                "text", f"has {lines} lines; the limit is {limits.max_text_lines}"
            )
        if not request.text.strip():
            raise InvalidArgument.for_field("text", "must not be empty")
        if not request.goal_hint.strip():
            raise InvalidArgument.for_field(
                "goal_hint", "is required, e.g. 'focus on the MRO resolution logic'"
            )
        which = request.WhichOneof("budget")
        if which == "keep_threshold":
            threshold = request.keep_threshold
            if not (math.isfinite(threshold) and 0.0 <= threshold <= 1.0):
                raise InvalidArgument.for_field("keep_threshold", "must be in [0, 1]")
        elif which == "token_budget" and request.token_budget <= 0:
            raise InvalidArgument.for_field("token_budget", "must be > 0")

    async def Prune(
        self, request: pruner_pb2.PruneRequest, context: Any
    ) -> pruner_pb2.PruneResponse:
        self._check_prune(request)
        language = _language(request.language, "language")
        which = request.WhichOneof("budget")
        threshold = request.keep_threshold if which == "keep_threshold" else None
        budget = request.token_budget if which == "token_budget" else None
        pruner = self.pruner()
        stop = threading.Event()

        def check() -> None:
            if stop.is_set() or self.runtime.draining.is_set():
                raise PruneStopped

        def run() -> PruneResult:
            with checkpoints(check):
                return pruner.prune(
                    request.text,
                    request.goal_hint,
                    threshold=threshold,
                    token_budget=budget,
                    language=language,
                )

        async with self.gate.admit():
            work = asyncio.get_running_loop().run_in_executor(self.prune_executor, run)
            try:
                result = await asyncio.shield(work)
            except asyncio.CancelledError:
                # The caller went away: the thread stops at its next batch; hold the slot
                # until it has, so the admission count stays true.
                stop.set()
                with contextlib.suppress(BaseException):
                    await work
                raise
            except PruneStopped as exc:  # only the drain stops a call that is still wanted
                raise Unavailable(
                    "the server is shutting down; retry (another replica will answer)",
                    retry_after_s=1.0,
                    reason="DRAINING",
                ) from exc
            except PruneInputError as exc:  # defence in depth: the checks above cover these
                raise InvalidArgument.for_field(exc.field, exc.message) from exc
        reply = pruner_pb2.PruneResponse(
            pruned_text=result.text,
            kept_ranges=[
                pruner_pb2.LineRange(start_line=a, end_line=b) for a, b in result.kept_ranges
            ],
            original_lines=result.original_lines,
            kept_lines=result.kept_lines,
            original_tokens=result.original_tokens,
            pruned_tokens=result.pruned_tokens,
            compression_ratio=result.compression_ratio,
            latency=duration_pb2.Duration(
                seconds=int(result.latency_s), nanos=int((result.latency_s % 1) * 1e9)
            ),
        )
        if request.return_line_scores:
            reply.line_scores.extend(result.line_scores)
        return reply

    async def CheckPrompt(
        self, request: pruner_pb2.CheckPromptRequest, context: Any
    ) -> pruner_pb2.CheckPromptResponse:
        check_bytes(request.prompt, field="prompt", limit=self.limits.max_prompt_bytes)
        if not request.prompt.strip():
            raise InvalidArgument.for_field("prompt", "must not be empty")
        check_count(request.guidelines, field="guidelines", limit=len(Guideline))
        chosen: list[Guideline] = []
        for i, value in enumerate(request.guidelines):
            if value not in Guideline._value2member_map_:
                raise InvalidArgument.for_field(
                    f"guidelines[{i}]", f"{value} is not one of the ten guidelines (1-10)"
                )
            chosen.append(Guideline(value))
        language = _language(request.language, "language") or "python"
        report: Report = await self.runtime.run_blocking(
            lambda: check_prompt(request.prompt, language, chosen, rewrite=request.suggest_rewrite)
        )
        return pruner_pb2.CheckPromptResponse(
            findings=[
                pruner_pb2.Finding(
                    guideline=f"GUIDELINE_{f.guideline.name}",
                    severity=f"SEVERITY_{f.severity.name}",
                    message=f.message,
                    span=pruner_pb2.TextSpan(start=f.span[0], end=f.span[1]),
                    suggestion=f.suggestion,
                )
                for f in report.findings
            ],
            guidelines=[
                pruner_pb2.GuidelineResult(
                    guideline=f"GUIDELINE_{g.name}",
                    satisfied=report.satisfied[g],
                    weight=report.weights[g],
                )
                for g in report.satisfied
            ],
            score=report.score,
            suggested_prompt=report.suggested_prompt,
        )
