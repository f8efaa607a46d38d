"""Sandboxes for envfarm's terminal and notebook tasks (see base.py for the contract)."""

from __future__ import annotations

from typing import Any

from gantry.envfarm.sandbox.base import (
    ExecResult,
    Sandbox,
    SandboxBackend,
    SandboxClosed,
    SandboxError,
    SandboxLimits,
    SandboxProcess,
    SandboxSpec,
    SandboxUnavailable,
)

BACKENDS = ("bubblewrap", "kubernetes", "docker", "subprocess")


def make_backend(name: str, **settings: Any) -> SandboxBackend:
    """The backend called `name`, configured by its keyword settings (see each module)."""
    if name == "subprocess":
        from gantry.envfarm.sandbox.subprocess_backend import SubprocessBackend

        return SubprocessBackend(**settings)
    if name == "bubblewrap":
        from gantry.envfarm.sandbox.bubblewrap import BubblewrapBackend

        return BubblewrapBackend(**settings)
    if name == "kubernetes":
        from gantry.envfarm.sandbox.kubernetes_backend import KubernetesBackend

        return KubernetesBackend(**settings)
    if name == "docker":
        from gantry.envfarm.sandbox.docker_backend import DockerBackend

        return DockerBackend(**settings)
    raise SandboxUnavailable(
        f"unknown sandbox backend {name!r}; choose one of {', '.join(BACKENDS)}"
    )


__all__ = [
    "BACKENDS",
    "ExecResult",
    "Sandbox",
    "SandboxBackend",
    "SandboxClosed",
    "SandboxError",
    "SandboxLimits",
    "SandboxProcess",
    "SandboxSpec",
    "SandboxUnavailable",
    "make_backend",
]
