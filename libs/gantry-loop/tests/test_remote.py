"""The loop against services it did not start (as on a Helm-deployed cluster): targets,
a bearer-token file, a base model path both sides read and a shared data directory."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from gantry.core import stack
from gantry.loop import parse_config, run_loop
from gantry.models.tiny.causal_lm import build_tiny_causal_lm


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_loop_runs_against_running_services(tmp_path: Path) -> None:
    model = build_tiny_causal_lm(tmp_path / "models" / "base", seed=3)
    shared = tmp_path / "shared"
    shared.mkdir()
    env = {
        "GANTRY_ROLLOUT_MODEL_PATH": str(model),
        "GANTRY_ROLLOUT_PRECISION_RECIPE": "bf16",
        # The operator's storage roots: the shared volume and the models folder.
        "GANTRY_TRAINER_DATASETS_ROOT": str(shared),
        "GANTRY_TRAINER_MODELS_ROOT": str(tmp_path / "models"),
        **{
            f"GANTRY_{s.upper()}_DATA_DIR": str(tmp_path / s)
            for s in ("envfarm", "rollout", "trainer")
        },
    }
    running = stack.up(tmp_path / "cluster", ["envfarm", "rollout", "trainer"], extra_env=env)
    try:
        assert running.token
        token_file = tmp_path / "token"
        token_file.write_text(running.token + "\n")
        config = parse_config(
            {
                "name": "remote",
                "services": {
                    "envfarm": running.service("envfarm").target,
                    "rollout": running.service("rollout").target,
                    "trainer": running.service("trainer").target,
                    "token_file": str(token_file),
                    "shared_dir": str(shared),
                },
                "policy": {"base_model": str(model), "precision": "bf16"},
                "tasks": [{"env_id": "visgym/counting", "max_turns": 2}],
                "sft": {"demonstrations": 16, "steps": 4, "batch_size": 4},
                "grpo": {"iterations": 1, "seeds_per_iteration": 2, "group_size": 2},
                "eval": {"episodes": 4, "seed_offset": 1_000, "every_iteration": False},
                "report_dir": str(tmp_path / "reports"),
            }
        )
        outcome = run_loop(config, live=False)
        assert list(outcome.result.success) == ["untrained", "sft", "grpo-1"]
        assert len(list(shared.glob("sft-*.jsonl"))) == 1  # the trainer read it from there
        records = [json.loads(line) for line in (outcome.report_dir / "metrics.jsonl").open()]
        assert [r["step"] for r in records if r["stage"] == "sft"] == [1, 2, 3, 4]
        versions = [r["policy_version"] for r in records if r["stage"] == "publish"]
        assert len(versions) == 2 and versions[0] < versions[1]
        # The loop leaves services it did not start running.
        assert all(stack.pid_alive(s.pid) for s in running.services)
    finally:
        stack.down(tmp_path / "cluster")


def test_remote_targets_need_a_readable_base_model(tmp_path: Path) -> None:
    config = parse_config(
        {
            "services": {"envfarm": "a:1", "rollout": "b:1", "trainer": "c:1"},
            "tasks": [{"env_id": "visgym/counting"}],
            "report_dir": str(tmp_path),
        }
    )
    with pytest.raises(ValueError, match="base_model"):
        run_loop(config, live=False)
