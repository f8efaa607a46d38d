"""The whole loop through real service processes (envfarm, rollout, trainer) on a local
stack: the trained policy must beat the untrained one on held-out seeds.

The task is maze_2d in text mode, one of VisGym's own text-mode tasks: the text is the
grid the image draws, so the policy learns to walk the maze, not to read an answer off the
observation (which counting's old object list allowed).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from gantry.core.stack import load_stack, pid_alive
from gantry.loop import parse_config, run_loop

PROMPT = "Reach G: one ('move', d) per turn, d in up/down/left/right, then stop."
SFT_STEPS = 80


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_training_raises_held_out_success_through_the_services(tmp_path: Path) -> None:
    config = parse_config(
        {
            "name": "ci",
            "tasks": [{"env_id": "visgym/maze_2d", "difficulty": "easy", "max_turns": 12}],
            "system_prompt": PROMPT,
            "sft": {
                "demonstrations": 400,
                "steps": SFT_STEPS,
                "batch_size": 8,
                "learning_rate": 5e-3,
                "warmup_steps": 10,
            },
            "grpo": {
                "iterations": 1,
                "seeds_per_iteration": 4,
                "group_size": 4,
                "learning_rate": 1e-3,
                "max_tokens": 16,
            },
            "eval": {"episodes": 60, "seed_offset": 100_000, "every_iteration": True},
            "report_dir": str(tmp_path),
        }
    )
    outcome = run_loop(config, live=False)
    success = outcome.result.success
    assert list(success) == ["untrained", "sft", "grpo-1"]
    assert success["untrained"] == 0.0  # a random policy cannot even write an action
    assert success["sft"] > success["untrained"]
    assert success["grpo-1"] > success["untrained"]

    records = [json.loads(line) for line in (outcome.report_dir / "metrics.jsonl").open()]
    sft = [r for r in records if r["stage"] == "sft"]
    assert [r["step"] for r in sft] == list(range(1, SFT_STEPS + 1))  # each step once
    assert sft[-1]["loss"] < sft[0]["loss"] / 5
    grpo = [r for r in records if r["stage"] == "grpo"]
    assert len(grpo) == 1 and grpo[0]["logprob_mismatch"] < 1e-3  # fp8-jet on both sides
    publishes = [r["policy_version"] for r in records if r["stage"] == "publish"]
    assert publishes == sorted(publishes) and len(publishes) == 2
    for name in ("success.png", "loss_sft.png", "summary.md"):
        assert (outcome.report_dir / name).stat().st_size > 0
    stack = load_stack(outcome.report_dir / "stack")
    assert stack is None or not any(pid_alive(s.pid) for s in stack.services)
