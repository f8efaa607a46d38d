"""Weight publishing: time and peak memory of a streamed publish to real rollout replicas
(issue 23, part 4).

    .venv/bin/python benchmarks/publish.py [--model tiny|smollm2-135m-instruct]
        [--replicas 1 2] [--repeats 3] [--baseline REV]

Starts the rollout replicas as processes on `--model`, then publishes that model's own
safetensors weights (a checkpoint of the same shapes) with the trainer's `publish()`,
`--repeats` times per replica count; with several replicas the streams run in parallel,
as the trainer's orchestrator runs them. Printed per row: wall time of the publish, MB
streamed per replica, and the peak memory growth of the publishing process and of each
rollout process during the publish: VmHWM (reset before each publish through
/proc/<pid>/clear_refs; it counts memory-mapped checkpoint pages too) and RssAnon
sampled every 3 ms (heap and tensors only). `--baseline REV` runs the same rows with the
trainer and rollout code of git revision REV (a temporary worktree first on the import
path) for a side by side comparison.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
TOKEN = "publish-bench"
MiB = 2**20


def status_kib(pid: int, field: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise KeyError(field)


class AnonPeaks:
    """Peak anonymous RSS (RssAnon: heap and tensors, not the page cache of memory-mapped
    files, which VmHWM also counts) of some processes, sampled every few milliseconds."""

    def __init__(self, pids: list[int]) -> None:
        self.pids = pids
        self.base = [status_kib(pid, "RssAnon") for pid in pids]
        self.peak = list(self.base)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def _sample(self) -> None:
        while not self._stop.wait(0.003):
            for i, pid in enumerate(self.pids):
                self.peak[i] = max(self.peak[i], status_kib(pid, "RssAnon"))

    def __enter__(self) -> AnonPeaks:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def growth_mb(self) -> list[float]:
        return [(p - b) / 1024 for p, b in zip(self.peak, self.base, strict=True)]


def reset_peak(pid: int) -> int:
    """Reset VmHWM to the current RSS; returns that RSS (KiB)."""
    Path(f"/proc/{pid}/clear_refs").write_text("5")
    return status_kib(pid, "VmRSS")


def measure(args: argparse.Namespace) -> list[dict[str, Any]]:
    from gantry.core.testing.process import spawn_service
    from gantry.models.names import resolve_model_path
    from gantry.proto.trainer.v1 import trainer_pb2
    from gantry.trainer.publish import publish

    model_dir = Path(resolve_model_path(args.model, kind="causal_lm"))
    checkpoint = trainer_pb2.Checkpoint(id="bench", uri=str(model_dir), policy_version=1)
    rows = []
    with ExitStack() as stack:
        env = {
            "GANTRY_ROLLOUT_MODEL_PATH": args.model,
            "GANTRY_ROLLOUT_TORCH_THREADS": "1",
            "GANTRY_ROLLOUT_LOG_JSON": "false",
        }
        replicas = [
            stack.enter_context(
                spawn_service(
                    "gantry.rollout", "rollout", token=TOKEN, env=env, startup_timeout_s=300
                )
            )
            for _ in range(max(args.replicas))
        ]
        for count in args.replicas:
            chosen = replicas[:count]
            for repeat in range(args.repeats):
                own = reset_peak(os.getpid())
                bases = [reset_peak(r.process.pid) for r in chosen]
                started = time.perf_counter()
                with (
                    AnonPeaks([os.getpid(), *(r.process.pid for r in chosen)]) as anon,
                    ThreadPoolExecutor(count) as pool,
                ):
                    done = list(
                        pool.map(
                            lambda r: publish(r.target, TOKEN, checkpoint, "bf16", "bench"),
                            chosen,
                        )
                    )
                seconds = time.perf_counter() - started
                grown = anon.growth_mb()
                row = {
                    "replicas": count,
                    "repeat": repeat,
                    "seconds": seconds,
                    "mb_per_replica": done[0].bytes_sent / MiB,
                    "publisher_peak_mb": (status_kib(os.getpid(), "VmHWM") - own) / 1024,
                    "rollout_peak_mb": [
                        (status_kib(r.process.pid, "VmHWM") - base) / 1024
                        for r, base in zip(chosen, bases, strict=True)
                    ],
                    "rollout_rss_mb": [status_kib(r.process.pid, "VmRSS") / 1024 for r in chosen],
                    "publisher_anon_peak_mb": grown[0],
                    "rollout_anon_peak_mb": grown[1:],
                }
                print(json.dumps(row), flush=True)
                rows.append(row)
    return rows


def summary(label: str, rows: list[dict[str, Any]]) -> None:
    for count in sorted({r["replicas"] for r in rows}):
        mine = [r for r in rows if r["replicas"] == count]
        median = statistics.median(r["seconds"] for r in mine)
        print(
            f"{label:>9} replicas={count} publish {median:.2f} s"
            f" (median of {len(mine)}), {mine[0]['mb_per_replica']:.1f} MB each, peak RSS growth:"
            f" publisher {max(r['publisher_peak_mb'] for r in mine):.0f} MB,"
            f" rollout {max(max(r['rollout_peak_mb']) for r in mine):.0f} MB"
            f" (rollout RSS {mine[-1]['rollout_rss_mb'][0]:.0f} MB); anonymous memory peak"
            f" growth: publisher {max(r['publisher_anon_peak_mb'] for r in mine):.0f} MB,"
            f" rollout {max(max(r['rollout_anon_peak_mb']) for r in mine):.0f} MB"
        )


def baseline(args: argparse.Namespace) -> list[dict[str, Any]]:
    """The same rows with REV's trainer and rollout code, in a child process."""
    with tempfile.TemporaryDirectory(prefix="publish-base-") as tmp:
        tree = Path(tmp) / "tree"
        subprocess.run(
            ["git", "-C", str(ROOT), "worktree", "add", "--detach", str(tree), args.baseline],
            check=True,
            capture_output=True,
        )
        try:
            paths = [str(tree / "services" / s / "src") for s in ("trainer", "rollout")]
            env = {**os.environ, "PYTHONPATH": os.pathsep.join(paths)}
            out = Path(tmp) / "rows.json"
            command = [sys.executable, __file__, "--model", args.model, "--repeats"]
            command += [str(args.repeats), "--replicas", *map(str, args.replicas)]
            subprocess.run([*command, "--rows", str(out)], check=True, env=env)
            rows: list[dict[str, Any]] = json.loads(out.read_text())
            return rows
        finally:
            subprocess.run(
                ["git", "-C", str(ROOT), "worktree", "remove", "--force", str(tree)], check=False
            )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default="tiny")
    parser.add_argument("--replicas", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--baseline", default="", help="git revision to compare with")
    parser.add_argument("--rows", default="", help=argparse.SUPPRESS)  # baseline child
    args = parser.parse_args()
    if args.rows:
        Path(args.rows).write_text(json.dumps(measure(args)))
        return
    print(f"model {args.model}; load {os.getloadavg()[0]:.1f}", flush=True)
    rows = measure(args)
    before = baseline(args) if args.baseline else []
    print(f"load {os.getloadavg()[0]:.1f}")
    if before:
        summary(args.baseline[:9], before)
    summary("current", rows)


if __name__ == "__main__":
    main()
