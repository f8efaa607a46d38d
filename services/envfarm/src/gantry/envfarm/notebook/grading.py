"""Checking answers (analysis tasks) and scoring submissions (prediction tasks)."""

from __future__ import annotations

import io
import json
import math
from dataclasses import dataclass
from typing import Literal

import numpy as np
import pandas as pd

AnswerKind = Literal["number", "integer", "label", "set"]
REL_TOL = 5e-4  # "at least 4 significant digits"
ABS_TOL = 1e-6

ANSWER_FORMATS: dict[AnswerKind, str] = {
    "number": "a number; give at least 4 significant digits (checked to a relative "
    f"tolerance of {REL_TOL:g})",
    "integer": "a whole number (checked exactly)",
    "label": "one value as it appears in the data, without quotes (checked exactly, "
    "case-insensitive)",
    "set": "the values separated by commas, or a JSON list, in any order (checked as an "
    "exact set, case-insensitive)",
}


class AnswerFormatError(ValueError):
    """The answer does not have the task's answer format (checked before grading)."""


def parse_answer(kind: AnswerKind, text: str) -> float | int | str | frozenset[str]:
    """The answer as a value of `kind`; AnswerFormatError when it cannot be one."""
    text = text.strip()
    if not text:
        raise AnswerFormatError("the answer is empty")
    if kind == "number":
        try:
            value = float(text.replace(",", ""))
        except ValueError:
            raise AnswerFormatError(f"expected a number, got {text[:40]!r}") from None
        if not math.isfinite(value):
            raise AnswerFormatError("expected a finite number")
        return value
    if kind == "integer":
        try:
            number = float(text.replace(",", ""))
        except ValueError:
            raise AnswerFormatError(f"expected a whole number, got {text[:40]!r}") from None
        if not math.isfinite(number) or number != int(number):
            raise AnswerFormatError(f"expected a whole number, got {text[:40]!r}")
        return int(number)
    if kind == "label":
        return _clean(text)
    items: list[object]
    if text.startswith("["):
        try:
            loaded = json.loads(text)
        except ValueError:
            raise AnswerFormatError("the answer starts with '[' but is not a JSON list") from None
        if not isinstance(loaded, list):
            raise AnswerFormatError("expected a JSON list")
        items = loaded
    else:
        items = list(text.split(","))
    return frozenset(_clean(str(item)) for item in items if _clean(str(item)))


def _clean(text: str) -> str:
    return text.strip().strip("'\"").strip().lower()


def answer_correct(kind: AnswerKind, answer: str, expected: str) -> bool:
    """Whether `answer` matches `expected` (both in the answer format of `kind`)."""
    try:
        got = parse_answer(kind, answer)
    except AnswerFormatError:
        return False
    want = parse_answer(kind, expected)
    if kind == "number":
        assert isinstance(got, float) and isinstance(want, float)
        return abs(got - want) <= max(ABS_TOL, REL_TOL * abs(want))
    return got == want


def format_answer(kind: AnswerKind, value: object) -> str:
    """The canonical text of an expected answer."""
    if kind == "number":
        return f"{float(value):.10g}"  # type: ignore[arg-type]
    if kind == "integer":
        return str(int(value))  # type: ignore[call-overload]
    if kind == "label":
        return str(value)
    return ", ".join(sorted(str(item) for item in value))  # type: ignore[attr-defined]


# ----- prediction tasks -----
Metric = Literal["accuracy", "rmse", "auc", "mae"]
HIGHER_IS_BETTER: dict[str, bool] = {"accuracy": True, "auc": True, "rmse": False, "mae": False}


@dataclass(frozen=True)
class Score:
    value: float | None  # None when the submission could not be scored
    passed: bool
    report: str


def score_submission(
    data: bytes,
    *,
    target: str,
    truth: pd.Series,
    metric: Metric,
    threshold: float,
) -> Score:
    """Score a submission CSV (`id` and `target` columns, one row per test id) against
    the hidden `truth` (indexed by id). Passing means reaching `threshold`."""
    try:
        frame = pd.read_csv(io.BytesIO(data), dtype={target: str} if metric == "accuracy" else None)
    except Exception as error:
        return Score(None, False, f"submission.csv is not a readable CSV: {error}"[:500])
    missing = [c for c in ("id", target) if c not in frame.columns]
    if missing:
        return Score(None, False, f"submission.csv lacks the column(s) {', '.join(missing)}")
    if frame["id"].duplicated().any():
        return Score(None, False, "submission.csv repeats ids")
    try:
        ids = frame["id"].astype(int)
    except (ValueError, TypeError):
        return Score(None, False, "submission.csv has ids that are not whole numbers")
    predicted = pd.Series(frame[target].to_numpy(), index=ids)
    absent = truth.index.difference(predicted.index)
    extra = predicted.index.difference(truth.index)
    if len(absent) or len(extra):
        return Score(
            None,
            False,
            f"submission.csv must have one row per test id: {len(absent)} missing, "
            f"{len(extra)} unknown",
        )
    predicted = predicted.loc[truth.index]
    try:
        value = _metric(metric, truth, predicted)
    except (ValueError, TypeError) as error:
        return Score(None, False, f"cannot score {target}: {error}"[:500])
    passed = value >= threshold if HIGHER_IS_BETTER[metric] else value <= threshold
    relation = ">=" if HIGHER_IS_BETTER[metric] else "<="
    verdict = "passes" if passed else "does not pass"
    return Score(
        value, passed, f"{metric} = {value:.4f}; {verdict} (needs {relation} {threshold:.4f})"
    )


def _metric(metric: Metric, truth: pd.Series, predicted: pd.Series) -> float:
    if metric == "accuracy":
        got = predicted.astype(str).str.strip().str.lower().to_numpy()
        want = truth.astype(str).str.lower().to_numpy()
        return float(np.mean(got == want))
    values = pd.to_numeric(predicted, errors="raise").to_numpy(dtype=float)
    if not np.all(np.isfinite(values)):
        raise ValueError("predictions must be finite numbers")
    if metric == "auc":
        from sklearn.metrics import roc_auc_score

        return float(roc_auc_score(truth.to_numpy(dtype=int), values))
    errors = values - truth.to_numpy(dtype=float)
    if metric == "rmse":
        return float(np.sqrt(np.mean(errors**2)))
    return float(np.mean(np.abs(errors)))
