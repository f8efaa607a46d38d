"""Host uids for bubblewrap sandboxes: one per live sandbox, across every envfarm on the host.

Per-uid host accounting (RLIMIT_NPROC on kernels before 5.14, pipe buffer pages, key
quotas) would otherwise be shared by every sandbox. A uid is taken by holding an exclusive
`flock` on its lock file in a folder every envfarm of the host shares, for the sandbox's
whole life: `release()` drops it after the sandbox's processes are gone, and the kernel
drops it if envfarm dies (its sandboxes die with it). Lock files are never removed (an
unlink would race with a lock).
"""

from __future__ import annotations

import errno
import fcntl
import os
import random
import stat
import tempfile
import threading

from gantry.envfarm.sandbox.base import SandboxExhausted, SandboxUnavailable

RUN_DIR = "/run/gantry-sandbox-uids"  # root-owned, cleared at boot: the default as root
MAX_ID = 0xFFFFFFFE  # (uid_t)-1 means "unchanged" to setresuid


def default_lock_dir() -> str:
    """/run/gantry-sandbox-uids where /run is writable, else the same name in the temp dir."""
    if os.access(os.path.dirname(RUN_DIR), os.W_OK):
        return RUN_DIR
    return os.path.join(tempfile.gettempdir(), "gantry-sandbox-uids")


class UidLease:
    """One uid (and the gid of the same number) held until `release()`; idempotent."""

    def __init__(self, uid: int, fd: int) -> None:
        self.uid = uid
        self.gid = uid
        self._fd: int | None = fd
        self._lock = threading.Lock()

    def release(self) -> None:
        with self._lock:
            fd, self._fd = self._fd, None
        if fd is not None:
            os.close(fd)  # closing the only descriptor drops the flock


class UidRange:
    """The uids first .. first+count-1, handed out one per lease."""

    def __init__(self, first: int, count: int, lock_dir: str | None = None) -> None:
        if first < 1 or count < 1 or first + count - 1 > MAX_ID:
            raise ValueError(f"bad sandbox uid range: {count} uids from {first}")
        self.first = first
        self.count = count
        self.lock_dir = lock_dir or default_lock_dir()
        self._checked = False

    def __str__(self) -> str:
        return f"{self.first}-{self.first + self.count - 1}"

    def take(self) -> UidLease:
        """A free uid; SandboxExhausted when every one is held (here or by another process).

        The search starts at a random offset, so processes rarely try the same file."""
        self._check_dir()
        start = random.randrange(self.count)
        for step in range(self.count):
            uid = self.first + (start + step) % self.count
            fd = os.open(
                os.path.join(self.lock_dir, str(uid)),
                os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC,
                0o600,
            )
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError as exc:
                os.close(fd)
                if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN):
                    continue
                raise SandboxUnavailable(f"cannot lock sandbox uid {uid}: {exc}") from exc
            return UidLease(uid, fd)
        raise SandboxExhausted(
            f"every sandbox uid ({self.count}, {self}) is held by a live sandbox; "
            "close sessions or raise sandbox_uid_count"
        )

    def _check_dir(self) -> None:
        """The lock folder exists, is a real folder of ours, and nobody else can write it
        (another user could otherwise hold or swap the lock files)."""
        if self._checked:
            return
        try:
            os.makedirs(self.lock_dir, mode=0o700, exist_ok=True)
            info = os.lstat(self.lock_dir)
        except OSError as exc:
            raise SandboxUnavailable(
                f"sandbox_uid_lock_dir {self.lock_dir!r}: {exc.strerror}"
            ) from exc
        if not stat.S_ISDIR(info.st_mode) or info.st_uid != os.geteuid() or info.st_mode & 0o022:
            raise SandboxUnavailable(
                f"sandbox_uid_lock_dir {self.lock_dir!r} must be a folder owned by uid "
                f"{os.geteuid()} that no one else can write"
            )
        self._checked = True
