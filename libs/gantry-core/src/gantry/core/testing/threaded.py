"""Run a service's real gRPC server on a background thread with its own event loop.

Blocking clients (gymnasium-style wrappers, the CLI's channel) can then call it from the
test's thread, exactly as a separate process would be called, without a subprocess.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from gantry.core.server import RunningServer, Service, start_server


@contextmanager
def serve_in_thread(
    service: Service[Any], *, startup_timeout_s: float = 60.0
) -> Iterator[RunningServer]:
    loop = asyncio.new_event_loop()
    ready: dict[str, Any] = {}
    started = threading.Event()

    def run() -> None:
        asyncio.set_event_loop(loop)
        try:
            ready["server"] = loop.run_until_complete(start_server(service))
        except BaseException as exc:  # surface start failures in the test thread
            ready["error"] = exc
        finally:
            started.set()
        if "server" in ready:
            loop.run_forever()

    thread = threading.Thread(target=run, name=f"{service.name}-server", daemon=True)
    thread.start()
    if not started.wait(startup_timeout_s):
        raise TimeoutError(f"{service.name} did not start in {startup_timeout_s}s")
    if "error" in ready:
        raise ready["error"]
    running: RunningServer = ready["server"]
    try:
        yield running
    finally:
        stop = asyncio.run_coroutine_threadsafe(running.stop(grace_s=0), loop)
        stop.result(timeout=30)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout=30)
        loop.close()
