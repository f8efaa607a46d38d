"""Peak memory of one GRPO forward/backward: logits for every position vs completions only.

    .venv/bin/python benchmarks/grpo_memory.py [--model smollm2-135m-instruct] [--rows 32]

The trainer's loss needs the policy's logprob of each completion token only. The baseline
computes the output layer at every position ([B, L, V] logits, then log-softmax over all
of them, as the trainer did until 2026-12-02); the trainer now runs the output layer on
the completion positions alone (`grpo.policy_logprobs`, via transformers'
`logits_to_keep`). Each variant runs in a fresh process on the same turn sequences (half
of the rows with a `--prompt`-token prompt, half with half of it, as a two-turn episode
gives) and reports its peak resident memory above the loaded model, the step's seconds,
and the ratios. Same loss either way (tests/test_grpo.py checks values and gradients).
"checkpointed" adds activation checkpointing to "scored" (`extra.gradient_checkpointing`):
each decoder layer's activations are recomputed in the backward pass instead of kept.
"""

from __future__ import annotations

import argparse
import json
import random
import resource
import subprocess
import sys
import time

import torch

from gantry.trainer import grpo
from gantry.trainer.model import checkpoint_activations, load_policy

VARIANTS = ("full", "scored", "checkpointed")


def turn_sequences(args: argparse.Namespace, vocab: int) -> list[grpo.TurnSequence]:
    rng = random.Random(0)
    items = []
    for i in range(args.rows):
        prompt = args.prompt if i % 2 else args.prompt // 2
        items.append(
            grpo.TurnSequence(
                input_ids=[rng.randrange(3, vocab) for _ in range(prompt + args.completion)],
                prompt_len=prompt,
                old_logprobs=[-rng.random() * 3 for _ in range(args.completion)],
                advantage=rng.gauss(0, 1),
                trajectory_id=f"t{i}",
            )
        )
    return items


def full_logprobs(model: torch.nn.Module, batch: grpo.Batch) -> torch.Tensor:
    logits = model(**batch.inputs()).logits
    return grpo.token_logprobs(logits[:, :-1], batch.targets)[0]


def one_variant(args: argparse.Namespace) -> dict[str, float]:
    torch.set_num_threads(args.threads)
    bundle, _ = load_policy(args.model, "bf16")
    model = bundle.model
    if args.variant == "checkpointed":
        checkpoint_activations(model)
    items = turn_sequences(args, int(model.config.vocab_size))
    batch = grpo.collate(items, pad_id=0)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    started = time.perf_counter()
    if args.variant == "full":
        logprobs = full_logprobs(model, batch)
    else:
        logprobs = grpo.policy_logprobs(model, batch)[0]
    terms = grpo.ppo_clip_loss(
        logprobs,
        batch.old_logprobs,
        batch.advantages,
        batch.loss_mask,
        clip_low=0.2,
        clip_high=0.28,
        total_tokens=float(batch.loss_mask.sum()),
    )
    terms.loss.backward()  # type: ignore[no-untyped-call]
    seconds = time.perf_counter() - started
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
    return {"peak_gib": (peak - before) / 2**20, "seconds": seconds, "loss": float(terms.loss)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--model", default="smollm2-135m-instruct")
    parser.add_argument("--rows", type=int, default=32)
    parser.add_argument("--prompt", type=int, default=410)
    parser.add_argument("--completion", type=int, default=20)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--variant", choices=VARIANTS, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.variant:
        print(json.dumps(one_variant(args)))
        return
    print(
        f"{args.model}: {args.rows} turn sequences, prompts {args.prompt // 2}/{args.prompt} "
        f"tokens + {args.completion}-token completions, one forward + backward"
    )
    results = {}
    for variant in VARIANTS:
        done = subprocess.run(
            [sys.executable, __file__, *sys.argv[1:], "--variant", variant],
            capture_output=True,
            text=True,
        )
        if done.returncode < 0:  # SIGKILL: the kernel's OOM killer
            print(f"{variant:<12} killed by signal {-done.returncode} (out of memory)")
            continue
        if done.returncode:
            raise SystemExit(f"{variant} failed:\n{done.stderr[-2000:]}")
        results[variant] = r = json.loads(done.stdout.strip().splitlines()[-1])
        print(
            f"{variant:<12} peak +{r['peak_gib']:6.2f} GiB  {r['seconds']:7.2f} s  "
            f"loss {r['loss']:.6f}"
        )
    for name in ("scored", "checkpointed"):
        if "full" in results and name in results:
            base, r = results["full"], results[name]
            print(
                f"{name} / full: memory {r['peak_gib'] / base['peak_gib']:.2f}x, "
                f"time {r['seconds'] / base['seconds']:.2f}x"
            )


if __name__ == "__main__":
    main()
