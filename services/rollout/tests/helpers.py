"""Shared by the rollout tests: settings, a server runner that exposes its loop, errors."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import grpc
import pytest
import torch

from gantry.core import errors
from gantry.core.server import RunningServer, Service, start_server
from gantry.models.loading import CausalLM
from gantry.rollout.engine.engine import Engine
from gantry.rollout.generator import TransformersGenerator
from gantry.rollout.service import RolloutService
from gantry.rollout.vlm import VlmGenerator

TOKEN = "rollout-test-token"


def reference_logprobs(bundle: CausalLM, prompt: list[int], tokens: list[int]) -> list[float]:
    """Each token's logprob under one plain forward pass over prompt + tokens."""
    with torch.no_grad():
        logits = bundle.model(torch.tensor([prompt + tokens])).logits[0].float()
    logprobs = torch.log_softmax(logits, -1)
    return [logprobs[len(prompt) - 1 + t, tok].item() for t, tok in enumerate(tokens)]


def common_settings(data_dir: Path) -> dict[str, Any]:
    return {
        "host": "127.0.0.1",
        "port": 0,
        "metrics_port": 0,
        "auth_token": TOKEN,
        "log_json": False,
        "data_dir": data_dir,
    }


@contextmanager
def serve_with_loop(
    service: Service[Any],
) -> Iterator[tuple[RunningServer, asyncio.AbstractEventLoop]]:
    """Like serve_in_thread, but also hands out the server's event loop (to drain it)."""
    loop = asyncio.new_event_loop()
    started: dict[str, Any] = {}
    ready = threading.Event()

    def run() -> None:
        asyncio.set_event_loop(loop)
        try:
            started["server"] = loop.run_until_complete(start_server(service))
        except BaseException as exc:
            started["error"] = exc
        finally:
            ready.set()
        if "server" in started:
            loop.run_forever()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    assert ready.wait(60), "the server did not start"
    if "error" in started:
        raise started["error"]
    running: RunningServer = started["server"]
    try:
        yield running, loop
    finally:
        asyncio.run_coroutine_threadsafe(running.stop(grace_s=0), loop).result(timeout=30)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout=30)
        loop.close()


def error_of(fn: Callable[..., Any], request: Any, **kwargs: Any) -> errors.GantryError:
    """The typed error a call fails with (it must fail)."""
    with pytest.raises(grpc.RpcError) as info:
        fn(request, **kwargs)
    return errors.from_rpc_error(info.value)


def engine_of(service: RolloutService) -> Engine:
    """The transformers engine of a started service (the backend the tests run)."""
    generator = service.generator
    assert isinstance(generator, TransformersGenerator)
    return generator.engine


def vlm_of(service: RolloutService) -> VlmGenerator:
    assert service.model.vlm is not None
    return service.model.vlm
