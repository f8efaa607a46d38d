"""The validation every kept task passes, in a real sandbox.

1. the setup builds (exit status 0) and the initial-state test passes;
2. the completion test fails on that initial state (else the task is trivial);
3. the reference solution, played through the agent's own shell, ends with the
   completion test passing.

`python -m gantry.envfarm.terminal.validate` checks the whole built-in suite (the
`make validate-terminal` job) and prints the count per category.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from gantry.core.errors import GantryError
from gantry.envfarm.sandbox import SandboxBackend, make_backend
from gantry.envfarm.terminal.episode import TerminalEpisode
from gantry.envfarm.terminal.task import TerminalTask

BUILD_FAILED = "build_failed"
INITIAL_TEST_FAILED = "initial_test_failed"
TRIVIAL = "trivial"
REFERENCE_FAILED = "reference_failed"


@dataclass(frozen=True)
class Verdict:
    task: TerminalTask
    reason: str  # "" when kept
    detail: str = ""
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return not self.reason


def validate(
    task: TerminalTask, backend: Callable[[], SandboxBackend], python: str = "python3"
) -> Verdict:
    started = time.perf_counter()
    episode = TerminalEpisode(task, backend, python=python)

    def verdict(reason: str, detail: str = "") -> Verdict:
        return Verdict(task, reason, detail[-2000:], time.perf_counter() - started)

    try:
        try:
            episode.reset(task.seed)
        except GantryError as exc:
            return verdict(BUILD_FAILED, str(exc))
        initial = episode.run_test(task.initial_test)
        if not initial.passed:
            return verdict(INITIAL_TEST_FAILED, initial.output)
        done_already = episode.run_test(task.completion_test)
        if done_already.passed:
            return verdict(TRIVIAL, "the completion test passes before any action")
        transcript = []
        for action in episode.reference_solution():
            result = episode.step(action)
            transcript.append(f"$ {action}\n{result.observation.text}")
            if result.outcome is not None:
                if result.outcome.success:
                    return verdict("")
                return verdict(
                    REFERENCE_FAILED, "\n".join(transcript) + "\n" + result.outcome.test_output
                )
        return verdict(REFERENCE_FAILED, "the solution never reached the finish action")
    finally:
        episode.close()


def validate_all(
    tasks: Iterable[TerminalTask],
    backend: Callable[[], SandboxBackend],
    python: str = "python3",
    progress: Callable[[Verdict], None] | None = None,
) -> list[Verdict]:
    verdicts = []
    for task in tasks:
        verdicts.append(validate(task, backend, python))
        if progress is not None:
            progress(verdicts[-1])
    return verdicts


def main(argv: list[str] | None = None) -> int:
    from gantry.envfarm.terminal.suite import core_suite

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--backend", default="bubblewrap")
    parser.add_argument("--per-category", type=int, default=None)
    args = parser.parse_args(argv)
    backend = make_backend(args.backend)
    backend.probe()
    tasks = core_suite(args.per_category) if args.per_category else core_suite()

    def report(v: Verdict) -> None:
        if not v.ok:
            print(f"REJECTED {v.task.env_id}: {v.reason}\n{v.detail}\n", flush=True)

    started = time.perf_counter()
    verdicts = validate_all(tasks, lambda: backend, progress=report)
    kept = Counter(v.task.category for v in verdicts if v.ok)
    total = Counter(v.task.category for v in verdicts)
    for category in sorted(total):
        print(f"{category:16s} {kept[category]:3d} / {total[category]:3d} validated")
    seconds = time.perf_counter() - started
    print(f"{sum(kept.values())} / {len(verdicts)} tasks validated in {seconds:.1f}s")
    return 0 if sum(kept.values()) == len(verdicts) else 1


if __name__ == "__main__":
    sys.exit(main())
