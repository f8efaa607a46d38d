"""SFT step time with every parameter trained vs the last N decoder layers (partial unfreezing).

    .venv/bin/python benchmarks/trainer_unfreezing.py [--model smollm2-135m-instruct]
        [--layers 0,8,4] [--steps 6] [--threads 2]

The trainer's `extra.trainable_layers: N` freezes the embeddings, the output layer and all
but the last N decoder layers (docs/trainer.md#partial-unfreezing). The backward pass then
stops at the first trainable layer and AdamW updates N layers' parameters instead of all.
Each variant runs the real `Trainer` in a fresh process, in the loop's SmolLM2 recipe (bf16,
the checkpoint's dtype), on the same SFT data: two-turn matchstick_equation solver
demonstrations in text mode with the demo's system prompt, 8 per step, as
`demo-smollm2.yaml` trains. The first step (allocation, warm-up) is not timed; the report
gives the median of the rest, tokens/s and each variant's ratio to full fine-tuning.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

SYSTEM = "Make the equation true by moving one match: ('move', [i, s, j, t]), then stop."


def write_dataset(path: Path, count: int) -> None:
    from gantry.envfarm.demonstrations import demonstration_or_none

    rows: list[str] = []
    seed = 0
    while len(rows) < count:
        demo = demonstration_or_none("matchstick_equation", "easy", seed)
        seed += 1
        if demo is None or not demo.succeeded:
            continue
        messages = [{"role": "system", "content": SYSTEM}]
        for turn in demo.turns:
            messages.append({"role": "user", "content": turn.observation["text"]})
            messages.append({"role": "assistant", "content": turn.action})
        rows.append(json.dumps({"messages": messages}))
    path.write_text("\n".join(rows) + "\n")


def one_variant(args: argparse.Namespace, layers: int, dataset: Path) -> dict[str, float]:
    from gantry.core.precision import precision_message
    from gantry.proto.trainer.v1 import trainer_pb2
    from gantry.trainer.training import Trainer

    torch.set_num_threads(args.threads)
    config = trainer_pb2.RunConfig(
        base_model=args.model,
        sft=trainer_pb2.SftConfig(),
        max_steps=args.steps,
        batch_size=8,
        micro_batch_size=8,
        precision=precision_message("bf16"),
    )
    config.data.dataset_uri = str(dataset)
    config.optimizer.learning_rate = 2e-4
    if layers:
        config.extra.update({"trainable_layers": layers})
    trainer = Trainer(config, 0)
    trained = sum(p.numel() for p in trainer.model.parameters() if p.requires_grad)
    seconds, tokens, losses = [], [], []
    for _ in range(args.steps):
        started = time.perf_counter()
        metrics = trainer.sft_step()
        seconds.append(time.perf_counter() - started)
        tokens.append(metrics.tokens_per_second * seconds[-1])
        losses.append(metrics.loss)
    timed = seconds[1:]
    return {
        "trained_params": float(trained),
        "seconds": statistics.median(timed),
        "tokens_per_second": sum(tokens[1:]) / sum(timed),
        "first_loss": losses[0],
        "last_loss": losses[-1],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--model", default="smollm2-135m-instruct")
    parser.add_argument("--layers", default="0,8,4", help="0 = every parameter")
    parser.add_argument("--steps", type=int, default=6)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--variant", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--dataset", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.variant is not None:
        print(json.dumps(one_variant(args, args.variant, Path(args.dataset))))
        return
    with tempfile.TemporaryDirectory() as tmp:
        dataset = Path(tmp) / "demos.jsonl"
        write_dataset(dataset, 8 * args.steps)
        print(f"{args.model}: SFT steps of 8 two-turn matchstick demonstrations, bf16 recipe")
        results: dict[int, dict[str, float]] = {}
        for layers in (int(x) for x in args.layers.split(",")):
            done = subprocess.run(
                [sys.executable, __file__, *sys.argv[1:], "--variant", str(layers),
                 "--dataset", str(dataset)],
                capture_output=True,
                text=True,
            )  # fmt: skip
            if done.returncode:
                raise SystemExit(f"trainable_layers={layers} failed:\n{done.stderr[-2000:]}")
            results[layers] = r = json.loads(done.stdout.strip().splitlines()[-1])
            name = "all" if layers == 0 else f"last {layers}"
            print(
                f"{name:<8} {r['trained_params'] / 1e6:7.1f} M trained  {r['seconds']:6.2f} s/step"
                f"  {r['tokens_per_second']:7.1f} tokens/s  loss {r['first_loss']:.3f} -> "
                f"{r['last_loss']:.3f}"
            )
    if 0 in results:
        base = results[0]["seconds"]
        for layers, r in results.items():
            if layers:
                print(f"last {layers} / all: step time {r['seconds'] / base:.2f}x")


if __name__ == "__main__":
    main()
