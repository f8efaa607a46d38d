"""Validation of notebook tasks: each reference solution executed in the sandbox.

A task is valid when its reference solution, played as an episode in a fresh sandbox
(data mounted read-only, the kernel the family is configured with), ends in success, and,
for analysis tasks, when the answer the reference code printed in the sandbox (its last
output line) is itself graded correct, so the checked answer is reachable from the data
the agent sees and not only from the host's copy.

`python -m gantry.envfarm.notebook.validate [--backend bubblewrap] [--kernel repl]
[--limit N]` validates the suite and prints counts per template (`make validate-notebook`).
"""

from __future__ import annotations

import argparse
import collections
import sys
import time
from dataclasses import dataclass

from gantry.envfarm.notebook.family import NotebookEpisode, NotebookFamily
from gantry.envfarm.notebook.grading import answer_correct
from gantry.envfarm.notebook.tasks import Task
from gantry.proto.envfarm.v1 import envfarm_pb2


@dataclass(frozen=True)
class Validation:
    task_id: str
    passed: bool
    detail: str
    seconds: float


def validate(family: NotebookFamily, task: Task) -> Validation:
    """Play `task`'s reference solution in a fresh sandbox and check its outcome."""
    began = time.monotonic()
    episode: NotebookEpisode = family.make(
        task.id, max_steps=None, limits=envfarm_pb2.ResourceLimits()
    )
    try:
        episode.reset(0)
        code, finish = episode.reference_solution()
        cell = episode.step(code)
        if cell.info.get("status") != "ok":
            return Validation(
                task.id,
                False,
                f"reference code: {cell.observation.text[-300:]}",
                time.monotonic() - began,
            )
        if task.type == "analysis":
            assert task.answer_kind is not None
            printed = (cell.observation.text.strip().splitlines() or [""])[-1]
            if not answer_correct(task.answer_kind, printed, task.expected):
                detail = f"the sandbox printed {printed[:80]!r}, expected {task.expected!r}"
                return Validation(task.id, False, detail, time.monotonic() - began)
        end = episode.step(finish)
        outcome = end.outcome
        passed = outcome is not None and outcome.success
        detail = outcome.test_output if outcome is not None else "no outcome"
        return Validation(task.id, passed, detail, time.monotonic() - began)
    finally:
        episode.close()


def main(argv: list[str] | None = None) -> int:
    from gantry.envfarm.sandbox import make_backend

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--backend", default="bubblewrap")
    parser.add_argument("--kernel", default="auto", choices=("auto", "jupyter", "repl"))
    parser.add_argument("--limit", type=int, default=0, help="validate only the first N tasks")
    args = parser.parse_args(argv)
    backend = make_backend(args.backend)
    family = NotebookFamily(lambda: backend, kernel=args.kernel)
    try:
        chosen = list(family.tasks().values())[: args.limit or None]
        counts: dict[str, list[int]] = collections.defaultdict(lambda: [0, 0])
        began = time.monotonic()
        for task in chosen:
            result = validate(family, task)
            counts[task.template][0] += result.passed
            counts[task.template][1] += 1
            if not result.passed:
                print(f"FAILED {task.id}: {result.detail}", file=sys.stderr)
        for template, (ok, total) in sorted(counts.items()):
            print(f"{template:16s} {ok}/{total}")
        passed = sum(ok for ok, _ in counts.values())
        print(
            f"validated {passed}/{len(chosen)} tasks in {time.monotonic() - began:.0f} s "
            f"({args.backend}, kernel {args.kernel})"
        )
        return 0 if passed == len(chosen) else 1
    finally:
        family.close()


if __name__ == "__main__":
    sys.exit(main())
