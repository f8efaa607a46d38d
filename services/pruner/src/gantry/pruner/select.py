"""Structure-aware selection: Viterbi over keep/drop, closure over units, elision markers.

Per-line keep probabilities become unit emissions (``lines x (logit p - logit t)``); a
two-state Viterbi with a switching cost makes kept lines form coherent spans (the CRF's
role in SWE-Pruner); the dependency closure of `structure` then keeps what the kept units
need (enclosing headers, ``if`` for an ``else``, a ``try`` handler, a closing brace).
A token budget is met by searching the threshold. A single pruned line between kept lines
is restored, and each pruned run becomes one marker line ``(filtered N lines: a-b)``; in
Python the marker is a comment, or ``...`` when a kept header would lose its whole body,
so pruned Python still parses.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from gantry.pruner.scoring import checkpoint
from gantry.pruner.structure import Structure

FloatArray = npt.NDArray[np.float64]
BoolArray = npt.NDArray[np.bool_]
_EPS = 1e-4


def _logit(p: FloatArray | float) -> FloatArray:
    q = np.clip(np.asarray(p, dtype=np.float64), _EPS, 1 - _EPS)
    return np.asarray(np.log(q) - np.log1p(-q), dtype=np.float64)


@dataclass(frozen=True, slots=True)
class Decoded:
    keep: BoolArray  # per line
    kept_tokens: int  # tokens of the kept lines (markers excluded)


def unit_emissions(structure: Structure, line_scores: FloatArray) -> tuple[FloatArray, BoolArray]:
    """Per unit: summed logit of its non-blank lines' scores, and whether it is blank."""
    units = structure.units
    if not units:
        return np.zeros(0), np.zeros(0, dtype=bool)
    starts = np.array([u.start for u in units], dtype=np.int64)
    ends = np.array([u.end for u in units], dtype=np.int64)
    single_free = np.array([u.free and u.start == u.end for u in units], dtype=bool)
    # Blank lines (NaN) add nothing; [start, end + 1) pairs sum each unit in one call.
    line_logits = np.append(np.nan_to_num(_logit(line_scores), nan=0.0), 0.0)
    bounds = np.stack([starts, ends + 1], axis=1).reshape(-1)
    logits = np.add.reduceat(line_logits, bounds)[::2].copy()
    blank = single_free & ~np.isfinite(np.asarray(line_scores, dtype=np.float64)[starts])
    logits[blank] = 0.0
    return np.asarray(logits, dtype=np.float64), blank


def viterbi(gain: FloatArray, neutral: BoolArray, switch_cost: float) -> BoolArray:
    """Best keep/drop labelling: sum of ``gain`` over kept units minus ``switch_cost`` per
    change of state (neutral units have no gain either way)."""
    n = len(gain)
    if n == 0:
        return np.zeros(0, dtype=bool)
    # Plain floats: the loop is per unit, and numpy scalars would make it ~5x slower.
    emits = np.where(neutral, 0.0, gain).tolist()
    drop, keep = 0.0, emits[0]
    back_drop = [0] * n  # best previous state when this unit is dropped / kept
    back_keep = [1] * n
    for i in range(1, n):
        from_keep = keep - switch_cost
        from_drop = drop - switch_cost
        if drop >= from_keep:
            new_drop = drop
        else:
            new_drop, back_drop[i] = from_keep, 1
        if keep >= from_drop:
            new_keep = keep + emits[i]
        else:
            new_keep, back_keep[i] = from_drop + emits[i], 0
        drop, keep = new_drop, new_keep
    labels = np.zeros(n, dtype=bool)
    state = 1 if keep > drop else 0
    for i in range(n - 1, -1, -1):
        labels[i] = bool(state)
        state = back_keep[i] if state else back_drop[i]
    return labels


class Selector:
    """Decodes one context (its structure, scores and token counts) at any budget."""

    def __init__(
        self,
        structure: Structure,
        lines: Sequence[str],
        line_scores: FloatArray,
        line_tokens: Sequence[int],
        *,
        switch_cost: float = 0.5,
    ) -> None:
        self.structure = structure
        self.lines = lines
        self.blank_line = np.array([not line.strip() for line in lines], dtype=bool)
        scores = np.asarray(line_scores, dtype=np.float64).copy()
        scores[self.blank_line] = np.nan  # blank lines follow their neighbours
        self.scores = scores
        self.tokens = np.asarray(line_tokens, dtype=np.int64)
        self.switch_cost = switch_cost
        self.logits, self.neutral = unit_emissions(structure, scores)
        self.sizes = np.array([u.end - u.start + 1 for u in structure.units])
        self.scored_lines = self._scored_lines()
        self._decoded: dict[bytes, Decoded] = {}  # by Viterbi labels: bisection repeats them

    def decode_threshold(self, threshold: float) -> Decoded:
        shift = float(_logit(threshold))
        gain = self.logits - shift * self.scored_lines
        labels = viterbi(gain, self.neutral, self.switch_cost)
        key = np.packbits(labels).tobytes()
        decoded = self._decoded.get(key)
        if decoded is None:
            decoded = self._decoded[key] = self._finish(labels)
        return decoded

    def decode_budget(self, budget: int) -> Decoded:
        """Most lines whose tokens fit in ``budget``: bisect the threshold, then fill what
        is left with the best remaining units whose dependencies also fit."""
        best = self._finish(np.zeros(len(self.structure.units), dtype=bool))
        lo, hi = float(_logit(_EPS)), float(_logit(1 - _EPS))
        for _ in range(30):
            checkpoint()
            mid = (lo + hi) / 2
            decoded = self.decode_threshold(1 / (1 + math.exp(-mid)))
            if decoded.kept_tokens <= budget:
                hi = mid
                if decoded.kept_tokens > best.kept_tokens:
                    best = decoded
            else:
                lo = mid
        return self._fill(best, budget)

    def _fill(self, decoded: Decoded, budget: int) -> Decoded:
        structure = self.structure
        keep = decoded.keep.copy()
        kept_units = {structure.line_unit[i] for i in np.flatnonzero(keep)}
        used = int(self.tokens[keep].sum())
        unit_tokens = [int(self.tokens[u.start : u.end + 1].sum()) for u in structure.units]
        mean_logit = self.logits / np.maximum(self.scored_lines, 1.0)
        order = sorted(
            (i for i in range(len(structure.units)) if not self.neutral[i] and i not in kept_units),
            key=lambda i: -mean_logit[i],
        )
        for index in order:
            if index in kept_units:
                continue
            extra = structure.closure({index}) - kept_units
            cost = sum(unit_tokens[u] for u in extra)
            if used + cost > budget:
                continue
            used += cost
            kept_units |= extra
            for u in extra:
                unit = structure.units[u]
                keep[unit.start : unit.end + 1] = True
        if used == decoded.kept_tokens:
            return decoded
        return Decoded(keep=keep, kept_tokens=used)

    def _scored_lines(self) -> FloatArray:
        """Non-blank lines per unit."""
        seen = np.concatenate([[0], np.cumsum(~self.blank_line)]).astype(np.float64)
        starts = np.array([u.start for u in self.structure.units], dtype=np.int64)
        ends = np.array([u.end for u in self.structure.units], dtype=np.int64)
        return np.asarray(seen[ends + 1] - seen[starts], dtype=np.float64)

    def _finish(self, labels: BoolArray) -> Decoded:
        structure = self.structure
        seeds = {int(i) for i in np.flatnonzero(labels) if not self.neutral[i]}
        kept_units = structure.closure(seeds)
        keep = np.zeros(len(self.lines), dtype=bool)
        for index in kept_units:
            unit = structure.units[index]
            keep[unit.start : unit.end + 1] = True
        self._restore_gaps(keep, kept_units)
        return Decoded(keep=keep, kept_tokens=int(self.tokens[keep].sum()))

    def _restore_gaps(self, keep: BoolArray, kept_units: set[int]) -> None:
        """Restore single pruned lines (and runs of blank lines) between kept lines, when
        that is structurally safe (a self-contained unit whose dependencies are kept)."""
        n = len(keep)
        i = 0
        units = self.structure.units
        while i < n:
            if keep[i]:
                i += 1
                continue
            j = i
            while j + 1 < n and not keep[j + 1]:
                j += 1
            if i > 0 and j < n - 1:
                blank_run = bool(self.blank_line[i : j + 1].all())
                if blank_run:
                    keep[i : j + 1] = True
                elif i == j:
                    index = self.structure.line_unit[i]
                    unit = units[index]
                    if (
                        unit.start == unit.end
                        and not unit.header
                        and all(d in kept_units for d in unit.deps)
                    ):
                        keep[i] = True
                        kept_units.add(index)
            i = j + 1


@dataclass(frozen=True, slots=True)
class Rendered:
    text: str
    kept_ranges: list[tuple[int, int]]  # 1-based inclusive
    markers: list[str]


def marker_text(count: int, first: int, last: int) -> str:
    noun = "line" if count == 1 else "lines"
    return (
        f"(filtered {count} {noun}: {first}-{last})" if count > 1 else f"(filtered 1 line: {first})"
    )


def render(structure: Structure, lines: Sequence[str], keep: BoolArray) -> Rendered:
    n = len(lines)
    placeholder_at: dict[int, str] = {}
    if structure.python_syntax:
        for unit in structure.units:
            if not unit.header or not keep[unit.start]:
                continue
            body = range(unit.body_start, unit.body_end + 1)
            if any(keep[k] and not structure.units[structure.line_unit[k]].free for k in body):
                continue
            for k in body:  # the first pruned run inside the body carries the placeholder
                if not keep[k] and (k == 0 or keep[k - 1]):
                    placeholder_at[k] = unit.body_indent
                    break
    out: list[str] = []
    markers: list[str] = []
    ranges: list[tuple[int, int]] = []
    i = 0
    while i < n:
        if keep[i]:
            j = i
            while j + 1 < n and keep[j + 1]:
                j += 1
            out.extend(lines[i : j + 1])
            ranges.append((i + 1, j + 1))
            i = j + 1
            continue
        j = i
        while j + 1 < n and not keep[j + 1]:
            j += 1
        label = marker_text(j - i + 1, i + 1, j + 1)
        first_code = next((lines[k] for k in range(i, j + 1) if lines[k].strip()), "")
        indent = first_code[: len(first_code) - len(first_code.lstrip())]
        if structure.python_syntax:
            if i in placeholder_at:
                marker = f"{placeholder_at[i]}...  # {label}"
            else:
                marker = f"{indent}# {label}"
        else:
            marker = f"{indent}{label}"
        out.append(marker)
        markers.append(marker)
        i = j + 1
    return Rendered(text="\n".join(out), kept_ranges=ranges, markers=markers)
