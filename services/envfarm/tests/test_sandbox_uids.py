"""Per-sandbox host uids: each live bubblewrap sandbox holds a uid of its own, across
envfarm processes sharing a lock folder, and gives it back on close.

As root (CI's container) the backend tests check real sandboxes; otherwise every sandbox
runs as the service's own uid (the documented fallback), which they check instead. The
uid range tests need no root.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from gantry.core.errors import Unavailable
from gantry.envfarm.sandbox import SandboxExhausted, SandboxSpec, SandboxUnavailable
from gantry.envfarm.sandbox.bubblewrap import BubblewrapBackend, BubblewrapSandbox
from gantry.envfarm.sandbox.testing import reachable_root
from gantry.envfarm.sandbox.uids import UidRange
from gantry.envfarm.terminal.episode import TerminalEpisode
from gantry.envfarm.terminal.suite import template_task

FIRST = 64200  # this module's own uid range; the service's starts at 61000
AS_ROOT = os.geteuid() == 0

HOLDER = """
import sys
from gantry.envfarm.sandbox.uids import UidRange
lease = UidRange({first}, {count}, {lock_dir!r}).take()
print(lease.uid, flush=True)
sys.stdin.read()  # holds the uid until killed
"""


def host_uids(pid: int) -> set[int]:
    """Real uids of `pid` and all its descendants on the host."""
    found, todo = set(), [pid]
    while todo:
        current = todo.pop()
        try:
            status = Path(f"/proc/{current}/status").read_text()
            children = Path(f"/proc/{current}/task/{current}/children").read_text()
        except OSError:
            continue
        found.add(int(next(ln.split()[1] for ln in status.splitlines() if ln[:4] == "Uid:")))
        todo += [int(child) for child in children.split()]
    return found


def test_a_range_hands_each_uid_to_one_holder_across_processes(tmp_path: Path) -> None:
    uids = UidRange(FIRST, 3, str(tmp_path))
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLDER.format(first=FIRST, count=3, lock_dir=str(tmp_path))],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
    )
    try:
        assert holder.stdout is not None
        held = int(holder.stdout.readline())
        leases = [uids.take(), uids.take()]
        assert sorted([held, *(lease.uid for lease in leases)]) == [FIRST, FIRST + 1, FIRST + 2]
        with pytest.raises(SandboxExhausted, match="sandbox_uid_count") as refused:
            uids.take()
        assert f"{FIRST}-{FIRST + 2}" in str(refused.value)
    finally:
        holder.kill()  # no release: the kernel drops a dead process's locks
        holder.wait(10)
    again = uids.take()
    assert again.uid == held
    for lease in [*leases, again]:
        lease.release()
        lease.release()  # idempotent
    for _ in range(30):  # ten times the range: each release makes its uid free again
        uids.take().release()


def test_a_lock_folder_others_can_write_is_refused(tmp_path: Path) -> None:
    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(0o777)
    with pytest.raises(SandboxUnavailable, match="sandbox_uid_lock_dir"):
        UidRange(FIRST, 2, str(shared)).take()
    with pytest.raises(ValueError, match="uid range"):
        UidRange(0xFFFFFFF0, 64)


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> str:
    return reachable_root(tmp_path_factory.mktemp("uids"))


@pytest.fixture
def pair(tmp_path: Path, root: str) -> Iterator[tuple[BubblewrapBackend, BubblewrapBackend]]:
    """Two backends sharing a lock folder and a two-uid range: two envfarm processes."""
    backends = tuple(
        BubblewrapBackend(uid=FIRST, uid_count=2, uid_lock_dir=str(tmp_path), root=root)
        for _ in range(2)
    )
    yield backends[0], backends[1]
    for backend in backends:
        backend.close()


def test_live_sandboxes_run_as_uids_of_their_own_across_backends(
    pair: tuple[BubblewrapBackend, BubblewrapBackend],
) -> None:
    first, second = pair
    a = first.create(SandboxSpec())
    b = second.create(SandboxSpec())
    try:
        for box in (a, b):
            assert box.exec(["id", "-u"]).stdout == b"1000\n"  # the same inside
            assert os.stat(box.host_workspace).st_uid == box.uid
            assert host_uids(box._process.pid) == {box.uid}  # bwrap and all inside
        if not AS_ROOT:  # the documented fallback: one uid, the service's own
            assert a.uid == b.uid == os.geteuid()
            return
        assert {a.uid, b.uid} == {FIRST, FIRST + 1}
        for backend in pair:  # both uids live, in either process: a clear error
            with pytest.raises(SandboxExhausted, match="sandbox_uid_count"):
                backend.create(SandboxSpec())
        released = a.uid
        a.close()
        c = second.create(SandboxSpec())
        assert c.uid == released
        c.close()
    finally:
        a.close()
        b.close()


def test_uids_come_back_on_close(pair: tuple[BubblewrapBackend, BubblewrapBackend]) -> None:
    backend = pair[0]
    kept = backend.create(SandboxSpec())  # one uid stays taken throughout
    try:
        seen = set()
        for _ in range(6):  # three times what the range holds
            box = backend.create(SandboxSpec())
            assert box.exec(["true"]).exit_code == 0
            seen.add(box.uid)
            box.close()
        assert seen == ({FIRST, FIRST + 1} - {kept.uid} if AS_ROOT else {os.geteuid()})
    finally:
        kept.close()


def test_an_idle_pooled_sandbox_gives_its_uid_to_a_request(tmp_path: Path, root: str) -> None:
    backend = BubblewrapBackend(
        uid=FIRST, uid_count=1, uid_lock_dir=str(tmp_path), root=root, warm_pool=1
    )
    try:
        backend.warm()
        [pooled] = backend._pool
        # Read-only mounts need their own start, and the pool holds the only uid.
        box = backend.create(SandboxSpec(readonly_mounts={root: "/data"}))
        try:
            assert isinstance(box, BubblewrapSandbox) and box is not pooled
            assert pooled.alive() is not AS_ROOT  # root: evicted; else no uid to free
            assert box.exec(["ls", "-d", "/data"]).stdout == b"/data\n"
        finally:
            box.close()
    finally:
        backend.close()


def test_a_session_past_the_range_is_unavailable_naming_the_setting(
    tmp_path: Path, root: str
) -> None:
    backend = BubblewrapBackend(uid=FIRST, uid_count=1, uid_lock_dir=str(tmp_path), root=root)
    task = template_task("t", "git", 0, 5, "easy")
    first, second = (TerminalEpisode(task, lambda: backend) for _ in range(2))
    try:
        first.reset(0)
        if AS_ROOT:
            with pytest.raises(Unavailable, match="sandbox_uid_count"):
                second.reset(0)
            first.close()  # its uid comes back
        second.reset(0)
        assert second.sandbox is not None
        assert second.sandbox.exec(["true"]).exit_code == 0
    finally:
        first.close()
        second.close()
