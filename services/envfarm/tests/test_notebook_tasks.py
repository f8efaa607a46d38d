"""Notebook (DSGym) tasks on the host: the seeded suite, answer checking, submission
scoring against hidden labels, and the shortcut filter."""

from __future__ import annotations

import collections
import io

import pandas as pd
import pytest

from gantry.envfarm.notebook import datasets, tasks
from gantry.envfarm.notebook.family import NotebookFamily
from gantry.envfarm.notebook.grading import (
    AnswerFormatError,
    answer_correct,
    parse_answer,
    score_submission,
)
from gantry.envfarm.notebook.shortcut import blind_answers, documentation, shortcut
from gantry.envfarm.notebook.tasks import Task
from gantry.envfarm.sandbox import make_backend


@pytest.fixture(scope="module")
def suite() -> dict[str, Task]:
    family = NotebookFamily(lambda: make_backend("subprocess"))  # the catalogue only
    return family.tasks()


def test_the_suite_has_over_100_tasks_of_every_template_and_both_types(
    suite: dict[str, Task],
) -> None:
    assert len(suite) >= 100
    templates = collections.Counter(t.template for t in suite.values())
    assert set(templates) == set(tasks.TEMPLATES)
    types = collections.Counter(t.type for t in suite.values())
    assert types["prediction"] >= 10 and types["analysis"] >= 90
    assert {t.dataset for t in suite.values()} == set(datasets.DATASETS)
    assert {datasets.DATASETS[t.dataset].source for t in suite.values()} == {
        "scikit-learn",
        "statsmodels",
    }
    for task_id, task in suite.items():
        assert task_id == task.id and tasks.parse_id(task_id) == (
            task.dataset,
            task.template,
            task.variant,
        )


def test_tasks_reproduce_from_their_seeds(suite: dict[str, Task]) -> None:
    for task in list(suite.values())[::7]:
        again = tasks.build(task.dataset, task.template, task.variant)
        assert again == task
    one = suite["dsgym/iris/mean-0"]
    other = tasks.build("iris", "mean", 1)  # another variant draws another column or none
    assert other is not None and other.seed != one.seed


def test_analysis_answers_are_computed_from_the_csv_the_sandbox_sees() -> None:
    frame = pd.read_csv(io.BytesIO(datasets.csv_bytes("iris")))
    task = tasks.build("iris", "mean", 0)
    assert task is not None and task.answer_kind == "number"
    column = task.knobs["column"]
    assert answer_correct("number", str(frame[column].mean()), task.expected)
    assert not answer_correct("number", str(frame[column].mean() * 1.01), task.expected)


def test_prediction_labels_stay_on_the_host(suite: dict[str, Task]) -> None:
    task = suite["dsgym/wine/predict-0"]
    data = tasks.prediction_data(task)
    assert set(data.files) == {"train.csv", "test.csv"}
    test = pd.read_csv(io.BytesIO(data.files["test.csv"]))
    train = pd.read_csv(io.BytesIO(data.files["train.csv"]))
    assert "cultivar" not in test.columns and "cultivar" in train.columns
    assert sorted(test["id"]) == sorted(data.truth.index)
    assert not set(test["id"]) & set(train["id"])
    other = tasks.prediction_data(suite["dsgym/wine/predict-1"])
    assert sorted(other.truth.index) != sorted(data.truth.index)  # another split


@pytest.mark.parametrize(
    ("kind", "answer", "expected", "correct"),
    [
        ("number", "3.1416", "3.14159265", True),
        ("number", "3.14", "3.14159265", False),  # 4 significant digits are needed
        ("number", "1,234.5", "1234.5", True),
        ("integer", "42", "42", True),
        ("integer", "42.0", "42", True),
        ("integer", "43", "42", False),
        ("label", "'Setosa'", "setosa", True),
        ("label", "versicolor", "setosa", False),
        ("set", "b, a", "a, b", True),
        ("set", '["A", "b"]', "a, b", True),
        ("set", "a", "a, b", False),
        ("set", "a, b, c", "a, b", False),
    ],
)
def test_answers_are_checked_by_kind(kind: str, answer: str, expected: str, correct: bool) -> None:
    assert answer_correct(kind, answer, expected) is correct  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("kind", "answer"),
    [
        ("number", "about five"),
        ("number", "nan"),
        ("integer", "4.5"),
        ("set", "[1, 2"),
        ("label", " "),
    ],
)
def test_malformed_answers_are_refused(kind: str, answer: str) -> None:
    with pytest.raises(AnswerFormatError):
        parse_answer(kind, answer)  # type: ignore[arg-type]


def _submission(ids: list[int], values: list[object], target: str = "y") -> bytes:
    text: str = pd.DataFrame({"id": ids, target: values}).to_csv(index=False)
    return text.encode()


def test_submissions_are_scored_against_hidden_labels() -> None:
    truth = pd.Series(["a", "b", "a", "b"], index=[3, 5, 7, 9])
    perfect = score_submission(
        _submission([9, 7, 5, 3], ["b", "a", "b", "a"]),
        target="y",
        truth=truth,
        metric="accuracy",
        threshold=0.75,
    )
    assert perfect.passed and perfect.value == 1.0
    half = score_submission(
        _submission([3, 5, 7, 9], ["a", "a", "a", "a"]),
        target="y",
        truth=truth,
        metric="accuracy",
        threshold=0.75,
    )
    assert not half.passed and half.value == 0.5 and "0.5000" in half.report
    numeric = pd.Series([1.0, 2.0, 3.0], index=[0, 1, 2])
    rmse = score_submission(
        _submission([0, 1, 2], [1.0, 2.0, 5.0]),
        target="y",
        truth=numeric,
        metric="rmse",
        threshold=1.0,
    )
    assert rmse.value == pytest.approx((4 / 3) ** 0.5) and not rmse.passed
    auc = score_submission(
        _submission([0, 1, 2], [0.1, 0.9, 0.8]),
        target="y",
        truth=pd.Series([0, 1, 1], index=[0, 1, 2]),
        metric="auc",
        threshold=0.7,
    )
    assert auc.passed and auc.value == 1.0


@pytest.mark.parametrize(
    ("data", "why"),
    [
        (b"\x00\x01 not a csv", "column"),
        (_submission([0, 1], [1.0, 2.0], target="z"), "lacks the column"),
        (_submission([0, 0, 1], [1.0, 1.0, 2.0]), "repeats ids"),
        (_submission([0, 1], [1.0, 2.0]), "1 missing"),
        (_submission([0, 1, 2, 3], [1.0, 2.0, 3.0, 4.0]), "1 unknown"),
        (_submission([0, 1, 2], ["x", 2.0, 3.0]), "cannot score"),
    ],
)
def test_broken_submissions_fail_with_a_reason(data: bytes, why: str) -> None:
    truth = pd.Series([1.0, 2.0, 3.0], index=[0, 1, 2])
    score = score_submission(data, target="y", truth=truth, metric="rmse", threshold=10.0)
    assert score.value is None and not score.passed and why in score.report


def test_the_shortcut_filter_flags_questions_the_documentation_answers(
    suite: dict[str, Task],
) -> None:
    assert "150" in documentation("iris")  # sklearn's description gives the counts away
    counted = tasks.build("iris", "group_count", 0)  # "how many rows have species == X?"
    assert counted is not None and counted.expected == "50"
    flag = shortcut(counted)
    assert flag is not None and flag.answer == "50"
    assert counted.id not in suite
    mean = suite["dsgym/iris/mean-0"]
    assert shortcut(mean) is None and mean.expected not in blind_answers(mean)
    assert all(shortcut(t) is None for t in suite.values())
    every = tasks.all_tasks()
    assert 0 < len(every) - len(suite) < len(every) // 4  # some, not most, are dropped
