"""The local stack: every installed service as its own process on its own port.

`up()` starts the processes (each in its own session, logging to a file), waits until
each reports SERVING, and records them in `stack.json`; `down()` sends SIGTERM to each
process group, waits for the drain, and SIGKILLs what is left, so no process survives.
`watch()` tells the process that started a stack when one of its services dies, with the
exit status (a job running on a private stack fails naming it instead of waiting on it).
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import signal
import socket
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from gantry.core import preload
from gantry.core.children import pid_alive
from gantry.core.ports import DEFAULT_PORTS, free_port
from gantry.core.registry import installed_services, uses_torch
from gantry.core.settings import env_prefix

STACK_FILE = "stack.json"


class StackError(RuntimeError):
    pass


def default_state_dir() -> Path:
    explicit = os.environ.get("GANTRY_STATE_DIR")
    if explicit:
        return Path(explicit)
    base = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(base) / "gantry"


@dataclass
class ServiceProcess:
    name: str
    pid: int
    port: int
    metrics_port: int
    log: str

    @property
    def target(self) -> str:
        return f"127.0.0.1:{self.port}"


@dataclass
class Stack:
    state_dir: str
    token: str | None
    services: list[ServiceProcess]
    # The processes this process started, by service name (not saved: exit statuses
    # reach only the starter; a stack loaded from its file knows pids).
    processes: dict[str, preload.Child] = field(default_factory=dict, repr=False)

    def service(self, name: str) -> ServiceProcess:
        for svc in self.services:
            if svc.name == name:
                return svc
        raise KeyError(name)


def _port_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def _pick_port(preferred: int | None, taken: set[int]) -> int:
    if preferred and preferred not in taken and _port_free(preferred):
        return preferred
    port = free_port()
    while port in taken:
        port = free_port()
    return port


def load_stack(state_dir: Path) -> Stack | None:
    path = state_dir / STACK_FILE
    if not path.exists():
        return None
    raw = json.loads(path.read_text())
    return Stack(
        state_dir=raw["state_dir"],
        token=raw.get("token"),
        services=[ServiceProcess(**s) for s in raw["services"]],
    )


def _save_stack(stack: Stack) -> None:
    path = Path(stack.state_dir) / STACK_FILE
    tmp = path.with_suffix(".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)  # holds the token
    saved = {
        "state_dir": stack.state_dir,
        "token": stack.token,
        "services": [asdict(svc) for svc in stack.services],
    }
    with os.fdopen(fd, "w") as fh:
        json.dump(saved, fh, indent=2)
    os.replace(tmp, path)


def group_members(pgid: int) -> list[int]:
    """Live (non-zombie) processes in process group `pgid`, read from /proc."""
    members = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        state, pgrp = fields[0], int(fields[2])
        if pgrp == pgid and state != "Z":
            members.append(int(entry.name))
    return members


def health_status(target: str, token: str | None = None, timeout_s: float = 1.0) -> str:
    """The overall health of a server: SERVING, NOT_SERVING, or UNREACHABLE."""
    del token  # health is public so kubelet probes work without a token
    with grpc.insecure_channel(target) as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        try:
            reply = stub.Check(health_pb2.HealthCheckRequest(service=""), timeout=timeout_s)
        except grpc.RpcError:
            return "UNREACHABLE"
    return str(health_pb2.HealthCheckResponse.ServingStatus.Name(reply.status))


def _tail(path: str, lines: int = 20) -> str:
    try:
        return "\n".join(Path(path).read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def up(
    state_dir: Path,
    services: Sequence[str] | None = None,
    *,
    auth: bool = True,
    timeout_s: float = 180.0,
    extra_env: dict[str, str] | None = None,
    on_ready: Callable[[ServiceProcess], None] | None = None,
    default_ports: bool = True,
) -> Stack:
    """Start the stack and return once every service is SERVING (or raise, leaving none).

    `default_ports=False` puts every service on an ephemeral port: for stacks private to
    one job (a training loop's), which then never compete with a user's stack or another
    job's for the well-known ports.
    """
    state_dir.mkdir(parents=True, exist_ok=True)
    existing = load_stack(state_dir)
    if existing is not None:
        if any(pid_alive(s.pid) for s in existing.services):
            raise StackError(f"a stack is already running from {state_dir}; run `gantry down`")
        (state_dir / STACK_FILE).unlink()
    names = list(services) if services is not None else installed_services()
    unknown = sorted(set(names) - set(installed_services()))
    if unknown:
        raise StackError(f"not installed: {', '.join(unknown)}")
    token = secrets.token_urlsafe(24) if auth else None
    stack = Stack(state_dir=str(state_dir), token=token, services=[])
    taken: set[int] = set()
    try:
        ports: dict[str, tuple[int, int]] = {}
        for name in names:
            preferred = DEFAULT_PORTS.get(name) if default_ports else None
            port = _pick_port(preferred, taken)
            taken.add(port)
            metrics_port = _pick_port(preferred - 50051 + 9091 if preferred else None, taken)
            taken.add(metrics_port)
            ports[name] = (port, metrics_port)
        # Every service learns where its peers listen: GANTRY_<SVC>_<PEER>_TARGET.
        peers = {f"{peer.upper()}_TARGET": f"127.0.0.1:{p}" for peer, (p, _) in ports.items()}
        for name, (port, metrics_port) in ports.items():
            env = {f"{env_prefix(name)}{key}": value for key, value in peers.items()}
            env.update(_storage_env(state_dir))
            env.update(extra_env or {})
            svc, process = _launch(state_dir, name, port, metrics_port, token, env)
            stack.services.append(svc)
            stack.processes[name] = process
            _save_stack(stack)
        deadline = time.monotonic() + timeout_s
        for svc in stack.services:
            _wait_serving(stack, svc, deadline)
            if on_ready is not None:
                on_ready(svc)
    except BaseException:
        down(state_dir)
        raise
    return stack


def _storage_env(state_dir: Path) -> dict[str, str]:
    """Local stack storage roots: one shared folder for files clients hand to services,
    and rollout may load the checkpoints the local trainer writes (publish by URI)."""
    shared = state_dir / "shared"
    shared.mkdir(parents=True, exist_ok=True)
    return {
        "GANTRY_TRAINER_DATASETS_ROOT": str(shared),
        "GANTRY_TRAINER_MODELS_ROOT": str(shared),
        "GANTRY_RETRIEVAL_DATASETS_ROOT": str(shared),
        "GANTRY_VIDEO_INPUT_ROOT": str(shared),
        "GANTRY_ROLLOUT_CHECKPOINTS_ROOT": str(state_dir / "data" / "trainer"),
        # The trainer's record of its latest publish (<its data_dir>/published): a
        # restarted rollout serves those weights, not its base ones.
        "GANTRY_ROLLOUT_PUBLISHED_WEIGHTS": "published",
    }


def _launch(
    state_dir: Path,
    name: str,
    port: int,
    metrics_port: int,
    token: str | None,
    extra_env: dict[str, str] | None,
) -> tuple[ServiceProcess, preload.Child]:
    prefix = env_prefix(name)
    env = dict(os.environ)
    env.update(extra_env or {})
    env.update(
        {
            f"{prefix}HOST": "127.0.0.1",
            f"{prefix}PORT": str(port),
            f"{prefix}METRICS_PORT": str(metrics_port),
            f"{prefix}DATA_DIR": str(state_dir / "data" / name),
        }
    )
    if token is not None:
        env[f"{prefix}AUTH_TOKEN"] = token
        env.pop(f"{prefix}AUTH_DISABLED", None)
    else:
        env[f"{prefix}AUTH_DISABLED"] = "true"
    log_path = state_dir / "logs" / f"{name}.log"
    log_path.parent.mkdir(parents=True, exist_ok=True)
    # its own session (process group): `down` can signal all of it
    proc = preload.start(
        "gantry.core.cli",
        ["serve", name],
        env=env,
        output=log_path,
        new_session=True,
        imports_torch=uses_torch(name),
    )
    return ServiceProcess(name, proc.pid, port, metrics_port, str(log_path)), proc


def _wait_serving(stack: Stack, svc: ServiceProcess, deadline: float) -> None:
    while True:
        running, status = exit_status(stack, svc)
        if not running:
            raise StackError(death_notice(svc, status, during="start"))
        if health_status(svc.target, timeout_s=0.5) == "SERVING":
            return
        if time.monotonic() > deadline:
            raise StackError(f"{svc.name} did not become SERVING in time:\n{_tail(svc.log)}")
        time.sleep(0.2)


def describe_exit(status: int | None) -> str:
    """A process's end in words, from its exit status (negative: the signal that killed it)."""
    if status is None or status == preload.UNKNOWN_STATUS:
        return "exited (status unknown)"
    if status >= 0:
        return f"exited with status {status}"
    name = signal.Signals(-status).name if -status in signal.valid_signals() else str(-status)
    if -status == signal.SIGKILL:
        return f"was killed by {name} (out of memory? see `dmesg`)"
    return f"was killed by {name}"


def exit_status(stack: Stack, svc: ServiceProcess) -> tuple[bool, int | None]:
    """(running, exit status when known) of one of the stack's services."""
    process = stack.processes.get(svc.name)
    if process is not None:
        status = process.poll()
        return status is None, status
    return pid_alive(svc.pid), None


def death_notice(svc: ServiceProcess, status: int | None, *, during: str = "") -> str:
    """What to tell a user whose job lost this service: name, exit status, last log lines."""
    when = f" during {during}" if during else ""
    return f"{svc.name} {describe_exit(status)}{when}; last lines of {svc.log}:\n{_tail(svc.log)}"


def watch(
    stack: Stack,
    on_exit: Callable[[ServiceProcess, int | None], None],
    *,
    interval_s: float = 0.5,
) -> Callable[[], None]:
    """Call `on_exit(service, exit status)` from a daemon thread for the first service of
    the stack that stops running; return the function that stops watching (call it
    before `down`, whose stops are not deaths)."""
    stopped = threading.Event()

    def poll() -> None:
        while not stopped.wait(interval_s):
            for svc in stack.services:
                running, status = exit_status(stack, svc)
                if not running and not stopped.is_set():
                    on_exit(svc, status)
                    return

    threading.Thread(target=poll, name="stack-watch", daemon=True).start()
    return stopped.set


def _signal_group(pid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, sig)


def down(state_dir: Path, *, timeout_s: float = 30.0) -> list[str]:
    """Stop every process of the stack; return the names stopped. Safe to repeat."""
    stack = load_stack(state_dir)
    if stack is None:
        return []
    for svc in stack.services:
        _signal_group(svc.pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout_s
    for svc in stack.services:
        while group_members(svc.pid) and time.monotonic() < deadline:
            _reap(svc.pid)
            time.sleep(0.05)
        if group_members(svc.pid):
            _signal_group(svc.pid, signal.SIGKILL)  # whatever ignored SIGTERM, children too
        _reap(svc.pid)
    (state_dir / STACK_FILE).unlink(missing_ok=True)
    return [s.name for s in stack.services]


def _reap(pid: int) -> None:
    """Collect the exit status when this process started the child (no zombies)."""
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, os.WNOHANG)
