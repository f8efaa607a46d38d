"""`gantry up` / `status` / `call` / `down` as a user runs them, as real processes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from gantry.core.children import pid_alive
from gantry.core.stack import group_members, load_stack

PROBE = "probe=gantry.core.testing.probe:ProbeService"


def gantry(
    state_dir: Path, *args: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    full_env = {**os.environ, "GANTRY_EXTRA_SERVICES": PROBE, "COLUMNS": "200", **(env or {})}
    return subprocess.run(
        [sys.executable, "-m", "gantry.core.cli", *args, "--state-dir", str(state_dir)],
        env=full_env,
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.mark.slow
def test_up_status_call_down_leaves_no_process(tmp_path: Path) -> None:
    started = gantry(tmp_path, "up", "probe")
    assert started.returncode == 0, started.stderr
    assert "SERVING" in started.stdout
    stack = load_stack(tmp_path)
    assert stack is not None and stack.token
    pid = stack.service("probe").pid
    try:
        assert pid_alive(pid)
        assert (tmp_path / "stack.json").stat().st_mode & 0o077 == 0, "token file must be private"

        status = gantry(tmp_path, "status")
        assert "probe" in status.stdout and "SERVING" in status.stdout

        again = gantry(tmp_path, "up", "probe")
        assert again.returncode == 1 and "already running" in again.stderr

        listing = gantry(tmp_path, "call", "probe")
        assert listing.returncode == 0, listing.stderr
        assert "google.longrunning.Operations" in listing.stdout
        assert "grpc.health.v1.Health" in listing.stdout

        reply = gantry(tmp_path, "call", "probe", "grpc.health.v1.Health/Check", "{}")
        assert reply.returncode == 0, reply.stderr
        assert json.loads(reply.stdout)["status"] == "SERVING"

        bad = gantry(tmp_path, "call", "probe", "ListOperations", '{"pageToken": "zzz"}')
        assert bad.returncode == 1
        assert "INVALID_ARGUMENT" in bad.stderr and "page_token" in bad.stderr

        refused = gantry(tmp_path, "call", "probe", "ListOperations", "{}", "--token", "nope")
        assert refused.returncode == 1 and "UNAUTHENTICATED" in refused.stderr
    finally:
        stopped = gantry(tmp_path, "down")
    assert stopped.returncode == 0 and "probe" in stopped.stdout
    assert not pid_alive(pid)
    assert group_members(pid) == [], "a process of the service's group survived `gantry down`"
    assert load_stack(tmp_path) is None
    assert "no stack running" in gantry(tmp_path, "down").stdout


@pytest.mark.slow
def test_up_fails_cleanly_when_a_service_cannot_start(tmp_path: Path) -> None:
    result = gantry(tmp_path, "up", "probe", env={"GANTRY_PROBE_MAX_MESSAGE_BYTES": "1"})
    assert result.returncode == 1
    assert "probe exited with status 1 during start" in result.stderr
    assert "max_message_bytes" in result.stderr  # the log tail says why
    assert load_stack(tmp_path) is None


@pytest.mark.slow
def test_smoke_calls_each_service_and_stops_the_stack(tmp_path: Path) -> None:
    result = gantry(tmp_path, "smoke", "probe")
    assert result.returncode == 0, result.stderr
    assert "echo -> ping" in result.stdout
    assert "stack down: stopped probe" in result.stdout
    assert load_stack(tmp_path / "smoke") is None


def test_unknown_service_is_a_clear_error(tmp_path: Path) -> None:
    result = gantry(tmp_path, "up", "nonesuch")
    assert result.returncode == 1 and "not installed: nonesuch" in result.stderr
