"""Structured output's cost per decode step: tokens/s with and without a grammar mask on
the tiny CPU model (n samples in one batch), and the ratio.
Run: python benchmarks/structured_output.py"""

from __future__ import annotations

import asyncio
import time

from gantry.models.loading import load_causal_lm
from gantry.models.tiny import tiny_model_dir
from gantry.rollout.engine.types import SamplingParams, StructuredOutput
from gantry.rollout.generator import TransformersGenerator, complete

N, TOKENS, ROUNDS = 8, 48, 3


def tokens_per_s(gen: TransformersGenerator, params: SamplingParams) -> float:
    ids = gen.tokenizer.encode("Benchmark:")
    start = time.perf_counter()
    samples = asyncio.run(complete(gen, ids, params))
    return sum(len(s.token_ids) for s in samples) / (time.perf_counter() - start)


def main() -> None:
    gen = TransformersGenerator(load_causal_lm(tiny_model_dir("causal_lm")), max_batch_size=N)
    # Long enough never to end before max_tokens: every step is masked.
    spec = StructuredOutput(regex="[a-z ]{400}")
    free = SamplingParams(max_tokens=TOKENS, n=N, seed=1, ignore_eos=True)
    constrained = SamplingParams(max_tokens=TOKENS, n=N, seed=1, structured_output=spec)
    gen.grammars.compile(spec)
    tokens_per_s(gen, free)  # warm up
    rates = {"free": 0.0, "constrained": 0.0}
    for _ in range(ROUNDS):  # interleaved: a busy machine slows both alike
        rates["free"] = max(rates["free"], tokens_per_s(gen, free))
        rates["constrained"] = max(rates["constrained"], tokens_per_s(gen, constrained))
    gen.engine.stop()
    print(f"free:        {rates['free']:8.1f} tokens/s (batch of {N})")
    print(f"constrained: {rates['constrained']:8.1f} tokens/s")
    print(f"ratio constrained/free: {rates['constrained'] / rates['free']:.2f}")


if __name__ == "__main__":
    main()
