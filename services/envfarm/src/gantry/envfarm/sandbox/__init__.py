"""Sandboxes for envfarm's terminal and notebook tasks (see base.py for the contract)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from gantry.envfarm.sandbox.base import (
    ExecResult,
    Sandbox,
    SandboxBackend,
    SandboxClosed,
    SandboxError,
    SandboxExhausted,
    SandboxLimits,
    SandboxProcess,
    SandboxSpec,
    SandboxUnavailable,
)

if TYPE_CHECKING:
    from gantry.envfarm.settings import EnvFarmSettings

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


def backend_from_settings(settings: EnvFarmSettings) -> SandboxBackend:
    """The backend envfarm's settings name (`sandbox_backend` and the `sandbox_*` fields)."""
    name = settings.sandbox_backend
    root = str(settings.sandbox_root) if settings.sandbox_root else None
    if name == "bubblewrap":
        return make_backend(
            name,
            uid=settings.sandbox_uid,
            uid_count=settings.sandbox_uid_count,
            uid_lock_dir=str(settings.sandbox_uid_lock_dir)
            if settings.sandbox_uid_lock_dir
            else None,
            root=root,
            python=settings.sandbox_python,
            proc=settings.sandbox_proc,
            warm_pool=settings.sandbox_warm_pool,
        )
    if name == "subprocess":
        return make_backend(name, root=root)
    if name == "docker":
        return make_backend(name, url=settings.sandbox_docker_url, image=settings.sandbox_image)
    if name == "kubernetes":
        return make_backend(
            name,
            namespace=settings.sandbox_namespace,
            image=settings.sandbox_image,
            runtime_class=settings.sandbox_runtime_class,
            warm_pool=settings.sandbox_warm_pool,
            cpu=settings.sandbox_cpu,
            memory_bytes=settings.sandbox_memory_bytes,
        )
    return make_backend(name)  # raises SandboxUnavailable naming the choices


__all__ = [
    "BACKENDS",
    "ExecResult",
    "Sandbox",
    "SandboxBackend",
    "SandboxClosed",
    "SandboxError",
    "SandboxExhausted",
    "SandboxLimits",
    "SandboxProcess",
    "SandboxSpec",
    "SandboxUnavailable",
    "backend_from_settings",
    "make_backend",
]
