"""The in-sandbox agent: starts commands on the host's behalf and reports how they ended.

It runs inside the sandbox as `python3 -I -S agent.py <control fd> <limits json>`,
stdlib only and single-threaded (so setting rlimits between fork and exec is safe).
The host sends one JSON request per SEQPACKET message on the control socket, with four
pipe ends attached (SCM_RIGHTS): the command's stdin, stdout and stderr, and a status
pipe. The agent forks, gives the command its own process group and the limits, and when
it ends writes its exit code (128 + signal for a killed one) to the status pipe and
closes it. The host reads every pipe itself, so nothing is relayed. When the control
socket closes, the agent kills every process group it started and exits.
"""

import contextlib
import json
import os
import resource
import select
import signal
import socket
import sys

LIMITS = {
    "cpu_seconds": resource.RLIMIT_CPU,
    "address_space_bytes": resource.RLIMIT_AS,
    "processes": resource.RLIMIT_NPROC,
    "file_size_bytes": resource.RLIMIT_FSIZE,
}
MAX_MESSAGE = 1 << 18


def start(request: dict, fds: list, limits: dict) -> int:  # type: ignore[type-arg]
    pid = os.fork()
    if pid:
        return pid
    try:
        os.setsid()  # its own group: a kill reaches its whole tree
        for target, fd in enumerate(fds):
            os.dup2(fd, target)
        os.closerange(3, 1 << 16)
        os.chdir(request["cwd"])
        for name, which in LIMITS.items():
            resource.setrlimit(which, (limits[name], limits[name]))
        os.execvpe(request["argv"][0], request["argv"], request["env"])
    except BaseException as exc:  # report anything, then die like a shell
        code = 127 if isinstance(exc, FileNotFoundError) else 126
        try:
            os.write(2, f"sandbox: cannot run {request['argv'][0]!r}: {exc}\n".encode())
        finally:
            os._exit(code)
    return 0  # unreachable


def main() -> None:
    control = socket.socket(fileno=int(sys.argv[1]))
    limits = json.loads(sys.argv[2])
    wake_r, wake_w = os.pipe()
    os.set_blocking(wake_r, False)
    os.set_blocking(wake_w, False)
    signal.set_wakeup_fd(wake_w)
    signal.signal(signal.SIGCHLD, lambda *_: None)
    running: dict[int, tuple[int, int, bool]] = {}  # pid -> (id, status fd, kill group at exit)
    by_id: dict[int, int] = {}
    while True:
        ready, _, _ = select.select([control.fileno(), wake_r], [], [])
        if wake_r in ready:
            while True:
                try:
                    if not os.read(wake_r, 512):
                        break
                except BlockingIOError:
                    break
            while True:
                try:
                    pid, status = os.waitpid(-1, os.WNOHANG)
                except ChildProcessError:
                    break
                if pid == 0:
                    break
                if pid in running:
                    rid, status_fd, oneshot = running.pop(pid)
                    by_id.pop(rid, None)
                    if oneshot:  # a one-shot command's leftovers die with it
                        with contextlib.suppress(OSError):
                            os.killpg(pid, signal.SIGKILL)
                    code = os.waitstatus_to_exitcode(status)
                    with contextlib.suppress(OSError):
                        os.write(status_fd, str(code if code >= 0 else 128 - code).encode())
                    os.close(status_fd)
        if control.fileno() in ready:
            data, ancillary, _, _ = control.recvmsg(MAX_MESSAGE, socket.CMSG_SPACE(4 * 4))
            if not data:
                break
            fds: list[int] = []
            for level, kind, payload in ancillary:
                if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
                    fds.extend(
                        int.from_bytes(payload[i : i + 4], sys.byteorder)
                        for i in range(0, len(payload) - len(payload) % 4, 4)
                    )
            request = json.loads(data)
            if request["op"] == "run" and len(fds) == 4:
                pid = start(request, fds[:3], limits)
                running[pid] = (request["id"], fds.pop(), request["oneshot"])
                by_id[request["id"]] = pid
            elif request["op"] == "kill" and request["id"] in by_id:
                kill(by_id[request["id"]])
            for fd in fds:
                os.close(fd)
    for pid in running:
        kill(pid)  # their status pipes close as this process exits


def kill(pid: int) -> None:
    """The command and its process group (the pid too: it may not have called setsid yet)."""
    for killer in (os.killpg, os.kill):
        with contextlib.suppress(OSError):
            killer(pid, signal.SIGKILL)


if __name__ == "__main__":
    main()
