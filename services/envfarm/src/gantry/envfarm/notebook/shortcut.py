"""The shortcut filter: flags analysis questions answerable without reading the data.

DSGym drops tasks a model answers correctly without looking at the files. Offline, the
"blind" answerer here stands in for that model: it may read the question and the data
set's public documentation (the description its package ships, which models have read
during pre-training) but never the data, and proposes every answer that text gives away:
each number in the question or the documentation (row and class counts, documented
summary statistics), the trivial answers 0 and 1, and for set questions the empty set
and the set of every group. A question one of whose blind answers is graded correct is
flagged and left out of the suite.

As a tool: `python -m gantry.envfarm.notebook.shortcut` lists the flagged questions.
"""

from __future__ import annotations

import functools
import importlib
import re
import sys
from dataclasses import dataclass

from gantry.envfarm.notebook import datasets
from gantry.envfarm.notebook.grading import answer_correct
from gantry.envfarm.notebook.tasks import Task

_NUMBER = re.compile(r"(?<![\w.])-?\d+(?:,\d{3})*(?:\.\d+)?(?:[eE]-?\d+)?")


@functools.cache
def documentation(dataset: str) -> str:
    """The description the data set's package ships with it."""
    ds = datasets.DATASETS[dataset]
    if ds.source == "scikit-learn":
        from sklearn import datasets as sk

        loader = {"diabetes": "load_diabetes", "digits": "load_digits"}.get(
            dataset, f"load_{dataset}"
        )
        return str(getattr(sk, loader)().DESCR)
    module = importlib.import_module(f"statsmodels.datasets.{dataset}")
    parts = ("TITLE", "SOURCE", "DESCRSHORT", "DESCRLONG", "NOTE")
    return "\n".join(str(getattr(module, part, "")) for part in parts)


def blind_answers(task: Task) -> list[str]:
    """Answers proposed from the question and the documentation only."""
    text = f"{task.question}\n{documentation(task.dataset)}"
    numbers = {m.group().replace(",", "") for m in _NUMBER.finditer(text)} | {"0", "1"}
    if task.answer_kind in ("number", "integer"):
        return sorted(numbers)
    if task.answer_kind == "set":
        group = datasets.DATASETS[task.dataset].group
        every = (
            sorted(str(v) for v in datasets.frame(task.dataset)[group].unique()) if group else []
        )
        return ["[]", ", ".join(every)] if every else ["[]"]
    return []


@dataclass(frozen=True)
class Flag:
    task_id: str
    answer: str  # the blind answer that was graded correct


def shortcut(task: Task) -> Flag | None:
    """A Flag when a blind answer solves `task` (prediction tasks are never flagged)."""
    if task.type != "analysis" or task.answer_kind is None:
        return None
    for answer in blind_answers(task):
        if answer_correct(task.answer_kind, answer, task.expected):
            return Flag(task.id, answer)
    return None


def main() -> None:
    from gantry.envfarm.notebook.tasks import all_tasks

    flags = [f for f in map(shortcut, all_tasks()) if f is not None]
    for flag in flags:
        print(f"{flag.task_id}\tanswerable without the data: {flag.answer}")
    print(f"{len(flags)} flagged", file=sys.stderr)


if __name__ == "__main__":
    main()
