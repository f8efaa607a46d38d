"""The continuous-batching engine: exact logprobs, sampling controls, aborts, weight swaps."""

from __future__ import annotations

import asyncio

import pytest
import torch

from gantry.models.loading import CausalLM
from gantry.rollout.engine.sampling import processed_probs
from gantry.rollout.engine.types import FinishReason, Sample, SamplingParams
from gantry.rollout.generator import TransformersGenerator, complete

from .helpers import reference_logprobs

PROMPTS = ["hello world", "the agent moves left and", "def solve(grid):\n    ", "Answer: 42"]


def _ids(bundle: CausalLM, text: str) -> list[int]:
    return list(bundle.tokenizer.encode(text, add_special_tokens=False))


async def test_batched_logprobs_equal_a_plain_forward_pass(
    generator: TransformersGenerator, bundle: CausalLM
) -> None:
    params = SamplingParams(max_tokens=24, temperature=1.0, seed=3, n=2, ignore_eos=True)
    # Different prompt lengths, started at different times: sequences join a running batch.
    tasks = []
    for text in PROMPTS:
        tasks.append(asyncio.ensure_future(complete(generator, _ids(bundle, text), params)))
        await asyncio.sleep(0.01)
    results = await asyncio.gather(*tasks)
    for text, samples in zip(PROMPTS, results, strict=True):
        for sample in samples:
            assert len(sample.token_ids) == 24 and sample.finish_reason is FinishReason.LENGTH
            expected = reference_logprobs(bundle, _ids(bundle, text), sample.token_ids)
            assert max(abs(a - b) for a, b in zip(sample.logprobs, expected, strict=True)) < 1e-4
    assert generator.engine.steps < 4 * 2 * 24, "sequences were not decoded together"


async def test_top_logprobs_are_the_raw_distributions_best(
    generator: TransformersGenerator, bundle: CausalLM
) -> None:
    prompt = _ids(bundle, PROMPTS[0])
    params = SamplingParams(max_tokens=6, seed=5, n=2, ignore_eos=True, top_logprobs=3)
    plain, asked = await asyncio.gather(
        complete(generator, prompt, SamplingParams(max_tokens=6, ignore_eos=True)),
        complete(generator, prompt, params),
    )
    assert plain[0].top_logprobs == []  # only callers that ask pay for alternatives
    for sample in asked:
        with torch.no_grad():
            logits = bundle.model(torch.tensor([prompt + sample.token_ids])).logits[0].float()
        reference = torch.log_softmax(logits, -1)[len(prompt) - 1 : -1].topk(3, dim=-1)
        assert len(sample.top_logprobs) == len(sample.token_ids) == 6
        for position, top in enumerate(sample.top_logprobs):
            assert [t for t, _ in top] == reference.indices[position].tolist()
            expected = reference.values[position].tolist()
            assert [lp for _, lp in top] == pytest.approx(expected, abs=1e-4)


async def test_greedy_matches_hf_generate(
    generator: TransformersGenerator, bundle: CausalLM
) -> None:
    prompt = _ids(bundle, PROMPTS[1])
    (sample,) = await complete(
        generator, prompt, SamplingParams(max_tokens=16, temperature=0.0, ignore_eos=True)
    )
    with torch.no_grad():
        reference = bundle.model.generate(
            torch.tensor([prompt]), max_new_tokens=16, do_sample=False, min_new_tokens=16
        )
    assert sample.token_ids == reference[0, len(prompt) :].tolist()


async def test_seed_reproduces_and_samples_differ(
    generator: TransformersGenerator, bundle: CausalLM
) -> None:
    prompt = _ids(bundle, PROMPTS[0])
    params = SamplingParams(max_tokens=12, seed=7, n=3, ignore_eos=True)
    first = await complete(generator, prompt, params)
    second = await complete(generator, prompt, params)
    assert [s.token_ids for s in first] == [s.token_ids for s in second]
    assert len({tuple(s.token_ids) for s in first}) > 1


async def test_stop_string_truncates_text(
    generator: TransformersGenerator, bundle: CausalLM
) -> None:
    prompt = _ids(bundle, PROMPTS[2])
    (free,) = await complete(
        generator, prompt, SamplingParams(max_tokens=20, temperature=0.0, ignore_eos=True)
    )
    assert len(free.text) > 4
    stop = free.text[2:4]
    (stopped,) = await complete(
        generator,
        prompt,
        SamplingParams(max_tokens=20, temperature=0.0, stop=(stop,), ignore_eos=True),
    )
    assert stopped.finish_reason is FinishReason.STOP
    assert stopped.text == free.text[: free.text.find(stop)]
    assert stop not in stopped.text


def test_top_k_and_top_p_shape_the_distribution() -> None:
    logits = torch.tensor([3.0, 2.0, 1.0, 0.0])
    top1 = processed_probs(logits, SamplingParams(top_k=1))
    assert top1.tolist() == [1.0, 0.0, 0.0, 0.0]
    nucleus = processed_probs(logits, SamplingParams(top_p=0.7))
    assert nucleus[2:].sum() == 0 and nucleus[:2].sum() == pytest.approx(1.0)


async def test_abandoned_request_frees_its_slots(
    generator: TransformersGenerator, bundle: CausalLM
) -> None:
    stream = generator.generate(
        _ids(bundle, PROMPTS[0]), SamplingParams(max_tokens=500, n=2, ignore_eos=True)
    )
    await stream.__anext__()
    assert generator.engine.in_flight == 2
    await stream.aclose()  # the caller stops listening: abort
    for _ in range(200):
        if generator.engine.in_flight == 0:
            break
        await asyncio.sleep(0.01)
    assert generator.engine.in_flight == 0


async def test_prompt_longer_than_context_is_refused(generator: TransformersGenerator) -> None:
    from gantry.rollout.engine.types import PromptTooLong

    with pytest.raises(PromptTooLong):
        async for _ in generator.generate([1] * generator.context_length, SamplingParams()):
            pass


@pytest.mark.parametrize("mode", ["drain", "rerun"])
async def test_weight_update_changes_outputs_and_version(
    generator: TransformersGenerator, bundle: CausalLM, mode: str
) -> None:
    prompt = _ids(bundle, PROMPTS[0])
    greedy = SamplingParams(max_tokens=8, temperature=0.0, ignore_eos=True)
    (before,) = await complete(generator, prompt, greedy)
    long_running = asyncio.ensure_future(
        complete(generator, prompt, SamplingParams(max_tokens=200, ignore_eos=True))
    )
    await asyncio.sleep(0.05)
    state = generator.engine.model.state_dict()
    new = {
        name: torch.randn_like(t) * 0.2
        for name, t in state.items()
        if t.is_floating_point() and "norm" not in name
    }
    version = await generator.update_weights(new, mode)  # type: ignore[arg-type]
    (in_flight,) = await long_running
    assert version == 1 and generator.policy_version == 1
    if mode == "drain":
        assert in_flight.finish_reason is FinishReason.LENGTH and in_flight.policy_version == 0
    else:
        assert in_flight.finish_reason is FinishReason.RESTARTED
    (after,) = await complete(generator, prompt, greedy)
    assert after.policy_version == 1 and after.token_ids != before.token_ids


async def test_weight_update_rejects_unknown_names_and_shapes(
    generator: TransformersGenerator,
) -> None:
    with pytest.raises(KeyError, match="not a parameter"):
        await generator.update_weights({"nope.weight": torch.zeros(2)}, "drain")
    name, tensor = next(iter(generator.engine.model.state_dict().items()))
    with pytest.raises(ValueError, match="shape"):
        await generator.update_weights({name: torch.zeros(*tensor.shape, 2)}, "drain")
    assert generator.policy_version == 0


def test_sample_accumulates_deltas() -> None:
    from gantry.rollout.engine.types import Delta

    sample = Sample(0)
    sample.add(Delta("r", 0, [1], [-0.5], "a"))
    sample.add(Delta("r", 0, [2], [-0.25], "b", FinishReason.STOP, 3))
    assert (sample.token_ids, sample.text, sample.finish_reason, sample.policy_version) == (
        [1, 2], "ab", FinishReason.STOP, 3,
    )  # fmt: skip


async def test_fp8_recipe_serves_fp8_layers_with_exact_logprobs(bundle: CausalLM) -> None:
    from gantry.models.loading import load_causal_lm
    from gantry.rollout.service import apply_precision

    fp8 = load_causal_lm(bundle.path)
    assert apply_precision(fp8.model, "fp8-jet") == 14  # attention + MLP projections
    generator = TransformersGenerator(fp8, max_batch_size=4)
    try:
        prompt = _ids(bundle, PROMPTS[1])
        params = SamplingParams(max_tokens=12, seed=5, ignore_eos=True)
        (sample,) = await complete(generator, prompt, params)
        expected = reference_logprobs(fp8, prompt, sample.token_ids)
        assert max(abs(a - b) for a, b in zip(sample.logprobs, expected, strict=True)) < 1e-4
        bf16_view = reference_logprobs(bundle, prompt, sample.token_ids)
        assert max(abs(a - b) for a, b in zip(expected, bf16_view, strict=True)) > 1e-6
    finally:
        generator.engine.stop()
