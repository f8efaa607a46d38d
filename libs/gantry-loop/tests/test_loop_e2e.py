"""The whole loop through real service processes (envfarm, rollout, trainer) on a local
stack, on matchstick_equation in text mode (VisGym's own text rendering: each symbol's
matches, as the image draws them; nothing gives the answer away).

What a tiny random CPU model measurably learns here is the agent protocol, not the puzzle:
after SFT it writes a parseable move and then `stop` (2 turns, ~19 tokens) on held-out seeds,
where the untrained policy fills every turn with max_tokens of noise. Held-out success is
reported, not asserted (the tiny model does not solve the equations; a real model would).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from gantry.core.children import pid_alive
from gantry.core.stack import load_stack
from gantry.loop import parse_config, run_loop

PROMPT = "Make the equation true by moving one match: ('move', [i, s, j, t]), then stop."
SFT_STEPS = 50
MAX_TURNS = 4


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_training_teaches_the_agent_protocol_through_the_services(tmp_path: Path) -> None:
    config = parse_config(
        {
            "name": "ci",
            "tasks": [
                {
                    "env_id": "visgym/matchstick_equation",
                    "difficulty": "easy",
                    "max_turns": MAX_TURNS,
                }
            ],
            "system_prompt": PROMPT,
            "sft": {
                "demonstrations": 120,
                "steps": SFT_STEPS,
                "batch_size": 4,
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
            "eval": {"episodes": 12, "seed_offset": 100_000, "every_iteration": True},
            "report_dir": str(tmp_path),
        }
    )
    outcome = run_loop(config, live=False)
    success = outcome.result.success
    assert list(success) == ["untrained", "sft", "grpo-1"]
    assert success["untrained"] == 0.0  # a random policy cannot even write an action

    records = [json.loads(line) for line in (outcome.report_dir / "metrics.jsonl").open()]
    evals = {r["label"]: r for r in records if r["stage"] == "evaluate"}
    untrained, trained = evals["untrained"], evals["sft"]
    # 0 of 12 held-out episodes: the 95 % Wilson interval is 0-24.2 %, and the report says so.
    assert untrained["successes"] == 0 and untrained["episodes"] == 12
    assert abs(untrained["success_high"] - 0.2425) < 1e-3
    assert (
        "| untrained | 0/12 = 0.0 % | 0.0–24.2 % |"
        in (outcome.report_dir / "summary.md").read_text()
    )
    # Untrained: every turn used, every turn max_tokens long. Trained: move, stop.
    assert untrained["mean_turns"] == MAX_TURNS
    assert trained["mean_turns"] <= MAX_TURNS / 2 + 0.25
    assert trained["mean_completion_tokens"] < untrained["mean_completion_tokens"] / 2
    assert evals["grpo-1"]["mean_turns"] <= MAX_TURNS / 2 + 0.25
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
