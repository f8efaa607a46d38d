"""The docker backend against a small fake Docker Engine on a unix socket.

No engine exists on these machines, so the fake implements the Engine API endpoints the
backend calls (ping, container create/start/remove, exec create/start/inspect), records
what it was asked, and runs each exec as a local process in a per-container folder. The
`docker` SDK talks real HTTP to it, hijacked exec streams included; the tests check the
container configuration the backend asks for and the exec semantics built on top.
"""

from __future__ import annotations

import contextlib
import http.server
import json
import os
import shutil
import signal
import socket
import socketserver
import struct
import subprocess
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from gantry.envfarm.sandbox import (
    SandboxClosed,
    SandboxError,
    SandboxLimits,
    SandboxSpec,
    SandboxUnavailable,
    make_backend,
)
from gantry.envfarm.sandbox.docker_backend import DockerBackend
from gantry.envfarm.sandbox.remote import RemoteSandbox

LIMITS = SandboxLimits(wall_seconds=10.0, output_bytes=4096, processes=50)


class FakeEngine(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    daemon_threads = True

    def __init__(self, path: str, root: Path) -> None:
        self.root = root
        self.containers: dict[str, dict[str, Any]] = {}
        self.execs: dict[str, dict[str, Any]] = {}
        self.calls: list[tuple[str, str]] = []
        self.lock = threading.Lock()
        super().__init__(path, Handler)


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: FakeEngine

    def log_message(self, *_: Any) -> None:
        pass

    def _body(self) -> Any:
        size = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(size) if size else b""
        return json.loads(raw) if raw else {}

    def _reply(self, status: int, body: Any = None) -> None:
        data = b"" if body is None else json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _route(self, method: str) -> None:
        path, _, query = self.path.partition("?")
        parts = (
            path.strip("/").split("/")[1:] if path.startswith("/v") else path.strip("/").split("/")
        )
        self.server.calls.append((method, "/".join(parts)))
        engine = self.server
        if parts == ["_ping"]:
            data = b"OK"
            self.send_response(200)
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(data)
        elif method == "POST" and parts == ["containers", "create"]:
            body = self._body()
            if body["Image"] == "missing:1":
                self._reply(404, {"message": "No such image: missing:1"})
                return
            cid = uuid.uuid4().hex
            folder = engine.root / cid[:12]
            (folder / "workspace").mkdir(parents=True)
            (folder / "tmp").mkdir()
            engine.containers[cid] = {
                "config": body,
                "query": query,
                "dir": folder,
                "running": False,
            }
            self._reply(201, {"Id": cid, "Warnings": []})
        elif (
            method == "POST"
            and len(parts) == 3
            and parts[0] == "containers"
            and parts[2] == "start"
        ):
            engine.containers[parts[1]]["running"] = True
            self._reply(204)
        elif method == "POST" and len(parts) == 3 and parts[2] == "exec":
            eid = uuid.uuid4().hex
            engine.execs[eid] = {"container": parts[1], "config": self._body(), "proc": None}
            self._reply(201, {"Id": eid})
        elif method == "POST" and len(parts) == 3 and parts[0] == "exec" and parts[2] == "start":
            self._body()
            self._hijack(engine.execs[parts[1]])
        elif method == "GET" and len(parts) == 3 and parts[0] == "exec":
            record = engine.execs[parts[1]]
            proc = record["proc"]
            running = record.get("started", False) and (proc is None or proc.poll() is None)
            code = None if proc is None or running else _docker_code(proc.returncode)
            self._reply(200, {"Running": running, "ExitCode": code, "Pid": proc.pid if proc else 0})
        elif method == "DELETE" and len(parts) == 2 and parts[0] == "containers":
            container = engine.containers.pop(parts[1])
            for record in engine.execs.values():
                if record["container"] == parts[1] and record["proc"] is not None:
                    _kill_group(record["proc"])
            shutil.rmtree(container["dir"], ignore_errors=True)
            self._reply(204)
        else:
            self._reply(404, {"message": f"fake engine: no route {method} {path}"})

    def do_GET(self) -> None:
        self._route("GET")

    def do_POST(self) -> None:
        self._route("POST")

    def do_DELETE(self) -> None:
        self._route("DELETE")

    def _hijack(self, record: dict[str, Any]) -> None:
        container = self.server.containers[record["container"]]
        config = record["config"]
        folder: Path = container["dir"]
        workdir = config.get("WorkingDir") or "/workspace"
        cwd = (
            folder / workdir.lstrip("/")
            if workdir.startswith("/workspace")
            else folder / "workspace"
        )
        env = dict(item.split("=", 1) for item in config.get("Env") or [])
        env.update(PATH=os.environ["PATH"], TMPDIR=str(folder / "tmp"))
        record["started"] = True
        self.wfile.write(
            b"HTTP/1.1 101 UPGRADED\r\nContent-Type: application/vnd.docker.multiplexed-stream\r\n"
            b"Connection: Upgrade\r\nUpgrade: tcp\r\n\r\n"
        )
        self.wfile.flush()
        # The SDK reads the headers through a buffered reader: give it time to finish
        # before stream bytes follow, as a real engine's first frame does.
        time.sleep(0.02)
        proc = subprocess.Popen(
            config["Cmd"],
            cwd=cwd,
            env=env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            start_new_session=True,
        )
        record["proc"] = proc
        conn: socket.socket = self.connection
        send_lock = threading.Lock()

        def pump_out(pipe: Any, stream: int) -> None:
            while chunk := os.read(pipe.fileno(), 65536):
                with send_lock:
                    try:
                        conn.sendall(struct.pack(">BxxxL", stream, len(chunk)) + chunk)
                    except OSError:
                        return

        def pump_in() -> None:
            assert proc.stdin is not None
            with contextlib.suppress(OSError):
                while data := conn.recv(65536):
                    proc.stdin.write(data)
                    proc.stdin.flush()
            with contextlib.suppress(OSError):
                proc.stdin.close()

        threading.Thread(target=pump_in, daemon=True).start()
        outs = [
            threading.Thread(target=pump_out, args=(proc.stdout, 1), daemon=True),
            threading.Thread(target=pump_out, args=(proc.stderr, 2), daemon=True),
        ]
        for thread in outs:
            thread.start()
        for thread in outs:
            thread.join()
        proc.wait()
        with contextlib.suppress(OSError):
            conn.shutdown(socket.SHUT_RDWR)
        self.close_connection = True


def _docker_code(returncode: int) -> int:
    return returncode if returncode >= 0 else 128 - returncode


def _kill_group(proc: subprocess.Popen[bytes]) -> None:
    with contextlib.suppress(OSError):
        os.killpg(proc.pid, signal.SIGKILL)


@pytest.fixture(scope="module")
def engine(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FakeEngine]:
    folder = tmp_path_factory.mktemp("docker")
    server = FakeEngine(str(folder / "engine.sock"), folder)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


@pytest.fixture(scope="module")
def backend(engine: FakeEngine) -> DockerBackend:
    backend = make_backend("docker", url=f"unix://{engine.server_address}", image="gantry/task:1")
    assert isinstance(backend, DockerBackend)
    backend.probe()
    return backend


@pytest.fixture(scope="module")
def box(backend: DockerBackend) -> Iterator[RemoteSandbox]:
    sandbox = backend.create(SandboxSpec(limits=LIMITS, readonly_mounts={"/srv/data": "/data"}))
    yield sandbox
    sandbox.close()


def test_the_container_is_locked_down(engine: FakeEngine, box: RemoteSandbox) -> None:
    config = next(c["config"] for c in engine.containers.values() if box.name in c["query"])
    host = config["HostConfig"]
    assert config["Image"] == "gantry/task:1"
    assert config["User"] == "1000:1000" and config["NetworkDisabled"] is True
    assert config["WorkingDir"] == "/workspace"
    assert host["NetworkMode"] == "none" and host["ReadonlyRootfs"] is True
    assert host["CapDrop"] == ["ALL"] and host["SecurityOpt"] == ["no-new-privileges"]
    assert "seccomp=unconfined" not in host["SecurityOpt"]  # the default profile stays
    assert host["PidsLimit"] == 50
    assert host["Memory"] == host["MemorySwap"] == LIMITS.address_space_bytes
    assert host["NanoCpus"] == 1_000_000_000 and host["Init"] is True
    ulimits = {u["Name"]: u["Hard"] for u in host["Ulimits"]}
    assert ulimits == {"cpu": 30, "fsize": LIMITS.file_size_bytes, "nproc": 50}
    assert set(host["Tmpfs"]) == {"/workspace", "/tmp"}
    assert "uid=1000" in host["Tmpfs"]["/workspace"]
    assert host["Binds"] == ["/srv/data:/data:ro"]
    assert not host.get("Privileged")


def test_exec_streams_exit_codes_and_stdin(box: RemoteSandbox) -> None:
    result = box.exec(["sh", "-c", "echo out; echo err >&2; exit 4"])
    assert (result.exit_code, result.stdout, result.stderr) == (4, b"out\n", b"err\n")
    assert box.exec(["wc", "-c"], stdin=b"x" * 200_000).stdout.strip() == b"200000"
    assert box.exec(["sh", "-c", "ulimit -t"]).stdout.strip() == b"30"  # the rlimits prologue


def test_exec_output_is_cut_and_timeouts_kill(box: RemoteSandbox) -> None:
    result = box.exec(["sh", "-c", "head -c 10000 /dev/zero"])
    assert result.truncated and len(result.stdout) > 4096
    assert result.stdout.endswith(b"[... output cut: 5904 more bytes ...]\n")
    started = time.monotonic()
    slow = box.exec(["sleep", "30"], timeout_s=0.5)
    assert slow.timed_out and slow.exit_code is None
    assert time.monotonic() - started < 4


def test_files_go_through_exec(box: RemoteSandbox) -> None:
    box.put_file("dir/run.sh", b"#!/bin/sh\necho ran\n", mode=0o755)
    assert box.exec(["./dir/run.sh"]).stdout == b"ran\n"
    assert box.get_file("/workspace/dir/run.sh", 100) == b"#!/bin/sh\necho ran\n"
    with pytest.raises(SandboxError, match="larger than 5"):
        box.get_file("dir/run.sh", 5)
    with pytest.raises(SandboxError, match="does not exist"):
        box.get_file("nope", 5)
    with pytest.raises(SandboxError):
        box.put_file("../../etc/passwd", b"x")


def test_a_spawned_shell_keeps_state_and_can_be_killed(box: RemoteSandbox) -> None:
    shell = box.spawn(["sh"])
    shell.write(b"A=5\n")
    shell.write(b"echo $((A*2))\n")
    output = b""
    deadline = time.monotonic() + 5
    while b"\n" not in output and time.monotonic() < deadline:
        output += shell.read(100, 0.5)
    assert output == b"10\n"
    assert shell.alive()
    shell.kill()
    assert not shell.alive()
    with pytest.raises(SandboxClosed):
        shell.read(10, 0.1)


def test_close_removes_the_container_and_its_processes(
    engine: FakeEngine, backend: DockerBackend
) -> None:
    sandbox = backend.create(SandboxSpec(limits=LIMITS))
    proc = sandbox.spawn(["sleep", "60"])
    assert proc.alive()
    [cid] = [c for c, v in engine.containers.items() if sandbox.name in v["query"]]
    deadline = time.monotonic() + 5
    while not (procs := [e["proc"] for e in engine.execs.values() if e["container"] == cid]):
        assert time.monotonic() < deadline
        time.sleep(0.01)
    while procs[0] is None and time.monotonic() < deadline:
        time.sleep(0.01)
        procs = [e["proc"] for e in engine.execs.values() if e["container"] == cid]
    [sleeper] = procs
    assert sleeper is not None and sleeper.poll() is None
    sandbox.close()
    sandbox.close()
    assert cid not in engine.containers
    assert ("DELETE", f"containers/{cid}") in engine.calls
    assert sleeper.wait(5) == -signal.SIGKILL
    with pytest.raises(SandboxClosed):
        sandbox.exec(["true"])


def test_missing_images_and_engines_are_clear_errors(
    backend: DockerBackend, tmp_path: Path
) -> None:
    with pytest.raises(SandboxError, match="missing:1"):
        backend.create(SandboxSpec(image="missing:1"))
    with pytest.raises(SandboxError, match="no network"):
        backend.create(SandboxSpec(network=True))
    absent = DockerBackend(url=f"unix://{tmp_path}/none.sock")
    with pytest.raises(SandboxUnavailable, match="no Docker engine"):
        absent.probe()
