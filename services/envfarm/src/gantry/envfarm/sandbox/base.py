"""The sandbox contract: what envfarm's terminal and notebook tasks run their code in.

Every backend (bubblewrap, kubernetes, docker, subprocess) offers the same small surface:
one-shot `exec` with a wall-clock timeout and bounded output, a long-lived `spawn`ed
process (a persistent bash, a Python kernel), file put/get inside the workspace, and an
idempotent `close` that kills the whole process tree. Calls are synchronous; one sandbox
may be used from several threads.
"""

from __future__ import annotations

import posixpath
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, fields
from types import MappingProxyType
from typing import Protocol


class SandboxError(Exception):
    """A sandbox operation failed (bad path, oversized file, backend failure)."""


class SandboxUnavailable(SandboxError):
    """The backend cannot work on this machine; the message says why."""


class SandboxExhausted(SandboxError):
    """Every sandbox the backend may run at once is running (e.g. no free sandbox uid)."""


class SandboxClosed(SandboxError):
    """The sandbox (or a spawned process's output) is closed."""


@dataclass(frozen=True)
class SandboxLimits:
    """Per-sandbox resource limits; the defaults are safe for untrusted code."""

    wall_seconds: float = 30.0  # per exec call
    cpu_seconds: int = 30
    address_space_bytes: int = 1 << 30
    processes: int = 64
    file_size_bytes: int = 64 << 20
    output_bytes: int = 64 << 10  # stdout/stderr kept per call; the rest cut with a marker
    tmp_bytes: int = 256 << 20  # size of the sandbox's private /tmp (where it has one)

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if not value > 0:
                raise ValueError(f"SandboxLimits.{f.name} must be > 0 (got {value!r})")


def _no_mounts() -> Mapping[str, str]:
    return MappingProxyType({})


@dataclass(frozen=True)
class SandboxSpec:
    """What a new sandbox gets."""

    limits: SandboxLimits = SandboxLimits()
    # host path -> absolute path inside the sandbox, read-only (data sets)
    readonly_mounts: Mapping[str, str] = field(default_factory=_no_mounts)
    image: str | None = None  # docker/kubernetes only
    network: bool = False  # honoured only by the unsafe subprocess backend


@dataclass(frozen=True)
class ExecResult:
    """One finished `exec`: `exit_code` is None when it was killed (timeout, close)."""

    exit_code: int | None
    stdout: bytes
    stderr: bytes
    timed_out: bool
    truncated: bool
    seconds: float


class SandboxProcess(Protocol):
    """A long-lived process in a sandbox, talked to through stdin and stdout."""

    def write(self, data: bytes) -> None: ...

    def read(self, max_bytes: int, timeout_s: float) -> bytes:
        """Up to `max_bytes` of output; b"" on timeout; raises SandboxClosed at EOF."""
        ...

    def alive(self) -> bool: ...

    def kill(self) -> None: ...


class Sandbox(Protocol):
    workspace: str  # absolute path inside the sandbox, writable

    def exec(
        self,
        argv: Sequence[str],
        *,
        stdin: bytes = b"",
        timeout_s: float | None = None,
        cwd: str | None = None,
    ) -> ExecResult: ...

    def spawn(self, argv: Sequence[str], *, cwd: str | None = None) -> SandboxProcess: ...

    def put_file(self, path: str, data: bytes, mode: int = 0o644) -> None:
        """Write a file; `path` is relative to the workspace or absolute inside it."""
        ...

    def get_file(self, path: str, max_bytes: int) -> bytes: ...

    def close(self) -> None:
        """Kill the whole process tree and remove the workspace; idempotent."""
        ...


class SandboxBackend(Protocol):
    name: str

    def probe(self) -> None:
        """Raise SandboxUnavailable(reason) if this backend cannot work here."""
        ...

    def create(self, spec: SandboxSpec) -> Sandbox: ...


MARKER = b"\n[... output cut: %d more bytes ...]\n"


def cut_marker(dropped: int) -> bytes:
    """What replaces the part of a stream past the output limit."""
    return MARKER % dropped


def workspace_relative(workspace: str, path: str) -> str:
    """`path` (relative, or absolute under `workspace`) as a clean relative path.

    Raises SandboxError for a path that leaves the workspace, so a caller can never
    name a file outside it (symlinks are handled by each backend where it opens files).
    """
    if not path or "\x00" in path:
        raise SandboxError(f"bad path {path!r}")
    joined = posixpath.normpath(posixpath.join(workspace, path))
    if joined == workspace:
        raise SandboxError(f"path {path!r} names the workspace itself, not a file")
    if not joined.startswith(workspace.rstrip("/") + "/"):
        raise SandboxError(f"path {path!r} is outside the workspace {workspace}")
    return joined[len(workspace.rstrip("/")) + 1 :]


def refuse_network(spec: SandboxSpec, backend: str) -> None:
    """Only the unsafe subprocess backend has a network; asking another for one is an error."""
    if spec.network:
        raise SandboxError(f"{backend} sandboxes have no network (SandboxSpec.network)")


def check_argv(argv: Sequence[str]) -> list[str]:
    """A non-empty list of strings without NUL bytes."""
    if isinstance(argv, str | bytes) or not argv:
        raise SandboxError("argv must be a non-empty sequence of strings")
    out = list(argv)
    for arg in out:
        if not isinstance(arg, str) or "\x00" in arg:
            raise SandboxError(f"bad argv item {arg!r}")
    return out
