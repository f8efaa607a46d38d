"""The kubernetes backend: one Pod per sandbox, commands through the exec API.

Each Pod runs as a non-root user with every capability dropped, a read-only root
filesystem, no service-account token, no service links, the runtime's default seccomp
profile and, where the chart names one, a sandboxing runtimeClass (gVisor, Kata). The
chart's deny-all NetworkPolicy selects Pods by the `gantry.dev/sandbox` label. A warm
pool keeps a few Pods started so a sandbox costs an exec, not a Pod start. Tested
offline against an in-process fake of the API calls below; no cluster exists here.
"""

from __future__ import annotations

import contextlib
import threading
import time
import uuid
from collections.abc import Callable
from typing import Any

from gantry.envfarm.sandbox.base import (
    SandboxError,
    SandboxSpec,
    SandboxUnavailable,
    refuse_network,
)
from gantry.envfarm.sandbox.remote import STDERR, STDOUT, WORKSPACE, RemoteSandbox

SANDBOX_LABEL = "gantry.dev/sandbox"
UID = 1000
READY_TIMEOUT_S = 120.0

ExecStream = Callable[[str, str, list[str]], Any]  # (pod, namespace, argv) -> WSClient-like


def pod_manifest(
    name: str,
    *,
    image: str,
    runtime_class: str = "",
    cpu: str = "1",
    memory_bytes: int = 1 << 30,
    workspace_bytes: int = 256 << 20,
    tmp_bytes: int = 256 << 20,
) -> dict[str, Any]:
    """The Pod of one sandbox (checked against the Kubernetes schema in the tests)."""
    container = {
        "name": "sandbox",
        "image": image,
        "command": ["sleep", "infinity"],
        "workingDir": WORKSPACE,
        "securityContext": {
            "allowPrivilegeEscalation": False,
            "privileged": False,
            "readOnlyRootFilesystem": True,
            "runAsNonRoot": True,
            "capabilities": {"drop": ["ALL"]},
        },
        "resources": {
            "limits": {"cpu": cpu, "memory": str(memory_bytes), "ephemeral-storage": "64Mi"},
            "requests": {"cpu": "50m", "memory": "64Mi"},
        },
        "volumeMounts": [
            {"name": "workspace", "mountPath": WORKSPACE},
            {"name": "tmp", "mountPath": "/tmp"},
        ],
    }
    spec: dict[str, Any] = {
        "automountServiceAccountToken": False,
        "enableServiceLinks": False,
        "hostNetwork": False,
        "hostPID": False,
        "hostIPC": False,
        "restartPolicy": "Never",
        "terminationGracePeriodSeconds": 0,
        "securityContext": {
            "runAsNonRoot": True,
            "runAsUser": UID,
            "runAsGroup": UID,
            "fsGroup": UID,
            "seccompProfile": {"type": "RuntimeDefault"},
        },
        "containers": [container],
        "volumes": [
            {"name": "workspace", "emptyDir": {"sizeLimit": str(workspace_bytes)}},
            {"name": "tmp", "emptyDir": {"medium": "Memory", "sizeLimit": str(tmp_bytes)}},
        ],
    }
    if runtime_class:
        spec["runtimeClassName"] = runtime_class
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": name,
            "labels": {SANDBOX_LABEL: "true", "app.kubernetes.io/part-of": "gantry"},
        },
        "spec": spec,
    }


class KubernetesBackend:
    name = "kubernetes"

    def __init__(
        self,
        *,
        namespace: str = "gantry-sandboxes",
        image: str = "python:3.11-slim",
        runtime_class: str = "",
        warm_pool: int = 2,
        cpu: str = "1",
        memory_bytes: int = 1 << 30,
        api: Any = None,
        exec_stream: ExecStream | None = None,
        ready_timeout_s: float = READY_TIMEOUT_S,
    ) -> None:
        """`api`/`exec_stream`: a CoreV1Api and an exec opener (defaults: the official
        client, configured in-cluster or from kubeconfig)."""
        self.namespace = namespace
        self.image = image
        self.runtime_class = runtime_class
        self.warm_pool = warm_pool
        self.cpu = cpu
        self.memory_bytes = memory_bytes
        self.ready_timeout_s = ready_timeout_s
        self._api = api
        self._exec_stream = exec_stream
        self._pool: list[str] = []
        self._filling = 0
        self._lock = threading.Lock()

    # --- the client --------------------------------------------------------------------

    @property
    def api(self) -> Any:
        if self._api is None:
            from kubernetes import client, config  # type: ignore[import-untyped]

            try:
                config.load_incluster_config()  # type: ignore[no-untyped-call]
            except config.ConfigException:
                config.load_kube_config()  # type: ignore[no-untyped-call]
            self._api = client.CoreV1Api()
        return self._api

    def _open_exec(self, pod: str, argv: list[str]) -> Any:
        if self._exec_stream is not None:
            return self._exec_stream(pod, self.namespace, argv)
        from kubernetes.stream import stream  # type: ignore[import-untyped]

        return stream(
            self.api.connect_get_namespaced_pod_exec,
            pod,
            self.namespace,
            container="sandbox",
            command=argv,
            stdin=True,
            stdout=True,
            stderr=True,
            tty=False,
            binary=True,
            _preload_content=False,
        )

    # --- the protocol ----------------------------------------------------------------

    def probe(self) -> None:
        try:
            self.api.list_namespaced_pod(self.namespace, label_selector=SANDBOX_LABEL, limit=1)
        except Exception as exc:
            raise SandboxUnavailable(
                f"cannot list Pods in namespace {self.namespace!r}: {exc}"
            ) from exc

    def create(self, spec: SandboxSpec) -> RemoteSandbox:
        refuse_network(spec, self.name)
        if spec.readonly_mounts:
            raise SandboxError(
                "kubernetes sandboxes take their data from the image; read-only host "
                "mounts are not supported"
            )
        image = spec.image or self.image
        pod = self._take_warm() if image == self.image else None
        if pod is None:
            pod = self._start_pod(image)
        self._refill_later()

        def start(argv: list[str], cwd: str, env: dict[str, str]) -> _WebSocketChannel:
            # exec has no cwd or env: a tiny shell sets them before the command.
            setup = [
                "env",
                *(f"{k}={v}" for k, v in env.items()),
                "sh",
                "-c",
                'cd "$0" && exec "$@"',
            ]
            return _WebSocketChannel(self._open_exec(pod, [*setup, cwd, *argv]))

        def destroy() -> None:
            self._delete(pod)

        env = {"HOME": WORKSPACE, "LANG": "C.UTF-8", "TMPDIR": "/tmp"}
        return RemoteSandbox(start=start, limits=spec.limits, env=env, destroy=destroy, name=pod)

    # --- Pods and the warm pool ------------------------------------------------------

    def _start_pod(self, image: str) -> str:
        name = f"gantry-sbx-{uuid.uuid4().hex[:12]}"
        manifest = pod_manifest(
            name,
            image=image,
            runtime_class=self.runtime_class,
            cpu=self.cpu,
            memory_bytes=self.memory_bytes,
        )
        try:
            self.api.create_namespaced_pod(self.namespace, manifest)
        except Exception as exc:
            raise SandboxError(f"cannot create Pod {name}: {exc}") from exc
        deadline = time.monotonic() + self.ready_timeout_s
        while True:
            phase = self.api.read_namespaced_pod(name, self.namespace).status.phase
            if phase == "Running":
                return name
            if phase in ("Failed", "Succeeded") or time.monotonic() > deadline:
                self._delete(name)
                raise SandboxError(f"Pod {name} did not start (phase {phase})")
            time.sleep(0.1)

    def _delete(self, pod: str) -> None:
        with contextlib.suppress(Exception):
            self.api.delete_namespaced_pod(pod, self.namespace, grace_period_seconds=0)

    def _take_warm(self) -> str | None:
        with self._lock:
            return self._pool.pop(0) if self._pool else None

    def warm(self) -> None:
        """Start Pods until the warm pool is full (synchronously)."""
        while True:
            with self._lock:
                if len(self._pool) + self._filling >= self.warm_pool:
                    return
                self._filling += 1
            try:
                pod = self._start_pod(self.image)
            finally:
                with self._lock:
                    self._filling -= 1
            with self._lock:
                self._pool.append(pod)

    def _refill_later(self) -> None:
        if self.warm_pool:
            threading.Thread(target=self._refill_quietly, daemon=True).start()

    def _refill_quietly(self) -> None:
        with contextlib.suppress(SandboxError):
            self.warm()

    def close(self) -> None:
        """Delete the idle Pods of the warm pool."""
        with self._lock:
            pods, self._pool = self._pool, []
            self.warm_pool = 0
        for pod in pods:
            self._delete(pod)


class _WebSocketChannel:
    """The official client's exec WSClient (binary mode) as a remote.Channel."""

    def __init__(self, ws: Any) -> None:
        self._ws = ws

    def send(self, data: bytes) -> None:
        self._ws.write_stdin(data)

    def close_stdin(self) -> None:
        with contextlib.suppress(Exception):
            self._ws.close_channel(0)  # v5 only; remote.limited bounds stdin anyway

    def _buffered(self) -> tuple[int, bytes] | None:
        for channel, stream in ((1, STDOUT), (2, STDERR)):
            if self._ws.peek_channel(channel, timeout=0):
                return stream, bytes(self._ws.read_channel(channel, timeout=0))
        return None

    def recv(self, timeout_s: float) -> tuple[int, bytes] | None:
        frame = self._buffered()
        if frame is not None:
            return frame
        if not self._ws.is_open():
            raise EOFError
        self._ws.update(timeout=timeout_s)
        frame = self._buffered()
        if frame is None and not self._ws.is_open():
            raise EOFError
        return frame

    def exit_code(self) -> int | None:
        code = self._ws.returncode
        return None if code is None else int(code)

    def ended(self) -> bool:
        with contextlib.suppress(Exception):
            self._ws.update(timeout=0)
        return not self._ws.is_open()

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self._ws.close()
