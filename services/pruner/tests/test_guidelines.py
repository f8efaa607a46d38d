"""CheckPrompt's rule-based detectors: each guideline fires on a prompt that lacks it and
stays quiet on one that follows it."""

from __future__ import annotations

import pytest

from gantry.pruner.guidelines import SHARES, Guideline, Severity, check_prompt

GOOD = """Write a Python function `merge_intervals(intervals: list[tuple[int, int]]) ->
list[tuple[int, int]]` using only the standard library.
1. Sort the intervals by start. 2. Then scan them, merging overlaps.
You may assume every interval has start <= end. Raise ValueError if the list is empty.
The result must be sorted and must not contain overlapping intervals.
Example: merge_intervals([(1, 3), (2, 4)]) returns [(1, 4)]."""


def unsatisfied(prompt: str, *guidelines: Guideline) -> set[Guideline]:
    report = check_prompt(prompt, "python", guidelines)
    return {g for g, ok in report.satisfied.items() if not ok}


def test_good_prompt_satisfies_all_ten() -> None:
    report = check_prompt(GOOD)
    assert report.findings == []
    assert report.score == pytest.approx(1.0)
    assert sum(report.weights.values()) == pytest.approx(1.0)


def test_bare_prompt_misses_the_content_guidelines() -> None:
    report = check_prompt("Write a function that adds two numbers.")
    missing = {g for g, ok in report.satisfied.items() if not ok}
    assert missing == {
        Guideline.ALGORITHMIC_DETAILS,
        Guideline.IO_FORMAT,
        Guideline.EXAMPLES,
        Guideline.POST_CONDITIONS,
        Guideline.REQUIREMENTS,
        Guideline.EXCEPTION_HANDLING,
        Guideline.PRE_CONDITIONS,
    }
    satisfied = sum(SHARES[g] for g in Guideline if g not in missing)
    assert report.score == pytest.approx(satisfied / sum(SHARES.values()))
    # Most severe first; absences have an empty span and a suggestion.
    severities = [f.severity for f in report.findings]
    assert severities == sorted(severities, reverse=True)
    assert all(f.span == (0, 0) and f.suggestion for f in report.findings)


@pytest.mark.parametrize(
    ("guideline", "lacking", "following"),
    [
        (
            Guideline.ALGORITHMIC_DETAILS,
            "Compute the median.",
            "Sort the list, then take the middle item.",
        ),
        (Guideline.IO_FORMAT, "Compute the median.", "Takes a list of floats and returns a float."),
        (Guideline.EXAMPLES, "Compute the median.", "For example, median([3, 1, 2]) returns 2."),
        (Guideline.POST_CONDITIONS, "Compute the median.", "The input list must not be modified."),
        (Guideline.REQUIREMENTS, "Compute the median.", "Use the numpy library, version 2."),
        (Guideline.EXCEPTION_HANDLING, "Compute the median.", "Raise ValueError on an empty list."),
        (Guideline.PRE_CONDITIONS, "Compute the median.", "You may assume the list is non-empty."),
    ],
)
def test_absence_detectors(guideline: Guideline, lacking: str, following: str) -> None:
    assert unsatisfied(lacking, guideline) == {guideline}
    assert unsatisfied(following, guideline) == set()


def test_hedges_are_flagged_with_spans_and_rewritten() -> None:
    prompt = "The function should return the total. The list may be empty. You may assume ints."
    report = check_prompt(prompt, guidelines=[Guideline.ASSERTIVE_LANGUAGE], rewrite=True)
    (finding,) = report.findings
    assert prompt[finding.span[0] : finding.span[1]] == "should"
    assert finding.suggestion == "must"
    assert report.suggested_prompt.startswith("The function must return the total.")
    assert "may be empty" in report.suggested_prompt  # facts about inputs are not hedges
    assert unsatisfied("The function must return the total.", Guideline.ASSERTIVE_LANGUAGE) == set()


def test_inconsistent_terminology() -> None:
    prompt = "Given a list of words, return the array sorted. Count each user_id, not userId."
    report = check_prompt(prompt, guidelines=[Guideline.CONSISTENT_TERMINOLOGY])
    flagged = {prompt[f.span[0] : f.span[1]] for f in report.findings}
    assert flagged == {"array", "userId"}
    assert (
        unsatisfied("Given a list, return the list sorted.", Guideline.CONSISTENT_TERMINOLOGY)
        == set()
    )
    # "map" as a verb is not a dictionary.
    assert (
        unsatisfied("Map each key of the dict to its length.", Guideline.CONSISTENT_TERMINOLOGY)
        == set()
    )


def test_ambiguous_otherwise() -> None:
    clear = "If the list is empty, return 0; otherwise return the sum."
    assert unsatisfied(clear, Guideline.CLARIFIED_CONDITIONALS) == set()
    ambiguous = "If x is positive and when y is odd, return 1, otherwise return 2."
    report = check_prompt(ambiguous, guidelines=[Guideline.CLARIFIED_CONDITIONALS])
    (finding,) = report.findings
    assert ambiguous[finding.span[0] : finding.span[1]] == "otherwise"
    assert finding.severity == Severity.WARNING


def test_rewrite_appends_missing_pieces() -> None:
    report = check_prompt("Write a function that adds two numbers.", rewrite=True)
    assert report.suggested_prompt.startswith("Write a function that adds two numbers.")
    assert "Requirements:" in report.suggested_prompt
    assert report.suggested_prompt.count("\n- ") == len(report.findings)
    rewritten = check_prompt(report.suggested_prompt)
    assert rewritten.score > report.score
