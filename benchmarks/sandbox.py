"""Sandbox start latency and command round trip, next to a bare subprocess in the same run.

    .venv/bin/python benchmarks/sandbox.py [--backend bubblewrap] [--starts 40] [--commands 200]

(a) start: `backend.create()` until the sandbox is usable (namespaces set up), and until a
    first command has answered (the agent's Python has started too); then `close()`;
    and, for bubblewrap, `create()` + first command served from a warm pool of one;
(b) round trip: `sandbox.exec(["true"])` in a live sandbox, against
    `subprocess.run(["true"])` from this process: the overhead is the difference;
(c) `terminal_sessions()`: 64 concurrent terminal sessions stepping (steps/s, p99) — the
    terminal family's part, filled in by its owners;
(d) `kernels_started()`: notebook kernels (pipe REPL, Jupyter) started per second in fresh
    sandboxes, against the same kernel program on a bare pipe.
Goals (issue 21): start <= 30 ms, command overhead <= 5 ms over bare.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import tempfile
import time
from collections.abc import Callable

from gantry.envfarm.sandbox import SandboxBackend, SandboxSpec, make_backend
from gantry.envfarm.sandbox.bubblewrap import BubblewrapBackend


def quantiles(samples: list[float]) -> dict[str, float]:
    """p50/p90/p99 in milliseconds."""
    ordered = sorted(samples)

    def at(q: float) -> float:
        return ordered[min(int(q * len(ordered)), len(ordered) - 1)] * 1000

    return {
        "p50": at(0.50),
        "p90": at(0.90),
        "p99": at(0.99),
        "mean": statistics.mean(ordered) * 1000,
    }


def timed(run: Callable[[], object], n: int) -> list[float]:
    samples = []
    for _ in range(n):
        started = time.perf_counter()
        run()
        samples.append(time.perf_counter() - started)
    return samples


def starts(backend: SandboxBackend, n: int) -> tuple[list[float], list[float], list[float]]:
    """(create, create + first command, close) seconds per sandbox."""
    created, first, closed = [], [], []
    for _ in range(n):
        started = time.perf_counter()
        sandbox = backend.create(SandboxSpec())
        created.append(time.perf_counter() - started)
        sandbox.exec(["true"])
        first.append(time.perf_counter() - started)
        started = time.perf_counter()
        sandbox.close()
        closed.append(time.perf_counter() - started)
    return created, first, closed


def pooled_starts(backend: BubblewrapBackend, n: int) -> list[float]:
    """create + first command when the warm pool has a sandbox ready (refilled between)."""
    samples = []
    for _ in range(n):
        backend.warm()
        started = time.perf_counter()
        sandbox = backend.create(SandboxSpec())
        sandbox.exec(["true"])
        samples.append(time.perf_counter() - started)
        sandbox.close()
    return samples


def round_trips(backend: SandboxBackend, n: int) -> tuple[list[float], list[float]]:
    """(sandbox exec, bare subprocess.run) seconds per `true`, interleaved."""
    sandbox = backend.create(SandboxSpec())
    try:
        sandbox.exec(["true"])  # warm: the agent is up
        subprocess.run(["true"], check=True)
        boxed, bare = [], []
        for _ in range(n):
            boxed += timed(lambda: sandbox.exec(["true"]), 1)
            bare += timed(lambda: subprocess.run(["true"], check=True), 1)
        return boxed, bare
    finally:
        sandbox.close()


def bare_starts(n: int) -> list[float]:
    """A bare subprocess start to first answer: the floor for (a)."""
    return timed(lambda: subprocess.run(["true"], check=True), n)


class _BareBash:
    """A bash on a bare pipe (no sandbox): the floor the terminal sessions compare with."""

    def __init__(self, workspace: str) -> None:
        self.workspace = workspace
        self.proc = subprocess.Popen(
            ["bash", "--noprofile", "--norc"],
            cwd=workspace,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )

    # SandboxProcess
    def write(self, data: bytes) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(data)
        self.proc.stdin.flush()

    def read(self, max_bytes: int, timeout_s: float) -> bytes:
        import select

        assert self.proc.stdout is not None
        ready, _, _ = select.select([self.proc.stdout], [], [], timeout_s)
        return os.read(self.proc.stdout.fileno(), max_bytes) if ready else b""

    def alive(self) -> bool:
        return self.proc.poll() is None

    def kill(self) -> None:
        self.proc.kill()
        self.proc.wait()

    # the part of Sandbox the Shell uses
    def spawn(self, argv: object, *, cwd: str | None = None) -> _BareBash:
        return self


def terminal_sessions(
    backend: SandboxBackend, sessions: int = 64, steps: int = 20
) -> dict[str, dict[str, float]]:
    """`sessions` terminal episodes (core tasks, each in its own sandbox) stepping at once:
    steps/s and latency per step, next to as many bare bash processes driven by the same
    shell protocol in the same run."""
    from concurrent.futures import ThreadPoolExecutor

    from gantry.envfarm.terminal.episode import TerminalEpisode
    from gantry.envfarm.terminal.shell import Shell
    from gantry.envfarm.terminal.suite import core_suite

    tasks = core_suite(2)
    command = "echo step $RANDOM; ls -la | wc -l"

    def play(stepper: Callable[[], object]) -> list[float]:
        return timed(stepper, steps)

    # One pool for the whole run: bwrap's --die-with-parent follows the thread that
    # started it, so a sandbox must not outlive the worker thread that created it.
    pool = ThreadPoolExecutor(max_workers=sessions)

    def measure(steppers: list[Callable[[], object]]) -> dict[str, float]:
        started = time.perf_counter()
        latencies = [x for batch in pool.map(play, steppers) for x in batch]
        wall = time.perf_counter() - started
        return {"steps_per_s": len(latencies) / wall, **quantiles(latencies)}

    episodes = [TerminalEpisode(tasks[i % len(tasks)], lambda: backend) for i in range(sessions)]
    try:
        list(pool.map(lambda e: e.reset(0), episodes))
        boxed = measure([lambda e=e: e.step(command) for e in episodes])  # type: ignore[misc]
    finally:
        list(pool.map(lambda e: e.close(), episodes))
    with tempfile.TemporaryDirectory(prefix="gantry-bare-") as folder:
        shells = [Shell(_BareBash(folder)) for _ in range(sessions)]  # type: ignore[arg-type]
        try:
            bare = measure([lambda s=s: s.run(command, 10.0) for s in shells])  # type: ignore[misc]
        finally:
            for shell in shells:
                shell.close()
            pool.shutdown()
    return {"sandboxed": boxed, "bare": bare}


def show(label: str, samples: list[float]) -> None:
    q = quantiles(samples)
    print(
        f"  {label:<34} p50 {q['p50']:7.2f} ms   p90 {q['p90']:7.2f} ms   "
        f"p99 {q['p99']:7.2f} ms   mean {q['mean']:7.2f} ms"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backend", default="bubblewrap", choices=["bubblewrap", "subprocess"])
    parser.add_argument("--starts", type=int, default=40)
    parser.add_argument("--commands", type=int, default=200)
    parser.add_argument("--sessions", type=int, default=64)
    parser.add_argument("--kernels", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="gantry-bench-") as root:
        os.chmod(root, 0o711)  # the sandbox uid must reach its workspaces
        backend = make_backend(args.backend, root=root)
        backend.probe()
        print(f"backend: {args.backend}")
        created, first, closed = starts(backend, args.starts)
        print(f"(a) start, {args.starts} sandboxes")
        show("create (namespaces ready)", created)
        show("create + first command", first)
        show("close (tree killed, workspace gone)", closed)
        if args.backend == "bubblewrap":
            pooled = BubblewrapBackend(root=root, warm_pool=1)
            show("from the warm pool + first command", pooled_starts(pooled, args.starts))
            pooled.close()
        show("bare subprocess start (floor)", bare_starts(args.starts))
        boxed, bare = round_trips(backend, args.commands)
        print(f"(b) command round trip, {args.commands} x `true`")
        show("sandbox exec", boxed)
        show("bare subprocess.run", bare)
        overhead = statistics.median(boxed) - statistics.median(bare)
        print(f"  overhead (p50 difference)          {overhead * 1000:7.2f} ms")
        print(f"(c) {args.sessions} terminal sessions stepping at once, {20} steps each")
        for label, q in terminal_sessions(backend, args.sessions).items():
            print(
                f"  {label:<10} {q['steps_per_s']:8.1f} steps/s   p50 {q['p50']:7.2f} ms   "
                f"p99 {q['p99']:7.2f} ms"
            )
        print(f"(d) notebook kernels started, {args.kernels} of each kind, first cell answered")
        for label, q in kernels_started(backend, args.kernels).items():
            print(f"  {label:<18} {q['per_s']:6.2f} kernels/s   p50 {q['p50']:8.1f} ms")


class _BarePipe:
    """A program on a bare pipe (no sandbox): the floor the notebook kernels compare with."""

    def __init__(self, workspace: str) -> None:
        self.workspace = workspace
        self.proc: subprocess.Popen[bytes] | None = None

    def spawn(self, argv: list[str], *, cwd: str | None = None) -> _BarePipe:
        self.proc = subprocess.Popen(
            argv,
            cwd=cwd or self.workspace,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )
        return self

    def write(self, data: bytes) -> None:
        assert self.proc is not None and self.proc.stdin is not None
        self.proc.stdin.write(data)
        self.proc.stdin.flush()

    def read(self, max_bytes: int, timeout_s: float) -> bytes:
        import select

        assert self.proc is not None and self.proc.stdout is not None
        ready, _, _ = select.select([self.proc.stdout], [], [], timeout_s)
        if not ready:
            return b""
        data = os.read(self.proc.stdout.fileno(), max_bytes)
        if not data:
            from gantry.envfarm.sandbox import SandboxClosed

            raise SandboxClosed("the program ended")
        return data

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


def kernels_started(
    backend: SandboxBackend, n: int = 5, kinds: tuple[str, ...] = ("repl", "jupyter")
) -> dict[str, dict[str, float]]:
    """(d) notebook kernels started per second: a fresh sandbox (the notebook family's
    limits and mounts) plus a kernel, until a first cell has answered, then both closed;
    next to the same kernel program on a bare pipe from this process."""
    import sys

    from gantry.envfarm.notebook.family import MOUNTED_PACKAGES, KernelRuntime
    from gantry.envfarm.notebook.kernel import Kernel
    from gantry.envfarm.sandbox import SandboxLimits

    runtime = KernelRuntime.for_backend(backend.name)
    mounts = {runtime.site_packages: MOUNTED_PACKAGES} if runtime.site_packages else {}
    limits = SandboxLimits(address_space_bytes=4 << 30, processes=256, cpu_seconds=600)
    results: dict[str, dict[str, float]] = {}
    for kind in kinds:

        def boxed(kind: str = kind) -> None:
            sandbox = backend.create(SandboxSpec(limits=limits, readonly_mounts=mounts))
            kernel = Kernel(
                sandbox,
                kind=kind,  # type: ignore[arg-type]
                python=runtime.python,
                site_packages=MOUNTED_PACKAGES if runtime.site_packages else "",
            )
            try:
                kernel.start()
                assert kernel.execute("1 + 1", 30).text.strip() == "2"
            finally:
                kernel.close()
                sandbox.close()

        def bare(kind: str = kind) -> None:
            with tempfile.TemporaryDirectory() as workspace:
                kernel = Kernel(_BarePipe(workspace), kind=kind, python=sys.executable)  # type: ignore[arg-type]
                try:
                    kernel.start()
                    assert kernel.execute("1 + 1", 30).text.strip() == "2"
                finally:
                    kernel.close()

        for label, run in ((f"{kind} sandboxed", boxed), (f"{kind} bare", bare)):
            samples = timed(run, n)
            results[label] = {**quantiles(samples), "per_s": n / sum(samples)}
    return results


if __name__ == "__main__":
    main()
