"""The light notebook kernel: a plain Python REPL that runs INSIDE the sandbox.

Started by `kernel.Kernel` through `Sandbox.spawn` as `python -c <this file>`; imports no
gantry code. It speaks the notebook protocol on its original stdin/stdout (one JSON object
per line; see kernel.py) and runs cells in one persistent namespace. The cells' own stdin,
stdout and stderr are moved off the protocol's file descriptors, so `print`, `os.system`
and child processes all land in the cell's output and can never corrupt the protocol.
A cell past its timeout is interrupted with SIGALRM (the host restarts the REPL when code
ignores it); matplotlib figures come back as PNG images.
"""

import ast
import base64
import io
import json
import os
import signal
import sys
import tempfile
import traceback
from typing import Any, BinaryIO, TextIO

if len(sys.argv) > 1 and sys.argv[1]:  # the kernel's packages, mounted read-only
    sys.path.insert(0, sys.argv[1])

os.environ.setdefault("MPLBACKEND", "Agg")
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("MPLCONFIGDIR", tempfile.mkdtemp(prefix="mpl-"))


class CellTimeout(BaseException):
    """Raised in the cell when its time is up (a BaseException: `except Exception` in the
    cell does not swallow it)."""


def _alarm(signum: int, frame: object) -> None:
    raise CellTimeout()


def _take_protocol_fds() -> tuple[BinaryIO, TextIO, BinaryIO]:
    """Protocol streams on fresh fds; fd 0 reads /dev/null, fds 1 and 2 a capture file.
    Every stream here lives as long as the REPL (no context managers)."""
    requests = os.fdopen(os.dup(0), "rb", buffering=0)
    replies = os.fdopen(os.dup(1), "w", encoding="utf-8", buffering=1)
    null = os.open(os.devnull, os.O_RDONLY)
    os.dup2(null, 0)
    os.close(null)
    capture = tempfile.TemporaryFile()  # noqa: SIM115
    os.dup2(capture.fileno(), 1)
    os.dup2(capture.fileno(), 2)
    sys.stdin = open(0, encoding="utf-8", closefd=False)  # noqa: SIM115
    text: dict[str, Any] = {"encoding": "utf-8", "errors": "replace", "buffering": 1}
    sys.stdout = open(1, "w", closefd=False, **text)  # noqa: SIM115
    sys.stderr = open(2, "w", closefd=False, **text)  # noqa: SIM115
    return requests, replies, capture


def _figures() -> list[str]:
    plt = sys.modules.get("matplotlib.pyplot")
    if plt is None:
        return []
    images: list[str] = []
    for number in plt.get_fignums():
        buffer = io.BytesIO()
        try:
            plt.figure(number).savefig(buffer, format="png", dpi=72)
            images.append(base64.b64encode(buffer.getvalue()).decode("ascii"))
        except Exception as error:  # a broken figure is reported, not fatal
            print(f"[figure {number} could not be drawn: {error}]")
    plt.close("all")
    return images


def _print_error(error: BaseException) -> None:
    # Drop this file's own frame so the traceback starts in the cell.
    tb = error.__traceback__.tb_next if error.__traceback__ else None
    sys.stderr.write("".join(traceback.format_exception(type(error), error, tb)))


def run_cell(code: str, namespace: dict[str, Any], timeout_s: float) -> str:
    """Run one cell; the status: "ok", "error" or "timeout"."""
    try:
        tree = ast.parse(code, filename="<cell>")
    except SyntaxError as error:
        sys.stderr.write("".join(traceback.format_exception_only(type(error), error)))
        return "error"
    last = tree.body[-1] if tree.body and isinstance(tree.body[-1], ast.Expr) else None
    if last is not None:
        tree.body.pop()
    signal.setitimer(signal.ITIMER_REAL, timeout_s)
    try:
        exec(compile(tree, "<cell>", "exec"), namespace)
        if last is not None:
            value = eval(compile(ast.Expression(last.value), "<cell>", "eval"), namespace)
            if value is not None:
                namespace["_"] = value
                print(repr(value))
        return "ok"
    except CellTimeout:
        sys.stderr.write(f"Interrupted: the cell ran past its {timeout_s:g} s limit.\n")
        return "timeout"
    except BaseException as error:
        _print_error(error)
        return "error"
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)


def _read_capture(capture: BinaryIO, max_text: int) -> tuple[str, int]:
    sys.stdout.flush()
    sys.stderr.flush()
    size = os.fstat(capture.fileno()).st_size
    os.lseek(capture.fileno(), 0, os.SEEK_SET)
    data = os.read(capture.fileno(), max_text) if size else b""
    os.ftruncate(capture.fileno(), 0)
    os.lseek(capture.fileno(), 0, os.SEEK_SET)
    return data.decode("utf-8", errors="replace"), max(0, size - len(data))


def main() -> None:
    signal.signal(signal.SIGALRM, _alarm)
    if hasattr(signal, "SIGXFSZ"):  # a huge output fails the write, not the REPL
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    requests, replies, capture = _take_protocol_fds()
    namespace = {"__name__": "__main__", "__builtins__": __builtins__}
    replies.write("\x1e" + json.dumps({"ready": True, "kind": "repl"}) + "\n")
    for line in requests:
        try:
            request = json.loads(line)
            code, timeout_s = str(request["code"]), float(request["timeout"])
            max_text = int(request["max_text"])
        except (ValueError, KeyError, TypeError) as error:
            replies.write(
                "\x1e" + json.dumps({"status": "error", "text": f"bad request: {error}"}) + "\n"
            )
            continue
        status = run_cell(code, namespace, timeout_s)
        images = _figures()
        text, dropped = _read_capture(capture, max_text)
        reply = {"id": request.get("id"), "status": status, "text": text, "dropped": dropped}
        replies.write("\x1e" + json.dumps({**reply, "images": images}) + "\n")


if __name__ == "__main__":
    main()
