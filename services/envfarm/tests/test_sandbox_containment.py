"""Containment on the bubblewrap backend: what untrusted code tries, and what it gets.

Every attempt must fail for the sandboxed code and leave the host and other sandboxes
untouched. The backend runs as its own uid range here (one uid per live sandbox), so
"nothing left behind" can be checked by looking for any host process of that range.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from gantry.envfarm.sandbox import (
    ExecResult,
    Sandbox,
    SandboxError,
    SandboxLimits,
    SandboxSpec,
)
from gantry.envfarm.sandbox.bubblewrap import BubblewrapBackend, BubblewrapSandbox
from gantry.envfarm.sandbox.testing import reachable_root

UID, UID_COUNT = 64100, 8  # this module's own uid range (as root); the service's: 61000+
LIMITS = SandboxLimits(
    wall_seconds=10.0,
    cpu_seconds=1,
    address_space_bytes=256 << 20,
    processes=32,
    file_size_bytes=1 << 20,
    output_bytes=8192,
    tmp_bytes=2 << 20,
)


def uid_processes(*uids: int) -> list[int]:
    """Host pids whose real uid is one of `uids`."""
    pids = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                status = Path(f"/proc/{entry}/status").read_text()
            except OSError:
                continue
            real = next(line.split()[1] for line in status.splitlines() if line.startswith("Uid:"))
            if int(real) in uids:
                pids.append(int(entry))
    return pids


def sandbox_uids() -> list[int]:
    """The host uids this module's sandboxes may run as (not root: the test's own)."""
    return list(range(UID, UID + UID_COUNT)) if os.geteuid() == 0 else [os.geteuid()]


def wait_for_no_processes(seconds: float = 5.0) -> list[int]:
    deadline = time.monotonic() + seconds
    while (left := uid_processes(*sandbox_uids())) and time.monotonic() < deadline:
        time.sleep(0.02)
    return left


@pytest.fixture(scope="module")
def lock_dir(tmp_path_factory: pytest.TempPathFactory) -> str:
    """The module's uid lock folder, shared by all its backends (and its child process)."""
    return str(tmp_path_factory.mktemp("uid-locks"))


def make_backend(lock_dir: str, root: str, **options: Any) -> BubblewrapBackend:
    return BubblewrapBackend(
        uid=UID, uid_count=UID_COUNT, uid_lock_dir=lock_dir, root=root, **options
    )


@pytest.fixture(scope="module")
def backend(tmp_path_factory: pytest.TempPathFactory, lock_dir: str) -> BubblewrapBackend:
    backend = make_backend(lock_dir, reachable_root(tmp_path_factory.mktemp("bwrap")))
    backend.probe()
    assert not backend.degraded  # this machine mounts /proc; the degraded test forces it
    return backend


@pytest.fixture
def box(backend: BubblewrapBackend) -> Iterator[BubblewrapSandbox]:
    sandbox = backend.create(SandboxSpec(limits=LIMITS))
    yield sandbox
    sandbox.close()


def sh(box: Sandbox, script: str, timeout_s: float = 10.0) -> tuple[int | None, str]:
    result = box.exec(["sh", "-c", script], timeout_s=timeout_s)
    return result.exit_code, (result.stdout + result.stderr).decode(errors="replace")


def test_host_secrets_are_out_of_reach(box: Sandbox, tmp_path: Path) -> None:
    secret = tmp_path / "secret.txt"
    secret.write_text("hunter2")
    secret.chmod(0o644)
    os.environ["GANTRY_TEST_SECRET"] = "hunter2"
    try:
        for attempt in (f"cat {secret}", "cat /etc/shadow", "ls /root", "ls /work"):
            code, out = sh(box, attempt)
            assert code != 0 and "No such file" in out, attempt
        for attempt in ("env", "cat /proc/*/environ", "grep -r hunter2 /etc /run /tmp /dev"):
            assert "hunter2" not in sh(box, attempt)[1], attempt
    finally:
        del os.environ["GANTRY_TEST_SECRET"]
    code, out = sh(box, "ls /")
    assert sorted(out.split()) == sorted(
        ["bin", "dev", "etc", "lib", "lib64", "proc", "run", "sbin", "tmp", "usr", "workspace"]
    )
    code, out = sh(box, "id -u; grep CapEff /proc/self/status")
    assert out.split() == ["1000", "CapEff:", "0000000000000000"]


def test_writes_outside_the_workspace_fail(box: Sandbox) -> None:
    marker = f"gantry-sbx-{os.getpid()}-{time.monotonic_ns()}"
    for target in ("/usr/x", "/etc/x", "/x", "/run/sandbox/agent.py", "/workspace/../y"):
        code, out = sh(box, f"echo pwned > {target}")
        assert code != 0 and "Read-only file system" in out, target
    code, _ = sh(box, f"echo private > /tmp/{marker} && cat /tmp/{marker}")
    assert code == 0
    assert not os.path.exists(f"/tmp/{marker}")  # the sandbox's /tmp is its own tmpfs
    assert sh(box, "echo fine > ok && cat ok") == (0, "fine\n")


def test_no_network_not_even_the_hosts_loopback(box: Sandbox) -> None:
    server = socket.create_server(("127.0.0.1", 0))
    server.setblocking(False)
    port = server.getsockname()[1]
    abstract = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    abstract.bind(f"\0gantry-sbx-test-{os.getpid()}")
    abstract.listen()
    abstract.setblocking(False)
    probe = (
        (
            "import socket\n"
            "for family, address in ((socket.AF_INET, ('127.0.0.1', PORT)),\n"
            "                        (socket.AF_INET, ('10.0.0.1', 80)),\n"
            "                        (socket.AF_INET, ('1.1.1.1', 53)),\n"
            "                        (socket.AF_UNIX, '\\0gantry-sbx-test-PID')):\n"
            "    s = socket.socket(family, socket.SOCK_STREAM)\n"
            "    s.settimeout(2)\n"
            "    try:\n"
            "        s.connect(address); print('connected', address)\n"
            "    except OSError as e:\n"
            "        print('refused', e.errno)\n"
        )
        .replace("PORT", str(port))
        .replace("PID", str(os.getpid()))
    )
    try:
        result = box.exec(["python3", "-c", probe])
        lines = result.stdout.decode().splitlines()
        assert len(lines) == 4 and all(line.startswith("refused") for line in lines), lines
        for listener in (server, abstract):
            with pytest.raises(BlockingIOError):
                listener.accept()  # nothing ever reached the host
        out = sh(box, "cat /proc/net/dev | tail -n +3 | cut -d: -f1")[1]
        assert out.split() == ["lo"]  # only its own loopback exists
    finally:
        server.close()
        abstract.close()


def test_a_fork_bomb_hits_the_process_limit_spares_the_others_and_leaves_nothing(
    backend: BubblewrapBackend, box: BubblewrapSandbox
) -> None:
    other = backend.create(SandboxSpec(limits=LIMITS))
    try:
        if os.geteuid() == 0:
            assert other.uid != box.uid  # its own uid: the bomb's process count is not its
        bombed: list[ExecResult] = []
        bomb = "bomb() { bomb | bomb & }; bomb; sleep 3"
        thread = threading.Thread(
            target=lambda: bombed.append(box.exec(["bash", "-c", bomb], timeout_s=4))
        )
        started = time.monotonic()
        thread.start()
        at_limit = LIMITS.processes - 4  # bash's retries keep the bomb near its limit
        if os.geteuid() == 0:
            deadline = time.monotonic() + 3
            while len(uid_processes(box.uid)) < at_limit and time.monotonic() < deadline:
                time.sleep(0.01)
        else:
            time.sleep(1)  # one uid for all: no way to count the bomb's processes alone
        forks = "for i in $(seq 20); do /bin/true || exit 9; done; echo forked"
        for _ in range(3):  # while the bomb is at its limit, not after
            assert sh(other, forks) == (0, "forked\n")
            if os.geteuid() == 0:
                assert len(uid_processes(box.uid)) >= at_limit
            assert thread.is_alive()
        thread.join(10)
        assert time.monotonic() - started < 8
        [result] = bombed
        assert b"Resource temporarily unavailable" in result.stderr
        assert other.exec(["echo", "still here"]).stdout == b"still here\n"
        count = box.exec(["sh", "-c", "ls /proc | grep -c '^[0-9]'"])
        assert count.exit_code == 0 and int(count.stdout) < 6  # bomb gone: agent, init, this
    finally:
        other.close()
    box.close()
    assert wait_for_no_processes() == []


def test_a_memory_bomb_hits_the_address_space_limit(box: Sandbox) -> None:
    result = box.exec(["python3", "-c", "b = bytearray(1 << 30)"])
    assert result.exit_code == 1 and b"MemoryError" in result.stderr
    assert sh(box, "echo alive") == (0, "alive\n")


def test_cpu_time_file_size_and_tmp_size_are_limited(box: Sandbox) -> None:
    started = time.monotonic()
    spin = box.exec(["python3", "-c", "while True: pass"], timeout_s=10)
    assert not spin.timed_out and spin.exit_code in (128 + 9, 128 + 24)  # SIGKILL / SIGXCPU
    assert time.monotonic() - started < 8
    code, out = sh(box, "head -c 2000000 /dev/zero > big; ls -l big")
    assert code != 0 or "1048576" in out
    size = len(box.get_file("big", 4 << 20))
    assert size <= 1 << 20
    code, out = sh(box, "head -c 3000000 /dev/zero > /tmp/fill")
    assert code != 0


def test_a_sleep_past_the_timeout_is_gone_afterwards(box: Sandbox) -> None:
    result = box.exec(["sh", "-c", "sleep 100"], timeout_s=0.3)
    assert result.timed_out
    assert "sleep" not in sh(box, "ps -eo comm")[1].split()


def test_no_process_survives_close_however_it_hides(backend: BubblewrapBackend) -> None:
    sandbox = backend.create(SandboxSpec(limits=LIMITS))
    # Each one leaves its process group; the command waits until it has.
    wait = "while [ ! -e {0} ]; do sleep 0.01; done"
    hide = "setsid sh -c 'touch m1; exec sleep 1000' </dev/null >/dev/null 2>&1 &"
    sandbox.exec(["sh", "-c", hide + wait.format("m1")])
    hide = "(setsid nohup sh -c 'touch m2; exec sleep 1000' </dev/null >/dev/null 2>&1 &) &"
    sandbox.exec(["sh", "-c", hide + wait.format("m2")])
    stubborn = sandbox.spawn(["sh", "-c", "trap '' TERM HUP INT; touch m3; sleep 1000"])
    sandbox.exec(["sh", "-c", wait.format("m3")], timeout_s=5)
    assert sh(sandbox, "ps -eo comm | grep -c sleep") == (0, "3\n")
    assert uid_processes(*sandbox_uids())
    sandbox.close()
    assert wait_for_no_processes() == []
    assert not stubborn.alive()


def test_other_sandboxes_are_untouched(backend: BubblewrapBackend) -> None:
    first = backend.create(SandboxSpec(limits=LIMITS))
    second = backend.create(SandboxSpec(limits=LIMITS))
    try:
        second.put_file("mine.txt", b"second's")
        assert sh(first, "ls /workspace; cat /workspace/mine.txt")[0] != 0
        survivor = first.spawn(["sleep", "1000"])
        first.exec(["sh", "-c", "kill -9 -1"])  # everything it may signal, itself included
        deadline = time.monotonic() + 5
        while survivor.alive() and time.monotonic() < deadline:
            time.sleep(0.02)
        assert not survivor.alive()
        # The agent is the namespace's init: code inside cannot kill it.
        assert sh(first, "echo still serving") == (0, "still serving\n")
        assert second.get_file("mine.txt", 100) == b"second's"
        assert sh(second, "cat mine.txt") == (0, "second's")
    finally:
        first.close()
        second.close()


def test_asking_for_a_network_is_refused(backend: BubblewrapBackend) -> None:
    with pytest.raises(SandboxError, match="no network"):
        backend.create(SandboxSpec(network=True))


def test_no_user_namespaces_inside(box: Sandbox) -> None:
    code, out = sh(box, "unshare -U true")
    assert code != 0 and "unshare failed" in out


def test_degraded_mode_has_no_proc_but_still_no_network(
    tmp_path_factory: pytest.TempPathFactory, lock_dir: str
) -> None:
    root = reachable_root(tmp_path_factory.mktemp("degraded"))
    backend = make_backend(lock_dir, root, proc=False)
    backend.probe()
    assert backend.degraded
    with backend.create(SandboxSpec(limits=LIMITS)) as sandbox:
        assert sh(sandbox, "ls /proc")[0] != 0
        probe = "import socket; socket.create_connection(('1.1.1.1', 53), timeout=2)"
        result = sandbox.exec(["python3", "-c", probe])
        assert result.exit_code == 1 and b"Network is unreachable" in result.stderr
        assert sh(sandbox, "echo works > f && cat f") == (0, "works\n")


def test_a_warm_pool_hands_out_fresh_sandboxes_with_the_requested_limits(
    tmp_path_factory: pytest.TempPathFactory, lock_dir: str
) -> None:
    root = reachable_root(tmp_path_factory.mktemp("pool"))
    backend = make_backend(lock_dir, root, warm_pool=1)
    backend.probe()
    backend.warm()
    [pooled] = backend._pool
    strict = SandboxLimits(processes=7, cpu_seconds=3, wall_seconds=10)
    first = backend.create(SandboxSpec(limits=strict))
    try:
        assert first is pooled  # no start on the request path
        limits = first.exec(["bash", "-c", "ulimit -u; ulimit -t"]).stdout
        assert limits == b"7\n3\n"  # the limits travel with every command
        deadline = time.monotonic() + 10
        while not backend._pool and time.monotonic() < deadline:
            time.sleep(0.02)  # refilled in the background
        [refill] = backend._pool
        assert refill is not first and refill.alive()
        mounted = backend.create(SandboxSpec(readonly_mounts={root: "/data"}))
        assert mounted is not refill  # mounts need their own start
        mounted.close()
    finally:
        first.close()
        backend.close()
    assert not backend._pool and not refill.alive()


def test_a_sandbox_outlives_the_thread_that_made_it(backend: BubblewrapBackend) -> None:
    made: list[Sandbox] = []
    thread = threading.Thread(target=lambda: made.append(backend.create(SandboxSpec())))
    thread.start()
    thread.join(20)
    [sandbox] = made
    try:
        time.sleep(0.2)
        assert sh(sandbox, "echo alive") == (0, "alive\n")
    finally:
        sandbox.close()


def test_nothing_outlives_a_crashed_envfarm(
    backend: BubblewrapBackend, lock_dir: str, tmp_path: Path
) -> None:
    script = (
        "import sys, time\n"
        "from gantry.envfarm.sandbox import SandboxSpec\n"
        "from gantry.envfarm.sandbox.bubblewrap import BubblewrapBackend\n"
        f"backend = BubblewrapBackend(uid={UID}, uid_count={UID_COUNT},\n"
        f"    uid_lock_dir={lock_dir!r}, root={backend.root!r})\n"
        "box = backend.create(SandboxSpec())\n"
        "keep = box.spawn(['sleep', '1000'])\n"
        "box.exec(['sh', '-c', 'setsid sleep 1000 >/dev/null 2>&1 < /dev/null &'])\n"
        "print('ready', flush=True)\n"
        "time.sleep(1000)\n"
    )
    owner = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE)
    try:
        assert owner.stdout is not None and owner.stdout.readline() == b"ready\n"
        assert uid_processes(*sandbox_uids())
    finally:
        owner.kill()  # no close(): the agent's control socket just closes
        owner.wait(10)
    left = wait_for_no_processes()
    assert left == [], [Path(f"/proc/{pid}/cmdline").read_bytes()[:80] for pid in left]
