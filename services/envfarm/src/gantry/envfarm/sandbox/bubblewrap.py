"""The bubblewrap backend: the local and CI default.

Each sandbox is one `bwrap` started as a non-root host uid of its own (root would ignore
the process limit; uids.py says why one per sandbox) with every namespace unshared: no
network, its own PID namespace (the whole tree dies with it), a read-only view of /usr
and a few /etc files, a private writable workspace at /workspace, a size-capped tmpfs
/tmp, and the agent (agent.py) inside applying the rlimits to each command. Where /proc
cannot be mounted (restricted pods) the backend runs degraded: no /proc inside,
everything else, network cut included, unchanged.
"""

from __future__ import annotations

import contextlib
import json
import os
import select
import shutil
import signal
import socket
import stat
import subprocess
import tempfile
import threading
import weakref
from pathlib import Path

from gantry.envfarm.sandbox.agented import AGENT_PATH, AgentSandbox, agent_argv
from gantry.envfarm.sandbox.base import (
    SandboxError,
    SandboxExhausted,
    SandboxLimits,
    SandboxSpec,
    SandboxUnavailable,
    refuse_network,
)
from gantry.envfarm.sandbox.uids import UidLease, UidRange

WORKSPACE = "/workspace"
STATIC = "/run/sandbox"  # the backend's own files: the agent, passwd, group, hosts
AGENT = STATIC + "/agent.py"
SANDBOX_UID = 1000  # the ids the code sees inside
SETPRIV = "/usr/bin/setpriv"  # util-linux (Debian essential): drops to the sandbox uid
# Host /etc entries a shell, Python and the common tools need; nothing with secrets.
ETC_ENTRIES = (
    "alternatives",
    "bash.bashrc",
    "ca-certificates",
    "inputrc",
    "ld.so.cache",
    "ld.so.conf",
    "ld.so.conf.d",
    "localtime",
    "mime.types",
    "nsswitch.conf",
    "os-release",
    "profile",
    "python3",
    "python3.11",
    "ssl",
)
START_TIMEOUT_S = 10.0


class BubblewrapSandbox(AgentSandbox):
    """An agent sandbox that holds its host uid until its processes are gone."""

    uid: int  # the host uid its processes run as
    lease: UidLease | None = None  # None: the service's own uid (not root), shared

    def close(self) -> None:
        super().close()  # returns once bwrap, and so the whole PID namespace, has exited
        if self.lease is not None:
            self.lease.release()


class BubblewrapBackend:
    name = "bubblewrap"

    def __init__(
        self,
        *,
        uid: int = 61000,
        uid_count: int = 2048,
        uid_lock_dir: str | None = None,
        root: str | None = None,
        python: str = "/usr/bin/python3",
        bwrap: str = "bwrap",
        proc: bool | None = None,
        warm_pool: int = 0,
    ) -> None:
        """`uid`, `uid_count`: when the service is root, each live sandbox runs as its
        own host uid (and gid) of `uid` .. `uid`+`uid_count`-1, taken through lock files
        in `uid_lock_dir`, which every envfarm of the host must share (see uids.py); not
        root, every sandbox runs as the service's own uid. `root`: where workspaces live;
        `python`: the agent's interpreter, visible inside; `proc`: mount /proc (None:
        probe, and fall back to degraded); `warm_pool`: sandboxes kept started, handed
        out by `create` (refilled behind)."""
        self.uid = uid
        self.uids = UidRange(uid, uid_count, uid_lock_dir)
        self.root = os.path.realpath(
            root or os.path.join(tempfile.gettempdir(), "gantry-sandboxes")
        )
        self.python = python
        self.bwrap = shutil.which(bwrap) or bwrap
        self.proc = proc
        self._static: str | None = None
        self.warm_pool = warm_pool
        self._pool: list[BubblewrapSandbox] = []
        self._filling = 0
        self._pool_lock = threading.Lock()
        self._pool_changed = threading.Condition(self._pool_lock)

    @property
    def degraded(self) -> bool:
        """True when sandboxes run without /proc (see the module docstring)."""
        return self.proc is False

    # --- probe ---------------------------------------------------------------------

    def probe(self) -> None:
        if not os.access(self.bwrap, os.X_OK):
            raise SandboxUnavailable(
                f"bubblewrap ({self.bwrap!r}) is not installed: apt-get install -y bubblewrap"
            )
        if not os.access(self.python, os.X_OK):
            raise SandboxUnavailable(f"the agent's Python {self.python!r} is not executable")
        tries = [self.proc] if self.proc is not None else [True, False]
        reasons = []
        for proc in tries:
            try:
                with self._start(SandboxSpec(), proc=proc) as sandbox:
                    result = sandbox.exec(["/bin/sh", "-c", "echo ok"], timeout_s=START_TIMEOUT_S)
                if result.stdout == b"ok\n":
                    self.proc = proc
                    if self.warm_pool:  # the first sessions need not wait for a start
                        threading.Thread(target=self._refill_quietly, daemon=True).start()
                    return
                reasons.append(f"proc={proc}: {result.stderr.decode(errors='replace')[:200]}")
            except SandboxError as exc:
                reasons.append(f"proc={proc}: {exc}")
        raise SandboxUnavailable("bubblewrap cannot start a sandbox here: " + "; ".join(reasons))

    # --- create --------------------------------------------------------------------

    def create(self, spec: SandboxSpec) -> BubblewrapSandbox:
        refuse_network(spec, self.name)
        sandbox = self._take_warm(spec)
        if self.warm_pool:
            threading.Thread(target=self._refill_quietly, daemon=True).start()
        if sandbox is not None:
            return sandbox
        try:
            return self._start(spec, proc=self.proc is not False)
        except SandboxExhausted:
            # An idle pooled sandbox gives its uid to a request that could not use it.
            with self._pool_lock:
                idle = self._pool.pop(0) if self._pool else None
            if idle is None:
                raise
            idle.close()
            return self._start(spec, proc=self.proc is not False)

    # --- the warm pool: sandboxes started ahead, fresh (never used) ------------------

    def _take_warm(self, spec: SandboxSpec) -> BubblewrapSandbox | None:
        """A started sandbox for `spec`, if the pool has one that fits (no mounts, the
        default /tmp size; every other limit is applied per command)."""
        if spec.readonly_mounts or spec.limits.tmp_bytes != SandboxLimits().tmp_bytes:
            return None
        while True:
            with self._pool_lock:
                if not self._pool:
                    return None
                sandbox = self._pool.pop(0)
            if sandbox.alive():
                sandbox.limits = spec.limits
                return sandbox
            sandbox.close()

    def warm(self) -> None:
        """Start sandboxes until the warm pool is full, and wait for the ones other
        threads are starting."""
        while True:
            with self._pool_lock:
                if len(self._pool) + self._filling >= self.warm_pool:
                    self._pool_changed.wait_for(lambda: self._filling == 0, timeout=60)
                    return
                self._filling += 1
            sandbox = None
            try:
                sandbox = self._start(SandboxSpec(), proc=self.proc is not False)
                try:
                    sandbox.exec(["true"])  # handed out once its agent answers
                except SandboxError:
                    sandbox.close()
                    raise
            finally:
                with self._pool_lock:
                    self._filling -= 1
                    if sandbox is not None and sandbox.alive():
                        self._pool.append(sandbox)
                    self._pool_changed.notify_all()

    def _refill_quietly(self) -> None:
        with contextlib.suppress(SandboxError):
            self.warm()

    def close(self) -> None:
        """Close the idle sandboxes of the warm pool (and keep it empty)."""
        with self._pool_lock:
            idle, self._pool = self._pool, []
            self.warm_pool = 0
        for sandbox in idle:
            sandbox.close()

    def _start(self, spec: SandboxSpec, *, proc: bool) -> BubblewrapSandbox:
        for target in spec.readonly_mounts.values():
            _check_target(target)
        lease = self.uids.take() if os.geteuid() == 0 else None
        try:
            sandbox = self._start_as(spec, proc, lease)
        except BaseException:
            if lease is not None:
                lease.release()
            raise
        sandbox.lease = lease
        return sandbox

    def _start_as(self, spec: SandboxSpec, proc: bool, lease: UidLease | None) -> BubblewrapSandbox:
        uid, gid = (lease.uid, lease.gid) if lease else (os.geteuid(), os.getegid())
        static = self._static_files()
        # bwrap resolves every bind source as the sandbox uid, so all must be reachable.
        _check_reachable(self.root, uid, gid, what=f"the sandbox root {self.root!r}")
        for source in spec.readonly_mounts:
            _check_reachable(source, uid, gid, what=f"read-only mount {source!r}")
        host_workspace = tempfile.mkdtemp(prefix="sbx-", dir=self.root)
        owner = uid if lease else None
        if lease:
            os.chown(host_workspace, uid, gid)
        with contextlib.ExitStack() as fds:
            ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
            fds.callback(theirs.close)
            info_r, info_w = os.pipe()
            fds.callback(os.close, info_w)
            argv = [
                self.bwrap,
                *self._layout(spec.limits, proc),
                *("--ro-bind", static, STATIC),
                *("--bind", host_workspace, WORKSPACE),
                *[a for pair in spec.readonly_mounts.items() for a in ("--ro-bind", *pair)],
                *("--remount-ro", "/"),
                *("--info-fd", str(info_w)),
                *("--chdir", WORKSPACE),
                "--",
                *agent_argv(self.python, AGENT, theirs.fileno(), spec.limits),
            ]
            errors = tempfile.TemporaryFile()  # noqa: SIM115 - read after a failed start
            try:
                # setpriv drops to the sandbox uid rather than Popen(user=, group=): those
                # force a plain fork(), whose atfork handlers (gRPC's) can crash the child
                # in a threaded server; without them Popen uses vfork/posix_spawn.
                drop = [SETPRIV, f"--reuid={uid}", f"--regid={gid}", "--clear-groups"]
                process = subprocess.Popen(
                    [*drop, "--", *argv] if lease else argv,
                    pass_fds=(theirs.fileno(), info_w),
                    stdin=subprocess.DEVNULL,
                    stdout=subprocess.DEVNULL,
                    stderr=errors,
                    start_new_session=True,
                    env={"PATH": "/usr/bin:/bin"},
                )
            except OSError as exc:
                errors.close()
                shutil.rmtree(host_workspace, ignore_errors=True)
                raise SandboxUnavailable(f"cannot run bubblewrap: {exc}") from exc
        child = _read_child_pid(info_r, process)
        if child is None:
            process.wait(START_TIMEOUT_S)
            errors.seek(0)
            message = errors.read(2000).decode(errors="replace").strip()
            errors.close()
            ours.close()
            shutil.rmtree(host_workspace, ignore_errors=True)
            raise SandboxError(f"bubblewrap failed to start: {message or process.returncode}")

        def kill_tree() -> None:
            # The namespace's init: when it dies the kernel kills every process inside,
            # and the outer bwrap (our child) exits and is reaped by close().
            with contextlib.suppress(OSError):
                os.kill(child, signal.SIGKILL)

        sandbox = BubblewrapSandbox(
            process=process,
            control=ours,
            workspace=WORKSPACE,
            host_workspace=host_workspace,
            limits=spec.limits,
            env={
                "PATH": "/usr/local/bin:/usr/bin:/bin",
                "HOME": WORKSPACE,
                "USER": "sandbox",
                "LANG": "C.UTF-8",
                "TMPDIR": "/tmp",
            },
            owner=owner,
            kill_tree=kill_tree,
        )
        sandbox.uid = uid
        sandbox.backend = self  # its static files (the agent) outlive it
        sandbox.log = errors  # what bwrap and the agent print (a death's reason)
        return sandbox

    def _layout(self, limits: SandboxLimits, proc: bool) -> list[str]:
        """Namespaces and the read-only filesystem every sandbox shares."""
        args = [
            "--unshare-all",
            "--unshare-user",
            "--disable-userns",
            # The agent is the PID namespace's init: when it exits, for whatever reason
            # (close(), or envfarm dying and its control socket closing), the kernel
            # kills everything left inside; and code inside cannot signal it. (Not
            # --die-with-parent: that follows the *thread* that started bwrap, and
            # sandboxes outlive the worker threads that create them.)
            "--as-pid-1",
            "--new-session",
            "--cap-drop",
            "ALL",
            "--hostname",
            "sandbox",
            "--uid",
            str(SANDBOX_UID),
            "--gid",
            str(SANDBOX_UID),
            "--clearenv",
            "--ro-bind",
            "/usr",
            "/usr",
        ]
        for top in ("bin", "sbin", "lib", "lib32", "lib64", "libx32"):
            path = "/" + top
            if os.path.islink(path):
                args += ["--symlink", os.readlink(path), path]
            elif os.path.isdir(path):
                args += ["--ro-bind", path, path]
        args += ["--dir", "/etc"]
        for entry in ETC_ENTRIES:
            if os.path.exists("/etc/" + entry):
                args += ["--ro-bind", "/etc/" + entry, "/etc/" + entry]
        for entry in ("passwd", "group", "hostname", "hosts"):
            args += ["--symlink", f"{STATIC}/{entry}", "/etc/" + entry]
        if proc:
            args += ["--proc", "/proc"]
        args += ["--dev", "/dev"]
        args += ["--size", str(limits.tmp_bytes), "--tmpfs", "/tmp"]
        return args

    def _static_files(self) -> str:
        """passwd/group/hosts naming only the sandbox user, and a copy of the agent that
        the sandbox uid can read wherever this package is installed; written once."""
        if self._static is None:
            os.makedirs(self.root, mode=0o711, exist_ok=True)
            etc = tempfile.mkdtemp(prefix="etc-", dir=self.root)
            os.chmod(etc, 0o755)
            files = {
                "passwd": f"root:x:0:0::/:/usr/sbin/nologin\n"
                f"sandbox:x:{SANDBOX_UID}:{SANDBOX_UID}::{WORKSPACE}:/bin/bash\n",
                "group": f"root:x:0:\nsandbox:x:{SANDBOX_UID}:\n",
                "hostname": "sandbox\n",
                "hosts": "127.0.0.1 localhost sandbox\n::1 localhost\n",
                "agent.py": Path(AGENT_PATH).read_text(encoding="utf-8"),
            }
            for name, text in files.items():
                path = os.path.join(etc, name)
                with open(path, "w", encoding="utf-8") as handle:
                    handle.write(text)
                os.chmod(path, 0o644)
            self._static = etc
            weakref.finalize(self, shutil.rmtree, etc, ignore_errors=True)
        return self._static


def _check_target(target: str) -> None:
    if not target.startswith("/") or target.rstrip("/") in ("", "/workspace", "/tmp", "/proc"):
        raise SandboxError(f"read-only mount target {target!r} must be an absolute path of its own")
    if ".." in target.split("/") or "\x00" in target:
        raise SandboxError(f"bad read-only mount target {target!r}")


def _check_reachable(path: str, uid: int, gid: int, *, what: str) -> None:
    """Every directory above `path` (and `path`) can be searched by uid:gid."""
    current = os.path.realpath(path)
    while True:
        try:
            info = os.stat(current)
        except OSError as exc:
            raise SandboxUnavailable(f"{what}: cannot stat {current}: {exc.strerror}") from exc
        if info.st_uid == uid:
            allowed = bool(info.st_mode & 0o100)
        elif info.st_gid == gid:
            allowed = bool(info.st_mode & 0o010)
        else:
            allowed = bool(info.st_mode & 0o001)
        if stat.S_ISDIR(info.st_mode) and not allowed:
            raise SandboxUnavailable(
                f"{what} is not reachable by the sandbox uid {uid}: {current} has mode "
                f"{stat.S_IMODE(info.st_mode):o} (it needs search permission, o+x)"
            )
        if current == "/":
            return
        current = os.path.dirname(current)


def _read_child_pid(fd: int, process: subprocess.Popen[bytes]) -> int | None:
    """bwrap's --info-fd report: the host pid of the namespace's init, once it is set up."""
    data = b""
    try:
        while True:
            ready, _, _ = select.select([fd], [], [], START_TIMEOUT_S)
            if not ready:
                process.kill()
                return None
            chunk = os.read(fd, 4096)
            if not chunk:
                break
            data += chunk
            with contextlib.suppress(ValueError):
                return int(json.loads(data)["child-pid"])
    finally:
        os.close(fd)
    return None
