"""Start a service as a real child process on a free port (tests and benchmarks)."""

from __future__ import annotations

import os
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from gantry.core import preload
from gantry.core.registry import uses_torch
from gantry.core.settings import env_prefix


@dataclass
class ServiceProcess:
    process: preload.Child
    target: str
    log: Path


@contextmanager
def spawn_service(
    module: str,
    service: str,
    *,
    token: str | None,
    env: dict[str, str] | None = None,
    startup_timeout_s: float = 180.0,  # torch + transformers imports on a busy CI core
) -> Iterator[ServiceProcess]:
    """Run `python -m <module>` with `GANTRY_<SERVICE>_*` settings; yield once it serves.

    Forked from this process's preloader where the environment allows (see
    `gantry.core.preload`): the same process a fresh interpreter would be, ~8 CPU-s sooner.
    Logs go to a file (a pipe nobody reads would eventually block the server). The
    process is killed on exit if the caller has not stopped it.
    """
    prefix = env_prefix(service)
    with tempfile.TemporaryDirectory(prefix=f"gantry-{service}-") as tmp:
        port_file, log = Path(tmp) / "port", Path(tmp) / "service.log"
        settings = {
            f"{prefix}HOST": "127.0.0.1",
            f"{prefix}PORT": "0",
            f"{prefix}PORT_FILE": str(port_file),
            f"{prefix}METRICS_PORT": "0",
            f"{prefix}DATA_DIR": str(Path(tmp) / "data"),
        }
        if token is None:
            settings[f"{prefix}AUTH_DISABLED"] = "true"
        else:
            settings[f"{prefix}AUTH_TOKEN"] = token
        proc = preload.start(
            module,
            env={**os.environ, **settings, **(env or {})},
            output=log,
            imports_torch=uses_torch(service),
        )
        try:
            deadline = time.monotonic() + startup_timeout_s
            while not port_file.exists():
                if proc.poll() is not None:
                    raise RuntimeError(f"{module} exited during start:\n{log.read_text()}")
                if time.monotonic() > deadline:
                    raise TimeoutError(f"{module} did not start:\n{log.read_text()}")
                time.sleep(0.05)
            yield ServiceProcess(proc, f"127.0.0.1:{int(port_file.read_text())}", log)
        finally:
            if proc.poll() is None:
                proc.kill()
            proc.wait()
