"""Two-turn episodes through the engine with and without prefix caching.

    .venv/bin/python benchmarks/rollout_prefix.py [--model smollm2-135m-instruct] [--episodes 32]

Each episode is what an agent loop sends: turn 1 is a `--prompt`-token prompt; turn 2 is
the whole history (turn 1's prompt and sampled tokens) plus an `--observation`-token
observation. All episodes run concurrently (as an evaluation or a GRPO batch does), each
sampling `--tokens` tokens per turn with its own seed. Both variants sample the same
tokens from the same weights; printed: wall time, prompt tokens prefilled, the prefix
cache's reuse, and the ratio cached/plain.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import time

import torch

from gantry.models.loading import load_causal_lm
from gantry.models.names import resolve_model_path
from gantry.rollout.engine.types import SamplingParams
from gantry.rollout.generator import TransformersGenerator, complete


async def episode(
    gen: TransformersGenerator, prompt: list[int], observation: list[int], seed: int, tokens: int
) -> int:
    params = SamplingParams(max_tokens=tokens, temperature=1.0, seed=seed, ignore_eos=True)
    (first,) = await complete(gen, prompt, params)
    second_prompt = prompt + first.token_ids + observation
    await complete(gen, second_prompt, params)
    return len(prompt) + len(second_prompt)


async def run(args: argparse.Namespace, cache_mb: int) -> tuple[float, int, int]:
    bundle = load_causal_lm(resolve_model_path(args.model), dtype=args.dtype)
    gen = TransformersGenerator(bundle, max_batch_size=32, prefix_cache_bytes=cache_mb * 2**20)
    rng = random.Random(0)
    vocab = len(bundle.tokenizer)
    system = [rng.randrange(10, vocab - 10) for _ in range(args.prompt // 2)]  # shared
    episodes = []
    for i in range(args.episodes):
        task = [rng.randrange(10, vocab - 10) for _ in range(args.prompt - len(system))]
        observation = [rng.randrange(10, vocab - 10) for _ in range(args.observation)]
        episodes.append((system + task, observation, i))
    started = time.perf_counter()
    prompt_tokens = await asyncio.gather(
        *(episode(gen, p, o, s, args.tokens) for p, o, s in episodes)
    )
    wall = time.perf_counter() - started
    reused = gen.engine.prefix_cache.reused_tokens
    await gen.close()
    return wall, sum(prompt_tokens), reused


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--model", default="smollm2-135m-instruct")
    parser.add_argument("--dtype", default="bfloat16")
    parser.add_argument("--episodes", type=int, default=32)
    parser.add_argument("--prompt", type=int, default=220)
    parser.add_argument("--observation", type=int, default=180)
    parser.add_argument("--tokens", type=int, default=20)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(
        f"{args.model} ({args.dtype}): {args.episodes} concurrent two-turn episodes, "
        f"prompt {args.prompt} + observation {args.observation} tokens, {args.tokens} per turn"
    )
    results = {}
    for name, cache_mb in (("plain", 0), ("cached", 512)):
        wall, prompt, reused = asyncio.run(run(args, cache_mb))
        results[name] = wall
        print(
            f"{name:<7} {wall:7.2f} s  prompt tokens {prompt}, prefilled {prompt - reused} "
            f"({reused} reused from the prefix cache)"
        )
    print(f"cached / plain: {results['cached'] / results['plain']:.2f}x wall time")


if __name__ == "__main__":
    main()
