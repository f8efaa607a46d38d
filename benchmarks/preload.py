"""Service start to SERVING: a fresh interpreter vs a fork of the preloader.

    .venv/bin/python benchmarks/preload.py [--rounds 3] [--services rollout,trainer,...]
        [--json out.json]

Each round starts every service once each way (alternating, so a load change hits both
alike) with the same settings `spawn_service` uses in tests, and reads the child's CPU time
from /proc when its port file appears. The preloader's own start (one import of torch and
transformers, paid once per process that starts children) is timed separately. Figures are
medians over rounds; the ratio is fresh / preloaded.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from collections.abc import Iterator
from contextlib import contextmanager

from gantry.core import preload
from gantry.core.testing.process import spawn_service

TORCH_SERVICES = ("rollout", "trainer", "pruner", "retrieval", "vla", "video")


def _cpu_s(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as fh:
        fields = fh.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@contextmanager
def _preloading(on: bool) -> Iterator[None]:
    before = os.environ.get("GANTRY_PRELOAD")
    os.environ["GANTRY_PRELOAD"] = "1" if on else "0"
    try:
        yield
    finally:
        if before is None:
            os.environ.pop("GANTRY_PRELOAD", None)
        else:
            os.environ["GANTRY_PRELOAD"] = before


def start_once(service: str, *, preloaded: bool) -> tuple[float, float]:
    """(wall s, child CPU s) from asking for the process to its port being open."""
    with _preloading(preloaded):
        started = time.monotonic()
        with spawn_service(f"gantry.{service}", service, token=None) as running:
            wall = time.monotonic() - started
            cpu = _cpu_s(running.process.pid)
            running.process.kill()
    return wall, cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--services", default=",".join(TORCH_SERVICES))
    parser.add_argument("--json", default=None)
    args = parser.parse_args()
    services = [s for s in args.services.split(",") if s]

    started = time.monotonic()
    shared = preload.shared()
    if shared is None:
        raise SystemExit("preloading is off or torch is not installed")
    shared.status(0)  # answers once the imports are done
    preloader_s = time.monotonic() - started

    samples: dict[str, dict[str, list[tuple[float, float]]]] = {
        s: {"fresh": [], "preloaded": []} for s in services
    }
    for _ in range(args.rounds):
        for service in services:
            for kind in ("fresh", "preloaded"):
                samples[service][kind].append(start_once(service, preloaded=kind == "preloaded"))

    print(f"preloader ready in {preloader_s:.1f} s (paid once per starting process)")
    print(f"{'service':<10} {'fresh CPU-s':>11} {'fork CPU-s':>10} {'ratio':>6}   wall fresh/fork")
    results = {}
    for service in services:
        fresh = samples[service]["fresh"]
        fork = samples[service]["preloaded"]
        cpu_fresh = statistics.median(c for _, c in fresh)
        cpu_fork = statistics.median(c for _, c in fork)
        wall_fresh = statistics.median(w for w, _ in fresh)
        wall_fork = statistics.median(w for w, _ in fork)
        results[service] = {
            "fresh_cpu_s": cpu_fresh,
            "preloaded_cpu_s": cpu_fork,
            "fresh_wall_s": wall_fresh,
            "preloaded_wall_s": wall_fork,
        }
        print(
            f"{service:<10} {cpu_fresh:>11.1f} {cpu_fork:>10.1f} {cpu_fresh / cpu_fork:>5.1f}x"
            f"   {wall_fresh:.1f}/{wall_fork:.1f}"
        )
    if args.json:
        with open(args.json, "w") as fh:
            json.dump({"preloader_s": preloader_s, "services": results}, fh, indent=2)


if __name__ == "__main__":
    main()
