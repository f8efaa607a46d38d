"""The sandbox contract, run against the two local backends (bubblewrap, subprocess).

Each backend is exercised for real: actual processes, pipes, files and timeouts.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from gantry.envfarm.sandbox import (
    Sandbox,
    SandboxBackend,
    SandboxClosed,
    SandboxError,
    SandboxLimits,
    SandboxProcess,
    SandboxSpec,
    SandboxUnavailable,
    make_backend,
)
from gantry.envfarm.sandbox.agented import AgentSandbox
from gantry.envfarm.sandbox.testing import reachable_root

LIMITS = SandboxLimits(wall_seconds=10.0, output_bytes=4096)


@pytest.fixture(scope="module", params=["bubblewrap", "subprocess"])
def backend(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> SandboxBackend:
    root = reachable_root(tmp_path_factory.mktemp(request.param))
    backend = make_backend(request.param, root=root)
    backend.probe()
    return backend


@pytest.fixture(scope="module")
def sandbox(backend: SandboxBackend) -> Iterator[Sandbox]:
    box = backend.create(SandboxSpec(limits=LIMITS))
    yield box
    box.close()


def test_exec_reports_exit_code_and_both_streams(sandbox: Sandbox) -> None:
    result = sandbox.exec(["sh", "-c", "echo out; echo err >&2; exit 3"])
    assert (result.exit_code, result.stdout, result.stderr) == (3, b"out\n", b"err\n")
    assert not result.timed_out and not result.truncated
    assert 0 < result.seconds < 5


def test_exec_feeds_stdin_larger_than_a_pipe(sandbox: Sandbox) -> None:
    data = os.urandom(300_000)
    result = sandbox.exec(["sh", "-c", "wc -c"], stdin=data)
    assert result.stdout.strip() == b"300000"


def test_output_past_the_limit_is_cut_with_a_marker(sandbox: Sandbox) -> None:
    result = sandbox.exec(["sh", "-c", "head -c 100000 /dev/zero | tr '\\0' x"])
    assert result.exit_code == 0 and result.truncated
    assert result.stdout.startswith(b"x" * 4096)
    assert result.stdout[4096:] == b"\n[... output cut: 95904 more bytes ...]\n"


def test_a_sleep_past_the_timeout_is_killed(sandbox: Sandbox) -> None:
    started = time.monotonic()
    result = sandbox.exec(["sh", "-c", "echo before; sleep 30"], timeout_s=0.5)
    assert result.timed_out and result.exit_code is None
    assert result.stdout == b"before\n"
    assert time.monotonic() - started < 3


def test_a_background_child_holding_the_pipe_does_not_hang_exec(sandbox: Sandbox) -> None:
    started = time.monotonic()
    result = sandbox.exec(["sh", "-c", "sleep 30 & echo started"])
    assert (result.exit_code, result.stdout, result.timed_out) == (0, b"started\n", False)
    assert time.monotonic() - started < 3


def test_commands_start_with_default_signal_handling(sandbox: Sandbox) -> None:
    # The agent is Python, which ignores SIGPIPE and SIGXFSZ; commands must not inherit that.
    # Standard signals (1-31) only: glibc reserves 32/33 and cannot reset them, so a
    # caller's environment that ignores those (some process supervisors do) shows through.
    ignored = sandbox.exec(["grep", "SigIgn", "/proc/self/status"]).stdout.split()
    assert ignored[0] == b"SigIgn:" and int(ignored[1], 16) & 0x7FFFFFFF == 0, ignored


def test_a_missing_program_exits_127(sandbox: Sandbox) -> None:
    result = sandbox.exec(["no-such-program-xyz"])
    assert result.exit_code == 127
    assert b"no-such-program-xyz" in result.stderr


def test_killed_by_a_signal_reports_128_plus_signal(sandbox: Sandbox) -> None:
    assert sandbox.exec(["sh", "-c", "kill -TERM $$"]).exit_code == 128 + 15


def test_bad_argv_and_timeouts_are_refused(sandbox: Sandbox) -> None:
    with pytest.raises(SandboxError):
        sandbox.exec([])
    with pytest.raises(SandboxError):
        sandbox.exec(["echo", "a\x00b"])
    with pytest.raises(SandboxError):
        sandbox.exec(["true"], timeout_s=0)
    with pytest.raises(SandboxError, match="command line"):
        sandbox.exec(["echo", "x" * 200_000])


def test_files_round_trip_and_are_seen_by_commands(sandbox: Sandbox) -> None:
    sandbox.put_file("sub/dir/script.sh", b"#!/bin/sh\necho ran $1\n", mode=0o755)
    assert sandbox.exec(["./sub/dir/script.sh", "ok"]).stdout == b"ran ok\n"
    assert sandbox.exec(["./script.sh", "here"], cwd="sub/dir").stdout == b"ran here\n"
    sandbox.exec(["sh", "-c", "printf made > made.txt"])
    assert sandbox.get_file("made.txt", 100) == b"made"
    assert sandbox.get_file(sandbox.workspace + "/made.txt", 100) == b"made"


def test_file_paths_outside_the_workspace_are_refused(sandbox: Sandbox) -> None:
    for path in ("../escape", "/etc/passwd", "a/../../b", "", sandbox.workspace):
        with pytest.raises(SandboxError):
            sandbox.put_file(path, b"x")
        with pytest.raises(SandboxError):
            sandbox.get_file(path, 100)


def test_files_never_follow_links_or_open_fifos(sandbox: Sandbox, tmp_path: Path) -> None:
    secret = tmp_path / "secret"
    secret.write_text("host secret")
    sandbox.exec(["ln", "-sfn", str(secret), "link"])
    sandbox.exec(["ln", "-sfn", str(tmp_path), "dirlink"])
    sandbox.exec(["mkfifo", "fifo"])
    with pytest.raises(SandboxError):
        sandbox.get_file("link", 100)
    with pytest.raises(SandboxError):
        sandbox.put_file("link", b"overwrite")
    with pytest.raises(SandboxError):
        sandbox.get_file("dirlink/secret", 100)
    with pytest.raises(SandboxError):
        sandbox.put_file("dirlink/new", b"x")
    with pytest.raises(SandboxError):
        sandbox.get_file("fifo", 100)  # would block forever if opened blindly
    assert secret.read_text() == "host secret"
    assert not (tmp_path / "new").exists()


def test_file_sizes_are_bounded(sandbox: Sandbox) -> None:
    sandbox.put_file("big", b"y" * 1000)
    with pytest.raises(SandboxError, match="1000 bytes"):
        sandbox.get_file("big", 999)
    with pytest.raises(SandboxError, match="file size limit"):
        sandbox.put_file("huge", b"z" * (LIMITS.file_size_bytes + 1))
    with pytest.raises(SandboxError, match="does not exist"):
        sandbox.get_file("absent", 10)


def test_a_spawned_shell_keeps_its_state_between_writes(sandbox: Sandbox) -> None:
    shell = sandbox.spawn(["bash", "--norc", "--noprofile"])
    try:
        shell.write(b"X=41; cd sub\n")
        shell.write(b"echo $((X+1)) $(basename $PWD); echo err >&2\n")
        output = b""
        deadline = time.monotonic() + 5
        while b"err\n" not in output and time.monotonic() < deadline:
            output += shell.read(4096, 0.5)
        assert output == b"42 sub\nerr\n"
        assert shell.read(100, 0.05) == b""  # nothing more: a timeout, not EOF
        assert shell.alive()
        shell.write(b"exit 0\n")
        with pytest.raises(SandboxClosed):
            _read_until_eof(shell, 5.0)
        deadline = time.monotonic() + 5
        while shell.alive() and time.monotonic() < deadline:
            time.sleep(0.01)
        assert not shell.alive()
    finally:
        shell.kill()


def _read_until_eof(proc: SandboxProcess, seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        proc.read(100, 0.5)


def test_killing_a_spawned_process_ends_it(sandbox: Sandbox) -> None:
    proc = sandbox.spawn(["sleep", "60"])
    assert proc.alive()
    proc.kill()
    proc.kill()  # idempotent
    deadline = time.monotonic() + 5
    while proc.alive() and time.monotonic() < deadline:
        time.sleep(0.01)
    assert not proc.alive()
    with pytest.raises(SandboxClosed):
        proc.read(10, 0.1)
    with pytest.raises(SandboxClosed):
        proc.write(b"x")


def test_exec_is_safe_from_many_threads(sandbox: Sandbox) -> None:
    results: dict[int, bytes] = {}

    def run(i: int) -> None:
        results[i] = sandbox.exec(["sh", "-c", f"echo {i}"]).stdout

    threads = [threading.Thread(target=run, args=(i,)) for i in range(12)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(20)
    assert results == {i: f"{i}\n".encode() for i in range(12)}


def test_close_is_idempotent_and_ends_everything(backend: SandboxBackend) -> None:
    box = backend.create(SandboxSpec(limits=LIMITS))
    proc = box.spawn(["sleep", "60"])
    box.put_file("f", b"x")
    assert isinstance(box, AgentSandbox)
    host = box.host_workspace
    assert os.path.isdir(host)
    box.close()
    box.close()
    assert not os.path.exists(host)
    assert not proc.alive()
    with pytest.raises(SandboxClosed):
        box.exec(["true"])
    with pytest.raises(SandboxClosed):
        box.spawn(["true"])


def test_limits_are_validated() -> None:
    for field in ("wall_seconds", "cpu_seconds", "processes", "output_bytes", "tmp_bytes"):
        with pytest.raises(ValueError, match=field):
            SandboxLimits(**{field: 0})


def test_unknown_backends_are_refused() -> None:
    with pytest.raises(SandboxUnavailable, match="bubblewrap"):
        make_backend("chroot")


def test_settings_choose_and_configure_the_backend(tmp_path: Path) -> None:
    from gantry.envfarm.sandbox import backend_from_settings
    from gantry.envfarm.sandbox.bubblewrap import BubblewrapBackend
    from gantry.envfarm.sandbox.kubernetes_backend import KubernetesBackend
    from gantry.envfarm.settings import EnvFarmSettings

    def settings(**fields: Any) -> EnvFarmSettings:
        return EnvFarmSettings(auth_disabled=True, **fields)

    default = backend_from_settings(settings(sandbox_uid=62000, sandbox_root=tmp_path))
    assert isinstance(default, BubblewrapBackend)
    assert (default.uid, default.root, default.proc) == (62000, str(tmp_path), None)
    assert (default.uids.first, default.uids.count) == (62000, 2048)
    ranged = backend_from_settings(
        settings(sandbox_uid=63000, sandbox_uid_count=16, sandbox_uid_lock_dir=tmp_path / "l")
    )
    assert isinstance(ranged, BubblewrapBackend)
    assert (str(ranged.uids), ranged.uids.lock_dir) == ("63000-63015", str(tmp_path / "l"))
    kube = backend_from_settings(
        settings(
            sandbox_backend="kubernetes",
            sandbox_namespace="tasks",
            sandbox_runtime_class="gvisor",
            sandbox_warm_pool=5,
            sandbox_image="task:2",
        )
    )
    assert isinstance(kube, KubernetesBackend)
    assert (kube.namespace, kube.runtime_class, kube.warm_pool, kube.image) == (
        "tasks",
        "gvisor",
        5,
        "task:2",
    )
    assert backend_from_settings(settings(sandbox_backend="subprocess")).name == "subprocess"
    with pytest.raises(SandboxUnavailable, match="choose one of"):
        backend_from_settings(settings(sandbox_backend="jail"))
