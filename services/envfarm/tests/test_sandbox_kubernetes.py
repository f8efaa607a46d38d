"""The kubernetes backend against an in-process fake of the API calls it makes.

No cluster exists here. The fake CoreV1Api keeps Pods in memory (Pending, then
Running), and its exec opener behaves like the official client's WSClient in binary
mode, running each command as a local process in a per-Pod folder that stands in for
the container's /workspace and /tmp. The Pod manifest is checked field by field and
against the Kubernetes OpenAPI schema.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import kubernetes_validate
import pytest

from gantry.envfarm.sandbox import (
    SandboxClosed,
    SandboxError,
    SandboxLimits,
    SandboxSpec,
    SandboxUnavailable,
    make_backend,
)
from gantry.envfarm.sandbox.kubernetes_backend import SANDBOX_LABEL, KubernetesBackend, pod_manifest
from gantry.envfarm.sandbox.remote import RemoteSandbox

LIMITS = SandboxLimits(wall_seconds=10.0, output_bytes=4096)
NAMESPACE = "sbx"


class FakeCoreV1Api:
    """The four Pod calls the backend makes, on an in-memory Pod table."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.pods: dict[str, dict[str, Any]] = {}
        self.created: list[dict[str, Any]] = []
        self.deleted: list[str] = []
        self.fail_list = False
        self.lock = threading.Lock()

    def list_namespaced_pod(self, namespace: str, **query: Any) -> Any:
        if self.fail_list:
            raise RuntimeError("403 Forbidden: pods is forbidden")
        assert namespace == NAMESPACE and query["label_selector"] == SANDBOX_LABEL
        return SimpleNamespace(items=list(self.pods))

    def create_namespaced_pod(self, namespace: str, body: dict[str, Any]) -> None:
        assert namespace == NAMESPACE
        name = body["metadata"]["name"]
        folder = self.root / name
        (folder / "workspace").mkdir(parents=True)
        (folder / "tmp").mkdir()
        with self.lock:
            self.created.append(body)
            self.pods[name] = {"body": body, "reads": 0, "dir": folder, "procs": []}

    def read_namespaced_pod(self, name: str, namespace: str) -> Any:
        pod = self.pods[name]
        pod["reads"] += 1
        phase = "Pending" if pod["reads"] < 2 else "Running"  # a start takes a moment
        return SimpleNamespace(status=SimpleNamespace(phase=phase))

    def delete_namespaced_pod(self, name: str, namespace: str, **options: Any) -> None:
        assert options == {"grace_period_seconds": 0}
        with self.lock:
            pod = self.pods.pop(name)
            self.deleted.append(name)
        for proc in pod["procs"]:
            with contextlib.suppress(OSError):
                os.killpg(proc.pid, signal.SIGKILL)
        shutil.rmtree(pod["dir"], ignore_errors=True)

    def exec_stream(self, pod: str, namespace: str, argv: list[str]) -> FakeWebSocket:
        """Like kubernetes.stream.stream(connect_get_namespaced_pod_exec, binary=True)."""
        record = self.pods[pod]
        folder: Path = record["dir"]

        def inside(arg: str) -> str:  # the container's paths, in this Pod's folder
            for mount in ("/workspace", "/tmp"):
                if arg == mount or arg.startswith(mount + "/"):
                    return str(folder) + arg
            return arg

        env = {"PATH": os.environ["PATH"], "TMPDIR": str(folder / "tmp")}
        argv = [inside(a) if not a.startswith("TMPDIR=") else f"TMPDIR={folder}/tmp" for a in argv]
        ws = FakeWebSocket(argv, env)
        record["procs"].append(ws.proc)
        return ws


class FakeWebSocket:
    """The WSClient surface the backend uses: channels 1/2 out, 0 in, a return code."""

    def __init__(self, argv: list[str], env: dict[str, str]) -> None:
        self.proc = subprocess.Popen(
            argv,
            env=env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            start_new_session=True,
        )
        self.channels: dict[int, bytes] = {}
        self.cond = threading.Condition()
        self.open_streams = 2
        self.closed = False
        for channel, pipe in ((1, self.proc.stdout), (2, self.proc.stderr)):
            threading.Thread(target=self._pump, args=(channel, pipe), daemon=True).start()

    def _pump(self, channel: int, pipe: Any) -> None:
        while chunk := os.read(pipe.fileno(), 65536):
            with self.cond:
                self.channels[channel] = self.channels.get(channel, b"") + chunk
                self.cond.notify_all()
        self.proc.wait()
        with self.cond:
            self.open_streams -= 1
            self.cond.notify_all()

    def write_stdin(self, data: bytes) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(data)
        self.proc.stdin.flush()

    def close_channel(self, channel: int) -> None:
        assert channel == 0 and self.proc.stdin is not None
        self.proc.stdin.close()

    def update(self, timeout: float = 0) -> None:
        with self.cond:
            if not self.channels and self.open_streams and not self.closed:
                self.cond.wait(timeout)

    def peek_channel(self, channel: int, timeout: float = 0) -> bytes:
        self.update(timeout)
        with self.cond:
            return self.channels.get(channel, b"")

    def read_channel(self, channel: int, timeout: float = 0) -> bytes:
        with self.cond:
            return self.channels.pop(channel, b"")

    def is_open(self) -> bool:
        with self.cond:
            return bool(self.open_streams) and not self.closed

    @property
    def returncode(self) -> int | None:
        if self.is_open():
            return None
        code = self.proc.wait()
        return code if code >= 0 else 128 - code

    def close(self) -> None:
        with self.cond:
            self.closed = True
            self.cond.notify_all()


@pytest.fixture(scope="module")
def api(tmp_path_factory: pytest.TempPathFactory) -> FakeCoreV1Api:
    return FakeCoreV1Api(tmp_path_factory.mktemp("pods"))


@pytest.fixture(scope="module")
def backend(api: FakeCoreV1Api) -> Iterator[KubernetesBackend]:
    backend = make_backend(
        "kubernetes",
        namespace=NAMESPACE,
        image="ghcr.io/gantry/task:1",
        runtime_class="gvisor",
        warm_pool=0,
        api=api,
        exec_stream=api.exec_stream,
    )
    assert isinstance(backend, KubernetesBackend)
    backend.probe()
    yield backend
    backend.close()


@pytest.fixture(scope="module")
def box(backend: KubernetesBackend) -> Iterator[RemoteSandbox]:
    sandbox = backend.create(SandboxSpec(limits=LIMITS))
    yield sandbox
    sandbox.close()


def test_the_pod_manifest_is_locked_down_and_valid() -> None:
    manifest = pod_manifest("gantry-sbx-1", image="img:1", runtime_class="kata", cpu="2")
    kubernetes_validate.validate(manifest, "1.30", strict=True)
    spec = manifest["spec"]
    [container] = spec["containers"]
    assert manifest["metadata"]["labels"][SANDBOX_LABEL] == "true"  # the NetworkPolicy's selector
    assert spec["runtimeClassName"] == "kata"
    assert spec["automountServiceAccountToken"] is False and spec["enableServiceLinks"] is False
    assert not (spec["hostNetwork"] or spec["hostPID"] or spec["hostIPC"])
    assert spec["securityContext"]["runAsNonRoot"] is True
    assert spec["securityContext"]["runAsUser"] == 1000
    assert spec["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    security = container["securityContext"]
    assert security["capabilities"] == {"drop": ["ALL"]}
    assert security["readOnlyRootFilesystem"] is True
    assert security["allowPrivilegeEscalation"] is False and security["privileged"] is False
    assert container["resources"]["limits"]["cpu"] == "2"
    assert container["resources"]["limits"]["memory"] == str(1 << 30)
    mounts = {m["mountPath"] for m in container["volumeMounts"]}
    assert mounts == {"/workspace", "/tmp"}
    assert "runtimeClassName" not in pod_manifest("p", image="i")["spec"]


def test_create_starts_a_pod_and_waits_for_it(api: FakeCoreV1Api, box: RemoteSandbox) -> None:
    body = next(b for b in api.created if b["metadata"]["name"] == box.name)
    assert body["spec"]["runtimeClassName"] == "gvisor"
    assert body["spec"]["containers"][0]["image"] == "ghcr.io/gantry/task:1"
    assert api.pods[box.name]["reads"] >= 2  # it polled until Running


def test_exec_through_the_exec_api(box: RemoteSandbox) -> None:
    result = box.exec(["sh", "-c", "echo out; echo err >&2; exit 5"])
    assert (result.exit_code, result.stdout, result.stderr) == (5, b"out\n", b"err\n")
    assert box.exec(["wc", "-c"], stdin=b"z" * 100_000).stdout.strip() == b"100000"
    assert box.exec(["sh", "-c", 'echo "$HOME"']).stdout.endswith(b"/workspace\n")
    cut = box.exec(["sh", "-c", "head -c 9000 /dev/zero"])
    assert cut.truncated and cut.stdout.endswith(b"[... output cut: 4904 more bytes ...]\n")
    started = time.monotonic()
    slow = box.exec(["sleep", "30"], timeout_s=0.5)
    assert slow.timed_out and slow.exit_code is None and time.monotonic() - started < 4


def test_files_and_a_spawned_shell(box: RemoteSandbox) -> None:
    box.put_file("data/in.txt", b"1\n2\n3\n")
    assert box.exec(["sh", "-c", "wc -l < data/in.txt"]).stdout.strip() == b"3"
    assert box.get_file("data/in.txt", 100) == b"1\n2\n3\n"
    with pytest.raises(SandboxError, match="does not exist"):
        box.get_file("data/none", 10)
    shell = box.spawn(["sh"])
    shell.write(b"cd data; echo $(cat in.txt | wc -l)\n")
    out = b""
    deadline = time.monotonic() + 5
    while b"\n" not in out and time.monotonic() < deadline:
        out += shell.read(100, 0.5)
    assert out == b"3\n"
    shell.kill()
    with pytest.raises(SandboxClosed):
        shell.write(b"echo again\n")


def test_close_deletes_the_pod(api: FakeCoreV1Api, backend: KubernetesBackend) -> None:
    sandbox = backend.create(SandboxSpec(limits=LIMITS))
    sleeper = sandbox.spawn(["sleep", "60"])
    assert sleeper.alive()
    proc = api.pods[sandbox.name]["procs"][-1]
    sandbox.close()
    sandbox.close()
    assert api.deleted.count(sandbox.name) == 1 and sandbox.name not in api.pods
    assert proc.wait(5) == -signal.SIGKILL
    with pytest.raises(SandboxClosed):
        sandbox.exec(["true"])


def test_the_warm_pool_hands_out_started_pods(api: FakeCoreV1Api) -> None:
    pool = KubernetesBackend(namespace=NAMESPACE, warm_pool=2, api=api, exec_stream=api.exec_stream)
    before = set(api.pods)
    pool.warm()
    idle = set(api.pods) - before
    assert len(idle) == 2
    created = len(api.created)
    sandbox = pool.create(SandboxSpec(limits=LIMITS))
    assert sandbox.name in idle  # no Pod start on the request path
    assert sandbox.exec(["echo", "warm"]).stdout == b"warm\n"
    deadline = time.monotonic() + 5
    while len(api.created) < created + 1 and time.monotonic() < deadline:
        time.sleep(0.02)  # the pool refills in the background
    assert len(api.created) == created + 1
    other = pool.create(SandboxSpec(limits=LIMITS, image="other:2"))  # not pooled: fresh Pod
    assert api.pods[other.name]["body"]["spec"]["containers"][0]["image"] == "other:2"
    for box in (sandbox, other):
        box.close()
    pool.close()
    assert not [n for n in api.pods if n in idle]


def test_unsupported_specs_and_missing_access_are_clear(
    api: FakeCoreV1Api, backend: KubernetesBackend
) -> None:
    with pytest.raises(SandboxError, match="read-only host mounts"):
        backend.create(SandboxSpec(readonly_mounts={"/data": "/data"}))
    with pytest.raises(SandboxError, match="no network"):
        backend.create(SandboxSpec(network=True))
    api.fail_list = True
    try:
        with pytest.raises(SandboxUnavailable, match="forbidden"):
            backend.probe()
    finally:
        api.fail_list = False
