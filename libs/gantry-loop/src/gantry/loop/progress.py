"""The loop's progress on the terminal: a live Rich view on a TTY, plain lines elsewhere.

`LiveView` redraws a panel (stage, iteration, success, tokens/s, loss); when stdout is a
pipe or a CI log, `PlainProgress` prints one line per stage, per evaluation and, at most
every `interval_s`, per training step, so a long run is never silent.
"""

from __future__ import annotations

import sys
import time
from types import TracebackType
from typing import IO

from rich.console import Console, Group
from rich.live import Live
from rich.table import Table
from rich.text import Text

from gantry.loop.loop import Record
from gantry.loop.stats import Success


class LiveView:
    """An Observer drawing a status panel plus a growing table of held-out evaluations."""

    def __init__(self, console: Console | None = None) -> None:
        self.console = console or Console()
        self._stage = "starting"
        self._detail = ""
        self._started = time.monotonic()
        self._latest: dict[str, str] = {}
        self._evals = Table(title="held-out success", expand=False)
        for column in ("stage", "task", "success", "episodes", "tokens/s"):
            self._evals.add_column(column, justify="right" if column != "task" else "left")
        self._live = Live(self._render(), console=self.console, refresh_per_second=4)

    def __enter__(self) -> LiveView:
        self._live.__enter__()
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._live.update(self._render())
        self._live.__exit__(kind, error, tb)

    def stage(self, name: str, detail: str = "") -> None:
        self._stage, self._detail = name, detail
        self._live.update(self._render())

    def record(self, record: Record) -> None:
        stage = record["stage"]
        if stage == "evaluate":
            self._evals.add_row(
                record["label"],
                record["task"],
                f"{100 * record['success_rate']:.1f} %",
                str(record["episodes"]),
                f"{record['tokens_per_second']:.0f}",
            )
        elif stage in ("sft", "grpo"):
            self._latest[f"{stage} step"] = str(record["step"])
            self._latest[f"{stage} loss"] = f"{record['loss']:.4f}"
            self._latest["train tokens/s"] = f"{record['tokens_per_second']:.0f}"
            if "logprob_mismatch" in record:
                self._latest["logprob mismatch"] = f"{record['logprob_mismatch']:.4f}"
        elif stage == "rollouts":
            self._latest["rollout success"] = f"{100 * record['success_rate']:.1f} %"
            self._latest["rollout tokens/s"] = f"{record['tokens_per_second']:.0f}"
        elif stage == "demonstrations":
            self._latest["demonstrations"] = str(record["examples"])
        elif stage == "publish":
            self._latest["policy version"] = str(record["policy_version"])
        self._live.update(self._render())

    def _render(self) -> Group:
        elapsed = time.monotonic() - self._started
        head = Text.assemble(
            ("stage ", "dim"),
            (self._stage, "bold cyan"),
            ("  ", ""),
            (self._detail, ""),
            (f"   {elapsed:5.0f} s", "dim"),
        )
        stats = Table.grid(padding=(0, 2))
        stats.add_column(style="dim")
        stats.add_column()
        for key, value in self._latest.items():
            stats.add_row(key, value)
        return Group(head, stats, self._evals)


class PlainProgress:
    """An Observer printing plain progress lines: stage, step or iteration, the latest
    held-out success, elapsed seconds. Training steps print at most every `interval_s`
    (and always the first SFT step and every GRPO step, one per iteration)."""

    def __init__(self, stream: IO[str] | None = None, *, interval_s: float = 15.0) -> None:
        self.stream = stream or sys.stdout
        self.interval_s = interval_s
        self._started = time.monotonic()
        self._last_step = -float("inf")
        self._success = ""  # the latest held-out evaluation, "sft 37/200 = 18.5 % (...)"

    def __enter__(self) -> PlainProgress:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stream.flush()

    def stage(self, name: str, detail: str = "") -> None:
        self._print(f"{name}: {detail}" if detail else name)

    def record(self, record: Record) -> None:
        stage = record["stage"]
        if stage == "evaluate":
            counts = Success(int(record["successes"]), int(record["episodes"]))
            failed = f", {record['errors']} episodes failed" if record.get("errors") else ""
            self._print(f"evaluate {record['task']}: {record['label']} {counts.describe()}{failed}")
            self._success = f"{record['label']} {counts.describe()}"
        elif stage in ("sft", "grpo"):
            now = time.monotonic()
            first = stage == "grpo" or record["step"] == 1
            if first or now - self._last_step >= self.interval_s:
                self._last_step = now
                self._print(
                    f"{stage} step {record['step']} (iteration {record.get('iteration', 0)}): "
                    f"loss {record['loss']:.4f}, {record['tokens_per_second']:.0f} tokens/s"
                )
        elif stage == "rollouts":
            self._print(
                f"rollouts iteration {record['iteration']}: {record['episodes']} episodes, "
                f"sampled success {100 * record['success_rate']:.1f} %, "
                f"{record['tokens_per_second']:.0f} tokens/s"
            )
        elif stage == "demonstrations":
            self._print(f"demonstrations {record['task']}: {record['examples']} examples")

    def _print(self, text: str) -> None:
        elapsed = time.monotonic() - self._started
        so_far = f" | held-out {self._success}" if self._success else ""
        print(f"[{elapsed:6.0f} s] {text}{so_far}", file=self.stream, flush=True)
