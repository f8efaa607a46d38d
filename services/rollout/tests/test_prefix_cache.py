"""Prefix caching: an episode's next turn and a group's repeated prompt reuse the KV of
finished sequences, with the logprobs of a plain forward pass."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import torch

from gantry.models.loading import CausalLM, load_causal_lm
from gantry.rollout.engine.prefix import MIN_REUSE, PrefixCache
from gantry.rollout.engine.types import SamplingParams
from gantry.rollout.generator import TransformersGenerator, complete

from .helpers import reference_logprobs


@pytest.fixture
def cached(bundle: CausalLM) -> Iterator[TransformersGenerator]:
    gen = TransformersGenerator(
        load_causal_lm(bundle.path), max_batch_size=8, prefix_cache_bytes=64 * 2**20
    )
    yield gen
    gen.engine.stop()


def _prompt(bundle: CausalLM, seed: int, length: int) -> list[int]:
    rng = torch.Generator().manual_seed(seed)
    vocab = len(bundle.tokenizer)
    return torch.randint(10, vocab - 10, (length,), generator=rng).tolist()


async def test_a_next_turn_prefills_only_what_the_last_turn_did_not_hold(
    cached: TransformersGenerator, bundle: CausalLM
) -> None:
    params = SamplingParams(max_tokens=12, temperature=1.0, seed=7, ignore_eos=True)
    first = _prompt(bundle, 0, 40)
    (turn1,) = await complete(cached, first, params)
    prefix = cached.engine.prefix_cache
    assert prefix.hits == 0 and len(prefix) == 1
    # The next turn: the whole history (the last sampled token included) + an observation.
    second = first + turn1.token_ids + _prompt(bundle, 1, 9)
    (turn2,) = await complete(cached, second, params)
    assert prefix.hits == 1
    # The cache held the prompt and all but the last sampled token.
    assert prefix.reused_tokens == len(first) + len(turn1.token_ids) - 1
    expected = reference_logprobs(bundle, second, turn2.token_ids)
    assert max(abs(a - b) for a, b in zip(turn2.logprobs, expected, strict=True)) < 1e-4


async def test_a_repeated_prompt_recomputes_only_its_last_position(
    cached: TransformersGenerator, bundle: CausalLM
) -> None:
    prompt = _prompt(bundle, 2, 30)
    params = SamplingParams(max_tokens=6, temperature=0.0, ignore_eos=True)
    (once,) = await complete(cached, prompt, params)
    (again,) = await complete(cached, prompt, params)
    assert cached.engine.prefix_cache.reused_tokens == len(prompt) - 1
    assert again.token_ids == once.token_ids
    assert again.logprobs == pytest.approx(once.logprobs, abs=1e-4)


async def test_new_weights_empty_the_cache(cached: TransformersGenerator, bundle: CausalLM) -> None:
    prompt = _prompt(bundle, 3, 30)
    params = SamplingParams(max_tokens=4, temperature=0.0, ignore_eos=True)
    await complete(cached, prompt, params)
    assert len(cached.engine.prefix_cache) == 1
    state = cached.engine.model.state_dict()
    name = next(n for n in state if n.endswith("mlp.down_proj.weight"))
    await cached.update_weights({name: state[name] * 0.5}, "drain")
    assert len(cached.engine.prefix_cache) == 0
    await complete(cached, prompt, params)
    assert cached.engine.prefix_cache.hits == 0  # the old weights' keys are never used


def _kv(length: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
    return [(torch.zeros(1, 2, length, 4), torch.zeros(1, 2, length, 4))]


def test_the_cache_keeps_the_longest_prefix_within_its_budget() -> None:
    per_token = 2 * 2 * 4 * 4  # keys + values, 2 heads x 4 dims of float32
    cache = PrefixCache(max_bytes=100 * per_token)
    a = list(range(40))
    cache.store(a, _kv(40))
    cache.store(a + [99] * 20, _kv(60))  # covers a: a is dropped
    assert len(cache) == 1
    n, kv = cache.lookup([*a, 5, 6])
    assert n == 40 and kv[0][0].shape[2] == 40
    b = list(range(100, 160))
    cache.store(b, _kv(60))  # over budget: the least recently used entry goes
    assert len(cache) == 1 and cache.nbytes == 60 * per_token
    assert cache.lookup([*a, 5])[0] == 0
    assert cache.lookup(b)[0] == len(b) - 1  # the last position is always computed
    assert cache.lookup(b[: MIN_REUSE - 1] + [0] * 30)[0] == 0  # too short to reuse
    disabled = PrefixCache(max_bytes=0)
    disabled.store(a, _kv(40))
    assert len(disabled) == 0
