"""Rollout's text generation over KServe's Open Inference Protocol, called with tritonclient.

A real rollout server on the tiny random model; the client runs in .tools/oip-venv
(`make oip-client`). Greedy OIP completions must equal Generate's for the same prompts,
and OIP requests go through the same limits and admission.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from gantry.core.client import sync_channel
from gantry.core.testing.oip import OipClient, OipError
from gantry.core.testing.threaded import serve_in_thread
from gantry.proto.rollout.v1 import rollout_pb2, rollout_pb2_grpc
from gantry.rollout.service import RolloutService
from gantry.rollout.settings import RolloutSettings

from .helpers import TOKEN, common_settings

PROMPTS = ["The agent looked at the maze and", "Hello"]


@pytest.fixture(scope="module")
def target(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    settings = RolloutSettings(
        **common_settings(tmp_path_factory.mktemp("rollout-oip")),
        model_name="tiny-lm",
        max_batch_size=8,
        torch_threads=1,
        max_prompts_per_request=4,
        max_prompt_bytes=200,
    )
    with serve_in_thread(RolloutService(settings)) as running:
        yield f"127.0.0.1:{running.port}"


@pytest.fixture(scope="module")
def client(target: str) -> Iterator[OipClient]:
    with OipClient(target, TOKEN) as opened:
        yield opened


def _text(prompts: list[str]) -> dict[str, Any]:
    return {"name": "text_input", "datatype": "BYTES", "shape": [len(prompts)], "data": prompts}


def _generate(target: str, prompts: list[str], max_tokens: int) -> list[str]:
    request = rollout_pb2.GenerateRequest(
        input=rollout_pb2.GenerationInput(prompts=[rollout_pb2.Prompt(text=p) for p in prompts])
    )
    request.input.sampling.max_tokens = max_tokens
    request.input.sampling.temperature = 0.0
    with sync_channel(target, token=TOKEN) as channel:
        reply = rollout_pb2_grpc.RolloutServiceStub(channel).Generate(request, timeout=60)
    return [r.completions[0].text for r in reply.results]


def test_health_and_metadata(client: OipClient) -> None:
    assert client.call("server_live") and client.call("server_ready")
    assert client.call("model_ready", model="tiny-lm")
    meta = client.call("model_metadata", model="tiny-lm")
    assert meta["platform"] == "gantry-rollout"
    assert [(t["name"], t["datatype"]) for t in meta["inputs"]] == [("text_input", "BYTES")]
    assert [t["name"] for t in meta["outputs"]] == [
        "text_output",
        "prompt_tokens",
        "completion_tokens",
        "finish_reason",
    ]


def test_greedy_generation_matches_generate(client: OipClient, target: str) -> None:
    result = client.call(
        "infer",
        model="tiny-lm",
        inputs=[_text(PROMPTS)],
        outputs=["text_output", "completion_tokens", "prompt_tokens", "finish_reason"],
        parameters={"max_tokens": 6, "temperature": 0.0},
    )
    outputs = result["outputs"]
    assert result["raw_outputs"] == 4
    assert outputs["text_output"]["shape"] == [2]
    assert outputs["text_output"]["data"] == _generate(target, PROMPTS, 6)
    tokens = outputs["completion_tokens"]["data"]
    reasons = outputs["finish_reason"]["data"]
    assert all(1 <= n <= 6 for n in tokens)
    assert all(r == "length" for r, n in zip(reasons, tokens, strict=True) if n == 6)
    assert all(n > 0 for n in outputs["prompt_tokens"]["data"])


def test_typed_request_with_seed(client: OipClient) -> None:
    def sample() -> Any:
        return client.call(
            "infer_typed",
            model="tiny-lm",
            inputs=[_text(["Once upon a time"])],
            parameters={"max_tokens": 5, "temperature": 1.0, "top_p": 0.9, "seed": 7},
        )

    first, second = sample(), sample()
    assert first["raw_outputs"] == 0
    assert set(first["outputs"]) == {"text_output"}  # optional outputs only when asked
    assert first["outputs"]["text_output"]["data"] == second["outputs"]["text_output"]["data"]


@pytest.mark.parametrize(
    ("call", "field"),
    [
        ({"inputs": [_text(["a"] * 5)]}, "inputs[0].shape"),  # max_prompts_per_request = 4
        ({"inputs": [_text(["a" * 201])]}, "inputs[0].contents.bytes_contents[0]"),
        ({"inputs": [_text([])]}, "inputs[text_input].shape"),
        ({"inputs": [_text(["a"])], "parameters": {"max_tokens": 0}}, "parameters.max_tokens"),
        ({"inputs": [_text(["a"])], "parameters": {"max_tokens": 10**9}}, "parameters.max_tokens"),
        ({"inputs": [_text(["a"])], "parameters": {"temperature": -1.0}}, "parameters.temperature"),
        ({"inputs": [_text(["a"])], "parameters": {"top_p": 0.0}}, "parameters.top_p"),
        ({"inputs": [_text(["a"])], "parameters": {"seed": -1}}, "parameters.seed"),
        ({"inputs": [_text(["a"])], "parameters": {"n": 2}}, "parameters.n"),
        ({"inputs": [_text(["a"])], "parameters": {"max_tokens": "8"}}, "parameters.max_tokens"),
    ],
)
def test_bad_requests_name_the_field(client: OipClient, call: dict[str, Any], field: str) -> None:
    with pytest.raises(OipError) as info:
        client.call("infer_typed", model="tiny-lm", **call)
    assert info.value.status == "StatusCode.INVALID_ARGUMENT"
    assert info.value.message.startswith(field), info.value.message


def test_auth_and_unknown_model(client: OipClient) -> None:
    with pytest.raises(OipError) as info:
        client.call("infer", model="tiny-lm", inputs=[_text(["a"])], token="wrong")
    assert info.value.status == "StatusCode.UNAUTHENTICATED"
    with pytest.raises(OipError) as info:
        client.call("infer", model="gpt-4", inputs=[_text(["a"])])
    assert info.value.status == "StatusCode.NOT_FOUND" and "tiny-lm" in info.value.message
