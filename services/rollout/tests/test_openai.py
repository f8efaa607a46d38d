"""The OpenAI-compatible HTTP front, through the official `openai` client, against a real
rollout server (tiny model, real ports) whose gRPC answers are the reference."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from typing import Any

import httpx
import openai
import pytest
from starlette.testclient import TestClient

from gantry.core.client import sync_channel
from gantry.core.ports import free_port
from gantry.core.testing.threaded import serve_in_thread
from gantry.proto.common.v1 import chat_pb2, sampling_pb2
from gantry.proto.rollout.v1 import rollout_pb2, rollout_pb2_grpc
from gantry.rollout.openai_http import OpenAIFront
from gantry.rollout.service import RolloutService
from gantry.rollout.settings import RolloutSettings

from .helpers import TOKEN, common_settings, engine_of, serve_with_loop

MODEL = "gantry-tiny"
MESSAGES: list[Any] = [
    {"role": "system", "content": "You are terse."},
    {"role": "user", "content": "Name a colour."},
]


def _settings(data_dir: Any, **extra: Any) -> RolloutSettings:
    # A small queue (2 running + 4 waiting) so one client can be refused cheaply.
    return RolloutSettings(
        **common_settings(data_dir),
        model_name=MODEL,
        max_batch_size=2,
        max_n=4,
        max_sequences_per_request=4,
        max_queued_sequences=4,
        max_queued_sequences_per_client=4,
        torch_threads=1,
        **extra,
    )


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[RolloutService, str, str]]:
    """(service, gRPC target, OpenAI base URL) of one server shared by the module."""
    service = RolloutService(_settings(tmp_path_factory.mktemp("openai"), openai_port=free_port()))
    with serve_in_thread(service) as running:
        assert service.openai is not None
        yield service, f"127.0.0.1:{running.port}", f"http://127.0.0.1:{service.openai.port}/v1"


@pytest.fixture(scope="module")
def client(server: tuple[RolloutService, str, str]) -> openai.OpenAI:
    return openai.OpenAI(base_url=server[2], api_key=TOKEN, max_retries=0, timeout=60)


@pytest.fixture(scope="module")
def stub(server: tuple[RolloutService, str, str]) -> Iterator[rollout_pb2_grpc.RolloutServiceStub]:
    with sync_channel(server[1], token=TOKEN) as channel:
        yield rollout_pb2_grpc.RolloutServiceStub(channel)


def _greedy(prompt: rollout_pb2.Prompt, max_tokens: int) -> rollout_pb2.GenerateRequest:
    return rollout_pb2.GenerateRequest(
        input=rollout_pb2.GenerationInput(
            prompts=[prompt],
            sampling=sampling_pb2.SamplingParams(
                temperature=0.0, max_tokens=max_tokens, logprobs=True
            ),
        )
    )


def test_models_list_and_alias(client: openai.OpenAI) -> None:
    assert [m.id for m in client.models.list()] == [MODEL]
    assert client.models.retrieve("tiny").id == "tiny"  # the model path is an alias
    with pytest.raises(openai.NotFoundError):
        client.models.retrieve("gpt-4o")


def test_chat_logprobs_equal_grpc(
    client: openai.OpenAI, stub: rollout_pb2_grpc.RolloutServiceStub
) -> None:
    reply = client.chat.completions.create(
        model=MODEL, messages=MESSAGES, temperature=0, max_tokens=8, logprobs=True
    )
    conversation = chat_pb2.Conversation(
        messages=[
            chat_pb2.ChatMessage(role=chat_pb2.ROLE_SYSTEM, content=[{"text": "You are terse."}]),
            chat_pb2.ChatMessage(role=chat_pb2.ROLE_USER, content=[{"text": "Name a colour."}]),
        ]
    )
    reference = stub.Generate(_greedy(rollout_pb2.Prompt(messages=conversation), 8)).results[0]
    (choice,) = reply.choices
    expected = reference.completions[0]
    assert choice.message.role == "assistant"
    assert choice.message.content == expected.text
    assert choice.logprobs is not None and choice.logprobs.content is not None
    got = [entry.logprob for entry in choice.logprobs.content]
    assert got == pytest.approx(list(expected.tokens.logprobs), abs=1e-5)
    assert all(entry.top_logprobs == [] for entry in choice.logprobs.content)
    assert reply.usage is not None
    assert reply.usage.prompt_tokens == len(reference.prompt_token_ids)
    assert reply.usage.completion_tokens == len(expected.tokens.token_ids)
    assert choice.finish_reason in ("stop", "length")


def test_completion_logprobs_equal_grpc(
    client: openai.OpenAI, stub: rollout_pb2_grpc.RolloutServiceStub
) -> None:
    reply = client.completions.create(
        model=MODEL, prompt="The maze has", temperature=0, max_tokens=8, logprobs=0
    )
    reference = stub.Generate(_greedy(rollout_pb2.Prompt(text="The maze has"), 8)).results[0]
    (choice,) = reply.choices
    expected = reference.completions[0]
    assert choice.text == expected.text
    assert choice.logprobs is not None and choice.logprobs.token_logprobs is not None
    assert choice.logprobs.token_logprobs == pytest.approx(list(expected.tokens.logprobs), abs=1e-5)
    assert choice.logprobs.tokens is not None
    assert len(choice.logprobs.tokens) == len(expected.tokens.token_ids)
    assert reply.usage is not None and reply.usage.prompt_tokens == len(reference.prompt_token_ids)


def test_top_logprobs_list_the_likeliest_tokens(client: openai.OpenAI) -> None:
    chat = client.chat.completions.create(
        model=MODEL,
        messages=MESSAGES,
        temperature=0,
        max_tokens=6,
        logprobs=True,
        top_logprobs=3,
    )
    content = chat.choices[0].logprobs
    assert content is not None and content.content
    for entry in content.content:  # greedy: the sampled token is the likeliest
        alternatives = [t.logprob for t in entry.top_logprobs]
        assert len(alternatives) == 3 and alternatives == sorted(alternatives, reverse=True)
        assert entry.top_logprobs[0].token == entry.token
        assert entry.top_logprobs[0].logprob == pytest.approx(entry.logprob, abs=1e-6)
    streamed = client.completions.create(
        model=MODEL, prompt="The maze has", max_tokens=6, logprobs=2, seed=3, stream=True
    )
    positions = 0
    for chunk in streamed:
        logprobs = chunk.choices[0].logprobs
        if logprobs is None or not logprobs.tokens:
            continue
        assert logprobs.top_logprobs is not None and logprobs.token_logprobs is not None
        for token, logprob, top in zip(
            logprobs.tokens, logprobs.token_logprobs, logprobs.top_logprobs, strict=True
        ):
            assert top[token] == logprob and 1 <= len(top) <= 3
            positions += 1
    assert positions == 6


def test_streams_add_up_to_the_whole(client: openai.OpenAI) -> None:
    whole = client.chat.completions.create(
        model=MODEL, messages=MESSAGES, temperature=0, max_completion_tokens=12
    )
    chunks = list(
        client.chat.completions.create(
            model=MODEL,
            messages=MESSAGES,
            temperature=0,
            max_completion_tokens=12,
            stream=True,
            stream_options={"include_usage": True},
        )
    )
    assert chunks[0].choices[0].delta.role == "assistant"
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == whole.choices[0].message.content
    finishes = [c.choices[0].finish_reason for c in chunks if c.choices]
    assert finishes[-1] == whole.choices[0].finish_reason and not any(finishes[:-1])
    assert chunks[-1].choices == [] and chunks[-1].usage is not None
    assert whole.usage is not None
    assert chunks[-1].usage.completion_tokens == whole.usage.completion_tokens


def test_completion_stream_n_and_seed_reproduce(client: openai.OpenAI) -> None:
    args: dict[str, Any] = {"model": MODEL, "prompt": "Once", "max_tokens": 10, "n": 3}
    first = client.completions.create(**args, seed=7, temperature=1.0)
    again = client.completions.create(**args, seed=7, temperature=1.0)
    other = client.completions.create(**args, seed=8, temperature=1.0)
    texts = [c.text for c in sorted(first.choices, key=lambda c: c.index)]
    assert [c.index for c in sorted(first.choices, key=lambda c: c.index)] == [0, 1, 2]
    assert texts == [c.text for c in sorted(again.choices, key=lambda c: c.index)]
    assert texts != [c.text for c in sorted(other.choices, key=lambda c: c.index)]
    streamed = ["", "", ""]
    for chunk in client.completions.create(**args, seed=7, temperature=1.0, stream=True):
        for choice in chunk.choices:
            streamed[choice.index] += choice.text
    assert streamed == texts


def test_stop_strings_cut_the_text(client: openai.OpenAI) -> None:
    args: dict[str, Any] = {"model": MODEL, "prompt": "A B C", "temperature": 0}
    free = client.completions.create(**args, max_tokens=24).choices[0].text
    candidates = [free[i : i + 2] for i in range(1, len(free) - 1) if free[i : i + 2].strip()]
    assert candidates, f"the greedy text {free!r} is too short to pick a stop string"
    stop = candidates[len(candidates) // 2]
    cut = client.completions.create(**args, max_tokens=24, stop=[stop]).choices[0]
    assert cut.text == free[: free.find(stop)]
    assert cut.finish_reason == "stop"


def test_a_wrong_or_missing_token_is_401(server: tuple[RolloutService, str, str]) -> None:
    wrong = openai.OpenAI(base_url=server[2], api_key="not-the-token", max_retries=0)
    with pytest.raises(openai.AuthenticationError):
        wrong.models.list()
    response = httpx.post(f"{server[2]}/chat/completions", json={"model": MODEL}, timeout=60)
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "invalid_api_key"


@pytest.mark.parametrize(
    ("kwargs", "param"),
    [
        ({"temperature": 2.5}, "temperature"),
        ({"top_p": 0}, "top_p"),
        ({"n": 5}, "n"),
        ({"stop": ["a", "b", "c", "d", "e"]}, "stop"),
        ({"max_tokens": 0}, "max_tokens"),
        ({"max_completion_tokens": 5000}, "max_completion_tokens"),
        ({"logprobs": True, "top_logprobs": 21}, "top_logprobs"),
        ({"top_logprobs": 3}, "top_logprobs"),
        ({"messages": []}, "messages"),
        ({"messages": [{"role": "wizard", "content": "hi"}]}, "messages[0].role"),
        ({"seed": -1}, "seed"),
        ({"presence_penalty": 1.0}, "presence_penalty"),
        ({"extra_body": {"frobnicate": 1}}, "frobnicate"),
    ],
)
def test_bad_chat_parameters_are_400_naming_them(
    client: openai.OpenAI, kwargs: dict[str, Any], param: str
) -> None:
    request: dict[str, Any] = {"model": MODEL, "messages": MESSAGES, "max_tokens": 4}
    if "max_completion_tokens" in kwargs:
        request.pop("max_tokens")
    request.update(kwargs)
    with pytest.raises(openai.BadRequestError) as info:
        client.chat.completions.create(**request)
    assert info.value.param == param, info.value.message


NASTY_BODIES: list[Any] = [
    [],
    "text",
    None,
    {"model": MODEL},
    {"model": 7, "messages": MESSAGES},
    {"model": MODEL, "messages": "hi"},
    {"model": MODEL, "messages": [None]},
    {"model": MODEL, "messages": [{"role": "user"}]},
    {"model": MODEL, "messages": [{"role": "user", "content": None}]},
    {"model": MODEL, "messages": [{"role": "user", "content": [{"type": "image_url"}]}]},
    {"model": MODEL, "messages": [{"role": "user", "content": [{"type": "text", "text": 5}]}]},
    {"model": MODEL, "messages": [{"role": "assistant", "content": "x", "tool_calls": []}]},
    {"model": MODEL, "messages": MESSAGES, "n": "2"},
    {"model": MODEL, "messages": MESSAGES, "n": True},
    {"model": MODEL, "messages": MESSAGES, "n": 2.5},
    b'{"model": "gantry-tiny", "messages": [{"role": "user", "content": "x"}], "top_p": 1e400}',
    b'{"model": "gantry-tiny", "messages": [{"role": "user", "content": "x"}], "top_p": NaN}',
    b'{"model": "gantry-tiny", "messages": ' + b"[" * 100_000 + b"]" * 100_000 + b"}",
    b'{"model": "gantry-tiny", "prompt": "\xff\xfe"}',
    {"model": MODEL, "messages": MESSAGES, "max_tokens": 10**30},
    {"model": MODEL, "messages": MESSAGES, "seed": 2**64},
    {"model": MODEL, "messages": MESSAGES, "stop": [""]},
    {"model": MODEL, "messages": MESSAGES, "stop": "x" * 10_000},
    {"model": MODEL, "messages": MESSAGES, "stop": [1]},
    {"model": MODEL, "messages": MESSAGES, "stream": "yes"},
    {"model": MODEL, "messages": MESSAGES, "stream_options": {"include_usage": True}},
    {"model": MODEL, "messages": MESSAGES, "logit_bias": {"5": 10}},
    {"model": MODEL, "messages": MESSAGES, "tools": [{"type": "function"}]},
    {"model": MODEL, "messages": MESSAGES, "response_format": {"type": "grammar"}},
    {"model": MODEL, "messages": MESSAGES, "chat_template_kwargs": {"tokenize": False}},
    {"model": MODEL, "messages": MESSAGES, "chat_template_kwargs": [1]},
    {"model": MODEL, "messages": [{"role": "user", "content": "x" * 70_000}]},
    {"model": MODEL, "messages": [{"role": "user", "content": ""}] * 2000},
    {"model": MODEL, "prompt": []},
    {"model": MODEL, "prompt": [[]]},
    {"model": MODEL, "prompt": [-1, 5]},
    {"model": MODEL, "prompt": [10**6]},
    {"model": MODEL, "prompt": ["a", 1]},
    {"model": MODEL, "prompt": ["a"] * 300},
    {"model": MODEL, "prompt": ""},
    {"model": MODEL, "prompt": "a", "echo": True},
    {"model": MODEL, "prompt": "a", "best_of": 3},
    {"model": MODEL, "prompt": "a", "logprobs": 21},
    {"model": MODEL, "prompt": "a", "suffix": "b"},
]


@pytest.mark.parametrize("body", NASTY_BODIES)
def test_malformed_bodies_are_client_errors(
    server: tuple[RolloutService, str, str], body: Any
) -> None:
    route = "completions" if isinstance(body, dict) and "prompt" in body else "chat/completions"
    headers = {"Authorization": f"Bearer {TOKEN}"}
    if isinstance(body, bytes):
        response = httpx.post(f"{server[2]}/{route}", content=body, headers=headers, timeout=60)
    else:
        response = httpx.post(f"{server[2]}/{route}", json=body, headers=headers, timeout=60)
    assert 400 <= response.status_code < 500, (response.status_code, response.text[:300])
    error = response.json()["error"]
    assert set(error) == {"message", "type", "param", "code"} and error["message"]


def test_prompts_past_the_context_and_unknown_models(client: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as info:
        client.completions.create(model=MODEL, prompt=[1] * 5000, max_tokens=4)
    assert info.value.param == "prompt"
    with pytest.raises(openai.NotFoundError) as missing:
        client.chat.completions.create(model="gpt-4o", messages=MESSAGES)
    assert missing.value.code == "model_not_found"


def test_bodies_and_routes(server: tuple[RolloutService, str, str]) -> None:
    headers = {"Authorization": f"Bearer {TOKEN}"}
    limit = server[0].settings.openai_max_body_bytes
    too_big = httpx.post(
        f"{server[2]}/completions", content=b"[" * (limit + 1), headers=headers, timeout=30
    )
    assert too_big.status_code == 413
    assert too_big.json()["error"]["code"] == "request_too_large"
    broken = httpx.post(
        f"{server[2]}/completions", content=b'{"model": ', headers=headers, timeout=60
    )
    assert broken.status_code == 400 and "JSON" in broken.json()["error"]["message"]
    missing = httpx.get(f"{server[2]}/embeddings", headers=headers, timeout=60)
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "unknown_url"
    assert httpx.get(f"{server[2]}/completions", headers=headers, timeout=60).status_code == 405


def test_overload_is_429_with_retry_after(
    server: tuple[RolloutService, str, str], client: openai.OpenAI
) -> None:
    args: dict[str, Any] = {"model": MODEL, "prompt": "Tell a story", "n": 4}
    hog = client.completions.create(**args, max_tokens=1500, stream=True)
    try:
        next(iter(hog))  # 4 sequences in flight: 2 running, 2 waiting
        with pytest.raises(openai.RateLimitError) as info:
            client.completions.create(**args, max_tokens=4)
        assert int(info.value.response.headers["retry-after"]) >= 1
        # Another client still gets its fair share of the queue.
        other = client.completions.create(
            model=MODEL, prompt="Hi", max_tokens=2, extra_headers={"x-client-id": "other"}
        )
        assert other.choices[0].finish_reason in ("stop", "length")
    finally:
        hog.close()
    engine = engine_of(server[0])
    deadline = time.monotonic() + 10
    while engine.in_flight and time.monotonic() < deadline:
        time.sleep(0.02)
    assert engine.in_flight == 0, "closing the stream did not free the batch slots"


def test_not_ready_and_draining_are_503(tmp_path_factory: pytest.TempPathFactory) -> None:
    service = RolloutService(_settings(tmp_path_factory.mktemp("gate")))
    front = OpenAIFront(service.settings, service.model, service.generation)
    with TestClient(front.app(None, service.gate)) as http:
        loading = http.get("/v1/models")
        assert loading.status_code == 503 and loading.headers["retry-after"] == "2"
        assert http.get("/health").status_code == 503
        service.gate.ready.set()
        assert http.get("/v1/models").json()["data"][0]["id"] == MODEL
        service.gate.draining.set()
        draining = http.post("/v1/chat/completions", json={})
        assert draining.status_code == 503
        assert draining.json()["error"]["code"] == "draining"


def test_the_front_is_off_unless_a_port_is_set(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GANTRY_ROLLOUT_AUTH_DISABLED", "true")
    assert RolloutSettings().openai_port is None
    monkeypatch.setenv("GANTRY_ROLLOUT_OPENAI_PORT", "8123")
    assert RolloutSettings().openai_port == 8123


def test_drain_ends_streams_with_an_error_event(tmp_path_factory: pytest.TempPathFactory) -> None:
    service = RolloutService(_settings(tmp_path_factory.mktemp("drain"), openai_port=free_port()))
    with serve_with_loop(service) as (running, loop):
        assert service.openai is not None
        url = f"http://127.0.0.1:{service.openai.port}/v1"
        client = openai.OpenAI(base_url=url, api_key=TOKEN, max_retries=0, timeout=60)
        stream = client.completions.create(
            model=MODEL, prompt="The maze has", temperature=0, max_tokens=1500, stream=True
        )
        chunks = iter(stream)
        first = next(chunks)
        assert first.choices[0].finish_reason is None
        sigterm = time.monotonic()
        stopped = asyncio.run_coroutine_threadsafe(running.stop(grace_s=20), loop)
        finishes: list[str | None] = []

        def read_all() -> None:
            finishes.extend(chunk.choices[0].finish_reason for chunk in chunks)

        with pytest.raises(openai.APIError) as info:
            read_all()
        assert not any(finishes), "the stream finished before the drain"
        assert info.value.code == "draining"
        stopped.result(timeout=30)
        assert time.monotonic() - sigterm < 10, "the stream was cut at the grace period"
        with pytest.raises(openai.APIConnectionError):  # the port is closed
            client.models.list()
