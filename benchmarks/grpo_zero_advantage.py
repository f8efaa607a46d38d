"""GRPO step time when most groups carry no signal: every turn run vs zero-advantage turns left out.

    .venv/bin/python benchmarks/grpo_zero_advantage.py [--model smollm2-135m-instruct]
        [--groups 8] [--group-size 8] [--mixed 1] [--threads 2]

At the low success rates where RL on a small model starts, most GRPO groups are all
failures: their advantage is exactly 0 and, without a KL term, so is their gradient. The
trainer now leaves those turns out of the forward and backward passes (`grpo.with_signal`;
the loss keeps the whole batch's token count as its denominator, so the update is the
same). The baseline is the same `Trainer.grpo_step` with that filter turned off. The
batch mimics the SmolLM2 demo's: `--groups` groups of `--group-size` two-turn episodes
(prompts of `--prompt`/2 and `--prompt` tokens, `--completion`-token completions), of which
`--mixed` groups hold one success and the rest none. Each variant builds its own trainer
from the same checkpoint (bf16 recipe, as the demo trains) and is timed on one step.
"""

from __future__ import annotations

import argparse
import random
import time

import torch

from gantry.core.precision import precision_message
from gantry.proto.common.v1 import chat_pb2, trajectory_pb2
from gantry.proto.trainer.v1 import trainer_pb2
from gantry.trainer import grpo
from gantry.trainer.training import Trainer


def episodes(args: argparse.Namespace, vocab: int) -> list[trajectory_pb2.Trajectory]:
    rng = random.Random(0)
    out = []
    for g in range(args.groups):
        for k in range(args.group_size):
            turns = []
            for prompt_len in (args.prompt // 2, args.prompt):
                turns.append(
                    trajectory_pb2.Turn(
                        prompt_token_ids=[rng.randrange(3, vocab) for _ in range(prompt_len)],
                        completion=chat_pb2.TokenSequence(
                            token_ids=[rng.randrange(3, vocab) for _ in range(args.completion)],
                            logprobs=[-3 * rng.random() for _ in range(args.completion)],
                        ),
                    )
                )
            success = g < args.mixed and k == 0
            out.append(
                trajectory_pb2.Trajectory(
                    id=f"{g}-{k}", group_id=str(g), final_reward=float(success), turns=turns
                )
            )
    return out


def one_step(args: argparse.Namespace, skip: bool) -> tuple[float, trainer_pb2.StepMetrics]:
    config = trainer_pb2.RunConfig(
        base_model=args.model,
        grpo=trainer_pb2.GrpoConfig(),
        batch_size=args.groups * args.group_size,
        micro_batch_size=min(32, args.groups * args.group_size),
        micro_batch_tokens=4096,
        precision=precision_message("bf16"),
    )
    config.data.submitted = True
    config.optimizer.learning_rate = 1e-5
    trainer = Trainer(config, 0)
    batch = episodes(args, trainer.vocab_size)
    real = grpo.with_signal
    if not skip:
        grpo.with_signal = lambda items, kl_coef: list(items)  # type: ignore[assignment]
    try:
        started = time.perf_counter()
        metrics = trainer.grpo_step(batch)
        return time.perf_counter() - started, metrics
    finally:
        grpo.with_signal = real  # type: ignore[assignment]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--model", default="smollm2-135m-instruct")
    parser.add_argument("--groups", type=int, default=8)
    parser.add_argument("--group-size", type=int, default=8)
    parser.add_argument("--mixed", type=int, default=1)
    parser.add_argument("--prompt", type=int, default=410)
    parser.add_argument("--completion", type=int, default=20)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    n = args.groups * args.group_size
    print(
        f"{args.model}: {n} two-turn episodes ({2 * n} turn sequences), {args.mixed} of "
        f"{args.groups} groups with a success"
    )
    every_s, every = one_step(args, skip=False)
    kept_s, kept = one_step(args, skip=True)
    print(f"every turn run     {every_s:7.2f} s  loss {every.loss:+.6f}")
    print(
        f"zero-adv left out  {kept_s:7.2f} s  loss {kept.loss:+.6f}  "
        f"({int(kept.extra['zero_advantage_turns'])} turns not run)"
    )
    print(f"left out / every turn: {kept_s / every_s:.2f}x step time")


if __name__ == "__main__":
    main()
