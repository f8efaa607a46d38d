"""The report directory: metrics as JSONL while the loop runs, plots and a summary at the end."""

from __future__ import annotations

import json
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # files only; never needs a display
import matplotlib.pyplot as plt

from gantry.loop.loop import LoopResult, Record
from gantry.loop.stats import Success

METRICS_FILE = "metrics.jsonl"
PLOTS = ("success.png", "reward.png", "loss_sft.png", "loss_grpo.png", "mismatch.png")


class ReportWriter:
    """An Observer that appends every record to metrics.jsonl (flushed, so a crash keeps it)."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        directory.mkdir(parents=True, exist_ok=True)
        self._file = (directory / METRICS_FILE).open("a")
        self._started = time.time()

    def stage(self, name: str, detail: str = "") -> None:
        pass

    def record(self, record: Record) -> None:
        stamped = {"time_s": round(time.time() - self._started, 3), **record}
        self._file.write(json.dumps(stamped) + "\n")
        self._file.flush()

    def close(self) -> None:
        self._file.close()


def read_records(directory: Path) -> list[Record]:
    path = directory / METRICS_FILE
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def _x(record: Record) -> float:
    return float(record.get("iteration", 0))


def plot(directory: Path, records: list[Record]) -> list[Path]:
    """success.png (held-out success per stage), reward.png, loss.png, mismatch.png."""
    written = []
    evals = [r for r in records if r["stage"] == "evaluate"]
    if evals:
        fig, ax = plt.subplots(figsize=(6, 3.5))
        by_task: dict[str, list[Record]] = defaultdict(list)
        for r in evals:
            by_task[r["task"]].append(r)
        for task, rows in by_task.items():
            labels = [r["label"] for r in rows]
            rates = [100 * float(r["success_rate"]) for r in rows]
            # Error bars: the 95 % Wilson interval (records from before it have none).
            low = [
                100 * float(r["success_low" if "success_low" in r else "success_rate"])
                for r in rows
            ]
            high = [
                100 * float(r["success_high" if "success_high" in r else "success_rate"])
                for r in rows
            ]
            errors = [
                [max(0.0, r - lo) for r, lo in zip(rates, low, strict=True)],
                [max(0.0, hi - r) for r, hi in zip(rates, high, strict=True)],
            ]
            n = rows[-1]["episodes"]
            ax.errorbar(labels, rates, yerr=errors, marker="o", capsize=4, label=f"{task} (n={n})")
        ax.set_ylabel("held-out success (%), 95 % Wilson bars")
        ax.set_ylim(0, 100)
        ax.set_title("Policy success rate per stage")
        ax.legend(fontsize=8)
        ax.grid(alpha=0.3)
        written.append(_save(fig, directory / "success.png"))
    rollouts = [r for r in records if r["stage"] == "rollouts"]
    if rollouts:
        fig, ax = plt.subplots(figsize=(6, 3.5))
        ax.plot([_x(r) for r in rollouts], [r["mean_reward"] for r in rollouts], marker="o")
        ax.set_xlabel("GRPO iteration")
        ax.set_ylabel("mean training-episode reward")
        ax.set_title("Reward per iteration (sampled rollouts)")
        ax.grid(alpha=0.3)
        written.append(_save(fig, directory / "reward.png"))
    for stage, name in (("sft", "loss_sft.png"), ("grpo", "loss_grpo.png")):
        steps = [r for r in records if r["stage"] == stage]
        if steps:
            fig, ax = plt.subplots(figsize=(6, 3.5))
            ax.plot([r["step"] for r in steps], [r["loss"] for r in steps])
            ax.set_xlabel("optimiser step")
            ax.set_ylabel("loss")
            ax.set_title(f"{stage.upper()} loss")
            ax.grid(alpha=0.3)
            written.append(_save(fig, directory / name))
    mismatch = [r for r in records if r["stage"] == "grpo" and "logprob_mismatch" in r]
    if mismatch:
        fig, ax = plt.subplots(figsize=(6, 3.5))
        ax.plot([r["step"] for r in mismatch], [r["logprob_mismatch"] for r in mismatch], "o-")
        ax.set_xlabel("GRPO step")
        ax.set_ylabel("mean |logprob rollout - trainer|")
        ax.set_title("Rollout/trainer logprob mismatch")
        ax.grid(alpha=0.3)
        written.append(_save(fig, directory / "mismatch.png"))
    return written


def _save(fig: Any, path: Path) -> Path:
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def summary(directory: Path, records: list[Record], result: LoopResult, config_text: str) -> Path:
    """summary.md: the success table, training numbers and the plots."""
    lines = ["# Gantry training loop", ""]
    lines += _success_table(result)
    sft = [r for r in records if r["stage"] == "sft"]
    grpo = [r for r in records if r["stage"] == "grpo"]
    lines.append("")
    if sft:
        lines.append(
            f"SFT: {len(sft)} steps, loss {sft[0]['loss']:.3f} -> {sft[-1]['loss']:.3f}, "
            f"{_mean(sft, 'tokens_per_second'):.0f} train tokens/s."
        )
    if grpo:
        lines.append(
            f"GRPO: {len(grpo)} steps, mean reward of sampled episodes "
            f"{grpo[0].get('reward_mean', 0):.3f} -> {grpo[-1].get('reward_mean', 0):.3f}, "
            f"logprob mismatch {_mean(grpo, 'logprob_mismatch'):.2e}."
        )
    if result.grpo_seconds:
        rate = result.grpo_trajectories / result.grpo_seconds
        lines.append(
            f"GRPO stage: {result.grpo_trajectories} trajectories in "
            f"{result.grpo_seconds:.0f} s ({rate:.2f} trajectories/s; evaluations excluded)."
        )
    elapsed = records[-1]["time_s"] if records else 0.0
    lines += ["", f"Wall time: {elapsed:.0f} s. Metrics: `{METRICS_FILE}`.", ""]
    for name in PLOTS:
        if (directory / name).exists():
            lines.append(f"![{name.removesuffix('.png')}]({name})")
    lines += ["", "## Config", "", "```yaml", config_text.rstrip(), "```", ""]
    path = directory / "summary.md"
    path.write_text("\n".join(lines))
    return path


NOISE_TEST = (
    "A gain is called beyond noise when the two stages' 95 % Wilson intervals do not "
    "overlap (the later lower bound above the earlier upper bound): stricter than a "
    "two-proportion test at the 5 % level. Every stage is scored on the same held-out seeds."
)


def _success_table(result: LoopResult) -> list[str]:
    """Held-out success per stage (k/n, 95 % interval) and whether each gain is real."""
    lines = [
        "| stage | held-out success | 95 % interval (Wilson) | vs previous stage |",
        "|---|---:|---:|---|",
    ]
    previous: Success | None = None
    for label, rate in result.success.items():
        counts = result.evaluations.get(label)
        if counts is None:  # a result built without counts: the rate alone
            lines.append(f"| {label} | {100 * rate:.1f} % | — | |")
            continue
        low, high = counts.interval
        lines.append(
            f"| {label} | {counts.k}/{counts.n} = {100 * counts.rate:.1f} % | "
            f"{100 * low:.1f}–{100 * high:.1f} % | {_versus(counts, previous)} |"
        )
        previous = counts
    lines += ["", NOISE_TEST, ""]
    stages = result.evaluations
    grpo = [label for label in stages if label.startswith("grpo-")]
    if "untrained" in stages and "sft" in stages:
        lines.append(f"- SFT vs untrained: {_versus(stages['sft'], stages['untrained'])}.")
    if "sft" in stages and grpo:
        last = grpo[-1]
        lines.append(f"- GRPO ({last}) vs SFT: {_versus(stages[last], stages['sft'])}.")
    return [*lines, ""]


def _versus(later: Success, earlier: Success | None) -> str:
    if earlier is None:
        return ""
    gain = 100 * (later.rate - earlier.rate)
    if later.beats(earlier):
        verdict = "beyond noise"
    elif earlier.beats(later):
        verdict = "a loss beyond noise"
    else:
        verdict = "within noise (intervals overlap)"
    return f"{gain:+.1f} points, {verdict}"


def _mean(records: list[Record], key: str) -> float:
    values = [float(r[key]) for r in records if key in r]
    return sum(values) / len(values) if values else 0.0
