"""A sandbox run by the in-sandbox agent (agent.py): shared by bubblewrap and subprocess.

The backend starts the agent (inside bwrap, or straight on the host) with one end of a
SEQPACKET socket pair; each `exec`/`spawn` makes fresh pipes (stdin, stdout, stderr and
a status pipe that carries the exit code), hands their far ends to the agent and reads
them here, so output limits and timeouts are enforced by the host whatever the
sandboxed code does, and no thread sits between a command and its caller.
"""

from __future__ import annotations

import array
import contextlib
import marshal
import os
import selectors
import shutil
import socket
import subprocess
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import IO

from gantry.envfarm.sandbox import hostfs
from gantry.envfarm.sandbox.base import (
    ExecResult,
    SandboxClosed,
    SandboxError,
    SandboxLimits,
    check_argv,
    cut_marker,
    workspace_relative,
)

MAX_REQUEST_BYTES = 128 << 10  # argv + env of one command; bigger inputs go by stdin or file
AGENT_PATH = str(Path(__file__).with_name("agent.py"))
_LIMIT_FIELDS = ("cpu_seconds", "address_space_bytes", "processes", "file_size_bytes")
EXIT_GRACE_S = 0.2  # output still read after exit, from whatever the command left behind


def agent_argv(python: str, agent: str, control_fd: int, limits: SandboxLimits) -> list[str]:
    """The command line that starts the agent (at path `agent`) with per-command limits."""
    values = [str(getattr(limits, name)) for name in _LIMIT_FIELDS]
    return [python, "-I", "-S", agent, str(control_fd), *values]


class _Status:
    """The read end of a command's status pipe: its exit code, once it has ended."""

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self.code: int | None = None
        self.ended = False
        self._data = b""
        self._lock = threading.Lock()

    def feed(self) -> bool:
        """Read what is there (the fd is ready); True once the pipe has closed."""
        with self._lock:
            if self.ended:
                return True
            chunk = os.read(self.fd, 64)
            if chunk:
                self._data += chunk
                return False
            self.ended = True
            os.close(self.fd)
            with contextlib.suppress(ValueError):
                self.code = int(self._data)  # none: the agent died first
            return True

    def poll(self) -> bool:
        """True once ended, without blocking."""
        while not self.ended:
            selector = selectors.DefaultSelector()
            try:
                selector.register(self.fd, selectors.EVENT_READ)
                if not selector.select(0):
                    return False
            except (OSError, ValueError):
                return self.ended
            finally:
                selector.close()
            self.feed()
        return True

    def close(self) -> None:
        with self._lock:
            if not self.ended:
                self.ended = True
                os.close(self.fd)

    def __del__(self) -> None:
        with contextlib.suppress(Exception):
            self.close()

    def wait(self, timeout_s: float) -> bool:
        deadline = time.monotonic() + timeout_s
        while not self.poll():
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.005)
        return True


class AgentSandbox:
    """exec/spawn/put/get/close over an agent process."""

    def __init__(
        self,
        *,
        process: subprocess.Popen[bytes],
        control: socket.socket,
        workspace: str,
        host_workspace: str,
        limits: SandboxLimits,
        env: Mapping[str, str],
        owner: int | None,
        kill_tree: Callable[[], None],
    ) -> None:
        self.workspace = workspace
        self.host_workspace = host_workspace
        self.limits = limits
        self._process = process
        self._control = control
        self._env = dict(env)
        self._owner = owner
        self._kill_tree = kill_tree
        self._lock = threading.Lock()
        self._next_id = 0
        self._closed = False
        self.backend: object = None  # set by a backend whose files the sandbox uses
        self.log: IO[bytes] | None = None  # the agent's stderr, where a backend keeps it

    # --- the control channel -------------------------------------------------------

    def _start(
        self, argv: Sequence[str], cwd: str | None, fds: Sequence[int], oneshot: bool
    ) -> tuple[int, _Status]:
        args = check_argv(argv)
        workdir = self._resolve_dir(cwd)
        status_r, status_w = os.pipe()
        try:
            with self._lock:
                if self._closed:
                    raise SandboxClosed("the sandbox is closed")
                self._next_id += 1
                rid = self._next_id
                request = {"op": "run", "id": rid, "argv": args, "cwd": workdir}
                limits = [getattr(self.limits, name) for name in _LIMIT_FIELDS]
                request.update(env=self._env, oneshot=oneshot, limits=limits)
                payload = marshal.dumps(request)  # builtin: the agent imports nothing
                if len(payload) > MAX_REQUEST_BYTES:
                    raise SandboxError(
                        f"the command line is {len(payload)} bytes; the limit is "
                        f"{MAX_REQUEST_BYTES} (pass large inputs on stdin or as a file)"
                    )
                rights = array.array("i", [*fds, status_w]).tobytes()
                try:
                    self._control.sendmsg(
                        [payload], [(socket.SOL_SOCKET, socket.SCM_RIGHTS, rights)]
                    )
                except OSError as exc:
                    self._closed = True
                    raise SandboxClosed(
                        f"the sandbox agent is gone: {self._last_words(exc)}"
                    ) from exc
        except BaseException:
            os.close(status_r)
            raise
        finally:
            os.close(status_w)
        return rid, _Status(status_r)

    def _last_words(self, exc: OSError) -> str:
        """Why the agent died, as far as its stderr tells."""
        if self.log is None:
            return str(exc)
        with contextlib.suppress(OSError, ValueError):
            self.log.seek(0)
            text = self.log.read(4000).decode(errors="replace").strip()
            if text:
                return text[-1000:]
        return str(exc)

    def _kill(self, rid: int) -> None:
        with contextlib.suppress(OSError):
            self._control.send(marshal.dumps({"op": "kill", "id": rid}))

    def _resolve_dir(self, cwd: str | None) -> str:
        if cwd is None or cwd in (".", self.workspace):
            return self.workspace
        if cwd.startswith("/") and not cwd.startswith(self.workspace.rstrip("/") + "/"):
            return cwd  # anywhere the sandbox can see, e.g. /tmp
        return self.workspace + "/" + workspace_relative(self.workspace, cwd)

    # --- the Sandbox protocol ------------------------------------------------------

    def exec(
        self,
        argv: Sequence[str],
        *,
        stdin: bytes = b"",
        timeout_s: float | None = None,
        cwd: str | None = None,
    ) -> ExecResult:
        timeout = self.limits.wall_seconds if timeout_s is None else timeout_s
        if not timeout > 0:
            raise SandboxError(f"timeout_s must be > 0 (got {timeout_s!r})")
        started = time.monotonic()
        in_r, in_w = os.pipe()
        out_r, out_w = os.pipe()
        err_r, err_w = os.pipe()
        try:
            rid, status = self._start(argv, cwd, (in_r, out_w, err_w), oneshot=True)
        except BaseException:
            for fd in (in_r, in_w, out_r, out_w, err_r, err_w):
                os.close(fd)
            raise
        for fd in (in_r, out_w, err_w):
            os.close(fd)
        outputs, truncated, timed_out = _collect(
            stdin,
            in_w,
            (out_r, err_r),
            status,
            limit=self.limits.output_bytes,
            deadline=started + timeout,
            kill=lambda: self._kill(rid),
        )
        status.wait(1.0)  # after a kill: its report (at once if the agent died)
        status.close()
        return ExecResult(
            exit_code=None if timed_out else status.code,
            stdout=outputs[0],
            stderr=outputs[1],
            timed_out=timed_out,
            truncated=truncated,
            seconds=time.monotonic() - started,
        )

    def spawn(self, argv: Sequence[str], *, cwd: str | None = None) -> PipeProcess:
        in_r, in_w = os.pipe()
        out_r, out_w = os.pipe()
        try:
            rid, status = self._start(argv, cwd, (in_r, out_w, out_w), oneshot=False)
        except BaseException:
            for fd in (in_r, in_w, out_r, out_w):
                os.close(fd)
            raise
        os.close(in_r)
        os.close(out_w)
        return PipeProcess(in_w, out_r, status, lambda: self._kill(rid))

    def alive(self) -> bool:
        """The agent still runs (a pooled sandbox is checked before it is handed out)."""
        return not self._closed and self._process.poll() is None

    def put_file(self, path: str, data: bytes, mode: int = 0o644) -> None:
        relative = workspace_relative(self.workspace, path)
        hostfs.write_file(
            self.host_workspace,
            relative,
            data,
            mode,
            owner=self._owner,
            limit=self.limits.file_size_bytes,
        )

    def get_file(self, path: str, max_bytes: int) -> bytes:
        return hostfs.read_file(
            self.host_workspace, workspace_relative(self.workspace, path), max_bytes
        )

    def close(self) -> None:
        with self._lock:
            if self._control.fileno() < 0:
                return
            self._closed = True
            self._kill_tree()
            with contextlib.suppress(OSError):
                self._control.shutdown(socket.SHUT_RDWR)
            self._control.close()
        try:
            self._process.wait(5.0)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait(5.0)
        shutil.rmtree(self.host_workspace, ignore_errors=True)
        if self.log is not None:
            self.log.close()

    def __enter__(self) -> AgentSandbox:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()


def _collect(
    data: bytes,
    stdin_fd: int,
    out_fds: Sequence[int],
    status: _Status,
    *,
    limit: int,
    deadline: float,
    kill: Callable[[], None],
) -> tuple[list[bytes], bool, bool]:
    """Feed stdin, read the output pipes keeping `limit` bytes each, until the command has
    ended and its output is drained (or the deadline passes: then it is killed).

    Returns (outputs, truncated, timed_out). Output that something left behind keeps
    writing after the command ended is read for EXIT_GRACE_S only.
    """
    selector = selectors.DefaultSelector()
    kept: list[bytearray] = [bytearray() for _ in out_fds]
    dropped = [0 for _ in out_fds]
    for index, fd in enumerate(out_fds):
        selector.register(fd, selectors.EVENT_READ, index)
    selector.register(status.fd, selectors.EVENT_READ, "status")
    pending = memoryview(data)
    if pending:
        os.set_blocking(stdin_fd, False)
        selector.register(stdin_fd, selectors.EVENT_WRITE, "stdin")
    else:
        os.close(stdin_fd)
    timed_out = False
    ended_at: float | None = None
    try:
        while selector.get_map():
            now = time.monotonic()
            if ended_at is not None and (now - ended_at > EXIT_GRACE_S or not _reading(selector)):
                break
            if now >= deadline:
                timed_out = True
                kill()
                break
            for key, _ in selector.select(deadline - now if ended_at is None else EXIT_GRACE_S):
                if key.data == "status":
                    if status.feed():
                        selector.unregister(key.fd)
                        ended_at = time.monotonic()
                elif key.data == "stdin":
                    try:
                        pending = pending[os.write(stdin_fd, pending[: 1 << 16]) :]
                    except OSError:  # it stopped reading (EPIPE): the rest is dropped
                        pending = pending[:0]
                    if not pending:
                        selector.unregister(stdin_fd)
                        os.close(stdin_fd)
                else:
                    chunk = os.read(key.fd, 1 << 16)
                    if not chunk:
                        selector.unregister(key.fd)
                        os.close(key.fd)
                        continue
                    room = max(limit - len(kept[key.data]), 0)
                    kept[key.data] += chunk[:room]
                    dropped[key.data] += len(chunk) - min(room, len(chunk))
    finally:
        for key in list(selector.get_map().values()):
            if key.data != "status":  # the caller still waits on the status pipe
                os.close(key.fd)
        selector.close()
    outputs = [bytes(k) + (cut_marker(d) if d else b"") for k, d in zip(kept, dropped, strict=True)]
    return outputs, any(dropped), timed_out


def _reading(selector: selectors.BaseSelector) -> bool:
    """Any output pipe still open."""
    return any(isinstance(key.data, int) for key in selector.get_map().values())


class PipeProcess:
    """A spawned process: its stdin, and its stdout and stderr merged on one pipe."""

    def __init__(
        self, stdin_fd: int, stdout_fd: int, status: _Status, kill: Callable[[], None]
    ) -> None:
        self._stdin = stdin_fd
        self._stdout = stdout_fd
        self._status = status
        self._kill = kill
        self._write_lock = threading.Lock()
        self._read_lock = threading.Lock()
        self._eof = False
        self._closed = False

    def write(self, data: bytes) -> None:
        with self._write_lock:
            if self._closed:
                raise SandboxClosed("the process is closed")
            try:
                view = memoryview(data)
                while view:
                    view = view[os.write(self._stdin, view) :]
            except OSError as exc:
                raise SandboxClosed(f"the process's stdin is closed: {exc}") from exc

    def read(self, max_bytes: int, timeout_s: float) -> bytes:
        with self._read_lock:
            if self._eof or self._closed:
                raise SandboxClosed("the process's output is closed")
            selector = selectors.DefaultSelector()
            try:
                selector.register(self._stdout, selectors.EVENT_READ)
                if not selector.select(max(timeout_s, 0.0)):
                    return b""
            finally:
                selector.close()
            chunk = os.read(self._stdout, max_bytes)
            if not chunk:
                self._eof = True
                raise SandboxClosed("the process's output is closed")
            return chunk

    def alive(self) -> bool:
        return not self._status.poll()

    @property
    def exit_code(self) -> int | None:
        """Its exit code once it has ended (128 + signal if killed), else None."""
        self._status.poll()
        return self._status.code

    def kill(self) -> None:
        with self._write_lock:
            if self._closed:
                return
            self._closed = True
            self._kill()
            with contextlib.suppress(OSError):
                os.close(self._stdin)
        with self._read_lock, contextlib.suppress(OSError):
            os.close(self._stdout)
        self._status.wait(1.0)

    def __del__(self) -> None:
        if not self._closed:
            with contextlib.suppress(Exception):
                self.kill()
