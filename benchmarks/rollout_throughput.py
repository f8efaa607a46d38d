"""Generated tokens/s: the continuous-batching engine vs one-request-at-a-time generate().

    .venv/bin/python benchmarks/rollout_throughput.py [--tokens 64] [--concurrency 1 8 32]

Both sides use the same model (the tiny Qwen3 test model unless --model names a
checkpoint directory), sample (temperature 1) exactly `--tokens` tokens per request and
return per-token logprobs. The baseline serves requests one after another with
`model.generate(..., output_logits=True)`; the engine receives all requests at once.
"""

from __future__ import annotations

import argparse
import asyncio
import time

import torch

from gantry.models.loading import load_causal_lm
from gantry.models.tiny import tiny_model_dir
from gantry.rollout.engine.types import SamplingParams
from gantry.rollout.generator import TransformersGenerator, complete

PROMPTS = [
    "The agent looked at the maze and decided to",
    "def shortest_path(grid, start, goal):",
    "Summarise the rules of the card game in two sentences:",
    "Observation: a red block is left of the goal. Action:",
]


def naive(model: torch.nn.Module, prompts: list[list[int]], tokens: int) -> float:
    produced = 0
    start = time.perf_counter()
    for ids in prompts:
        with torch.inference_mode():
            out = model.generate(  # type: ignore[operator]
                torch.tensor([ids]),
                max_new_tokens=tokens,
                min_new_tokens=tokens,
                do_sample=True,
                temperature=1.0,
                top_k=0,
                output_logits=True,
                return_dict_in_generate=True,
            )
            new = out.sequences[0, len(ids) :]
            logits = torch.stack(out.logits, 1)[0].float()
            torch.log_softmax(logits, -1).gather(1, new.unsqueeze(1))  # the logprobs
        produced += len(new)
    return produced / (time.perf_counter() - start)


async def engine(generator: TransformersGenerator, prompts: list[list[int]], tokens: int) -> float:
    params = SamplingParams(max_tokens=tokens, ignore_eos=True)
    start = time.perf_counter()
    results = await asyncio.gather(*(complete(generator, ids, params) for ids in prompts))
    produced = sum(len(s.token_ids) for samples in results for s in samples)
    return produced / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--model", default=None)
    parser.add_argument("--tokens", type=int, default=64)
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 8, 32])
    args = parser.parse_args()
    torch.manual_seed(0)
    path = args.model or str(tiny_model_dir("causal_lm"))
    bundle = load_causal_lm(path)
    generator = TransformersGenerator(load_causal_lm(path), max_batch_size=max(args.concurrency))
    encoded = [list(bundle.tokenizer.encode(p, add_special_tokens=False)) for p in PROMPTS]
    print(
        f"model {path}, {args.tokens} sampled tokens per request, {torch.get_num_threads()} threads"
    )
    print(f"{'concurrent':>10}{'naive tok/s':>14}{'engine tok/s':>14}{'ratio':>8}")
    try:
        for n in args.concurrency:
            prompts = [encoded[i % len(encoded)] for i in range(n)]
            asyncio.run(engine(generator, prompts[:1], 4))  # warm up
            base = naive(bundle.model, prompts, args.tokens)
            ours = asyncio.run(engine(generator, prompts, args.tokens))
            print(f"{n:>10}{base:>14.0f}{ours:>14.0f}{ours / base:>7.2f}x")
    finally:
        generator.engine.stop()


if __name__ == "__main__":
    main()
