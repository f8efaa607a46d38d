"""rollout's token, scheduler and HTTP series, read through the real `/metrics` endpoint of a
real server (tiny model) after calls on each front: gRPC, OpenAI HTTP and OIP."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
import torch

from gantry.core.client import sync_channel
from gantry.core.metrics import CollectorRegistry
from gantry.core.ports import free_port
from gantry.core.server import RunningServer
from gantry.core.testing.oip import OipClient
from gantry.core.testing.scrape import Scrape, read_registry, scrape
from gantry.core.testing.threaded import serve_in_thread
from gantry.proto.rollout.v1 import rollout_pb2, rollout_pb2_grpc
from gantry.rollout.engine.types import SamplingParams
from gantry.rollout.generator import FRONT, GenerationMetrics
from gantry.rollout.service import RolloutService
from gantry.rollout.settings import RolloutSettings
from gantry.rollout.vllm_backend import VllmGenerator

from .helpers import TOKEN, common_settings
from .test_vllm_backend import _FakeEngine

MODEL = "tiny-lm"
PROMPT, GENERATED = "gantry_rollout_prompt_tokens_total", "gantry_rollout_generated_tokens_total"
QUEUED, RUNNING = "gantry_rollout_queued_sequences", "gantry_rollout_running_sequences"
REUSED, HELD = "gantry_rollout_prefix_cache_reused_tokens", "gantry_rollout_prefix_cache_bytes"
HTTP, HTTP_SECONDS = "gantry_http_requests_total", "gantry_http_request_seconds_count"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


@dataclass
class Served:
    service: RolloutService
    running: RunningServer
    target: str
    base: str  # the OpenAI front's base URL

    def scrape(self) -> Scrape:
        return scrape(self.running)

    def scrape_http(self, before: Scrape, requests: int, timeout_s: float = 10.0) -> Scrape:
        """A scrape once `requests` more HTTP requests are counted than in `before`: a
        request is counted when its last byte has gone out, so the client can hold the
        response a moment before the server's bookkeeping has run."""
        deadline = time.monotonic() + timeout_s
        while True:
            scraped = self.scrape()
            grown = scraped.total(HTTP) - before.total(HTTP)
            if grown >= requests or time.monotonic() > deadline:
                return scraped
            time.sleep(0.02)


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    settings = RolloutSettings(
        **{**common_settings(tmp_path_factory.mktemp("metrics")), "metrics_port": free_port()},
        model_name=MODEL,
        openai_port=free_port(),
        max_batch_size=2,
        torch_threads=1,
    )
    service = RolloutService(settings)
    with serve_in_thread(service) as running:
        assert service.openai is not None
        base = f"http://127.0.0.1:{service.openai.port}"
        yield Served(service, running, f"127.0.0.1:{running.port}", base)


def _tokens(before: Scrape, after: Scrape, front: str) -> tuple[float, float]:
    """(prompt, generated) tokens counted for `front` between two scrapes."""
    return (
        after.value(PROMPT, front=front) - before.value(PROMPT, front=front),
        after.value(GENERATED, front=front) - before.value(GENERATED, front=front),
    )


def _generate(target: str, prompts: list[str], n: int, max_tokens: int) -> Any:
    request = rollout_pb2.GenerateRequest(
        input=rollout_pb2.GenerationInput(prompts=[rollout_pb2.Prompt(text=p) for p in prompts])
    )
    request.input.sampling.n = n
    request.input.sampling.max_tokens = max_tokens
    request.input.sampling.seed = 3
    with sync_channel(target, token=TOKEN) as channel:
        return rollout_pb2_grpc.RolloutServiceStub(channel).Generate(request, timeout=120)


def test_grpc_generation_counts_exactly_the_reported_usage(served: Served) -> None:
    before = served.scrape()
    reply = _generate(served.target, ["The maze", "Once upon a time there"], n=3, max_tokens=7)
    after = served.scrape()
    prompt_ids = sum(len(r.prompt_token_ids) for r in reply.results)
    sampled = sum(len(c.tokens.token_ids) for r in reply.results for c in r.completions)
    assert reply.usage.prompt_tokens == prompt_ids > 0  # each prompt once, whatever n
    assert reply.usage.completion_tokens == sampled > 0
    assert _tokens(before, after, "grpc") == (prompt_ids, sampled)
    assert _tokens(before, after, "openai") == (0, 0)
    assert _tokens(before, after, "oip") == (0, 0)


def test_prefix_cache_gauges_show_reused_prompt_tokens(served: Served) -> None:
    text = "the agent walks to the door, opens it and looks at the hall " * 3
    first = _generate(served.target, [text], n=1, max_tokens=3)
    before = served.scrape()
    assert before.value(HELD) > 0  # the finished sequence's keys and values
    _generate(served.target, [text], n=1, max_tokens=3)
    after = served.scrape()
    prompt = len(first.results[0].prompt_token_ids)
    assert after.value(REUSED) - before.value(REUSED) == prompt - 1  # all but the last


def test_openai_calls_count_tokens_and_http_requests_by_route(served: Served) -> None:
    before = served.scrape()
    body = {"model": MODEL, "prompt": "Tell a story", "max_tokens": 6, "n": 2, "seed": 1}
    reply = httpx.post(f"{served.base}/v1/completions", json=body, headers=AUTH, timeout=60)
    assert reply.status_code == 200
    usage = reply.json()["usage"]
    chat = {
        "model": MODEL,
        "messages": [{"role": "user", "content": "Name a colour."}],
        "max_tokens": 5,
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    with httpx.stream(
        "POST", f"{served.base}/v1/chat/completions", json=chat, headers=AUTH, timeout=60
    ) as stream:
        events = [line[6:] for line in stream.iter_lines() if line.startswith("data: ")]
    assert events[-1] == "[DONE]"
    streamed = json.loads(events[-2])["usage"]
    after = served.scrape_http(before, 2)
    assert _tokens(before, after, "openai") == (
        usage["prompt_tokens"] + streamed["prompt_tokens"],
        usage["completion_tokens"] + streamed["completion_tokens"],
    )
    assert _tokens(before, after, "grpc") == (0, 0)

    def requests(scraped: Scrape, route: str, code: str) -> float:
        return scraped.value(HTTP, route=route, code=code)

    for route in ("/v1/completions", "/v1/chat/completions"):
        assert requests(after, route, "200") - requests(before, route, "200") == 1
        assert after.value(HTTP_SECONDS, route=route) - before.value(HTTP_SECONDS, route=route) == 1


def test_http_routes_are_templates_and_refusals_count(served: Served) -> None:
    before = served.scrape()
    assert httpx.get(f"{served.base}/v1/models/no-such-model", headers=AUTH).status_code == 404
    assert httpx.get(f"{served.base}/v1/secret-path-1", headers=AUTH).status_code == 404
    assert httpx.get(f"{served.base}/v1/secret-path-2", headers=AUTH).status_code == 404
    bad = {"Authorization": "Bearer wrong"}
    assert httpx.post(f"{served.base}/v1/completions", json={}, headers=bad).status_code == 401
    assert httpx.get(f"{served.base}/v1/completions", headers=AUTH).status_code == 405
    after = served.scrape_http(before, 6)

    def grew(route: str, code: str) -> float:
        labels = {"route": route, "code": code}
        return after.value(HTTP, **labels) - before.value(HTTP, **labels)

    assert grew("/v1/models/{model}", "404") == 1
    assert grew("unmatched", "404") == 2  # unknown paths share one label value
    assert grew("/v1/completions", "401") == 1
    assert grew("/v1/completions", "405") == 1
    assert "secret-path" not in after.text and "no-such-model" not in after.text


def test_oip_generation_counts_as_the_oip_front(served: Served) -> None:
    before = served.scrape()
    with OipClient(served.target, TOKEN) as client:
        result = client.call(
            "infer",
            model=MODEL,
            inputs=[{"name": "text_input", "datatype": "BYTES", "shape": [2], "data": ["a", "b"]}],
            outputs=["prompt_tokens", "completion_tokens"],
            parameters={"max_tokens": 4, "temperature": 0.0},
        )
    after = served.scrape()
    outputs = result["outputs"]
    reported = (sum(outputs["prompt_tokens"]["data"]), sum(outputs["completion_tokens"]["data"]))
    assert reported[1] > 0
    assert _tokens(before, after, "oip") == reported
    assert _tokens(before, after, "grpc") == (0, 0)


@pytest.mark.slow
def test_scheduler_gauges_show_the_queue_and_the_batch(served: Served) -> None:
    idle = served.scrape()
    assert (idle.value(QUEUED), idle.value(RUNNING)) == (0, 0)
    # 12 sequences for a batch of 2: two decode while the rest wait (parked or queued).
    call = threading.Thread(
        target=_generate, args=(served.target, ["Count:"] * 3, 4, 40), daemon=True
    )
    call.start()
    seen: set[tuple[float, float]] = set()
    while call.is_alive():
        now = served.scrape()
        seen.add((now.value(QUEUED), now.value(RUNNING)))
    call.join(timeout=120)
    assert all(running <= 2 and queued + running <= 12 for queued, running in seen), seen
    assert any(running == 2 and queued >= 1 for queued, running in seen), seen
    deadline = time.monotonic() + 5
    done = served.scrape()
    while (done.value(QUEUED), done.value(RUNNING)) != (0, 0) and time.monotonic() < deadline:
        time.sleep(0.05)
        done = served.scrape()
    assert (done.value(QUEUED), done.value(RUNNING)) == (0, 0)


def test_the_vllm_backend_counts_tokens_but_reports_no_scheduler(monkeypatch: Any) -> None:
    import sys
    import types

    vllm = types.ModuleType("vllm")
    vllm.SamplingParams = lambda **kw: types.SimpleNamespace(**kw)  # type: ignore[attr-defined]
    inputs = types.ModuleType("vllm.inputs")
    inputs.TokensPrompt = dict  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "vllm", vllm)
    monkeypatch.setitem(sys.modules, "vllm.inputs", inputs)
    registry = CollectorRegistry()
    gen = VllmGenerator(
        _FakeEngine(),
        None,
        model_path="m",
        context_length=128,
        dtype=torch.bfloat16,
        metrics=GenerationMetrics(registry),
    )

    async def run() -> int:
        FRONT.set("openai")
        deltas = [d async for d in gen.generate([1, 2, 3], SamplingParams(n=2))]
        return sum(len(d.token_ids) for d in deltas)

    generated = asyncio.run(run())
    read = read_registry(registry)
    assert generated == 6  # the stand-in streams three tokens per sample
    assert read.value(PROMPT, front="openai") == 3
    assert read.value(GENERATED, front="openai") == generated
    assert read.value(GENERATED, front="grpc") == 0
    assert not read.labels(QUEUED) and not read.labels(RUNNING)
