"""Which services are installed.

Each service distribution declares an entry point

    [project.entry-points."gantry.services"]
    envfarm = "gantry.envfarm.service:EnvFarmService"

so `gantry serve`, `gantry up` and `gantry smoke` find exactly the services installed.
`GANTRY_EXTRA_SERVICES="name=module:Class,..."` adds services that are not installed as
distributions (a service under development, or the runtime's test probe).
"""

from __future__ import annotations

import importlib
import os
import re
from importlib.metadata import entry_points
from typing import TYPE_CHECKING, Any

from gantry.core.ports import DEFAULT_PORTS

if TYPE_CHECKING:  # the server runtime is imported only when a service is loaded
    from gantry.core.server import Service

GROUP = "gantry.services"
EXTRA_ENV = "GANTRY_EXTRA_SERVICES"


def _specs() -> dict[str, str]:
    specs = {ep.name: ep.value for ep in entry_points(group=GROUP)}
    for item in filter(None, os.environ.get(EXTRA_ENV, "").split(",")):
        name, sep, value = item.partition("=")
        if not sep or ":" not in value:
            raise ValueError(f"{EXTRA_ENV}: expected name=module:Class, got {item!r}")
        specs[name.strip()] = value.strip()
    return specs


def installed_services() -> list[str]:
    return sorted(_specs(), key=lambda n: (DEFAULT_PORTS.get(n, 1 << 16), n))


def uses_torch(name: str) -> bool:
    """Whether the installed service's distribution depends on torch (its processes are
    worth forking from a preloaded interpreter: `gantry.core.preload`)."""
    for ep in entry_points(group=GROUP):
        if ep.name == name and ep.dist is not None:
            return any(_requirement_name(r) == "torch" for r in ep.dist.requires or [])
    return False


def _requirement_name(requirement: str) -> str:
    return re.split(r"[\s<>=!~;\[(@]", requirement.strip(), maxsplit=1)[0].lower()


def load_service(name: str) -> type[Service[Any]]:
    spec = _specs().get(name)
    if spec is None:
        known = ", ".join(installed_services()) or "none installed"
        raise KeyError(f"unknown service {name!r} (installed: {known})")
    from gantry.core.server import Service

    module_name, _, attr = spec.partition(":")
    service = getattr(importlib.import_module(module_name), attr)
    if not (isinstance(service, type) and issubclass(service, Service)):
        raise TypeError(f"{spec!r} is not a gantry.core.server.Service subclass")
    return service
