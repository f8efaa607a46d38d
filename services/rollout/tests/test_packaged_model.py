"""rollout serves the packaged SmolLM2-135M-Instruct by name, through a real gRPC server.

The first run on a machine converts the GGUF once into the model cache (~1 min on 2
cores); later runs load the cached safetensors checkpoint in about a second.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from gantry.core.client import sync_channel
from gantry.core.testing.threaded import serve_in_thread
from gantry.proto.common.v1 import chat_pb2, sampling_pb2
from gantry.proto.rollout.v1 import rollout_pb2, rollout_pb2_grpc
from gantry.rollout.service import RolloutService
from gantry.rollout.settings import RolloutSettings

from .helpers import TOKEN, common_settings


@pytest.mark.slow
def test_generate_with_the_packaged_model_by_name(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GANTRY_ROLLOUT_MODEL_PATH", "smollm2-135m-instruct")
    settings = RolloutSettings(**common_settings(tmp_path), torch_threads=2)
    assert settings.model_path == "smollm2-135m-instruct"
    question = chat_pb2.ChatMessage(
        role=chat_pb2.ROLE_USER, content=[chat_pb2.ContentPart(text="What is 2+2?")]
    )
    request = rollout_pb2.GenerateRequest(
        input=rollout_pb2.GenerationInput(
            prompts=[rollout_pb2.Prompt(messages=chat_pb2.Conversation(messages=[question]))],
            sampling=sampling_pb2.SamplingParams(max_tokens=16, temperature=0.0),
        )
    )
    with (
        serve_in_thread(RolloutService(settings)) as running,
        sync_channel(f"127.0.0.1:{running.port}", token=TOKEN) as channel,
    ):
        reply = rollout_pb2_grpc.RolloutServiceStub(channel).Generate(request, timeout=120)
    completion = reply.results[0].completions[0]
    assert "4" in completion.text, completion.text
    assert completion.finish_reason == sampling_pb2.FINISH_REASON_STOP  # ended its turn
    assert len(completion.tokens.logprobs) == len(completion.tokens.token_ids) > 1
