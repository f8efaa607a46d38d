"""Structure-aware selection: units, closure, markers, budgets, parseable Python."""

from __future__ import annotations

import ast
import random
import sysconfig
from pathlib import Path

import numpy as np
import pytest

from gantry.pruner.pruner import PruneInputError, Pruner
from gantry.pruner.select import viterbi
from gantry.pruner.structure import build_structure, detect_language, normalize_language
from gantry.pruner.testing import FixedScorer, RandomScorer

CODE = '''import os


class Store:
    """A key-value store."""

    def __init__(self, root):
        self.root = root

    @property
    def size(self):
        return len(os.listdir(self.root))

    def get(self, key,
            default=None):
        path = os.path.join(self.root, key)
        if os.path.exists(path):
            with open(path) as handle:
                return handle.read()
        elif default is not None:
            return default
        else:
            raise KeyError(key)

    def put(self, key, value):
        try:
            with open(os.path.join(self.root, key), "w") as handle:
                handle.write(value)
        except OSError:
            raise
        finally:
            pass
'''


def lines_of(text: str) -> list[str]:
    return text.rstrip("\n").split("\n")


def test_python_units_keep_statements_and_signatures_whole() -> None:
    lines = lines_of(CODE)
    structure = build_structure(lines, "python")
    assert structure.python_syntax and structure.builder == "syntax_tree"
    sig = structure.units[structure.line_unit[13]]  # "def get(self, key," (0-based 13)
    assert (sig.start, sig.end) == (13, 14) and sig.header
    decorated = structure.units[structure.line_unit[9]]  # "@property"
    assert (decorated.start, decorated.end) == (9, 10)
    # Keeping `raise KeyError` keeps else -> if, the enclosing def and class headers.
    raise_unit = structure.line_unit[22]
    kept = structure.closure({raise_unit})
    kept_lines = {
        line for u in kept for line in range(structure.units[u].start, structure.units[u].end + 1)
    }
    assert {3, 13, 14, 16, 21, 22}.issubset(kept_lines)  # class, def, if, else
    assert 15 not in kept_lines  # a sibling statement is not needed
    assert 19 not in kept_lines  # the elif clause is not needed
    # A `try:` header needs a handler.
    try_unit = structure.line_unit[25]
    handler_lines = {structure.units[u].start for u in structure.closure({try_unit})}
    assert 28 in handler_lines


def test_indentation_structure_pairs_braces() -> None:
    js = lines_of("function f(a) {\n  if (a) {\n    return g(1,\n      2);\n  }\n  return 0;\n}\n")
    structure = build_structure(js, "javascript")
    assert not structure.python_syntax
    call = structure.units[structure.line_unit[2]]
    assert (call.start, call.end) == (2, 3)  # continuation of the open parenthesis
    kept = structure.closure({structure.line_unit[2]})
    starts = sorted(structure.units[u].start for u in kept)
    assert starts == [0, 1, 2, 4, 6]  # headers and their closing braces


def test_viterbi_smooths_isolated_decisions() -> None:
    gain = np.array([3.0, 3.0, -0.5, 3.0, -3.0, 0.4, -3.0])
    keep = viterbi(gain, np.zeros(7, dtype=bool), switch_cost=1.0)
    assert keep.tolist() == [True, True, True, True, False, False, False]
    free = viterbi(gain, np.zeros(7, dtype=bool), switch_cost=0.0)
    assert free.tolist() == [True, True, False, True, False, True, False]


def test_prune_markers_and_restored_single_line() -> None:
    text = "\n".join(f"line {i} about things" for i in range(1, 21)) + "\n"
    scores = dict.fromkeys((3, 4, 6, 7), 0.99)
    result = Pruner(FixedScorer(scores, base=0.01), switch_cost=0.0).prune(
        text, "things", language="text"
    )
    assert result.kept_ranges == [(3, 7)]  # line 5 restored between kept lines
    assert result.text.splitlines() == [
        "(filtered 2 lines: 1-2)",
        "line 3 about things",
        "line 4 about things",
        "line 5 about things",
        "line 6 about things",
        "line 7 about things",
        "(filtered 13 lines: 8-20)",
    ]
    assert result.text.endswith("\n")
    assert result.kept_lines == 5 and result.original_lines == 20
    assert result.pruned_tokens < result.original_tokens
    assert result.compression_ratio == pytest.approx(result.original_tokens / result.pruned_tokens)


def test_python_output_parses_with_placeholder_for_emptied_bodies() -> None:
    # Keep only the `raise` in `get`: the `if` body loses everything -> `...` placeholder.
    result = Pruner(FixedScorer({23: 0.99}), switch_cost=0.0).prune(
        CODE, "missing key", language="python"
    )
    ast.parse(result.text)
    assert "raise KeyError(key)" in result.text
    assert "...  # (filtered" in result.text
    assert "def put" not in result.text


def _stdlib_sample(count: int, seed: int) -> list[Path]:
    root = Path(sysconfig.get_paths()["stdlib"])
    files = sorted(p for p in root.glob("*.py") if 2_000 < p.stat().st_size < 60_000)
    return random.Random(seed).sample(files, count)


@pytest.mark.parametrize("seed", [0, 1])
def test_pruned_python_stays_parseable_under_random_scores(seed: int) -> None:
    pruner = Pruner(RandomScorer(seed), switch_cost=0.5)
    checked = 0
    for path in _stdlib_sample(12, seed):
        source = path.read_text(encoding="utf-8")
        for options in ({"threshold": 0.7}, {"keep_ratio": 0.25}, {"keep_ratio": 0.05}):
            result = pruner.prune(source, "anything", language="python", **options)  # type: ignore[arg-type]
            ast.parse(result.text)  # raises on a cut statement, signature or bracket pair
            assert result.kept_lines <= result.original_lines
            checked += 1
    assert checked == 36


def test_token_budget_is_respected() -> None:
    pruner = Pruner(RandomScorer(3))
    source = _stdlib_sample(1, 5)[0].read_text(encoding="utf-8")
    for budget in (50, 400, 2000):
        result = pruner.prune(source, "hint", token_budget=budget, language="python")
        kept = [line for a, b in result.kept_ranges for line in source.split("\n")[a - 1 : b]]
        assert sum(pruner.scorer.count_tokens(kept)) <= budget
        ast.parse(result.text)


def test_threshold_extremes() -> None:
    pruner = Pruner(RandomScorer(4), switch_cost=0.0)
    text = "".join(f"the {word} line has several words in it\n" for word in ("a", "b", "c", "d"))
    everything = pruner.prune(text, "x", threshold=0.0)
    assert everything.text == text and everything.compression_ratio == 1.0
    nothing = pruner.prune(text, "x", threshold=1.0)
    assert nothing.kept_lines == 0 and nothing.text == "(filtered 4 lines: 1-4)\n"
    # A marker longer than what it replaces: the text comes back untouched.
    short = pruner.prune("alpha\nbeta\n", "x", threshold=1.0)
    assert short.text == "alpha\nbeta\n" and short.kept_lines == 2


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"text": "  \n"}, "text"),
        ({"goal_hint": " "}, "goal_hint"),
        ({"token_budget": 0}, "token_budget"),
        ({"threshold": 1.5}, "keep_threshold"),
        ({"keep_ratio": 0.0}, "keep_ratio"),
        ({"language": "klingon"}, "language"),
    ],
)
def test_prune_input_errors(kwargs: dict[str, object], field: str) -> None:
    args: dict[str, object] = {"text": "a\nb\n", "goal_hint": "a"} | kwargs
    with pytest.raises(PruneInputError) as info:
        Pruner(RandomScorer()).prune(**args)  # type: ignore[arg-type]
    assert info.value.field == field


def test_language_detection_and_aliases() -> None:
    assert detect_language(CODE) == "python"
    assert detect_language("The quick brown fox.\nJumps over the dog.") == "text"
    assert detect_language("int main() {\n  return 0;\n}\n") == "code"
    assert normalize_language("PY") == "python"
    assert normalize_language("") == ""
    assert normalize_language("cobol") is None
