"""A sandbox reached through an exec API (Docker Engine, Kubernetes): the shared part.

A backend only has to start a command in its container and hand back a `Channel`
(stdin in, stdout/stderr frames out, an exit code at the end). Everything else is
built on exec here: limits are applied by a small `sh` prologue (the container's own
pids/memory/CPU limits stay the hard bound), timeouts by `timeout -s KILL` inside plus a
deadline here, and files move through `cat`, so the host never touches container paths.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable, Sequence
from typing import Protocol

from gantry.envfarm.sandbox.base import (
    ExecResult,
    SandboxClosed,
    SandboxError,
    SandboxLimits,
    check_argv,
    cut_marker,
    workspace_relative,
)

STDOUT, STDERR = 1, 2
WORKSPACE = "/workspace"


class Channel(Protocol):
    """One command running in the remote sandbox."""

    def send(self, data: bytes) -> None: ...

    def close_stdin(self) -> None: ...

    def recv(self, timeout_s: float) -> tuple[int, bytes] | None:
        """(STDOUT or STDERR, bytes); None on timeout; raises EOFError when output ends."""
        ...

    def exit_code(self) -> int | None:
        """The exit status once output has ended (None if unknown)."""
        ...

    def ended(self) -> bool:
        """True once the command has exited."""
        ...

    def close(self) -> None: ...


Starter = Callable[[list[str], str, dict[str, str]], Channel]  # argv, cwd, env -> channel


def limited(
    argv: Sequence[str],
    limits: SandboxLimits,
    timeout_s: float | None,
    stdin_bytes: int | None = None,
) -> list[str]:
    """`argv` behind a POSIX-sh prologue that applies the rlimits (and a wall timeout).

    With `stdin_bytes`, the command reads exactly that many bytes of stdin (then EOF)
    whether or not the exec API can half-close its stream (Kubernetes' v4 protocol cannot).
    """
    prologue = (
        f"ulimit -t {limits.cpu_seconds} 2>/dev/null; "
        f"ulimit -v {limits.address_space_bytes // 1024} 2>/dev/null; "
        f"ulimit -f {limits.file_size_bytes // 1024} 2>/dev/null; "
    )
    run = 'exec "$@"' if timeout_s is None else f'exec timeout -s KILL {timeout_s:.3f} "$@"'
    if stdin_bytes == 0:
        run += " </dev/null"
    elif stdin_bytes is not None:
        run = f"head -c {stdin_bytes} | {{ {run}; }}"
    return ["sh", "-c", prologue + run, "sh", *argv]


class RemoteSandbox:
    def __init__(
        self,
        *,
        start: Starter,
        limits: SandboxLimits,
        env: dict[str, str],
        destroy: Callable[[], None],
        name: str,
    ) -> None:
        self.workspace = WORKSPACE
        self.name = name  # the container or Pod
        self.limits = limits
        self._start_channel = start
        self._env = env
        self._destroy = destroy
        self._lock = threading.Lock()
        self._closed = False
        self._open: set[Channel] = set()
        self._spawned = 0

    def _start(self, argv: list[str], cwd: str | None) -> Channel:
        with self._lock:
            if self._closed:
                raise SandboxClosed(f"the sandbox {self.name} is closed")
        workdir = self.workspace
        if cwd not in (None, ".", self.workspace):
            assert cwd is not None
            inside = cwd.startswith("/") and not cwd.startswith(self.workspace + "/")
            workdir = (
                cwd if inside else f"{self.workspace}/{workspace_relative(self.workspace, cwd)}"
            )
        channel = self._start_channel(argv, workdir, dict(self._env))
        with self._lock:
            self._open.add(channel)
        return channel

    def _forget(self, channel: Channel) -> None:
        with self._lock:
            self._open.discard(channel)
        channel.close()

    def exec(
        self,
        argv: Sequence[str],
        *,
        stdin: bytes = b"",
        timeout_s: float | None = None,
        cwd: str | None = None,
    ) -> ExecResult:
        return self._run(argv, stdin, timeout_s, cwd, self.limits.output_bytes)

    def _run(
        self,
        argv: Sequence[str],
        stdin: bytes,
        timeout_s: float | None,
        cwd: str | None,
        output_bytes: int,
    ) -> ExecResult:
        timeout = self.limits.wall_seconds if timeout_s is None else timeout_s
        if not timeout > 0:
            raise SandboxError(f"timeout_s must be > 0 (got {timeout_s!r})")
        started = time.monotonic()
        command = limited(check_argv(argv), self.limits, timeout, stdin_bytes=len(stdin))
        channel = self._start(command, cwd)
        kept = {STDOUT: bytearray(), STDERR: bytearray()}
        dropped = {STDOUT: 0, STDERR: 0}
        timed_out = False
        try:
            if stdin:
                channel.send(stdin)
            channel.close_stdin()
            deadline = started + timeout + 2.0  # the in-sandbox timeout fires first
            while True:
                left = deadline - time.monotonic()
                if left <= 0:
                    timed_out = True
                    break
                try:
                    frame = channel.recv(min(left, 1.0))
                except EOFError:
                    break
                if frame is None:
                    continue
                stream, data = frame
                room = max(output_bytes - len(kept[stream]), 0)
                kept[stream] += data[:room]
                dropped[stream] += max(len(data) - room, 0)
            code = None if timed_out else channel.exit_code()
        finally:
            self._forget(channel)
        seconds = time.monotonic() - started
        if code == 128 + 9 and seconds >= timeout:  # killed by the in-sandbox timeout
            code, timed_out = None, True
        return ExecResult(
            exit_code=code,
            stdout=bytes(kept[STDOUT]) + (cut_marker(dropped[STDOUT]) if dropped[STDOUT] else b""),
            stderr=bytes(kept[STDERR]) + (cut_marker(dropped[STDERR]) if dropped[STDERR] else b""),
            timed_out=timed_out,
            truncated=bool(dropped[STDOUT] or dropped[STDERR]),
            seconds=seconds,
        )

    def spawn(self, argv: Sequence[str], *, cwd: str | None = None) -> ChannelProcess:
        # The process notes its pid: closing an exec stream does not end the process in
        # either API, so kill() ends it by pid.
        with self._lock:
            self._spawned += 1
            number = str(self._spawned)
        pidfile = '"${TMPDIR:-/tmp}/.gantry-spawn-$0"'
        note = f'echo $$ > {pidfile}; exec "$@"'
        channel = self._start(
            limited(["sh", "-c", note, number, *check_argv(argv)], self.limits, None), cwd
        )

        def kill() -> None:
            self._forget(channel)
            with contextlib.suppress(SandboxError):
                script = f'kill -9 "$(cat {pidfile})" 2>/dev/null; rm -f {pidfile}'
                self._run(["sh", "-c", script, number], b"", 5.0, None, 256)

        return ChannelProcess(channel, kill)

    def put_file(self, path: str, data: bytes, mode: int = 0o644) -> None:
        target = workspace_relative(self.workspace, path)  # commands start in the workspace
        if len(data) > self.limits.file_size_bytes:
            raise SandboxError(
                f"{path!r} is {len(data)} bytes; the file size limit is "
                f"{self.limits.file_size_bytes}"
            )
        script = f'mkdir -p -- "$(dirname -- "$1")" && cat > "$1" && chmod {mode & 0o777:o} -- "$1"'
        result = self.exec(["sh", "-c", script, "sh", target], stdin=data)
        if result.exit_code != 0:
            raise SandboxError(f"cannot write {path!r}: {_first_line(result.stderr)}")

    def get_file(self, path: str, max_bytes: int) -> bytes:
        target = workspace_relative(self.workspace, path)
        script = (
            'if [ ! -e "$1" ]; then echo missing >&2; exit 3; fi; '
            'if [ ! -f "$1" ]; then echo "not a regular file" >&2; exit 4; fi; '
            f'head -c {max_bytes + 1} "$1"'
        )
        result = self._run(["sh", "-c", script, "sh", target], b"", None, None, max_bytes + 1)
        if result.exit_code == 3:
            raise SandboxError(f"{path!r} does not exist")
        if result.exit_code != 0:
            raise SandboxError(f"cannot read {path!r}: {_first_line(result.stderr)}")
        if len(result.stdout) > max_bytes:
            raise SandboxError(f"{path!r} is larger than {max_bytes} bytes")
        return result.stdout

    def close(self) -> None:
        with self._lock:
            if self._closed:
                return
            self._closed = True
            channels, self._open = list(self._open), set()
        for channel in channels:
            channel.close()
        self._destroy()

    def __enter__(self) -> RemoteSandbox:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()


def _first_line(data: bytes) -> str:
    return data.decode(errors="replace").strip().splitlines()[0][:200] if data.strip() else "?"


class ChannelProcess:
    """A spawned process over a channel; stdout and stderr arrive interleaved."""

    def __init__(self, channel: Channel, forget: Callable[[], None]) -> None:
        self._channel = channel
        self._forget = forget
        self._pending = b""
        self._ended = False
        self._killed = False
        self._read_lock = threading.Lock()
        self._write_lock = threading.Lock()

    def write(self, data: bytes) -> None:
        with self._write_lock:
            if self._killed or self._ended:
                raise SandboxClosed("the process is closed")
            try:
                self._channel.send(data)
            except OSError as exc:
                raise SandboxClosed(f"the process's stdin is closed: {exc}") from exc

    def read(self, max_bytes: int, timeout_s: float) -> bytes:
        with self._read_lock:
            if not self._pending:
                if self._killed or self._ended:
                    raise SandboxClosed("the process's output is closed")
                try:
                    frame = self._channel.recv(max(timeout_s, 0.0))
                except (EOFError, OSError) as exc:
                    self._ended = True
                    raise SandboxClosed("the process's output is closed") from exc
                if frame is None:
                    return b""
                self._pending = frame[1]
            chunk, self._pending = self._pending[:max_bytes], self._pending[max_bytes:]
            return chunk

    def alive(self) -> bool:
        return not (self._killed or self._ended or self._channel.ended())

    def kill(self) -> None:
        with self._write_lock:
            if self._killed:
                return
            self._killed = True
        self._forget()
