"""The pruning pipeline: score lines, decode a structure-aware selection, render."""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field

import numpy as np

from gantry.pruner.scoring import Scorer, checkpoint
from gantry.pruner.select import Selector, render
from gantry.pruner.structure import build_structure, detect_language, normalize_language

DEFAULT_THRESHOLD = 0.5


class PruneInputError(ValueError):
    """A caller's mistake; ``field`` names the offending input."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


@dataclass(frozen=True, slots=True)
class PruneResult:
    text: str
    kept_ranges: list[tuple[int, int]]
    line_scores: list[float]
    original_lines: int
    kept_lines: int
    original_tokens: int
    pruned_tokens: int
    compression_ratio: float
    language: str
    latency_s: float
    markers: list[str] = field(default_factory=list)


def split_lines(text: str) -> tuple[list[str], bool]:
    """Lines without their newline, and whether the text ended with one."""
    trailing = text.endswith("\n")
    lines = text.split("\n")
    if trailing:
        lines.pop()
    return lines, trailing


class Pruner:
    """Goal-hint line pruning with a pluggable `Scorer`."""

    def __init__(self, scorer: Scorer, *, switch_cost: float = 0.5) -> None:
        self.scorer = scorer
        self.switch_cost = switch_cost

    def prune(
        self,
        text: str,
        goal_hint: str,
        *,
        threshold: float | None = None,
        token_budget: int | None = None,
        keep_ratio: float | None = None,
        language: str = "",
    ) -> PruneResult:
        """Keep the lines relevant to ``goal_hint``.

        At most one of ``threshold`` (keep lines scoring >= it), ``token_budget`` (keep the
        best lines fitting in that many tokens, markers excluded) and ``keep_ratio`` (a
        budget as a share of the original tokens); none = threshold 0.5.
        """
        if not text.strip():
            raise PruneInputError("text", "must contain non-whitespace text")
        if not goal_hint.strip():
            raise PruneInputError("goal_hint", "is required (the agent's focus question)")
        if sum(x is not None for x in (threshold, token_budget, keep_ratio)) > 1:
            raise PruneInputError("budget", "give at most one of threshold, budget, ratio")
        if threshold is not None and not (math.isfinite(threshold) and 0 <= threshold <= 1):
            raise PruneInputError("keep_threshold", "must be in [0, 1]")
        if token_budget is not None and token_budget <= 0:
            raise PruneInputError("token_budget", "must be > 0")
        if keep_ratio is not None and not (math.isfinite(keep_ratio) and 0 < keep_ratio <= 1):
            raise PruneInputError("keep_ratio", "must be in (0, 1]")
        canonical = normalize_language(language)
        if canonical is None:
            raise PruneInputError("language", f"unknown language {language!r}")
        started = time.perf_counter()
        lines, trailing = split_lines(text)
        canonical = canonical or detect_language(text)
        structure = build_structure(lines, canonical)
        checkpoint()
        scores = np.clip(np.asarray(self.scorer.score(lines, goal_hint), dtype=np.float64), 0, 1)
        checkpoint()
        tokens = self.scorer.count_tokens(lines)
        original_tokens = int(sum(tokens))
        selector = Selector(structure, lines, scores, tokens, switch_cost=self.switch_cost)
        if keep_ratio is not None:
            token_budget = max(1, int(original_tokens * keep_ratio))
        if token_budget is not None:
            decoded = selector.decode_budget(token_budget)
        else:
            decoded = selector.decode_threshold(
                DEFAULT_THRESHOLD if threshold is None else threshold
            )
        rendered = render(structure, lines, decoded.keep)
        pruned_tokens = decoded.kept_tokens + sum(self.scorer.count_tokens(rendered.markers))
        kept = decoded.keep
        out_text = rendered.text
        ranges = rendered.kept_ranges
        markers = rendered.markers
        if pruned_tokens >= original_tokens or bool(kept.all()):
            # Pruning would not shorten it: return the original untouched.
            kept = np.ones(len(lines), dtype=bool)
            out_text, ranges, markers = "\n".join(lines), [(1, len(lines))], []
            pruned_tokens = original_tokens
        if trailing:
            out_text += "\n"
        latency = time.perf_counter() - started
        return PruneResult(
            text=out_text,
            kept_ranges=ranges,
            line_scores=[float(s) for s in scores],
            original_lines=len(lines),
            kept_lines=int(kept.sum()),
            original_tokens=original_tokens,
            pruned_tokens=pruned_tokens,
            compression_ratio=original_tokens / pruned_tokens if pruned_tokens else 1.0,
            language=structure.language,
            latency_s=latency,
            markers=markers,
        )
