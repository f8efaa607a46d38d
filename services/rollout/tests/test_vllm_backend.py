"""The vLLM adapter's translation and control flow, against a stand-in engine (no GPU).

The real engine is exercised on the GPU machine by benchmarks/gpu_checks.py.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import pytest
import torch

from gantry.core.errors import FailedPrecondition
from gantry.rollout.engine.types import FinishReason, SamplingParams
from gantry.rollout.vllm_backend import (
    VLLM_LOGPROBS_MODES,
    VllmGenerator,
    delta_from_output,
    sample_seed,
    to_vllm_params,
)


@dataclass
class _Logprob:
    logprob: float


@dataclass
class _Completion:
    token_ids: list[int]
    logprobs: list[dict[int, _Logprob]]
    text: str
    finish_reason: str | None = None


@dataclass
class _Output:
    outputs: list[_Completion]
    finished: bool


@dataclass
class _FakeEngine:
    """Streams three tokens per request, like AsyncLLM with RequestOutputKind.DELTA."""

    aborted: list[str] = field(default_factory=list)
    rpcs: list[tuple[str, Any]] = field(default_factory=list)

    async def generate(self, prompt: Any, params: Any, request_id: str) -> AsyncIterator[_Output]:
        for step in range(3):
            await asyncio.sleep(0)
            done = step == 2
            yield _Output(
                [
                    _Completion(
                        [10 + step],
                        [{10 + step: _Logprob(-0.5 * step)}],
                        f"t{step}",
                        "length" if done else None,
                    )
                ],
                done,
            )

    async def abort(self, ids: list[str]) -> None:
        self.aborted += ids

    async def collective_rpc(self, method: str, args: tuple[Any, ...]) -> None:
        self.rpcs.append((method, args))

    async def reset_prefix_cache(self) -> None:
        pass

    def shutdown(self) -> None:
        pass


def test_params_translate_to_vllm() -> None:
    captured: dict[str, Any] = {}

    def fake(**kwargs: Any) -> dict[str, Any]:
        captured.update(kwargs)
        return kwargs

    to_vllm_params(SamplingParams(max_tokens=9, temperature=0.5, top_k=0, stop=("x",), n=3), fake)
    assert captured["n"] == 1 and captured["logprobs"] == 0 and captured["top_k"] == -1
    assert captured["stop"] == ["x"] and captured["max_tokens"] == 9
    assert sample_seed(SamplingParams(seed=1), 0) != sample_seed(SamplingParams(seed=1), 1)


def test_delta_carries_raw_logprobs_and_finish() -> None:
    output = _Output(
        [_Completion([5, 6], [{5: _Logprob(-1.0)}, {6: _Logprob(-2.0)}], "ab", "stop")], True
    )
    delta = delta_from_output("r", 1, output, 4)
    assert (delta.token_ids, delta.logprobs, delta.finish_reason, delta.policy_version) == (
        [5, 6], [-1.0, -2.0], FinishReason.STOP, 4,
    )  # fmt: skip


async def test_generate_streams_n_samples_and_updates_weights(monkeypatch: Any) -> None:
    import sys
    import types

    vllm = types.ModuleType("vllm")
    vllm.SamplingParams = lambda **kw: types.SimpleNamespace(**kw)  # type: ignore[attr-defined]
    inputs = types.ModuleType("vllm.inputs")
    inputs.TokensPrompt = dict  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "vllm", vllm)
    monkeypatch.setitem(sys.modules, "vllm.inputs", inputs)
    engine = _FakeEngine()
    gen = VllmGenerator(engine, None, model_path="m", context_length=128, dtype=torch.bfloat16)
    deltas = [d async for d in gen.generate([1, 2], SamplingParams(n=2))]
    assert sorted({d.index for d in deltas}) == [0, 1]
    assert sum(1 for d in deltas if d.finish_reason is FinishReason.LENGTH) == 2
    version = await gen.update_weights({"w": torch.zeros(1)}, "drain")
    assert version == 1 and engine.rpcs[0][0] == "load_weights_from_tensors"
    stream = gen.generate([1], SamplingParams(n=1))
    await stream.__anext__()
    await stream.aclose()
    assert len(engine.aborted) == 1 and engine.aborted[0].endswith("-0")


def test_processed_greedy_deltas_report_a_point_mass() -> None:
    # vLLM's processed logprob for a greedy token omits the point mass; Gantry reports 0.
    output = _Output([_Completion([5], [{5: _Logprob(-0.4)}], "a", None)], False)
    assert delta_from_output("r", 0, output, 1, point_mass=True).logprobs == [0.0]
    assert delta_from_output("r", 0, output, 1).logprobs == [-0.4]


async def test_a_request_for_the_other_logprobs_mode_is_refused(monkeypatch: Any) -> None:
    import sys
    import types

    vllm = types.ModuleType("vllm")
    vllm.SamplingParams = lambda **kw: types.SimpleNamespace(**kw)  # type: ignore[attr-defined]
    inputs = types.ModuleType("vllm.inputs")
    inputs.TokensPrompt = dict  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "vllm", vllm)
    monkeypatch.setitem(sys.modules, "vllm.inputs", inputs)
    engine = _FakeEngine()
    gen = VllmGenerator(
        engine, None, model_path="m", context_length=128, dtype=torch.bfloat16,
        logprobs_mode="processed",
    )  # fmt: skip
    with pytest.raises(FailedPrecondition, match="logprobs_mode"):
        await gen.generate([1], SamplingParams()).__anext__()
    deltas = [d async for d in gen.generate([1], SamplingParams(logprobs_mode="processed"))]
    assert deltas and not engine.aborted
    assert VLLM_LOGPROBS_MODES == {"raw": "raw_logprobs", "processed": "processed_logprobs"}
