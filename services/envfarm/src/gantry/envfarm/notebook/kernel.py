"""A stateful Python kernel in a sandbox: what a notebook session runs its cells in.

Two programs run INSIDE the sandbox (started with `Sandbox.spawn`) and speak one
protocol on the spawned process's stdin/stdout:

- `inside_jupyter.py`: an ipykernel driven by jupyter_client over the IPC transport;
- `inside_repl.py`: a plain pipe REPL, the light fallback (no ZeroMQ, ~50 ms to start).

Protocol: the host writes one JSON request per line, ``{"id", "code", "timeout",
"max_text"}``; the program answers with a line starting with the byte 0x1E followed by
JSON: first ``{"ready": true, "kind": ...}`` (or ``{"ready": false, "error": ...}``), then
one ``{"id", "status", "text", "dropped", "images"}`` per request, where status is "ok",
"error", "timeout" (interrupted, state kept) or "restarted" (state lost). Other output
lines are ignored. The host also keeps its own deadline: a program that does not answer
in time (a cell deaf to interrupts, a dead kernel) is killed and started again.
"""

from __future__ import annotations

import base64
import json
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from gantry.envfarm.sandbox import Sandbox, SandboxClosed, SandboxProcess

KernelKind = Literal["jupyter", "repl"]
KINDS: tuple[KernelKind, ...] = ("jupyter", "repl")
_HERE = Path(__file__).parent
_PROGRAMS: dict[KernelKind, str] = {
    "jupyter": (_HERE / "inside_jupyter.py").read_text(encoding="utf-8"),
    "repl": (_HERE / "inside_repl.py").read_text(encoding="utf-8"),
}
PREFIX = b"\x1e"
MAX_LINE_BYTES = 64 << 20  # one reply: capped text plus a few PNG figures
HOST_GRACE_S = {"repl": 2.0, "jupyter": 45.0}  # past the cell timeout: interrupt, in-kernel restart
MAX_IMAGES = 4


class KernelError(RuntimeError):
    """The kernel could not be started (or restarted)."""


@dataclass
class CellOutput:
    """What one executed cell produced."""

    status: str  # "ok", "error", "timeout" (interrupted), "restarted" (state lost)
    text: str
    images: list[bytes] = field(default_factory=list)  # PNG
    seconds: float = 0.0

    @property
    def timed_out(self) -> bool:
        return self.status in ("timeout", "restarted")


class Kernel:
    """One kernel process in `sandbox`; `execute` is serialised by a lock."""

    def __init__(
        self,
        sandbox: Sandbox,
        *,
        kind: KernelKind | Literal["auto"] = "auto",
        python: str | None = None,
        site_packages: str = "",
        start_timeout_s: float = 60.0,
        max_text: int = 8 << 10,
    ) -> None:
        self.sandbox = sandbox
        self.python = python or sys.executable
        self.site_packages = site_packages  # inside the sandbox; "" = the python's own
        self.start_timeout_s = start_timeout_s
        self.max_text = max_text
        self._wanted = kind
        self.kind: KernelKind = "repl" if kind == "repl" else "jupyter"
        self._process: SandboxProcess | None = None
        self._buffer = b""
        self._lock = threading.Lock()
        self._ids = 0
        self.restarts = 0

    # ----- lifecycle -----
    def start(self) -> None:
        """Start the kernel (Jupyter first when kind is "auto", then the REPL)."""
        with self._lock:
            self._start()

    def _start(self) -> None:
        kinds: tuple[KernelKind, ...] = KINDS if self._wanted == "auto" else (self.kind,)
        errors = []
        for kind in kinds:
            try:
                self._spawn(kind)
                self.kind = kind
                return
            except KernelError as error:
                errors.append(f"{kind}: {error}")
        raise KernelError("; ".join(errors))

    def _spawn(self, kind: KernelKind) -> None:
        self._kill()
        self._process = self.sandbox.spawn(
            [self.python, "-I", "-c", _PROGRAMS[kind], self.site_packages],
            cwd=self.sandbox.workspace,
        )
        hello = self._reply(time.monotonic() + self.start_timeout_s)
        if hello is None or not hello.get("ready"):
            why = "no answer" if hello is None else str(hello.get("error", "not ready"))
            self._kill()
            raise KernelError(f"the {kind} kernel did not start: {why}")

    def restart(self) -> None:
        """A fresh kernel (all state lost)."""
        with self._lock:
            self.restarts += 1
            self._start()

    def close(self) -> None:
        with self._lock:
            self._kill()

    def _kill(self) -> None:
        if self._process is not None:
            self._process.kill()
        self._process = None
        self._buffer = b""

    @property
    def alive(self) -> bool:
        return self._process is not None and self._process.alive()

    # ----- cells -----
    def execute(self, code: str, timeout_s: float) -> CellOutput:
        """Run one cell. Past `timeout_s` it is interrupted; a kernel that does not come
        back (or died) is restarted and the output says so."""
        with self._lock:
            began = time.monotonic()
            if self._process is None or not self._process.alive():
                self.restarts += self._process is not None
                self._start()
            assert self._process is not None
            self._ids += 1
            request = {"id": self._ids, "code": code, "timeout": timeout_s}
            request["max_text"] = self.max_text
            try:
                self._process.write(json.dumps(request).encode() + b"\n")
                reply = self._reply(
                    time.monotonic() + timeout_s + HOST_GRACE_S[self.kind], self._ids
                )
            except SandboxClosed:
                reply = None
            if reply is None:  # deaf or dead: a fresh kernel
                self.restarts += 1
                self._start()
                note = f"The cell did not finish within {timeout_s:g} s; the kernel restarted."
                return CellOutput("restarted", note, seconds=time.monotonic() - began)
            if reply.get("status") == "restarted":
                self.restarts += 1
            return self._output(reply, time.monotonic() - began)

    def _output(self, reply: dict[str, Any], seconds: float) -> CellOutput:
        text = str(reply.get("text", ""))
        dropped = int(reply.get("dropped", 0) or 0)
        if dropped:
            text += f"\n[... output cut: {dropped} more characters ...]\n"
        images = []
        for encoded in list(reply.get("images", []))[:MAX_IMAGES]:
            try:
                images.append(base64.b64decode(encoded, validate=True))
            except ValueError:
                continue
        extra = len(reply.get("images", [])) - len(images)
        if extra > 0:
            text += f"\n[{extra} more image(s) not shown]\n"
        return CellOutput(str(reply.get("status", "error")), text, images, seconds)

    def _reply(self, deadline: float, want_id: int | None = None) -> dict[str, Any] | None:
        """The next protocol message (for `want_id` when given); None at the deadline or
        when the process ends."""
        assert self._process is not None
        while True:
            newline = self._buffer.find(b"\n")
            while newline >= 0:
                line, self._buffer = self._buffer[:newline], self._buffer[newline + 1 :]
                message = _parse(line)
                if message is not None and (want_id is None or message.get("id") == want_id):
                    return message
                newline = self._buffer.find(b"\n")
            if len(self._buffer) > MAX_LINE_BYTES:
                return None
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            try:
                self._buffer += self._process.read(1 << 20, min(left, 1.0))
            except SandboxClosed:
                return None


def _parse(line: bytes) -> dict[str, Any] | None:
    if not line.startswith(PREFIX):
        return None
    try:
        message = json.loads(line[len(PREFIX) :])
    except ValueError:
        return None
    return message if isinstance(message, dict) else None
