"""Scorers, the shipped head, the data generator and the training loop."""

from __future__ import annotations

import random
import re
import sysconfig
from pathlib import Path

import numpy as np
import pytest
import torch

from gantry.pruner.data import build_file, generate, held_out
from gantry.pruner.lexical import bm25_scores, indent_parents, stem, terms
from gantry.pruner.pruner import Pruner, split_lines
from gantry.pruner.scoring import (
    DEFAULT_HEAD,
    CrossEncoderScorer,
    HeadScorer,
    LexicalScorer,
    LineHead,
    Scorer,
)
from gantry.pruner.service import DEMO_CODE
from gantry.pruner.train import evaluate, featurize, train_head


@pytest.fixture(scope="module")
def head_scorer() -> HeadScorer:
    return HeadScorer.load()


def _function_lines(name: str) -> tuple[list[str], set[int]]:
    lines, _ = split_lines(DEMO_CODE)
    start = next(i for i, line in enumerate(lines) if line.startswith(f"def {name}"))
    end = start + 1
    while end < len(lines) and (not lines[end].strip() or lines[end].startswith(" ")):
        end += 1
    return lines, {i for i in range(start, end) if lines[i].strip()}


def test_shipped_head_is_small_and_loads() -> None:
    assert DEFAULT_HEAD.stat().st_size < 2_000_000
    head, metadata = LineHead.load(DEFAULT_HEAD)
    assert "training" in metadata
    assert sum(p.numel() for p in head.parameters()) < 500_000


@pytest.mark.parametrize(
    ("hint", "function"),
    [
        ("what does `value = retry(fetch, attempts=5)` do?", "retry"),
        ("how are failed calls retried?", "retry"),
        ("Format rows as an aligned text table.", "render_table"),
        ("where is the JSON config file read?", "load_config"),
    ],
)
def test_head_scores_the_target_function_highest(
    head_scorer: HeadScorer, hint: str, function: str
) -> None:
    lines, target = _function_lines(function)
    scores = head_scorer.score(lines, hint)
    assert scores.shape == (len(lines),)
    assert np.all((scores >= 0) & (scores <= 1))
    others = {i for i in range(len(lines)) if lines[i].strip()} - target
    assert np.mean(scores[sorted(target)]) > 2 * np.mean(scores[sorted(others)])
    assert isinstance(head_scorer, Scorer)


def test_embedding_cache_is_reused(head_scorer: HeadScorer) -> None:
    lines, _ = split_lines(DEMO_CODE)
    first = head_scorer.line_embeddings(lines)
    assert head_scorer.line_embeddings(lines) is first
    assert np.allclose(np.linalg.norm(first[[0, 3]], axis=1), 1.0, atol=1e-5)
    assert not first[1].any()  # blank line


def test_cross_encoder_loads_by_path(tmp_path: Path) -> None:
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from gantry.models.tiny import tiny_model_dir

    source = tiny_model_dir("encoder")
    model = AutoModelForSequenceClassification.from_pretrained(
        source, num_labels=1, local_files_only=True
    )
    model.save_pretrained(tmp_path)
    AutoTokenizer.from_pretrained(source, local_files_only=True).save_pretrained(tmp_path)
    scorer = CrossEncoderScorer(str(tmp_path))
    lines, _ = split_lines(DEMO_CODE)
    scores = scorer.score(lines, "retry")
    assert scores.shape == (len(lines),)
    assert np.all((scores >= 0) & (scores <= 1))
    assert scores[1] == 0.0 and scores[0] > 0.0  # blank lines are not scored
    result = Pruner(scorer).prune(DEMO_CODE, "retry", keep_ratio=0.5, language="python")
    assert 0 < result.kept_lines < result.original_lines


def test_lexical_helpers() -> None:
    assert stem("retried") == stem("retry") == stem("retries") == "retr"
    assert "parse_header" in terms("self.parse_header(line)")
    assert {"pars", "header"} <= set(terms("parseHeader"))
    scores = bm25_scores([["retr", "call"], ["table"], []], ["retr"])
    assert scores[0] > 0 and scores[1] == scores[2] == 0
    assert indent_parents(["def f():", "    x = 1", "", "    y = 2", "z"]) == [-1, 0, 0, 0, -1]
    lexical = LexicalScorer().score(*_function_lines("retry")[:1], "retried calls")
    assert lexical.max() > 0.5


def test_data_generator_examples_are_consistent() -> None:
    root = Path(sysconfig.get_paths()["stdlib"])
    contexts = list(generate(split="train", max_files=3, seed=3))
    test_contexts = list(generate(split="test", max_files=3, seed=3))
    assert {c.path for c in contexts}.isdisjoint(c.path for c in test_contexts)
    assert not any(held_out(c.path) for c in contexts)
    assert all(held_out(c.path) for c in test_contexts)
    for context in contexts + test_contexts:
        for example in context.examples:
            first = context.lines[example.relevant[0]].lstrip()
            assert first.startswith(("def ", "async def ", "@"))
            assert all(context.lines[i].strip() for i in example.relevant)
            if example.kind == "docstring":
                # The hint's docstring was removed from the function in the context.
                doc = re.split(
                    r"^(?:focus on the code that does this: |where is this done\? )", example.hint
                )[-1]
                body = " ".join(" ".join(context.lines[i].split()) for i in example.relevant)
                assert doc[:40] not in body
            else:
                assert example.function in example.hint
    built = build_file(root / "textwrap.py", root, random.Random(0))
    assert built is not None and built.examples


def test_training_loop_learns_on_a_few_files(head_scorer: HeadScorer, tmp_path: Path) -> None:
    files = list(generate(split="train", max_files=2, seed=11))
    items = featurize(head_scorer, files, cache=None, log=False)
    head = train_head(items, dim=head_scorer.lines.dim, epochs=3, seed=0, log=False)
    before = evaluate(LineHead(head_scorer.lines.dim), items)
    after = evaluate(head, items)
    assert after["loss"] < before["loss"]
    path = tmp_path / "head.safetensors"
    head.save(path)
    loaded, _ = LineHead.load(path)
    for name, value in head.state_dict().items():
        assert torch.equal(value, loaded.state_dict()[name])
