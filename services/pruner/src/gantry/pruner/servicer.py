"""The PrunerService RPCs."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

from google.protobuf import duration_pb2

from gantry.core.errors import InvalidArgument, Unavailable
from gantry.proto.pruner.v1 import pruner_pb2, pruner_pb2_grpc
from gantry.pruner.guidelines import Guideline, Report, check_prompt
from gantry.pruner.pruner import PruneInputError, PruneResult
from gantry.pruner.structure import SUPPORTED_LANGUAGES, normalize_language

if TYPE_CHECKING:
    from gantry.pruner.service import PrunerService


def _language(value: str, field: str) -> str:
    canonical = normalize_language(value)
    if canonical is None:
        raise InvalidArgument.for_field(
            field,
            f"unknown language {value!r}; use one of {', '.join(SUPPORTED_LANGUAGES)} "
            "or leave it empty to detect",
        )
    return canonical


class PrunerServicer(pruner_pb2_grpc.PrunerServiceServicer):
    def __init__(self, service: PrunerService) -> None:
        self.service = service

    async def Prune(
        self, request: pruner_pb2.PruneRequest, context: Any
    ) -> pruner_pb2.PruneResponse:
        settings = self.service.settings
        if not request.text.strip():
            raise InvalidArgument.for_field("text", "must not be empty")
        if len(request.text) > settings.max_text_chars:
            raise InvalidArgument.for_field(
                "text",
                f"has {len(request.text)} characters; the limit is {settings.max_text_chars}",
            )
        if not request.goal_hint.strip():
            raise InvalidArgument.for_field(
                "goal_hint", "is required, e.g. 'focus on the MRO resolution logic'"
            )
        threshold: float | None = None
        budget: int | None = None
        which = request.WhichOneof("budget")
        if which == "keep_threshold":
            threshold = request.keep_threshold
            if not (math.isfinite(threshold) and 0.0 <= threshold <= 1.0):
                raise InvalidArgument.for_field("keep_threshold", "must be in [0, 1]")
        elif which == "token_budget":
            budget = request.token_budget
            if budget <= 0:
                raise InvalidArgument.for_field("token_budget", "must be > 0")
        language = _language(request.language, "language")
        pruner = self.service.pruner
        if pruner is None:
            raise Unavailable("the pruner is not loaded yet")
        try:
            result: PruneResult = await self.service.run_blocking(
                lambda: pruner.prune(
                    request.text,
                    request.goal_hint,
                    threshold=threshold,
                    token_budget=budget,
                    language=language,
                )
            )
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
        if not request.prompt.strip():
            raise InvalidArgument.for_field("prompt", "must not be empty")
        limit = self.service.settings.max_prompt_chars
        if len(request.prompt) > limit:
            raise InvalidArgument.for_field(
                "prompt", f"has {len(request.prompt)} characters; the limit is {limit}"
            )
        chosen: list[Guideline] = []
        for i, value in enumerate(request.guidelines):
            if value not in Guideline._value2member_map_:
                raise InvalidArgument.for_field(
                    f"guidelines[{i}]", f"{value} is not one of the ten guidelines (1-10)"
                )
            chosen.append(Guideline(value))
        language = _language(request.language, "language") or "python"
        report: Report = await self.service.run_blocking(
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
