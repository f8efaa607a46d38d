"""Sync vs async GRPO through the real services, same task, seeds and model (issue 23, part 3).

    .venv/bin/python benchmarks/loop_modes.py [--iterations 6] [--out reports/loop-modes]
    .venv/bin/python benchmarks/loop_modes.py --model smollm2-135m-instruct --threads 1,1

Each mode runs the whole loop on a local stack (`gantry.loop.run_loop`): demonstrations,
SFT, then GRPO for `--iterations` steps of `seeds × group` trajectories, evaluated once at
the end (so evaluation time stays out of the GRPO timing). Printed: GRPO stage wall time,
trajectories/s and held-out success per mode and the async/sync ratio; written:
`<out>/reward.png`, the sampled episodes' mean reward per step for both modes.

`--threads R,T` gives rollout R and the trainer T torch threads in both modes (by default
sync keeps torch's default and async splits the cores, as the loop does): with 1,1 on two
cores each service has a core of its own, the CPU stand-in for rollout and trainer on
their own devices, where async can overlap what sync alternates.
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

from gantry.loop import parse_config, run_loop

PROMPT = "Make the equation true by moving one match: ('move', [i, s, j, t]), then stop."


def config(mode: str, args: argparse.Namespace, out: Path) -> dict[str, Any]:
    tiny = args.model == "tiny"
    sft = {"demonstrations": 200, "steps": 40, "batch_size": 8, "learning_rate": 5e-3}
    if not tiny:  # a pretrained policy: a few small steps teach the move format
        sft = {"demonstrations": 64, "steps": args.sft_steps, "batch_size": 8}
        sft |= {"learning_rate": 5e-5, "warmup_steps": 0}
    return {
        "name": f"modes-{mode}",
        **({} if tiny else {"policy": {"base_model": args.model, "precision": "bf16"}}),
        "tasks": [{"env_id": "visgym/matchstick_equation", "difficulty": "easy", "max_turns": 2}],
        "system_prompt": PROMPT,
        "sft": sft,
        "grpo": {
            "mode": mode,
            "iterations": args.iterations,
            "seeds_per_iteration": args.seeds,
            "group_size": args.group,
            "learning_rate": 1e-3 if tiny else 1e-6,
            "max_tokens": 16 if tiny else 20,
            "max_staleness": 1,
            "publish_interval": 1,
            "off_policy_correction": "tis",
        },
        "eval": {"episodes": args.eval_episodes, "seed_offset": 100_000, "every_iteration": False},
        "telemetry": {"tensorboard": False},
        "report_dir": str(out / mode),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--iterations", type=int, default=6)
    parser.add_argument("--seeds", type=int, default=4)
    parser.add_argument("--group", type=int, default=4)
    parser.add_argument("--eval-episodes", type=int, default=24)
    parser.add_argument("--out", type=Path, default=Path("reports/loop-modes"))
    parser.add_argument("--model", default="tiny", help="tiny, smollm2-135m-instruct or a path")
    parser.add_argument("--sft-steps", type=int, default=4, help="SFT steps of a real model")
    parser.add_argument(
        "--threads", default="", help="R,T: rollout's and the trainer's torch threads, both modes"
    )
    args = parser.parse_args()
    if args.threads:
        rollout, trainer = args.threads.split(",")
        os.environ["GANTRY_ROLLOUT_TORCH_THREADS"] = rollout  # the loop keeps what is set
        os.environ["GANTRY_TRAINER_TORCH_THREADS"] = trainer
    rows = {}
    fig, ax = plt.subplots(figsize=(6, 3.5))
    for mode in ("sync", "async"):
        outcome = run_loop(parse_config(config(mode, args, args.out)), live=False)
        result = outcome.result
        records = [json.loads(line) for line in (outcome.report_dir / "metrics.jsonl").open()]
        grpo = [r for r in records if r["stage"] == "grpo"]
        ax.plot([r["step"] for r in grpo], [r["reward_mean"] for r in grpo], marker="o", label=mode)
        rows[mode] = (result.grpo_seconds, result.grpo_trajectories, result.final)
        print(
            f"{mode:<6} GRPO {result.grpo_seconds:7.1f} s  {result.grpo_trajectories} trajectories"
            f"  {result.grpo_trajectories / result.grpo_seconds:6.2f}/s"
            f"  held-out success {100 * result.final:5.1f} %"
        )
    ax.set_xlabel("GRPO step")
    ax.set_ylabel("mean reward of the step's episodes")
    ax.legend()
    fig.tight_layout()
    args.out.mkdir(parents=True, exist_ok=True)
    fig.savefig(args.out / "reward.png", dpi=110)
    sync, asyn = rows["sync"], rows["async"]
    print(f"async / sync: {sync[0] / asyn[0]:.2f}x faster to the same {args.iterations} steps")


if __name__ == "__main__":
    main()
