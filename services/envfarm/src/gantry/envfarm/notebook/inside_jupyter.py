"""The Jupyter notebook kernel's bridge: runs INSIDE the sandbox.

Started by `kernel.Kernel` through `Sandbox.spawn` as `python -c <this file>`; imports no
gantry code. It starts an ipykernel with jupyter_client over the IPC transport (Unix
sockets in a private temporary directory, so no network is needed) and speaks the notebook
protocol (one JSON object per line, see kernel.py) on stdin/stdout. The kernel's own
stdout/stderr go to /dev/null: ipykernel forwards what cells print (file-descriptor level
included) over IOPub. A cell past its timeout is interrupted (SIGINT); one that does not
stop within the grace period gets its kernel restarted (state lost).
"""

from __future__ import annotations

import json
import os
import re
import sys
import tempfile
import time
from typing import Any

if len(sys.argv) > 1 and sys.argv[1]:  # the kernel's packages, mounted read-only
    sys.path.insert(0, sys.argv[1])

INTERRUPT_GRACE_S = 3.0
READY_TIMEOUT_S = 60.0
ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")


def _write(replies: Any, message: dict[str, Any]) -> None:
    replies.write("\x1e" + json.dumps(message) + "\n")
    replies.flush()


class Bridge:
    def __init__(self) -> None:
        from jupyter_client.manager import KernelManager

        self.home = tempfile.mkdtemp(prefix="kernel-")
        env = {
            **os.environ,
            "MPLBACKEND": "module://matplotlib_inline.backend_inline",
            "OPENBLAS_NUM_THREADS": "1",
            "OMP_NUM_THREADS": "1",
            "IPYTHONDIR": os.path.join(self.home, "ipython"),
            "MPLCONFIGDIR": os.path.join(self.home, "mpl"),
            "JUPYTER_RUNTIME_DIR": self.home,
            "JUPYTER_DATA_DIR": self.home,
            "JUPYTER_CONFIG_DIR": self.home,
            "PYDEVD_DISABLE_FILE_VALIDATION": "1",
        }
        if len(sys.argv) > 1 and sys.argv[1]:
            env["PYTHONPATH"] = sys.argv[1]
        self.manager = KernelManager(
            transport="ipc",
            ip=os.path.join(self.home, "k"),
            connection_file=os.path.join(self.home, "connection.json"),
        )
        self._env = env
        self.client: Any = None
        self._start()

    def _start(self) -> None:
        null = open(os.devnull, "wb")  # noqa: SIM115 - handed to the kernel process
        self.manager.start_kernel(
            extra_arguments=["--HistoryManager.enabled=False"],
            stdout=null,
            stderr=null,
            env=self._env,
            cwd=os.getcwd(),
        )
        self._connect()

    def _connect(self) -> None:
        if self.client is not None:
            self.client.stop_channels()
        self.client = self.manager.client()
        self.client.start_channels()
        self.client.wait_for_ready(timeout=READY_TIMEOUT_S)

    def restart(self) -> None:
        self.manager.restart_kernel(now=True)
        self._connect()

    def execute(self, code: str, timeout_s: float, max_text: int) -> dict[str, Any]:
        if not self.manager.is_alive():
            self.restart()
        msg_id = self.client.execute(code, allow_stdin=False, store_history=True)
        out = Collector(max_text)
        deadline = time.monotonic() + timeout_s
        status = self._drain(msg_id, out, deadline)
        if status == "running":
            self.manager.interrupt_kernel()
            status = self._drain(msg_id, out, time.monotonic() + INTERRUPT_GRACE_S)
            if status == "running":
                out.text("\nThe cell ignored the interrupt; the kernel restarted (state lost).\n")
                self.restart()
                status = "restarted"
            else:
                out.text(f"\nInterrupted: the cell ran past its {timeout_s:g} s limit.\n")
                status = "timeout"
        elif status == "died":
            out.text("\nThe kernel died (memory or CPU limit?); it restarted (state lost).\n")
            self.restart()
            status = "restarted"
        return {"status": status, **out.result()}

    def _drain(self, msg_id: str, out: Collector, deadline: float) -> str:
        """Collect IOPub output of `msg_id` until it is idle: "ok"/"error", "running" when
        the deadline passes first, "died" when the kernel is gone."""
        from queue import Empty

        status = "ok"
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                return "running"
            try:
                message = self.client.get_iopub_msg(timeout=min(left, 0.5))
            except Empty:
                if not self.manager.is_alive():
                    return "died"
                continue
            if message.get("parent_header", {}).get("msg_id") != msg_id:
                continue
            kind, content = message["msg_type"], message["content"]
            if kind == "stream":
                out.text(content.get("text", ""))
            elif kind in ("execute_result", "display_data"):
                data = content.get("data", {})
                if "image/png" in data:
                    out.images.append(data["image/png"])
                elif "text/plain" in data:
                    out.text(data["text/plain"] + "\n")
            elif kind == "error":
                status = "error"
                out.text(ANSI.sub("", "\n".join(content.get("traceback", []))) + "\n")
            elif kind == "status" and content.get("execution_state") == "idle":
                return status

    def close(self) -> None:
        if self.client is not None:
            self.client.stop_channels()
        self.manager.shutdown_kernel(now=True)


class Collector:
    """A cell's output, text capped at `max_text` characters (the rest counted)."""

    def __init__(self, max_text: int) -> None:
        self.max_text = max_text
        self.parts: list[str] = []
        self.kept = 0
        self.dropped = 0
        self.images: list[str] = []

    def text(self, text: str) -> None:
        room = self.max_text - self.kept
        self.parts.append(text[: max(room, 0)])
        self.kept += min(len(text), max(room, 0))
        self.dropped += max(len(text) - max(room, 0), 0)

    def result(self) -> dict[str, Any]:
        return {"text": "".join(self.parts), "dropped": self.dropped, "images": self.images}


def main() -> None:
    replies = sys.stdout
    sys.stdout = sys.stderr  # nothing else may write to the protocol stream
    try:
        bridge = Bridge()
    except Exception as error:
        _write(replies, {"ready": False, "error": f"{type(error).__name__}: {error}"})
        return
    _write(replies, {"ready": True, "kind": "jupyter"})
    try:
        for line in sys.stdin:
            try:
                request = json.loads(line)
                code, timeout_s = str(request["code"]), float(request["timeout"])
                max_text = int(request["max_text"])
            except (ValueError, KeyError, TypeError) as error:
                _write(replies, {"status": "error", "text": f"bad request: {error}"})
                continue
            reply = bridge.execute(code, timeout_s, max_text)
            _write(replies, {"id": request.get("id"), **reply})
    finally:
        bridge.close()


if __name__ == "__main__":
    main()
