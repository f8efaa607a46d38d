"""Start Gantry's Python processes from one interpreter that has already imported torch.

Importing torch and transformers costs ~8 CPU-seconds per process (transformers pulls in
torch._dynamo, DTensor and sympy), more than most services spend getting to SERVING. A local
stack starts up to eight services, a multi-rank run one process per extra rank, the test
suite dozens. The preloader is a child interpreter that imports those modules once and then
forks a child per request. The child becomes `python -m MODULE ARGS` in everything a caller
can see — its own pid, environment, working directory, log file, session and exit status —
but starts in ~0.1 s. Only the import work is shared (and, copy-on-write, its memory).

It is used for children that import torch, where the child's environment differs from the
preloader's only in variables that nothing reads at import time: Gantry's own settings
(`GANTRY_*`), torchrun's rank variables and pytest's bookkeeping (`PYTEST_*`). Anything else
(another `PYTHONPATH`, `OMP_NUM_THREADS`, `HF_*` ...) starts a fresh interpreter, as does
everything when `GANTRY_PRELOAD=0`. The preloader itself never runs torch code (a fork after
OpenMP work is not safe), starts no threads of its own and never initialises gRPC; it exits
when the process that started it closes the pipe (or dies).
"""

from __future__ import annotations

import atexit
import contextlib
import importlib
import importlib.util
import json
import os
import select
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import IO, Any, Protocol

from gantry.core.children import close_and_wait, pid_alive

# What Gantry's model-holding processes import first; whichever are installed are preloaded.
DEFAULT_MODULES = ("torch", "transformers.modeling_utils")
# May differ between the preloader and a child: read only after start-up.
_CHILD_ONLY_PREFIXES = ("GANTRY_", "PYTEST_")
_CHILD_ONLY = frozenset({"RANK", "LOCAL_RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT"})
UNKNOWN_STATUS = 255  # a child's exit status once the preloader that reaped it is gone


class Child(Protocol):
    """The part of `subprocess.Popen` Gantry uses; both kinds of child have it."""

    @property
    def pid(self) -> int: ...

    @property
    def returncode(self) -> int | Any: ...

    def poll(self) -> int | None: ...

    def wait(self, timeout: float | None = None) -> int: ...

    def send_signal(self, sig: int) -> None: ...

    def terminate(self) -> None: ...

    def kill(self) -> None: ...


class PreloaderGone(RuntimeError):
    pass


class Preloader:
    """The client side: one preloader process, shared by this process's threads."""

    def __init__(self, modules: Sequence[str] = DEFAULT_MODULES) -> None:
        self.environment = dict(os.environ)
        self._lock = threading.Lock()
        self._process = subprocess.Popen(
            [sys.executable, "-m", "gantry.core.preload", *modules],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            env=self.environment,
        )
        self._ready: dict[str, Any] | None = None
        self.broken = False

    def accepts(self, env: Mapping[str, str]) -> bool:
        """Whether a child with this environment can be forked from the preloader."""
        if self.broken:
            return False
        keys = set(env) | set(self.environment)
        return all(
            env.get(k) == self.environment.get(k)
            for k in keys
            if not (k in _CHILD_ONLY or k.startswith(_CHILD_ONLY_PREFIXES))
        )

    def spawn(
        self,
        module: str,
        args: Sequence[str] = (),
        *,
        env: Mapping[str, str],
        output: Path | None = None,
        cwd: Path | None = None,
        new_session: bool = False,
    ) -> ForkedChild:
        reply = self._call(
            {
                "spawn": module,
                "args": list(args),
                "env": dict(env),
                "output": str(output) if output is not None else None,
                "cwd": str(cwd or Path.cwd()),
                "new_session": new_session,
            }
        )
        return ForkedChild(self, int(reply["pid"]), [module, *args])

    def status(self, pid: int) -> tuple[bool, int | None]:
        """(running, exit status once it ended); status None while it runs."""
        reply = self._call({"poll": pid})
        return bool(reply["running"]), reply["returncode"]

    def close(self) -> None:
        with self._lock:
            self.broken = True
            close_and_wait(self._process)

    def _call(self, request: dict[str, Any]) -> dict[str, Any]:
        with self._lock:
            if self.broken:
                raise PreloaderGone("the preloader has stopped")
            try:
                stdin, stdout = _pipes(self._process)
                if self._ready is None:
                    self._ready = _read(stdout)
                stdin.write(json.dumps(request).encode() + b"\n")
                stdin.flush()
                reply = _read(stdout)
            except (OSError, ValueError) as exc:
                self.broken = True
                raise PreloaderGone(f"the preloader stopped answering: {exc}") from exc
        if "error" in reply:
            raise OSError(reply["error"])
        return reply


def _pipes(process: subprocess.Popen[bytes]) -> tuple[IO[bytes], IO[bytes]]:
    assert process.stdin is not None and process.stdout is not None
    return process.stdin, process.stdout


def _read(stdout: IO[bytes]) -> dict[str, Any]:
    line = stdout.readline()
    if not line:
        raise ValueError("end of stream")
    reply: dict[str, Any] = json.loads(line)
    return reply


class ForkedChild:
    """A child the preloader forked: signals go to it directly, its exit status comes from
    the preloader (its parent, which reaps it)."""

    def __init__(self, preloader: Preloader, pid: int, args: list[str]) -> None:
        self._preloader = preloader
        self.pid = pid
        self.args = args
        self.returncode: int | None = None

    def poll(self) -> int | None:
        if self.returncode is not None:
            return self.returncode
        try:
            running, code = self._preloader.status(self.pid)
        except PreloaderGone:
            running, code = pid_alive(self.pid), UNKNOWN_STATUS
        if not running:
            self.returncode = UNKNOWN_STATUS if code is None else int(code)
        return self.returncode

    def wait(self, timeout: float | None = None) -> int:
        deadline = None if timeout is None else time.monotonic() + timeout
        while (code := self.poll()) is None:
            if deadline is not None and time.monotonic() > deadline:
                raise subprocess.TimeoutExpired(self.args, timeout or 0.0)
            time.sleep(0.02)
        return code

    def send_signal(self, sig: int) -> None:
        if self.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, sig)

    def terminate(self) -> None:
        self.send_signal(signal.SIGTERM)

    def kill(self) -> None:
        self.send_signal(signal.SIGKILL)


_shared: Preloader | None = None
_shared_lock = threading.Lock()


def shared() -> Preloader | None:
    """This process's preloader, started on first use; None when turned off or when none of
    the modules worth preloading is installed."""
    global _shared
    if os.environ.get("GANTRY_PRELOAD", "1").lower() in {"0", "false", "no", "off"}:
        return None
    with _shared_lock:
        if _shared is None or _shared.broken:
            modules = [m for m in DEFAULT_MODULES if _installed(m)]
            if not modules:
                return None
            _shared = Preloader(modules)
            atexit.register(_shared.close)
        return _shared


def _installed(module: str) -> bool:
    try:
        return importlib.util.find_spec(module.split(".")[0]) is not None
    except (ImportError, ValueError):
        return False


def start(
    module: str,
    args: Sequence[str] = (),
    *,
    env: Mapping[str, str],
    output: Path | None = None,
    new_session: bool = False,
    imports_torch: bool,
) -> Child:
    """`python -m MODULE ARGS` with this environment, stdin from /dev/null and stdout and
    stderr appended to `output` (None: discarded): forked from the preloader when the
    module imports torch (else starting the preloader costs more than it saves) and the
    environment allows, else a fresh interpreter."""
    preloader = shared() if imports_torch else None
    if preloader is not None and preloader.accepts(env):
        with contextlib.suppress(PreloaderGone):
            return preloader.spawn(module, args, env=env, output=output, new_session=new_session)
    with contextlib.ExitStack() as files:
        sink = files.enter_context(output.open("ab")) if output is not None else None
        return subprocess.Popen(
            [sys.executable, "-m", module, *args],
            env=dict(env),
            stdin=subprocess.DEVNULL,
            stdout=sink if sink is not None else subprocess.DEVNULL,
            stderr=subprocess.STDOUT,
            start_new_session=new_session,
        )


# ----- the preloader process -----


def _serve(modules: Sequence[str]) -> None:
    control_in, control_out = os.dup(0), os.dup(1)
    null = os.open(os.devnull, os.O_RDWR)
    os.dup2(null, 0)
    os.dup2(2, 1)  # whatever an import prints must not reach the control stream
    loaded = []
    for name in modules:
        try:
            importlib.import_module(name)
            loaded.append(name)
        except Exception as exc:  # a broken optional import: its children import it again
            print(f"gantry.core.preload: could not import {name}: {exc}", file=sys.stderr)
    _reply(control_out, {"ready": loaded})
    forked: set[int] = set()
    exited: dict[int, int] = {}
    pending = b""
    while True:
        readable, _, _ = select.select([control_in], [], [], 0.5)
        _reap(exited)
        if not readable:
            continue
        chunk = os.read(control_in, 1 << 16)
        if not chunk:
            return  # the process that started us is gone or done with us
        pending += chunk
        while b"\n" in pending:
            line, pending = pending.split(b"\n", 1)
            request = json.loads(line)
            if "spawn" in request:
                try:
                    pid = _fork(request, (control_in, control_out, null))
                except OSError as exc:
                    _reply(control_out, {"error": f"fork failed: {exc}"})
                    continue
                forked.add(pid)
                _reply(control_out, {"pid": pid})
            else:
                pid = int(request["poll"])
                _reap(exited)
                code = exited.get(pid)
                # Not /proc: a process whose main thread has ended shows as a zombie there
                # while its other threads still exit, and cannot be reaped yet.
                _reply(control_out, {"running": pid in forked and code is None, "returncode": code})


def _reply(fd: int, message: dict[str, Any]) -> None:
    os.write(fd, json.dumps(message).encode() + b"\n")


def _reap(exited: dict[int, int]) -> None:
    while True:
        try:
            pid, status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return
        exited[pid] = os.waitstatus_to_exitcode(status)


def _fork(request: dict[str, Any], inherited: tuple[int, ...]) -> int:
    pid = os.fork()
    if pid:
        return pid
    code = 1
    try:
        for fd in inherited:
            os.close(fd)
        code = _become(request)
    except BaseException:
        with contextlib.suppress(Exception):
            import traceback

            traceback.print_exc()
    finally:
        with contextlib.suppress(Exception):
            sys.stdout.flush()
            sys.stderr.flush()
        os._exit(code)


def _become(request: dict[str, Any]) -> int:
    """Turn this fork into `python -m MODULE ARGS`; return its exit status."""
    import runpy

    if request["new_session"]:
        os.setsid()
    null = os.open(os.devnull, os.O_RDONLY)
    os.dup2(null, 0)
    out = request["output"]
    sink = os.open(out or os.devnull, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    os.dup2(sink, 1)
    os.dup2(sink, 2)
    os.close(null)
    os.close(sink)
    os.chdir(request["cwd"])
    os.environ.clear()
    os.environ.update(request["env"])
    # `gantry.core.cli serve trainer` -> "serve trainer"; `gantry.trainer.rank` -> "trainer.rank"
    module = request["spawn"].removeprefix("gantry.").removeprefix("core.cli")
    _name_process(" ".join([module, *request["args"]]).strip())
    sys.argv = [request["spawn"], *request["args"]]
    sys.path[0] = request["cwd"]  # what `python -m` puts first
    if "numpy" in sys.modules:  # a fresh interpreter seeds it from the OS, not from the fork
        sys.modules["numpy"].random.seed()
    try:
        runpy.run_module(request["spawn"], run_name="__main__", alter_sys=True)
        code = 0
    except SystemExit as stop:
        code = _exit_code(stop.code)
    except KeyboardInterrupt:
        _finish()
        signal.signal(signal.SIGINT, signal.SIG_DFL)  # die of it, as `python -m` does
        os.kill(os.getpid(), signal.SIGINT)
        return 130
    except BaseException:
        import traceback

        traceback.print_exc()
        code = 1
    _finish()
    return code


def _name_process(name: str) -> None:
    """`ps -o comm` and top show this (the command line stays the preloader's); Linux keeps
    15 bytes."""
    if sys.platform == "linux":
        import ctypes

        pr_set_name = 15
        ctypes.CDLL(None).prctl(pr_set_name, name[:15].encode(), 0, 0, 0)


def _exit_code(value: object) -> int:
    if value is None:
        return 0
    if isinstance(value, int):
        return value & 0xFF
    print(value, file=sys.stderr)
    return 1


def _finish() -> None:
    """What interpreter shutdown does before exiting: join threads, run atexit hooks."""
    shutdown = getattr(threading, "_shutdown", None)
    if shutdown is not None:
        with contextlib.suppress(Exception):
            shutdown()
    atexit._run_exitfuncs()


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt):
        _serve(sys.argv[1:])
