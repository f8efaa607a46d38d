"""SFT data: what is trained for each turn is exactly what rollout will ask the policy."""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import pytest

from gantry.envfarm.demonstrations import demonstrate
from gantry.models.loading import load_causal_lm
from gantry.rollout.context import fit_history
from gantry.rollout.generator import Generator
from gantry.trainer import data

from .conftest import DEMO_ENV, DEMO_SEEDS


@dataclass
class _Generator:
    """What rollout's fit_history reads from its generator."""

    tokenizer: Any
    context_length: int = 100_000


def _rollout_prompts(tokenizer: Any, seed: int) -> tuple[list[list[int]], list[str]]:
    """Rollout's prompt ids for each turn of the demonstration, built the way
    rollout/episodes.py builds them (text mode, text feedback, unbounded history)."""
    demo = demonstrate(DEMO_ENV, "easy", seed)
    # fit_history reads only the tokenizer and the context length of its generator.
    generator = cast(Generator, _Generator(tokenizer))
    history: list[dict[str, str]] = []
    prompts, actions = [], []
    feedback = ""
    for turn in demo.turns:
        text = turn.observation["text"]
        user = f"Feedback: {feedback}\n{text}" if feedback else text
        history.append({"role": "user", "content": user})
        ids = asyncio.run(fit_history(generator, demo.instructions, history, 0, 0, 64))
        prompts.append(ids)
        history.append({"role": "assistant", "content": turn.action})
        actions.append(turn.action)
        feedback = turn.feedback
    return prompts, actions


def test_sft_sequence_prefix_equals_rollout_prompt_at_every_turn(
    demos: Path, tiny_path: str
) -> None:
    tokenizer = load_causal_lm(tiny_path).tokenizer
    conversations = data.read_conversations(str(demos))
    assert len(conversations) == len(DEMO_SEEDS)
    for seed, messages in zip(DEMO_SEEDS, conversations, strict=True):
        (example,) = data.tokenize_conversation(tokenizer, messages)
        prompts, actions = _rollout_prompts(tokenizer, seed)
        assert len(prompts) > 1  # multi-turn
        end = tokenizer.convert_tokens_to_ids("<|im_end|>")
        for prompt, action in zip(prompts, actions, strict=True):
            # the policy is trained on rollout's exact prompt ...
            assert example.input_ids[: len(prompt)] == prompt
            assert all(
                label == data.IGNORE for label in example.labels[len(prompt) - 1 : len(prompt)]
            )
            # ... to produce the action and then end its turn
            target = [*tokenizer.encode(action, add_special_tokens=False), end]
            span = example.labels[len(prompt) : len(prompt) + len(target)]
            assert span == target
            assert example.input_ids[len(prompt) : len(prompt) + len(target)] == target
        # nothing but the assistant actions (+ end tokens) carries loss
        expected = sum(len(tokenizer.encode(a, add_special_tokens=False)) + 1 for a in actions)
        assert example.target_tokens == expected


def test_image_parts_are_rejected_for_a_text_model(tmp_path: Path) -> None:
    path = tmp_path / "d.jsonl"
    record = {
        "messages": [
            {"role": "user", "content": [{"type": "image", "image": "x.png"}]},
            {"role": "assistant", "content": "stop"},
        ]
    }
    path.write_text(json.dumps(record) + "\n")
    with pytest.raises(data.DataError, match="image part"):
        data.read_conversations(str(path))


def test_truncation_packing_and_full_loss(demos: Path, tiny_path: str) -> None:
    tokenizer = load_causal_lm(tiny_path).tokenizer
    conversations = data.read_conversations(str(demos))
    short = data.build_examples(
        tokenizer, conversations, max_seq_len=300, assistant_only=True, packing=False
    )
    assert all(len(e.input_ids) <= 300 for e in short)
    full = data.build_examples(
        tokenizer, conversations, max_seq_len=4096, assistant_only=False, packing=False
    )
    assert all(e.labels == e.input_ids for e in full)
    packed = data.build_examples(
        tokenizer, conversations[:1] * 6, max_seq_len=4096, assistant_only=True, packing=True
    )
    assert len(packed) < 6 and all(len(e.input_ids) <= 4096 for e in packed)


def test_data_order_is_seeded_and_resumes_from_the_cursor() -> None:
    a = data.DataOrder(5, seed=7)
    first = a.take(12)
    assert sorted(first[:5]) == list(range(5))  # an epoch is a permutation
    assert first != data.DataOrder(5, seed=8).take(12)
    resumed = data.DataOrder(5, seed=7, cursor=7)
    assert resumed.take(5) == first[7:12]


def test_any_uint64_seed_orders_the_data() -> None:
    order = data.DataOrder(10, 2**64 - 1)  # RunConfig.seed is a uint64
    assert sorted(order.take(10)) == list(range(10))
