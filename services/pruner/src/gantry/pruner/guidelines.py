"""Rule-based checks of a code-generation prompt against the ten prompt guidelines.

The guidelines and their shares of successful prompt fixes come from "Guidelines for
code-generation prompts" (arXiv 2601.13118): algorithmic details 57%, I/O format 44%,
examples 24%, post-conditions 23%, requirements 19%, exception handling 12%, assertive
language 9%, pre-conditions 7%, consistent terminology 3%, clarified conditionals 1%.
Each detector looks for explicit evidence that the prompt follows a guideline; absence of
evidence becomes a finding with a suggested addition. Detectors that find a problem *in*
the text (hedged requirements, mixed terms, ambiguous "otherwise") report its span.
"""

from __future__ import annotations

import bisect
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from enum import IntEnum


class Guideline(IntEnum):
    """Values match ``gantry.pruner.v1.Guideline``."""

    ALGORITHMIC_DETAILS = 1
    IO_FORMAT = 2
    EXAMPLES = 3
    POST_CONDITIONS = 4
    REQUIREMENTS = 5
    EXCEPTION_HANDLING = 6
    ASSERTIVE_LANGUAGE = 7
    PRE_CONDITIONS = 8
    CONSISTENT_TERMINOLOGY = 9
    CLARIFIED_CONDITIONALS = 10


class Severity(IntEnum):
    """Values match ``gantry.pruner.v1.Severity``."""

    INFO = 1
    WARNING = 2
    ERROR = 3


SHARES: dict[Guideline, float] = {
    Guideline.ALGORITHMIC_DETAILS: 57,
    Guideline.IO_FORMAT: 44,
    Guideline.EXAMPLES: 24,
    Guideline.POST_CONDITIONS: 23,
    Guideline.REQUIREMENTS: 19,
    Guideline.EXCEPTION_HANDLING: 12,
    Guideline.ASSERTIVE_LANGUAGE: 9,
    Guideline.PRE_CONDITIONS: 7,
    Guideline.CONSISTENT_TERMINOLOGY: 3,
    Guideline.CLARIFIED_CONDITIONALS: 1,
}


@dataclass(frozen=True, slots=True)
class Finding:
    guideline: Guideline
    severity: Severity
    message: str
    span: tuple[int, int] = (0, 0)
    suggestion: str = ""


@dataclass(slots=True)
class Report:
    findings: list[Finding]
    satisfied: dict[Guideline, bool]
    weights: dict[Guideline, float]
    score: float
    suggested_prompt: str = ""
    additions: list[str] = field(default_factory=list)


def _rx(pattern: str) -> re.Pattern[str]:
    return re.compile(pattern, re.IGNORECASE)


_STEPS = _rx(
    r"(^|\n)[^\S\n]*(\d+[.)]|step\s*\d+|[-*•])\s+\S|\b(first|then|next|finally|afterwards),?\s+\w+|"
    r"\bstep[- ]by[- ]step\b|\b(algorithm|approach|strategy|procedure)\b"
)
_METHOD = _rx(
    r"\b(iterate|loop over|for each|traverse|recurs\w*|binary search|sort(ed|ing)? (the|by|in)|"
    r"dynamic programming|memoi[sz]\w*|hash ?(map|set|table)|two pointers?|sliding window|"
    r"breadth[- ]first|depth[- ]first|bfs|dfs|greedy|heap|stack|queue|regular expression|regex|"
    r"accumulate|count (the|each|how)|compute \w+ (by|as|using)|by (computing|counting|"
    r"comparing|splitting|merging|scanning|summing|checking))\b"
)
_INPUT = _rx(
    r"\b(takes?|accepts?|given|receives?|input|parameters?|arguments?|args?)\b|\bdef \w+\s*\(|"
    r"\b\w+\s*:\s*(int|str|float|bool|list|dict|tuple|set)\b"
)
_OUTPUT = _rx(r"\b(returns?|outputs?|prints?|yields?|produces?|writes?)\b|->")
_TYPE = _rx(
    r"\b(int|integers?|str|strings?|float|floats?|bool|booleans?|lists?|dict|dictionary|"
    r"dictionaries|tuples?|sets?|arrays?|json|csv|dataframe|bytes|none|numbers?|"
    r"matrix|matrices|generator|iterator|mapping|object|path|file)\b"
)
# Every pattern runs in linear time on any prompt (a 200 KB prompt is allowed): a word
# starts at a \b, so `\w+` never restarts inside a word, and the two example shapes that
# need "anything up to" (`f(...) == 3`, "input: ... output:") are matched in code
# (`_call_example`, `_input_output`), because `.*` between two patterns backtracks
# quadratically on a long line.
_EXAMPLE = _rx(
    r">>>|\be\.g\.|\bfor example\b|\bfor instance\b|\bexamples?\s*[:\n]|"
    r"\bassert\s+\w+\("
)
_INPUT_LABEL = _rx(r"\binput\s*:")
_OUTPUT_LABEL = _rx(r"\boutput\s*:")
_CALL_OPEN = _rx(r"\b\w+\(")
_CALL_RESULT = _rx(r"\)\s*(==|->|=>|returns|should return|must return)\s*\S")
_POST = _rx(
    r"\b(ensure|ensures|guarantee[sd]?|post-?conditions?|afterwards|after (the )?call|"
    r"in[- ]place|unchanged|not (be )?modif\w+|without modifying|must be (sorted|unique|"
    r"non-negative|normali[sz]ed)|(the )?(result|output|returned \w+) (is|must be|will be|"
    r"should be|contains?|has)\b|such that|so that|sorted (in|by)|no duplicates|"
    r"preserv\w+ (the )?order)\b"
)
_LIBRARIES = (
    "numpy|pandas|scipy|sklearn|scikit-learn|matplotlib|seaborn|torch|pytorch|tensorflow|"
    "requests|flask|django|fastapi|re|os|sys|json|csv|datetime|collections|itertools|"
    "functools|math|random|typing|pathlib|subprocess|sqlite3|socket|asyncio|heapq|bisect|"
    "hashlib|statistics|string|time|urllib|bs4|beautifulsoup|nltk|opencv|cv2|pillow|pil|"
    "regex|yaml|pytest|lodash|react|express|boost|stl|java\\.util"
)
_REQUIREMENTS = _rx(
    rf"\b(import|from \w+ import|using (the )?({_LIBRARIES})\b|use (the )?\w+ (library|module|"
    rf"package)|standard library|no (external|third[- ]party)|only (the )?(built-?ins?|"
    rf"standard)|dependenc(y|ies)|requires?|version|python ?3(\.\d+)?|java ?\d+|"
    rf"c\+\+ ?\d+|es20\d\d|node ?\d+)\b|\b({_LIBRARIES})\b(?=.*\b(library|module|package)\b)"
)
_EXCEPTIONS = _rx(
    r"\b(raises?|raising|throws?|throwing|exceptions?|errors?|\w+Error|\w+Exception|invalid|"
    r"malformed|fail(s|ure)?|edge cases?|handle[sd]? (the )?(case|empty|missing|none|null)|"
    r"if (the )?\w+ (is|are) (empty|none|null|missing|negative|not found))\b"
)
_PRE = _rx(
    r"\b(assume|assuming|assumes|you (can|may) assume|guaranteed|pre-?conditions?|"
    r"constraints?|non-?empty|at least \w+|at most \w+|always (be )?(a |an )?\w+|"
    r"(is|are) (always )?(positive|non-negative|sorted|valid|unique|distinct)|"
    r"\d+\s*<=?\s*\w+\s*<=?\s*\d+|between \d+ and \d+|will (always )?(be|contain|have))\b"
)
_HEDGES = _rx(
    r"\b(should|could|might|may|maybe|perhaps|possibly|ideally|preferably|try to|"
    r"if possible|would be (nice|good|great)|it would be|hopefully)\b"
)
# "you may assume ...", "the list may be empty": permissions and input facts, not hedges.
_NOT_HEDGE = _rx(
    r"(you )?(may|can|could|might) (assume|use|ignore|be|contain|include|have|hold|appear|"
    r"occur|exceed|differ|vary|repeat)\b"
)
_MODAL = frozenset({"should", "could", "might", "may", "try to"})
_CONDITION = _rx(r"\b(if|when|whenever|unless|in case)\b")
_OTHERWISE = _rx(r"\b(otherwise|or else|in (all )?other cases|else)\b")
_OR_ELSE = _rx(r"\bor else\b")
_SENTENCE = re.compile(r"[^.!?\n]+[.!?]?")
_IDENTIFIER = re.compile(
    r"`([A-Za-z_][A-Za-z0-9_]*)`|\b([a-z]+(?:_[a-z0-9]+)+|[a-z]+(?:[A-Z][a-z0-9]+)+)\b"
)
_FUNC_NAME = re.compile(r"\bdef\s+([A-Za-z_]\w*)|`([A-Za-z_]\w*)\(")

# Concepts with several names: using two of them for one thing confuses the model.
_SYNONYMS: dict[str, re.Pattern[str]] = {
    "list": _rx(r"\blists?\b|\barrays?\b|\bvectors?\b"),
    "dictionary": _rx(
        r"\bdict(ionar(y|ies))?s?\b|\bhash ?maps?\b|\b(a|an|the|this|that|each|returned|"
        r"input|output|result(ing)?)\s+(map|mapping)s?\b"
    ),
    "function": _rx(r"\bfunctions?\b|\bmethods?\b|\bprocedures?\b|\broutines?\b"),
    "string": _rx(r"\bstrings?\b|\bstr\b"),
}


def _word_of(pattern_match: re.Match[str]) -> str:
    word = pattern_match.group(0).lower()
    for plural in ("ies", "s"):
        if word.endswith(plural) and len(word) > 4:
            return word[: -len(plural)] + ("y" if plural == "ies" else "")
    return word.split()[-1]


def _canonical_term(word: str) -> str:
    if word.startswith(("dict", "hash")):
        return "dictionary"
    if word.startswith("map"):
        return "map"
    if word in ("str", "string"):
        return word
    return word


@dataclass(frozen=True, slots=True)
class Context:
    prompt: str
    language: str

    @property
    def name(self) -> str:
        match = _FUNC_NAME.search(self.prompt)
        if match:
            return match.group(1) or match.group(2)
        return "the function"

    @property
    def raise_word(self) -> str:
        return (
            "throw"
            if self.language in ("java", "javascript", "typescript", "cpp", "csharp")
            else "raise"
        )


Detector = Callable[[Context], list[Finding]]


def _algorithmic(ctx: Context) -> list[Finding]:
    if _STEPS.search(ctx.prompt) or _METHOD.search(ctx.prompt):
        return []
    return [
        Finding(
            Guideline.ALGORITHMIC_DETAILS,
            Severity.WARNING,
            "The prompt says what to compute but not how: no steps or algorithm are given.",
            suggestion=f"Describe the key steps of {ctx.name}, e.g. '1. ... 2. ... 3. ...'.",
        )
    ]


def _io_format(ctx: Context) -> list[Finding]:
    has_input = bool(_INPUT.search(ctx.prompt))
    output = _OUTPUT.search(ctx.prompt)
    has_output = bool(output and _TYPE.search(ctx.prompt))
    if has_input and has_output:
        return []
    missing = [name for name, ok in (("input", has_input), ("output", has_output)) if not ok]
    severity = Severity.ERROR if len(missing) == 2 else Severity.WARNING
    return [
        Finding(
            Guideline.IO_FORMAT,
            severity,
            f"The {' and '.join(missing)} format is not stated.",
            suggestion=(
                f"State the parameters of {ctx.name} with their types and what it returns, "
                "e.g. 'takes `items: list[int]` and returns an `int`'."
            ),
        )
    ]


def _newlines_between(newlines: list[int], start: int, end: int) -> int:
    return bisect.bisect_left(newlines, end) - bisect.bisect_left(newlines, start)


def _newlines(text: str) -> list[int]:
    return [m.start() for m in re.finditer("\n", text)]


def _input_output(text: str) -> bool:
    """An "input:" label followed by an "output:" label on the same or the next line."""
    inputs = [m.end() for m in _INPUT_LABEL.finditer(text)]
    if not inputs:
        return False
    newlines = _newlines(text)
    for output in _OUTPUT_LABEL.finditer(text):
        before = bisect.bisect_right(inputs, output.start())
        # The closest input label before this output label has the fewest lines between.
        if before and _newlines_between(newlines, inputs[before - 1], output.start()) <= 1:
            return True
    return False


def _call_example(text: str) -> bool:
    """`name(...)` then, on the same line, `)` followed by `==`, `->`, `returns`, ..."""
    opens = [m.end() for m in _CALL_OPEN.finditer(text)]
    if not opens:
        return False
    newlines = _newlines(text)
    for result in _CALL_RESULT.finditer(text):
        closing = result.start()
        before = bisect.bisect_right(opens, closing)  # call openings ending by the ")"
        if before and _newlines_between(newlines, opens[before - 1], closing) == 0:
            return True
    return False


def _examples(ctx: Context) -> list[Finding]:
    if _EXAMPLE.search(ctx.prompt) or _input_output(ctx.prompt) or _call_example(ctx.prompt):
        return []
    return [
        Finding(
            Guideline.EXAMPLES,
            Severity.INFO,
            "No input/output example is given.",
            suggestion=f"Add an example, e.g. '{ctx.name}(...) returns ...'.",
        )
    ]


def _post(ctx: Context) -> list[Finding]:
    if _POST.search(ctx.prompt):
        return []
    return [
        Finding(
            Guideline.POST_CONDITIONS,
            Severity.INFO,
            "Nothing is said about what must hold after the code runs.",
            suggestion="State the post-conditions, e.g. 'The result must be sorted and the "
            "input must not be modified.'",
        )
    ]


def _requirements(ctx: Context) -> list[Finding]:
    if _REQUIREMENTS.search(ctx.prompt):
        return []
    return [
        Finding(
            Guideline.REQUIREMENTS,
            Severity.INFO,
            "Required libraries, versions or dependencies are not named.",
            suggestion="Name the allowed dependencies, e.g. 'Use only the standard library "
            f"({ctx.language or 'python'}).'",
        )
    ]


def _exceptions(ctx: Context) -> list[Finding]:
    if _EXCEPTIONS.search(ctx.prompt):
        return []
    return [
        Finding(
            Guideline.EXCEPTION_HANDLING,
            Severity.WARNING,
            "The prompt does not say which errors to raise or how to handle invalid input.",
            suggestion=f"Say how errors are handled, e.g. '{ctx.raise_word.capitalize()} "
            "ValueError if the input is empty.'",
        )
    ]


def _assertive(ctx: Context) -> list[Finding]:
    findings = []
    for match in _HEDGES.finditer(ctx.prompt):
        tail = ctx.prompt[match.start() : match.end() + 12]
        if _NOT_HEDGE.match(tail):
            continue
        word = match.group(0).lower()
        modal = word in _MODAL
        findings.append(
            Finding(
                Guideline.ASSERTIVE_LANGUAGE,
                Severity.INFO,
                f"Hedged requirement '{match.group(0)}': the model may treat it as optional.",
                span=(match.start(), match.end()),
                suggestion="must" if modal else "drop it and state the requirement with 'must'",
            )
        )
    return findings


def _pre(ctx: Context) -> list[Finding]:
    if _PRE.search(ctx.prompt):
        return []
    return [
        Finding(
            Guideline.PRE_CONDITIONS,
            Severity.INFO,
            "Nothing is said about what may be assumed about the inputs.",
            suggestion="State the pre-conditions, e.g. 'You may assume the list is non-empty "
            "and holds at most 10^5 items.'",
        )
    ]


def _terminology(ctx: Context) -> list[Finding]:
    findings = []
    for concept, pattern in _SYNONYMS.items():
        matches = list(pattern.finditer(ctx.prompt))
        seen: dict[str, re.Match[str]] = {}
        for match in matches:
            term = _canonical_term(_word_of(match))
            seen.setdefault(term, match)
        if len(seen) < 2:
            continue
        terms = list(seen)
        first, later = terms[0], seen[terms[1]]
        findings.append(
            Finding(
                Guideline.CONSISTENT_TERMINOLOGY,
                Severity.WARNING,
                f"The same {concept} is called {', '.join(repr(t) for t in terms)}.",
                span=(later.start(), later.end()),
                suggestion=first,
            )
        )
    # One identifier spelled two ways (snake_case vs camelCase).
    spellings: dict[str, tuple[str, re.Match[str]]] = {}
    for match in _IDENTIFIER.finditer(ctx.prompt):
        word = match.group(1) or match.group(2)
        key = word.replace("_", "").lower()
        if key in spellings and spellings[key][0] != word:
            findings.append(
                Finding(
                    Guideline.CONSISTENT_TERMINOLOGY,
                    Severity.WARNING,
                    f"'{word}' and '{spellings[key][0]}' name the same thing differently.",
                    span=(match.start(), match.end()),
                    suggestion=spellings[key][0],
                )
            )
        spellings.setdefault(key, (word, match))
    return findings


def _conditionals(ctx: Context) -> list[Finding]:
    findings = []
    sentences = [(m.start(), m.group(0)) for m in _SENTENCE.finditer(ctx.prompt)]
    previous = 0  # conditions in the sentence before
    for offset, sentence in sentences:
        # Condition ends within the sentence, so each "otherwise" counts those before it
        # by bisection (linear in the sentence, however many "otherwise"s it holds).
        condition_ends = [m.end() for m in _CONDITION.finditer(sentence)]
        or_else = _OR_ELSE.search(sentence) is not None
        for match in _OTHERWISE.finditer(sentence):
            if match.group(0).lower() == "else" and not or_else:
                # A bare "else" in prose is usually code ("if/else"); only flag the phrase.
                continue
            conditions = previous + bisect.bisect_right(condition_ends, match.start())
            if conditions == 1:
                continue  # a single preceding condition: "otherwise" is unambiguous
            start = offset + match.start()
            what = "several conditions" if conditions > 1 else "no stated condition"
            findings.append(
                Finding(
                    Guideline.CLARIFIED_CONDITIONALS,
                    Severity.WARNING,
                    f"'{match.group(0)}' follows {what}: which case it covers is ambiguous.",
                    span=(start, start + len(match.group(0))),
                    suggestion="state the condition explicitly, e.g. 'if <condition> is false'",
                )
            )
        previous = len(condition_ends)
    return findings


DETECTORS: dict[Guideline, Detector] = {
    Guideline.ALGORITHMIC_DETAILS: _algorithmic,
    Guideline.IO_FORMAT: _io_format,
    Guideline.EXAMPLES: _examples,
    Guideline.POST_CONDITIONS: _post,
    Guideline.REQUIREMENTS: _requirements,
    Guideline.EXCEPTION_HANDLING: _exceptions,
    Guideline.ASSERTIVE_LANGUAGE: _assertive,
    Guideline.PRE_CONDITIONS: _pre,
    Guideline.CONSISTENT_TERMINOLOGY: _terminology,
    Guideline.CLARIFIED_CONDITIONALS: _conditionals,
}


def check_prompt(
    prompt: str,
    language: str = "python",
    guidelines: Iterable[Guideline] = (),
    *,
    rewrite: bool = False,
) -> Report:
    """Check ``prompt``; ``guidelines`` empty = all ten."""
    chosen = list(dict.fromkeys(guidelines)) or list(Guideline)
    ctx = Context(prompt=prompt, language=language.strip().lower())
    findings: list[Finding] = []
    satisfied: dict[Guideline, bool] = {}
    for guideline in chosen:
        found = DETECTORS[guideline](ctx)
        findings.extend(found)
        satisfied[guideline] = not found
    total = sum(SHARES[g] for g in chosen)
    weights = {g: SHARES[g] / total for g in chosen}
    score = sum(weights[g] for g in chosen if satisfied[g])
    findings.sort(key=lambda f: (-f.severity, -SHARES[f.guideline], f.span[0]))
    report = Report(findings=findings, satisfied=satisfied, weights=weights, score=score)
    if rewrite:
        report.suggested_prompt = rewrite_prompt(prompt, findings)
    return report


def rewrite_prompt(prompt: str, findings: list[Finding]) -> str:
    """Apply in-text fixes (hedges -> "must"), then append the missing pieces."""
    text = prompt
    replacements = sorted(
        (
            f
            for f in findings
            if f.guideline == Guideline.ASSERTIVE_LANGUAGE and f.suggestion == "must"
        ),
        key=lambda f: -f.span[0],
    )
    for finding in replacements:
        start, end = finding.span
        text = text[:start] + finding.suggestion + text[end:]
    additions = [
        f"- {f.suggestion}"
        for f in sorted(findings, key=lambda f: f.guideline)
        if f.span == (0, 0) and f.suggestion
    ]
    if additions:
        text = text.rstrip() + "\n\nRequirements:\n" + "\n".join(additions)
    return text
