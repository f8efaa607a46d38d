"""The in-sandbox agent: starts commands on the host's behalf and reports how they ended.

It runs inside the sandbox as `python3 -I -S agent.py <control fd> <cpu s> <address
space bytes> <processes> <file size bytes>` (a request may carry its own limits),
single-threaded (so setting rlimits between fork and exec is safe) and importing only
builtin modules (its start is most of a sandbox's start). The host sends one `marshal`ed
request per SEQPACKET message on the control socket, with four pipe ends attached
(SCM_RIGHTS): the command's stdin, stdout and stderr, and a status pipe. The agent forks,
gives the command its own process group and the limits, and when it ends writes its exit
code (128 + signal for a killed one) to the status pipe and closes it. The host reads
every pipe itself, so nothing is relayed and nothing the agent says is trusted beyond
that number. When the control socket closes, the agent kills every process group it
started and exits; as the PID namespace's init (bubblewrap), its exit ends everything
left inside, and it reaps orphans meanwhile.
"""

# ruff: noqa: SIM105 - no contextlib here: the agent imports builtin modules only

import _signal  # type: ignore[import-not-found]
import _socket
import marshal
import os
import resource
import select
import sys

RLIMITS = (resource.RLIMIT_CPU, resource.RLIMIT_AS, resource.RLIMIT_NPROC, resource.RLIMIT_FSIZE)
MAX_MESSAGE = 1 << 18
# Every standard signal: Python ignores SIGPIPE/SIGXFSZ, the agent SIGINT, and whatever
# started envfarm may have ignored more (nohup: SIGHUP); ignored dispositions survive exec.
RESET_SIGNALS = tuple(n for n in range(1, 32) if n not in (_signal.SIGKILL, _signal.SIGSTOP))


def start(request: dict, fds: list, limits: list) -> int:  # type: ignore[type-arg]
    pid = os.fork()
    if pid:
        return pid
    try:
        for number in RESET_SIGNALS:  # commands start with the default dispositions
            try:
                _signal.signal(number, _signal.SIG_DFL)
            except (OSError, ValueError):
                pass
        os.setsid()  # its own group: a kill reaches its whole tree
        for target, fd in enumerate(fds):
            os.dup2(fd, target)
        os.closerange(3, 1 << 16)
        os.chdir(request["cwd"])
        for which, value in zip(RLIMITS, limits, strict=True):
            resource.setrlimit(which, (value, value))
        os.execvpe(request["argv"][0], request["argv"], request["env"])
    except BaseException as exc:  # report anything, then die like a shell
        code = 127 if isinstance(exc, FileNotFoundError) else 126
        try:
            os.write(2, f"sandbox: cannot run {request['argv'][0]!r}: {exc}\n".encode())
        finally:
            os._exit(code)
    return 0  # unreachable


def kill(pid: int) -> None:
    """The command and its process group (the pid too: it may not have called setsid yet)."""
    for killer in (os.killpg, os.kill):
        try:
            killer(pid, 9)
        except OSError:
            pass


def reap(running: dict, by_id: dict) -> None:  # type: ignore[type-arg]
    while True:
        try:
            pid, status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return
        if pid in running:
            rid, status_fd, oneshot = running.pop(pid)
            by_id.pop(rid, None)
            if oneshot:  # a one-shot command's leftovers die with it
                kill(pid)
            code = os.waitstatus_to_exitcode(status)
            try:
                os.write(status_fd, str(code if code >= 0 else 128 - code).encode())
            except OSError:
                pass
            os.close(status_fd)


def main() -> None:
    control = _socket.socket(fileno=int(sys.argv[1]))
    limits = [int(value) for value in sys.argv[2:6]]
    wake_r, wake_w = os.pipe()
    os.set_blocking(wake_r, False)
    os.set_blocking(wake_w, False)
    _signal.set_wakeup_fd(wake_w)
    _signal.signal(_signal.SIGCHLD, lambda *_: None)
    _signal.signal(_signal.SIGINT, _signal.SIG_IGN)  # as init, only SIGKILL from the host ends it
    running: dict[int, tuple[int, int, bool]] = {}  # pid -> (id, status fd, kill group at exit)
    by_id: dict[int, int] = {}
    room = _socket.CMSG_SPACE(4 * 4)
    while True:
        ready, _, _ = select.select([control.fileno(), wake_r], [], [])
        if wake_r in ready:
            try:
                while os.read(wake_r, 512):
                    pass
            except BlockingIOError:
                pass
            reap(running, by_id)
        if control.fileno() in ready:
            data, ancillary, _, _ = control.recvmsg(MAX_MESSAGE, room)
            if not data:
                break
            fds: list[int] = []
            for level, kind, payload in ancillary:
                if level == _socket.SOL_SOCKET and kind == _socket.SCM_RIGHTS:
                    usable = len(payload) - len(payload) % 4
                    fds.extend(
                        int.from_bytes(payload[i : i + 4], sys.byteorder)
                        for i in range(0, usable, 4)
                    )
            request = marshal.loads(data)
            if request["op"] == "run" and len(fds) == 4:
                pid = start(request, fds[:3], request.get("limits", limits))
                running[pid] = (request["id"], fds.pop(), request["oneshot"])
                by_id[request["id"]] = pid
            elif request["op"] == "kill" and request["id"] in by_id:
                kill(by_id[request["id"]])
            for fd in fds:
                os.close(fd)
    for pid in running:
        kill(pid)  # their status pipes close as this process exits


if __name__ == "__main__":
    main()
