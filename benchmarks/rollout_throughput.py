"""Generated tokens/s: the continuous-batching engine vs one-request-at-a-time generate().

    .venv/bin/python benchmarks/rollout_throughput.py [--tokens 64] [--concurrency 1 8 32]
        [--model tiny|smollm2-135m-instruct|DIR] [--prompt-tokens N] [--engine-only]

Both sides use the same model (the tiny Qwen3 test model unless --model names another),
sample (temperature 1) exactly `--tokens` tokens per request and return per-token
logprobs. The baseline serves requests one after another with
`model.generate(..., output_logits=True)`; the engine receives all requests at once.
`--prompt-tokens N` stretches every prompt to N tokens (judge calls have 1-2k-token
prompts, where the KV cache weighs on every decode step). Besides wall-clock tokens/s it
prints the engine's process CPU milliseconds per generated token (on a shared machine
they move much less with the load than wall-clock figures), and both for the decode phase
alone (from the last prompt's first token on, when every step is a decode step).
"""

from __future__ import annotations

import argparse
import asyncio
import time
from dataclasses import dataclass

import torch

from gantry.models.loading import load_causal_lm
from gantry.models.names import resolve_model_path
from gantry.rollout.engine.types import SamplingParams
from gantry.rollout.generator import TransformersGenerator

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


@dataclass
class EngineRun:
    tokens_per_s: float  # all generated tokens over the whole run (prefill included)
    cpu_ms_per_token: float
    decode_tokens_per_s: float  # once every prompt is in: decode steps only
    decode_cpu_ms_per_token: float


async def engine(
    generator: TransformersGenerator, prompts: list[list[int]], tokens: int
) -> EngineRun:
    """All `prompts` submitted at once; the decode phase starts when the last prompt's
    first token arrives (from then on every step is a decode step)."""
    params = SamplingParams(max_tokens=tokens, ignore_eos=True)
    marks: list[tuple[float, float, int, bool]] = []  # wall, CPU, tokens, first of its request

    async def one(ids: list[int]) -> None:
        first = True
        async for delta in generator.generate(ids, params):
            marks.append((time.perf_counter(), time.process_time(), len(delta.token_ids), first))
            first = False

    start, cpu = time.perf_counter(), time.process_time()
    await asyncio.gather(*(one(ids) for ids in prompts))
    end, cpu_end = time.perf_counter(), time.process_time()
    produced = sum(m[2] for m in marks)
    decode_start = max(m for m in marks if m[3])
    decoded = sum(m[2] for m in marks if m[0] > decode_start[0])
    return EngineRun(
        produced / (end - start),
        1000 * (cpu_end - cpu) / produced,
        decoded / (end - decode_start[0]),
        1000 * (cpu_end - decode_start[1]) / max(decoded, 1),
    )


def stretch(ids: list[int], length: int) -> list[int]:
    """`ids` repeated to `length` tokens (0: unchanged)."""
    return (ids * (length // len(ids) + 1))[:length] if length else ids


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--model", default="tiny", help="tiny, smollm2-135m-instruct or a dir")
    parser.add_argument("--tokens", type=int, default=64)
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 8, 32])
    parser.add_argument("--prompt-tokens", type=int, default=0, help="stretch prompts to N")
    parser.add_argument("--engine-only", action="store_true", help="skip the generate() baseline")
    args = parser.parse_args()
    torch.manual_seed(0)
    path = resolve_model_path(args.model)
    bundle = load_causal_lm(path)
    generator = TransformersGenerator(load_causal_lm(path), max_batch_size=max(args.concurrency))
    encoded = [
        stretch(list(bundle.tokenizer.encode(p, add_special_tokens=False)), args.prompt_tokens)
        for p in PROMPTS
    ]
    print(
        f"model {path}, prompts of {min(map(len, encoded))}-{max(map(len, encoded))} tokens, "
        f"{args.tokens} sampled tokens per request, {torch.get_num_threads()} threads"
    )
    print(
        f"{'concurrent':>10}{'naive tok/s':>14}{'engine tok/s':>14}{'ratio':>8}"
        f"{'CPU ms/tok':>12}{'decode tok/s':>14}{'decode CPU ms/tok':>19}"
    )
    try:
        for n in args.concurrency:
            prompts = [encoded[i % len(encoded)] for i in range(n)]
            asyncio.run(engine(generator, prompts[:1], 4))  # warm up
            base = float("nan") if args.engine_only else naive(bundle.model, prompts, args.tokens)
            r = asyncio.run(engine(generator, prompts, args.tokens))
            print(
                f"{n:>10}{base:>14.0f}{r.tokens_per_s:>14.1f}{r.tokens_per_s / base:>7.2f}x"
                f"{r.cpu_ms_per_token:>12.1f}{r.decode_tokens_per_s:>14.1f}"
                f"{r.decode_cpu_ms_per_token:>19.1f}",
                flush=True,
            )
    finally:
        generator.engine.stop()


if __name__ == "__main__":
    main()
