"""Logprob modes: RAW (temperature-1 log softmax) and PROCESSED (the distribution sampled
from), checked against float64 references computed here from plain forward passes."""

from __future__ import annotations

import asyncio
import math
from collections.abc import Iterator
from typing import Any

import grpc
import pytest
import torch

from gantry.core import errors
from gantry.core.client import sync_channel
from gantry.models.loading import CausalLM
from gantry.proto.common.v1 import episode_pb2, sampling_pb2
from gantry.proto.rollout.v1 import rollout_pb2, rollout_pb2_grpc
from gantry.rollout.engine.sampling import make_generator, sample
from gantry.rollout.engine.types import SamplingParams
from gantry.rollout.generator import TransformersGenerator, complete
from gantry.rollout.service import RolloutService

from .helpers import TOKEN, engine_of

# (temperature, top_k, top_p): temperature alone, top-k alone, top-p alone, all three.
SETTINGS = [(0.7, 0, 1.0), (1.3, 20, 1.0), (1.0, 0, 0.9), (0.8, 50, 0.95), (1.0, 1, 1.0)]


def reference_processed(logits: torch.Tensor, temperature: float, k: int, p: float) -> torch.Tensor:
    """log of the sampling distribution, float64, written from the definition: divide by
    the temperature, keep the k largest, keep the smallest most-likely prefix whose mass
    reaches p, renormalise over what is kept."""
    scaled = logits.double() / temperature
    keep = torch.ones_like(scaled, dtype=torch.bool)
    if k:
        keep &= scaled >= scaled.topk(k).values[-1]
    probs = torch.softmax(scaled.masked_fill(~keep, -math.inf), -1)
    if p < 1.0:
        order = probs.argsort(descending=True)
        mass = 0.0
        nucleus = torch.zeros_like(keep)
        for token in order.tolist():
            nucleus[token] = True
            mass += float(probs[token])
            if mass >= p:
                break
        keep &= nucleus
    return torch.log_softmax(scaled.masked_fill(~keep, -math.inf), -1)


@pytest.mark.parametrize(("temperature", "top_k", "top_p"), SETTINGS)
def test_processed_logprob_is_the_sampling_distributions(
    temperature: float, top_k: int, top_p: float
) -> None:
    torch.manual_seed(0)
    logits = torch.randn(64, 500) * 4  # peaked rows, so the cuts bite
    params = SamplingParams(temperature=temperature, top_k=top_k, top_p=top_p)
    processed = SamplingParams(**{**params.__dict__, "logprobs_mode": "processed"})
    gens = [make_generator(7, i) for i in range(64)]
    tokens, lps, _ = sample(logits, [processed] * 64, gens)
    raw_tokens, raw_lps, _ = sample(
        logits, [params] * 64, [make_generator(7, i) for i in range(64)]
    )
    assert tokens == raw_tokens  # the mode changes what is reported, never what is drawn
    for row, (token, lp, raw_lp) in enumerate(zip(tokens, lps, raw_lps, strict=True)):
        expected = float(reference_processed(logits[row], temperature, top_k, top_p)[token])
        assert math.isfinite(lp) and lp == pytest.approx(expected, abs=1e-5)
        raw_ref = float(torch.log_softmax(logits[row].double(), -1)[token])
        assert raw_lp == pytest.approx(raw_ref, abs=1e-5)
    if top_k == 1:
        assert lps == [0.0] * 64  # a single kept token is certain


def test_greedy_processed_is_a_point_mass_and_raw_is_unchanged() -> None:
    torch.manual_seed(1)
    logits = torch.randn(8, 100)
    greedy = SamplingParams(temperature=0.0)
    gens = [make_generator(0, i) for i in range(8)]
    tokens, raw, _ = sample(logits, [greedy] * 8, gens)
    ptokens, processed, _ = sample(
        logits, [SamplingParams(temperature=0.0, logprobs_mode="processed")] * 8, gens
    )
    assert tokens == ptokens == logits.argmax(-1).tolist()
    assert processed == [0.0] * 8
    expected = torch.log_softmax(logits.double(), -1).max(-1).values.tolist()
    assert raw == pytest.approx(expected, abs=1e-6)


def test_unknown_mode_is_refused() -> None:
    problems = SamplingParams(logprobs_mode="softmax").validate()  # type: ignore[arg-type]
    assert [field for field, _ in problems] == ["logprobs_mode"]


def _plain_logits(bundle: CausalLM, prompt: list[int], tokens: list[int]) -> torch.Tensor:
    with torch.no_grad():
        logits: torch.Tensor = bundle.model(torch.tensor([prompt + tokens])).logits[0].double()
    return logits[len(prompt) - 1 : -1]


async def test_engine_processed_logprobs_equal_a_plain_forward_pass(
    generator: TransformersGenerator, bundle: CausalLM
) -> None:
    prompt = list(bundle.tokenizer.encode("the agent moves left and", add_special_tokens=False))
    for temperature, top_k, top_p in SETTINGS:
        params = SamplingParams(
            max_tokens=12, temperature=temperature, top_k=top_k, top_p=top_p, seed=4, n=2,
            ignore_eos=True,
        )  # fmt: skip
        processed = SamplingParams(**{**params.__dict__, "logprobs_mode": "processed"})
        raw_samples, samples = await asyncio.gather(
            complete(generator, prompt, params), complete(generator, prompt, processed)
        )
        for raw_sample, sample_ in zip(raw_samples, samples, strict=True):
            assert sample_.token_ids == raw_sample.token_ids  # same seed, same draws
            logits = _plain_logits(bundle, prompt, sample_.token_ids)
            raw_ref = torch.log_softmax(logits, -1)
            for t, token in enumerate(sample_.token_ids):
                ref = reference_processed(logits[t], temperature, top_k, top_p)[token]
                assert sample_.logprobs[t] == pytest.approx(float(ref), abs=1e-5)
                assert raw_sample.logprobs[t] == pytest.approx(float(raw_ref[t, token]), abs=1e-5)


# ---- through the service --------------------------------------------------------------


@pytest.fixture
def stub(stack: tuple[RolloutService, str]) -> Iterator[rollout_pb2_grpc.RolloutServiceStub]:
    with sync_channel(stack[1], token=TOKEN) as channel:
        yield rollout_pb2_grpc.RolloutServiceStub(channel)


def _input(**sampling: Any) -> rollout_pb2.GenerationInput:
    return rollout_pb2.GenerationInput(
        prompts=[rollout_pb2.Prompt(text="the maze")],
        sampling=sampling_pb2.SamplingParams(logprobs=True, max_tokens=6, n=2, **sampling),
    )


def test_generate_and_stream_report_the_asked_mode(
    stack: tuple[RolloutService, str], stub: rollout_pb2_grpc.RolloutServiceStub
) -> None:
    cut = {"temperature": 0.9, "top_k": 30, "top_p": 0.9, "seed": 3}
    raw = stub.Generate(rollout_pb2.GenerateRequest(input=_input(**cut)))
    processed = stub.Generate(
        rollout_pb2.GenerateRequest(
            input=_input(**cut, logprobs_mode=sampling_pb2.LOGPROBS_MODE_PROCESSED)
        )
    )
    model = engine_of(stack[0]).model
    prompt = list(raw.results[0].prompt_token_ids)
    for r, p in zip(raw.results[0].completions, processed.results[0].completions, strict=True):
        tokens = list(p.tokens.token_ids)
        assert tokens == list(r.tokens.token_ids)
        with torch.no_grad():
            logits = model(torch.tensor([prompt + tokens])).logits[0].double()[len(prompt) - 1 :]
        for t, token in enumerate(tokens):
            ref = reference_processed(logits[t], 0.9, 30, 0.9)[token]
            assert p.tokens.logprobs[t] == pytest.approx(float(ref), abs=1e-5)
            raw_ref = torch.log_softmax(logits[t], -1)[token]
            assert r.tokens.logprobs[t] == pytest.approx(float(raw_ref), abs=1e-5)
    greedy = _input(temperature=0.0, logprobs_mode=sampling_pb2.LOGPROBS_MODE_PROCESSED)
    deltas = list(stub.GenerateStream(rollout_pb2.GenerateStreamRequest(input=greedy)))
    logprobs = [lp for d in deltas for lp in d.tokens.logprobs]
    assert logprobs and all(lp == 0.0 for lp in logprobs)


def test_episode_trajectories_carry_the_asked_mode(
    stub: rollout_pb2_grpc.RolloutServiceStub,
) -> None:
    spec = rollout_pb2.EpisodeSpec(
        env_id="visgym/maze_2d",
        seeds=[5],
        settings=episode_pb2.EpisodeSettings(observation_mode=episode_pb2.OBSERVATION_MODE_TEXT),
        sampling=sampling_pb2.SamplingParams(
            max_tokens=6, seed=0, top_k=1, logprobs_mode=sampling_pb2.LOGPROBS_MODE_PROCESSED
        ),
        max_turns=2,
    )
    reply = stub.RunEpisodes(rollout_pb2.RunEpisodesRequest(spec=spec))
    assert not reply.errors, reply.errors
    logprobs = [lp for t in reply.trajectories[0].turns for lp in t.completion.logprobs]
    assert logprobs and all(lp == 0.0 for lp in logprobs)  # top-k 1: every draw is certain


def test_unknown_logprobs_mode_names_the_field(stub: rollout_pb2_grpc.RolloutServiceStub) -> None:
    request = rollout_pb2.GenerateRequest(input=_input(logprobs_mode=7))
    with pytest.raises(grpc.RpcError) as info:
        stub.Generate(request)
    error = errors.from_rpc_error(info.value)
    assert isinstance(error, errors.InvalidArgument)
    assert error.violations[0].field == "input.sampling.logprobs_mode"
