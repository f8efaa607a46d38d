"""GRPO micro-batching: fixed micro_batch_size vs a token budget (issue 23, part 5).

    .venv/bin/python benchmarks/trainer_batching.py [--model DIR] [--sequences 64] [--repeats 3]

One GRPO step's forward and backward passes over the same sequences (long-tailed lengths,
as multi-turn episodes produce: most turns short, a few long), split either into fixed
micro-batches of ``--micro`` sequences in arrival order (padding every row to the pass's
longest) or packed by ``grpo.micro_batches`` under ``--budget`` padded tokens per pass.
The loss is the trainer's (``grpo.ppo_clip_loss``). Reported: real (non-padding) tokens/s,
the padding share of computed positions, and the ratio budget/fixed.
"""

from __future__ import annotations

import argparse
import random
import statistics
import time
from typing import cast

import torch

from gantry.models.loading import load_causal_lm
from gantry.models.tiny import tiny_model_dir
from gantry.trainer import grpo


def make_items(n: int, seed: int, vocab: int) -> list[grpo.TurnSequence]:
    rng = random.Random(seed)
    items = []
    for i in range(n):
        prompt = min(int(rng.lognormvariate(4.0, 0.8)), 900)  # median ~55 tokens, tail ~900
        completion = rng.randint(4, 64)
        items.append(
            grpo.TurnSequence(
                input_ids=[rng.randrange(3, vocab) for _ in range(prompt + completion)],
                prompt_len=prompt,
                old_logprobs=[-rng.random() * 3 for _ in range(completion)],
                advantage=rng.gauss(0, 1),
                trajectory_id=f"t{i}",
            )
        )
    return items


def step(model: torch.nn.Module, passes: list[list[grpo.TurnSequence]]) -> tuple[int, int]:
    """One step's passes; (real tokens, computed positions)."""
    total = float(sum(s.completion_len for p in passes for s in p))
    real = computed = 0
    model.zero_grad()
    for chunk in passes:
        batch = grpo.collate(chunk, pad_id=0)
        logp, _ = grpo.policy_logprobs(model, batch)  # the trainer's forward
        terms = grpo.ppo_clip_loss(
            logp,
            batch.old_logprobs,
            batch.advantages,
            batch.loss_mask,
            clip_low=0.2,
            clip_high=0.28,
            total_tokens=total,
        )
        terms.loss.backward()  # type: ignore[no-untyped-call]
        real += int(batch.attention_mask.sum())
        computed += batch.input_ids.numel()
    return real, computed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--model", default=None, help="checkpoint directory (default: tiny Qwen3)")
    parser.add_argument("--sequences", type=int, default=64)
    parser.add_argument("--micro", type=int, default=8)
    parser.add_argument("--budget", type=int, default=0, help="default: micro × median length")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    bundle = load_causal_lm(args.model or str(tiny_model_dir("causal_lm")))
    model = cast(torch.nn.Module, bundle.model).to(torch.float32)
    vocab = int(bundle.model.config.vocab_size)
    items = make_items(args.sequences, args.seed, vocab)
    lengths = sorted(len(s.input_ids) for s in items)
    budget = args.budget or args.micro * lengths[len(lengths) // 2] * 2
    print(
        f"{len(items)} sequences, lengths median {lengths[len(lengths) // 2]} max {lengths[-1]}; "
        f"fixed micro-batches of {args.micro} vs a budget of {budget} padded tokens"
    )
    results: dict[str, float] = {}
    for name, passes in (
        ("fixed", grpo.micro_batches(items, args.micro)),
        ("budget", grpo.micro_batches(items, args.micro, token_budget=budget)),
    ):
        step(model, passes)  # warm-up
        rates = []
        for _ in range(args.repeats):
            started = time.perf_counter()
            real, computed = step(model, passes)
            rates.append(real / (time.perf_counter() - started))
        results[name] = statistics.median(rates)
        print(
            f"{name:<7} passes {len(passes):>3}  padding {1 - real / computed:6.1%}  "
            f"{results[name]:9.0f} real tokens/s"
        )
    print(f"budget / fixed: {results['budget'] / results['fixed']:.2f}x tokens/s")


if __name__ == "__main__":
    main()
