"""Per-client fairness and admission control in the engine (issue 13, defect 6).

A huge request from one client must not starve a small one from another: batch slots
are shared max-min fairly, prefill work per step is bounded (long prompts in chunks),
and the queue beyond the batch is bounded (RESOURCE_EXHAUSTED with RetryInfo).
"""

from __future__ import annotations

import asyncio
import json
import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
import torch

from gantry.core import errors
from gantry.core.client import sync_channel
from gantry.models.loading import CausalLM, load_causal_lm
from gantry.proto.common.v1 import sampling_pb2
from gantry.proto.rollout.v1 import rollout_pb2, rollout_pb2_grpc
from gantry.rollout.engine.fairness import fair_shares
from gantry.rollout.engine.types import FinishReason, SamplingParams
from gantry.rollout.generator import TransformersGenerator, complete
from gantry.rollout.service import RolloutService
from gantry.rollout.settings import RolloutSettings

from .helpers import TOKEN, common_settings, engine_of, serve_with_loop


def test_fair_shares_are_max_min_fair() -> None:
    assert fair_shares(16, {"huge": 512, "small": 1}) == {"huge": 15, "small": 1}
    assert fair_shares(16, {"a": 10, "b": 10}) == {"a": 8, "b": 8}
    assert fair_shares(10, {"a": 3, "b": 100, "c": 100}) == {"a": 3, "b": 4, "c": 3}
    assert fair_shares(2, {"a": 5, "b": 5, "c": 5}) == {"a": 1, "b": 1, "c": 0}
    assert fair_shares(8, {"a": 0, "b": 2}) == {"a": 0, "b": 2}


def _reference(bundle: CausalLM, prompt: list[int], tokens: list[int]) -> list[float]:
    with torch.no_grad():
        logits = bundle.model(torch.tensor([prompt + tokens])).logits[0].float()
    logprobs = torch.log_softmax(logits, -1)
    return [logprobs[len(prompt) - 1 + t, tok].item() for t, tok in enumerate(tokens)]


async def _steps(generator: TransformersGenerator, count: int) -> None:
    """Wait until the engine has run `count` decode steps."""
    for _ in range(2000):
        if generator.engine.steps >= count:
            return
        await asyncio.sleep(0.005)
    raise TimeoutError("the engine made no progress")


@pytest.fixture
def small_engine(bundle: CausalLM) -> Iterator[TransformersGenerator]:
    """4 batch slots, 16 prefill tokens a step: preemption and chunking happen at once."""
    gen = TransformersGenerator(
        load_causal_lm(bundle.path), max_batch_size=4, max_prefill_tokens=16
    )
    yield gen
    gen.engine.stop()


async def test_preemption_and_chunked_prefill_keep_logprobs_exact(
    small_engine: TransformersGenerator, bundle: CausalLM
) -> None:
    long_prompt = list(range(10, 70))  # 60 tokens: four prefill chunks
    short_prompt = [5, 6, 7]
    params = SamplingParams(max_tokens=48, seed=11, ignore_eos=True)
    huge = asyncio.ensure_future(
        complete(small_engine, long_prompt, SamplingParams(**{**params.__dict__, "n": 6}), "a")
    )
    await _steps(small_engine, 8)  # a's prompt is in, four of its samples are decoding
    small = asyncio.ensure_future(
        complete(small_engine, short_prompt, SamplingParams(**{**params.__dict__, "n": 2}), "b")
    )
    results = await asyncio.gather(huge, small)
    assert small_engine.engine.preemptions > 0, "client b never displaced client a"
    for prompt, samples in zip((long_prompt, short_prompt), results, strict=True):
        for sample in samples:
            assert len(sample.token_ids) == 48 and sample.finish_reason is FinishReason.LENGTH
            expected = _reference(bundle, prompt, sample.token_ids)
            assert max(abs(a - b) for a, b in zip(sample.logprobs, expected, strict=True)) < 1e-4
    assert small_engine.engine.in_flight == 0


async def test_a_small_request_finishes_within_a_few_steps_of_a_huge_one(
    small_engine: TransformersGenerator,
) -> None:
    engine = small_engine.engine
    huge_params = SamplingParams(max_tokens=400, ignore_eos=True, n=8)
    huge = [
        asyncio.ensure_future(complete(small_engine, [9] * 40 + [i], huge_params, "huge"))
        for i in range(8)
    ]
    await _steps(small_engine, 5)
    start = engine.steps
    await complete(small_engine, [1, 2, 3], SamplingParams(max_tokens=4, ignore_eos=True), "small")
    waited = engine.steps - start
    assert waited <= 8, f"the small request took {waited} decode steps"
    for task in huge:
        task.cancel()
    await asyncio.gather(*huge, return_exceptions=True)


async def test_admission_control_bounds_the_queue_per_client_and_in_total(
    bundle: CausalLM,
) -> None:
    gen = TransformersGenerator(
        load_causal_lm(bundle.path), max_batch_size=2, max_queued=6, max_queued_per_client=4
    )
    params = SamplingParams(max_tokens=500, ignore_eos=True)
    streams = []
    try:
        first = gen.generate([1, 2], SamplingParams(**{**params.__dict__, "n": 6}), client="a")
        await first.__anext__()  # a: 6 = 2 in the batch + 4 queued (its bound)
        streams.append(first)
        with pytest.raises(errors.ResourceExhausted) as info:
            await gen.generate([1], params, client="a").__anext__()
        assert info.value.retry_after_s and info.value.retry_after_s > 0
        second = gen.generate([3, 4], SamplingParams(**{**params.__dict__, "n": 2}), client="b")
        await second.__anext__()  # b still gets in: 8 = 2 + 6 in total
        streams.append(second)
        with pytest.raises(errors.ResourceExhausted):
            gen.check_capacity("c", 1)  # the total bound is reached
        assert gen.engine.in_flight == 8
    finally:
        for stream in streams:
            await stream.aclose()
        for _ in range(200):
            if gen.engine.in_flight == 0:
                break
            await asyncio.sleep(0.01)
        assert gen.engine.in_flight == 0
        gen.engine.stop()


def test_engine_stop_ends_every_sample_of_waiting_requests(bundle: CausalLM) -> None:
    gen = TransformersGenerator(load_causal_lm(bundle.path), max_batch_size=1)
    deltas: list[tuple[int, FinishReason | None]] = []
    done = threading.Event()

    def sink(delta: object) -> None:
        deltas.append((delta.index, delta.finish_reason))  # type: ignore[attr-defined]
        done.set()

    gen.engine.submit("r0", [1, 2], SamplingParams(max_tokens=500, ignore_eos=True), sink, "a")
    gen.engine.submit("r1", [1, 2], SamplingParams(max_tokens=5, n=3), lambda d: None, "b")
    gen.engine.submit("r2", [1, 2], SamplingParams(max_tokens=5, n=3), sink, "a")
    assert done.wait(10)
    gen.engine.stop()
    finished = [i for i, reason in deltas if reason is FinishReason.CANCELLED]
    assert sorted(finished) == [0, 0, 1, 2]  # r0 in flight, and each of r2's three samples
    assert gen.engine.in_flight == 0


# ----- the figure: a small call's latency while a huge one runs, over gRPC ------------

REPORT = os.environ.get("GANTRY_FAIRNESS_REPORT")  # a path: write the figures there too


@pytest.mark.slow
def test_small_call_latency_while_a_huge_call_runs(tmp_path: Path) -> None:
    """The largest request the default limits accept (64 prompts x n=8 = 512 sequences,
    ~750-token prompts, max_tokens 2047) streams from client "huge"; client "small" then
    asks for 4 tokens five times. Each small call must finish within 2 s."""
    settings = RolloutSettings(**common_settings(tmp_path), torch_threads=1)
    service = RolloutService(settings)
    with (
        serve_with_loop(service) as (running, _),
        sync_channel(f"127.0.0.1:{running.port}", token=TOKEN) as channel,
    ):
        stub = rollout_pb2_grpc.RolloutServiceStub(channel)
        prompts = [rollout_pb2.Prompt(text="hello world " * 250 + str(i)) for i in range(64)]
        huge = stub.GenerateStream(
            rollout_pb2.GenerateStreamRequest(
                input=rollout_pb2.GenerationInput(
                    prompts=prompts,
                    sampling=sampling_pb2.SamplingParams(
                        n=settings.max_sequences_per_request // 64, max_tokens=2047
                    ),
                )
            ),
            metadata=(("x-client-id", "huge"),),
        )
        received = [0]

        def consume() -> None:
            try:
                for _ in huge:
                    received[0] += 1
            except grpc.RpcError:
                pass

        reader = threading.Thread(target=consume, daemon=True)
        reader.start()
        small = rollout_pb2.GenerateRequest(
            input=rollout_pb2.GenerationInput(
                prompts=[rollout_pb2.Prompt(text="hi")],
                sampling=sampling_pb2.SamplingParams(max_tokens=4),
            )
        )
        latencies = []
        in_flight = []
        for _ in range(5):
            time.sleep(0.3)
            started = time.perf_counter()
            stub.Generate(small, metadata=(("x-client-id", "small"),), timeout=30)
            latencies.append(time.perf_counter() - started)
            in_flight.append(engine_of(service).in_flight)
        huge_tokens = received[0]
        huge.cancel()
        reader.join(timeout=10)
    figures = {
        "small_latency_s": [round(x, 3) for x in latencies],
        "max_s": round(max(latencies), 3),
        "huge_in_flight": in_flight,
        "huge_deltas_streamed": huge_tokens,
    }
    print("fairness:", json.dumps(figures))
    if REPORT:
        Path(REPORT).write_text(json.dumps(figures, indent=2))
    assert min(in_flight) > 400, "the huge request was not running alongside"
    assert huge_tokens > 0, "the huge request was starved"
    assert max(latencies) <= 2.0, figures
