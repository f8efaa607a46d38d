"""Drive a real OIP client (tritonclient, in its own venv) from the tests.

`OipClient` starts `oip_probe.py` under .tools/oip-venv's Python (`make oip-client`
builds it; `GANTRY_OIP_PYTHON` overrides the interpreter) and sends it one JSON call per
line. A missing venv is an error naming the make target, never a skip.
"""

from __future__ import annotations

import json
import os
import queue
import subprocess
import threading
from pathlib import Path
from types import TracebackType
from typing import Any

from gantry.core.children import close_and_wait

PROBE = Path(__file__).with_name("oip_probe.py")


def oip_python() -> Path:
    override = os.environ.get("GANTRY_OIP_PYTHON")
    if override:
        return Path(override)
    for parent in Path(__file__).resolve().parents:
        if (parent / "Makefile").is_file() and (parent / "protos").is_dir():
            return parent / ".tools" / "oip-venv" / "bin" / "python"
    raise RuntimeError("cannot find the repository root (for .tools/oip-venv)")


class OipError(Exception):
    """The client reported a failed call: `status` is e.g. 'StatusCode.NOT_FOUND'."""

    def __init__(self, status: str, message: str) -> None:
        super().__init__(f"{status}: {message}")
        self.status = status
        self.message = message


class OipClient:
    """tritonclient.grpc in a subprocess, connected to `target`."""

    def __init__(self, target: str, token: str | None, *, timeout_s: float = 60.0) -> None:
        python = oip_python()
        if not python.exists():
            raise RuntimeError(
                f"the OIP test client is not installed ({python} is missing): run `make oip-client`"
            )
        self.timeout_s = timeout_s
        self._process = subprocess.Popen(
            [str(python), str(PROBE)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        self._lines: queue.Queue[str] = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()
        self.call("connect", target=target, token=token)

    def _read(self) -> None:
        assert self._process.stdout is not None
        for line in self._process.stdout:
            self._lines.put(line)
        self._lines.put("")

    def call(self, op: str, **args: Any) -> Any:
        """One client call; returns its result or raises OipError."""
        assert self._process.stdin is not None
        self._process.stdin.write(json.dumps({"op": op, **args}) + "\n")
        self._process.stdin.flush()
        try:
            line = self._lines.get(timeout=self.timeout_s)
        except queue.Empty:
            raise TimeoutError(f"OIP client: no answer to {op} in {self.timeout_s}s") from None
        if not line:
            raise RuntimeError(f"OIP client exited (status {self._process.poll()})")
        answer = json.loads(line)
        if "error" in answer:
            raise OipError(answer["error"]["status"], answer["error"]["message"])
        return answer["result"]

    def close(self) -> None:
        close_and_wait(self._process)

    def __enter__(self) -> OipClient:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
