"""A sandbox run by the in-sandbox agent (agent.py): shared by bubblewrap and subprocess.

The backend starts the agent (inside bwrap, or straight on the host) with one end of a
SEQPACKET socket pair; each `exec`/`spawn` makes fresh pipes, hands their far ends to
the agent and reads the output here, so output limits and timeouts are enforced by the
host whatever the sandboxed code does.
"""

from __future__ import annotations

import array
import contextlib
import json
import os
import selectors
import shutil
import socket
import subprocess
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

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


def agent_argv(python: str, agent: str, control_fd: int, limits: SandboxLimits) -> list[str]:
    """The command line that starts the agent (at path `agent`) with per-command limits."""
    values = {name: getattr(limits, name) for name in _LIMIT_FIELDS}
    return [python, "-I", "-S", agent, str(control_fd), json.dumps(values)]


def _exit_code(code: int) -> int:
    return code if code >= 0 else 128 - code


class _Command:
    """One command the agent started: its exit status arrives from the reader thread."""

    def __init__(self) -> None:
        self.done = threading.Event()
        self.exit_code: int | None = None


class AgentSandbox:
    """exec/spawn/put/get/close over an agent process started by `launch`."""

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
        self._commands: dict[int, _Command] = {}
        self._next_id = 0
        self._closed = False  # no new commands
        self._shut = False  # close() has run
        self._reader = threading.Thread(target=self._read_replies, daemon=True)
        self._reader.start()

    # --- the control channel -------------------------------------------------------

    def _read_replies(self) -> None:
        try:
            while data := self._control.recv(4096):
                reply = json.loads(data)
                with self._lock:
                    command = self._commands.pop(reply["id"], None)
                if command is not None:
                    command.exit_code = int(reply["exit"])
                    command.done.set()
        except (OSError, ValueError, KeyError, TypeError):
            pass  # a dead or confused agent: every waiter is released below
        with self._lock:
            self._closed = True
            waiting, self._commands = list(self._commands.values()), {}
        for command in waiting:
            command.done.set()

    def _start(self, argv: Sequence[str], cwd: str | None, fds: Sequence[int], oneshot: bool):  # type: ignore[no-untyped-def]
        args = check_argv(argv)
        workdir = self._resolve_dir(cwd)
        with self._lock:
            if self._closed:
                raise SandboxClosed("the sandbox is closed")
            self._next_id += 1
            rid = self._next_id
            request = {"op": "run", "id": rid, "argv": args, "cwd": workdir, "env": self._env}
            request["oneshot"] = oneshot
            payload = json.dumps(request).encode()
            if len(payload) > MAX_REQUEST_BYTES:
                raise SandboxError(
                    f"the command line is {len(payload)} bytes; the limit is {MAX_REQUEST_BYTES} "
                    "(pass large inputs on stdin or as a file)"
                )
            command = _Command()
            self._commands[rid] = command
            try:
                self._control.sendmsg(
                    [payload], [(socket.SOL_SOCKET, socket.SCM_RIGHTS, bytes(_fd_array(fds)))]
                )
            except OSError as exc:
                self._commands.pop(rid, None)
                self._closed = True
                raise SandboxClosed(f"the sandbox agent is gone: {exc}") from exc
        return rid, command

    def _kill(self, rid: int) -> None:
        with contextlib.suppress(OSError):
            self._control.send(json.dumps({"op": "kill", "id": rid}).encode())

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
            rid, command = self._start(argv, cwd, (in_r, out_w, err_w), oneshot=True)
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
            limit=self.limits.output_bytes,
            deadline=started + timeout,
            done=command.done,
            kill=lambda: self._kill(rid),
        )
        if not timed_out and not command.done.wait(max(started + timeout - time.monotonic(), 0)):
            self._kill(rid)  # it closed its output but kept running
            timed_out = True
        command.done.wait(1.0)  # the kill's exit report (released at once if the agent died)
        return ExecResult(
            exit_code=None if timed_out else command.exit_code,
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
            rid, command = self._start(argv, cwd, (in_r, out_w, out_w), oneshot=False)
        except BaseException:
            for fd in (in_r, in_w, out_r, out_w):
                os.close(fd)
            raise
        os.close(in_r)
        os.close(out_w)
        return PipeProcess(in_w, out_r, command.done, lambda: self._kill(rid))

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
            if self._shut:
                return
            self._shut = self._closed = True
        self._kill_tree()
        with contextlib.suppress(OSError):
            self._control.shutdown(socket.SHUT_RDWR)  # wakes the reader thread
        try:
            self._process.wait(5.0)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait(5.0)
        self._reader.join(5.0)
        self._control.close()
        shutil.rmtree(self.host_workspace, ignore_errors=True)

    def __enter__(self) -> AgentSandbox:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()


def _fd_array(fds: Sequence[int]) -> bytes:
    return array.array("i", fds).tobytes()


def _collect(
    data: bytes,
    stdin_fd: int,
    out_fds: Sequence[int],
    *,
    limit: int,
    deadline: float,
    done: threading.Event,
    kill: Callable[[], None],
) -> tuple[list[bytes], bool, bool]:
    """Feed stdin, read the output pipes to EOF keeping `limit` bytes each, honour the deadline.

    Returns (outputs, truncated, timed_out). A command that exits while something it
    left behind still holds a pipe gets a short grace, then stops being read.
    """
    selector = selectors.DefaultSelector()
    kept: list[bytearray] = [bytearray() for _ in out_fds]
    dropped = [0 for _ in out_fds]
    for index, fd in enumerate(out_fds):
        selector.register(fd, selectors.EVENT_READ, index)
    pending = memoryview(data)
    if pending:
        os.set_blocking(stdin_fd, False)
        selector.register(stdin_fd, selectors.EVENT_WRITE, -1)
    else:
        os.close(stdin_fd)
    timed_out = False
    exited_at: float | None = None
    try:
        while selector.get_map():
            now = time.monotonic()
            if now >= deadline:
                timed_out = not done.is_set()
                if timed_out:
                    kill()
                break
            if done.is_set():
                exited_at = exited_at or now
                if now - exited_at > 0.2:
                    break
            wait = min(deadline - now, 0.05 if exited_at else 0.25)
            for key, _ in selector.select(wait):
                if key.data == -1:
                    try:
                        pending = pending[os.write(stdin_fd, pending[: 1 << 16]) :]
                    except (BrokenPipeError, OSError):
                        pending = pending[:0]
                    if not pending:
                        selector.unregister(stdin_fd)
                        os.close(stdin_fd)
                    continue
                chunk = os.read(key.fd, 1 << 16)
                if not chunk:
                    selector.unregister(key.fd)
                    os.close(key.fd)
                    continue
                room = limit - len(kept[key.data])
                kept[key.data] += chunk[:room] if room > 0 else b""
                dropped[key.data] += max(len(chunk) - max(room, 0), 0)
    finally:
        for key in list(selector.get_map().values()):  # the ones not closed above
            os.close(key.fd)
        selector.close()
    outputs = [bytes(k) + (cut_marker(d) if d else b"") for k, d in zip(kept, dropped, strict=True)]
    return outputs, any(dropped), timed_out


class PipeProcess:
    """A spawned process: its stdin, and its stdout and stderr merged on one pipe."""

    def __init__(
        self, stdin_fd: int, stdout_fd: int, done: threading.Event, kill: Callable[[], None]
    ) -> None:
        self._stdin = stdin_fd
        self._stdout = stdout_fd
        self._done = done
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
                _write_all(self._stdin, data)
            except (BrokenPipeError, OSError) as exc:
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
        return not self._done.is_set()

    def kill(self) -> None:
        with self._write_lock:
            if self._closed:
                return
            self._closed = True
            self._kill()
            for fd in (self._stdin,):
                with contextlib.suppress(OSError):
                    os.close(fd)
        with self._read_lock, contextlib.suppress(OSError):
            os.close(self._stdout)

    def __del__(self) -> None:
        if not self._closed:
            with contextlib.suppress(Exception):
                self.kill()


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]
