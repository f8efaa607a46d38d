"""The agent's persistent bash, with reliable command completion.

Each command reaches bash as data, never as code typed into its input: it is read into
a variable from a here-document with a random delimiter and run with `eval`, its stdin
from /dev/null (so a command that reads stdin cannot swallow the next one), then a
marker line with a fresh random nonce, the exit status and the working directory is
printed to a saved descriptor. A syntax error is just exit status 2, an unfinished quote
cannot leave bash waiting, and a command past its timeout gets the shell killed and a new
one started in the last directory. Output is kept up to a limit: its head and tail, with
a marker saying how much was cut in between.
"""

from __future__ import annotations

import re
import secrets
import shlex
import time
from dataclasses import dataclass

from gantry.envfarm.sandbox import Sandbox, SandboxClosed, SandboxError, SandboxProcess

READ_CHUNK = 65536
# Output kept in the pending buffer beyond the limit while the marker may still span it.
MARKER_MARGIN = 8192

PRELUDE = (
    "exec 2>&1 3>&1\n"  # stderr merged; fd 3 keeps the marker channel if stdout is moved
    "export TERM=dumb PAGER=cat GIT_PAGER=cat LC_ALL=C.UTF-8 PS1='' PS2=''\n"
    "unset HISTFILE\n"
)


@dataclass(frozen=True)
class CommandResult:
    output: str
    exit_code: int | None  # None: timed out, or the shell exited
    timed_out: bool = False
    truncated: bool = False
    shell_restarted: bool = False
    cwd: str = ""


class _Output:
    """Head and tail of a stream, with the byte count cut between them."""

    def __init__(self, limit: int) -> None:
        self.head_limit = limit // 2
        self.tail_limit = limit - self.head_limit
        self.head = bytearray()
        self.tail = bytearray()
        self.cut = 0

    def add(self, data: bytes) -> None:
        room = self.head_limit - len(self.head)
        if room > 0:
            self.head += data[:room]
            data = data[room:]
        self.tail += data
        if len(self.tail) > self.tail_limit:
            over = len(self.tail) - self.tail_limit
            self.cut += over
            del self.tail[:over]

    def text(self) -> str:
        middle = f"\n[... {self.cut} bytes of output cut ...]\n".encode() if self.cut else b""
        return bytes(self.head + middle + self.tail).decode("utf-8", "replace")


class Shell:
    """One bash process in a sandbox; not thread-safe (the session lock serialises)."""

    def __init__(self, sandbox: Sandbox, *, output_bytes: int = 16384) -> None:
        self.sandbox = sandbox
        self.output_bytes = output_bytes
        self.cwd = sandbox.workspace
        self._proc: SandboxProcess | None = None

    def _start(self) -> SandboxProcess:
        proc = self.sandbox.spawn(["bash", "--noprofile", "--norc"], cwd=self.sandbox.workspace)
        proc.write(PRELUDE.encode() + f"cd -- {shlex.quote(self.cwd)} 2>/dev/null\n".encode())
        self._proc = proc
        return proc

    def close(self) -> None:
        if self._proc is not None:
            self._proc.kill()
            self._proc = None

    def run(self, command: str, timeout_s: float) -> CommandResult:
        """Run `command` to completion, or until `timeout_s` (then restart the shell)."""
        restarted = self._proc is not None and not self._proc.alive()
        proc = self._proc if self._proc is not None and not restarted else self._start()
        nonce = secrets.token_hex(12)
        delimiter = f"GANTRY_EOF_{nonce}"
        marker = f"GANTRY_DONE_{nonce}"
        body = command if command.endswith("\n") else command + "\n"
        script = (
            f"IFS= read -r -d '' __gantry_cmd <<'{delimiter}'\n{body}{delimiter}\n"
            f'eval "$__gantry_cmd" </dev/null\n'
            f'printf \'\\n{marker} %s %s\\n\' "$?" "$PWD" >&3\n'
        )
        pattern = re.compile(rb"\n" + marker.encode() + rb" (\d+) ([^\n]*)\n")
        out = _Output(self.output_bytes)
        pending = bytearray()
        deadline = time.monotonic() + timeout_s
        try:
            proc.write(script.encode())
            while True:
                found = pattern.search(pending)
                if found:
                    out.add(bytes(pending[: found.start()]))
                    self.cwd = found.group(2).decode("utf-8", "replace") or self.cwd
                    return CommandResult(
                        out.text(),
                        int(found.group(1)),
                        truncated=out.cut > 0,
                        shell_restarted=restarted,
                        cwd=self.cwd,
                    )
                if len(pending) > self.output_bytes + MARKER_MARGIN:
                    keep = len(pending) - MARKER_MARGIN
                    out.add(bytes(pending[:keep]))
                    del pending[:keep]
                left = deadline - time.monotonic()
                if left <= 0:
                    out.add(bytes(pending))
                    self.close()
                    return CommandResult(
                        out.text(),
                        None,
                        timed_out=True,
                        truncated=out.cut > 0,
                        shell_restarted=True,
                        cwd=self.cwd,
                    )
                pending += proc.read(READ_CHUNK, min(left, 1.0))
        except (SandboxClosed, SandboxError):  # `exit`, `exec`, or the shell was killed
            out.add(bytes(pending))
            self.close()
            return CommandResult(
                out.text(), None, truncated=out.cut > 0, shell_restarted=True, cwd=self.cwd
            )
