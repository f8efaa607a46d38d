"""The docker backend: one container per sandbox through the `docker` SDK.

For workstations and CI runners that have a Docker engine. Each container has no
network, a read-only root filesystem, a non-root user, no capabilities, no new
privileges, the default seccomp profile, pids/memory/CPU limits, and tmpfs mounts for
/workspace and /tmp; commands run through the Engine's exec API (remote.py).
Tested against a local fake of the Engine API endpoints used here; it has not yet run
against a real engine.
"""

from __future__ import annotations

import contextlib
import select
import socket
import struct
import threading
import uuid
from typing import Any

from gantry.envfarm.sandbox.base import (
    SandboxError,
    SandboxSpec,
    SandboxUnavailable,
    refuse_network,
)
from gantry.envfarm.sandbox.remote import STDERR, STDOUT, WORKSPACE, RemoteSandbox

USER = "1000:1000"
LABEL = "dev.gantry.sandbox"
API_VERSION = "1.45"


class DockerBackend:
    name = "docker"

    def __init__(
        self,
        *,
        url: str = "unix:///var/run/docker.sock",
        image: str = "python:3.11-slim",
        cpus: float = 1.0,
        timeout_s: float = 30.0,
        client: Any = None,
    ) -> None:
        self.url = url
        self.image = image
        self.cpus = cpus
        self._timeout_s = timeout_s
        self._client = client

    @property
    def api(self) -> Any:
        """The SDK's low-level APIClient (built on first use)."""
        if self._client is None:
            import docker  # type: ignore[import-untyped]

            self._client = docker.APIClient(
                base_url=self.url, version=API_VERSION, timeout=self._timeout_s
            )
        return self._client

    def probe(self) -> None:
        try:
            self.api.ping()
        except Exception as exc:
            raise SandboxUnavailable(f"no Docker engine at {self.url}: {exc}") from exc

    def create(self, spec: SandboxSpec) -> RemoteSandbox:
        refuse_network(spec, self.name)
        import docker.errors  # type: ignore[import-untyped]
        from docker.types import Ulimit  # type: ignore[import-untyped]

        limits = spec.limits
        image = spec.image or self.image
        host_config = self.api.create_host_config(
            network_mode="none",
            read_only=True,
            cap_drop=["ALL"],
            security_opt=["no-new-privileges"],
            pids_limit=limits.processes,
            mem_limit=limits.address_space_bytes,
            memswap_limit=limits.address_space_bytes,
            nano_cpus=int(self.cpus * 1e9),
            ulimits=[
                Ulimit(name="cpu", soft=limits.cpu_seconds, hard=limits.cpu_seconds),
                Ulimit(name="fsize", soft=limits.file_size_bytes, hard=limits.file_size_bytes),
                Ulimit(name="nproc", soft=limits.processes, hard=limits.processes),
            ],
            tmpfs={
                WORKSPACE: f"rw,exec,size={limits.tmp_bytes},uid=1000,gid=1000,mode=0700",
                "/tmp": f"rw,exec,size={limits.tmp_bytes},mode=1777",
            },
            binds={
                host: {"bind": inside, "mode": "ro"}
                for host, inside in spec.readonly_mounts.items()
            },
            init=True,
        )
        name = f"gantry-sbx-{uuid.uuid4().hex[:12]}"
        try:
            created = self.api.create_container(
                image,
                command=["sleep", "infinity"],
                name=name,
                user=USER,
                working_dir=WORKSPACE,
                host_config=host_config,
                labels={LABEL: "1"},
                network_disabled=True,
            )
            container = created["Id"]
            self.api.start(container)
        except docker.errors.ImageNotFound as exc:
            raise SandboxError(f"image {image!r} is not present on the engine") from exc
        except docker.errors.APIError as exc:
            with contextlib.suppress(Exception):
                self.api.remove_container(name, force=True)
            raise SandboxError(f"cannot start a container: {exc.explanation or exc}") from exc

        def start(argv: list[str], cwd: str, env: dict[str, str]) -> _ExecChannel:
            exec_id = self.api.exec_create(
                container,
                argv,
                stdin=True,
                stdout=True,
                stderr=True,
                user=USER,
                workdir=cwd,
                environment=env,
            )["Id"]
            raw = self.api.exec_start(exec_id, socket=True)
            return _ExecChannel(self.api, exec_id, raw)

        def destroy() -> None:
            with contextlib.suppress(Exception):
                self.api.remove_container(container, force=True, v=True)

        env = {"HOME": WORKSPACE, "LANG": "C.UTF-8", "TMPDIR": "/tmp"}
        return RemoteSandbox(start=start, limits=limits, env=env, destroy=destroy, name=name)


class _ExecChannel:
    """A hijacked exec stream: Docker's 8-byte frame header, then the payload."""

    def __init__(self, api: Any, exec_id: str, raw: Any) -> None:
        self._api = api
        self._id = exec_id
        self._response = getattr(raw, "_response", None)  # keeps the connection alive
        self._sock: socket.socket = getattr(raw, "_sock", raw)
        self._buffer = b""
        self._eof = False
        self._lock = threading.Lock()
        self._closed = False

    def send(self, data: bytes) -> None:
        self._sock.sendall(data)

    def close_stdin(self) -> None:
        with contextlib.suppress(OSError):
            self._sock.shutdown(socket.SHUT_WR)

    def recv(self, timeout_s: float) -> tuple[int, bytes] | None:
        while True:
            if len(self._buffer) >= 8:
                stream, size = struct.unpack(">BxxxL", self._buffer[:8])
                if len(self._buffer) >= 8 + size:
                    payload = self._buffer[8 : 8 + size]
                    self._buffer = self._buffer[8 + size :]
                    return (STDERR if stream == 2 else STDOUT), payload
            if self._eof:
                raise EOFError
            ready, _, _ = select.select([self._sock], [], [], timeout_s)
            if not ready:
                return None
            chunk = self._sock.recv(1 << 16)
            if not chunk:
                self._eof = True
                if self._buffer:
                    raise SandboxError("the exec stream ended inside a frame")
            self._buffer += chunk

    def exit_code(self) -> int | None:
        code = self._api.exec_inspect(self._id).get("ExitCode")
        return None if code is None else int(code)

    def ended(self) -> bool:
        try:
            return not self._api.exec_inspect(self._id).get("Running", False)
        except Exception:
            return True

    def close(self) -> None:
        with self._lock:
            if self._closed:
                return
            self._closed = True
        with contextlib.suppress(OSError):
            self._sock.close()
        if self._response is not None:
            with contextlib.suppress(Exception):
                self._response.close()
