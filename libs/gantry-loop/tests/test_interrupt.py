"""Ctrl-C in the middle of a loop leaves no service process behind."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml

from gantry.core.children import pid_alive
from gantry.core.stack import load_stack

CONFIG = {
    "name": "interrupted",
    "tasks": [{"env_id": "visgym/counting", "difficulty": "easy", "max_turns": 2}],
    "sft": {"demonstrations": 50, "steps": 500, "batch_size": 4},
    "eval": {"episodes": 4, "seed_offset": 10_000},
}


def _wait_for(
    predicate: Callable[[], bool],
    timeout_s: float,
    process: subprocess.Popen[str],
    lines: list[str],
) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return
        if process.poll() is not None:  # the loop ended early: say why, now
            time.sleep(1)  # let the reader thread take the last lines
            raise AssertionError(f"the loop exited {process.returncode}:\n{''.join(lines)}")
        time.sleep(0.2)
    raise AssertionError(f"the loop did not reach SFT in {timeout_s} s:\n{''.join(lines)}")


def _start_loop(tmp_path: Path) -> tuple[subprocess.Popen[str], list[str], Path]:
    config = tmp_path / "loop.yaml"
    config.write_text(yaml.safe_dump({**CONFIG, "report_dir": str(tmp_path / "reports")}))
    process = subprocess.Popen(
        [sys.executable, "-m", "gantry.core.cli", "train-loop", "--config", str(config)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, "COLUMNS": "120"},
        # A shell's background job (CI runners, nohup) starts with SIGINT ignored, and
        # Python then raises no KeyboardInterrupt; Ctrl-C at a terminal finds it default.
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    reports = tmp_path / "reports"
    # Read the output as it comes: a full pipe would block the loop's prints.
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(process.stdout or []), daemon=True)
    reader.start()

    def training() -> bool:
        metrics = list(reports.glob("*/metrics.jsonl"))
        return bool(metrics) and '"stage": "sft"' in metrics[0].read_text()

    # The SFT run is under way: all three services are up (minutes on a loaded 2-core CI).
    _wait_for(training, 450, process, lines)
    return process, lines, next(reports.glob("*/"))


def _ended(process: subprocess.Popen[str], lines: list[str], timeout_s: float, what: str) -> str:
    since = time.monotonic()
    try:
        process.wait(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        process.kill()
        raise AssertionError(
            f"the loop was still running {time.monotonic() - since:.0f} s after {what}:\n"
            f"{''.join(lines)}"
        ) from None
    time.sleep(1)  # the reader thread takes the last lines
    return "".join(lines)


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_ctrl_c_during_training_takes_the_stack_down(tmp_path: Path) -> None:
    process, lines, report = _start_loop(tmp_path)
    stack = load_stack(report / "stack")
    assert stack is not None and len(stack.services) == 3
    assert all(pid_alive(s.pid) for s in stack.services)

    process.send_signal(signal.SIGINT)
    output = _ended(process, lines, 180, "Ctrl-C")
    assert process.returncode == 130, output
    assert "interrupted" in output
    assert not any(pid_alive(s.pid) for s in stack.services)
    assert (report / "summary.md").exists()  # the partial report is still written


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_a_service_killed_mid_run_fails_the_loop_naming_it(tmp_path: Path) -> None:
    """The trainer dies (the kernel's OOM killer sends SIGKILL) while the loop follows its
    SFT run's metrics stream: the loop must fail at once, naming the service and how it
    ended, and take the rest of the stack down, not wait on the stream forever."""
    process, lines, report = _start_loop(tmp_path)
    stack = load_stack(report / "stack")
    assert stack is not None
    trainer = stack.service("trainer")
    os.kill(trainer.pid, signal.SIGKILL)
    output = _ended(process, lines, 60, "the trainer was killed")
    assert process.returncode == 1, output
    assert "trainer was killed by SIGKILL" in output
    assert not any(pid_alive(s.pid) for s in stack.services)
    assert (report / "summary.md").exists()
