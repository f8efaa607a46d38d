"""The loop against services it did not start (as on a Helm-deployed cluster): targets,
a bearer-token file, a base model path both sides read and a shared data directory.

One cluster (envfarm, rollout, trainer processes) serves the module: a synchronous loop,
then an asynchronous one, as one team's successive jobs would use it."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from gantry.core import stack
from gantry.core.children import pid_alive
from gantry.loop import LoopConfig, parse_config, run_loop
from gantry.models.tiny.causal_lm import build_tiny_causal_lm

PROMPT = "Make the equation true by moving one match: ('move', [i, s, j, t]), then stop."


@dataclass
class Cluster:
    running: stack.Stack
    model: Path
    shared: Path
    token_file: Path

    def services(self) -> dict[str, str]:
        return {
            "envfarm": self.running.service("envfarm").target,
            "rollout": self.running.service("rollout").target,
            "trainer": self.running.service("trainer").target,
            "token_file": str(self.token_file),
            "shared_dir": str(self.shared),
        }

    def config(self, name: str, report_dir: Path, **fields: Any) -> LoopConfig:
        return parse_config(
            {
                "name": name,
                "services": self.services(),
                "policy": {"base_model": str(self.model), "precision": "fp8-jet"},
                "report_dir": str(report_dir),
                **fields,
            }
        )


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    root = tmp_path_factory.mktemp("cluster")
    model = build_tiny_causal_lm(root / "models" / "base", seed=3)
    shared = root / "shared"
    shared.mkdir()
    env = {
        "GANTRY_ROLLOUT_MODEL_PATH": str(model),
        "GANTRY_ROLLOUT_PRECISION_RECIPE": "fp8-jet",  # BF16 autocast is slow on AVX2 CPUs
        # The operator's storage roots: the shared volume and the models folder.
        "GANTRY_TRAINER_DATASETS_ROOT": str(shared),
        "GANTRY_TRAINER_MODELS_ROOT": str(root / "models"),
        **{
            f"GANTRY_{s.upper()}_DATA_DIR": str(root / s) for s in ("envfarm", "rollout", "trainer")
        },
    }
    running = stack.up(root / "state", ["envfarm", "rollout", "trainer"], extra_env=env)
    try:
        assert running.token
        token_file = root / "token"
        token_file.write_text(running.token + "\n")
        yield Cluster(running, model, shared, token_file)
    finally:
        stack.down(root / "state")


def _records(report_dir: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in (report_dir / "metrics.jsonl").open()]


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_loop_runs_against_running_services(cluster: Cluster, tmp_path: Path) -> None:
    config = cluster.config(
        "remote",
        tmp_path / "reports",
        tasks=[{"env_id": "visgym/counting", "max_turns": 2}],
        sft={"demonstrations": 16, "steps": 4, "batch_size": 4},
        grpo={"iterations": 1, "seeds_per_iteration": 2, "group_size": 2},
        eval={"episodes": 4, "seed_offset": 1_000, "every_iteration": False},
    )
    outcome = run_loop(config, live=False)
    assert list(outcome.result.success) == ["untrained", "sft", "grpo-1"]
    assert len(list(cluster.shared.glob("sft-*.jsonl"))) == 1  # the trainer read it from there
    records = _records(outcome.report_dir)
    assert [r["step"] for r in records if r["stage"] == "sft"] == [1, 2, 3, 4]
    versions = [r["policy_version"] for r in records if r["stage"] == "publish"]
    assert len(versions) == 2 and versions[0] < versions[1]
    # The loop leaves services it did not start running.
    assert all(pid_alive(s.pid) for s in cluster.running.services)


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_async_mode_trains_on_streamed_episodes_and_publishes_as_it_goes(
    cluster: Cluster, tmp_path: Path
) -> None:
    steps = 3
    config = cluster.config(
        "ci-async",
        tmp_path,
        tasks=[{"env_id": "visgym/matchstick_equation", "difficulty": "easy", "max_turns": 2}],
        system_prompt=PROMPT,
        sft={"demonstrations": 40, "steps": 4, "batch_size": 4, "warmup_steps": 0},
        grpo={
            "mode": "async",
            "iterations": steps,
            "seeds_per_iteration": 2,
            "group_size": 4,
            "max_tokens": 8,
            "max_staleness": 1,
            "publish_interval": 1,
            "off_policy_correction": "tis",
        },
        eval={"episodes": 4, "seed_offset": 100_000, "every_iteration": False},
    )
    outcome = run_loop(config, live=False)
    assert list(outcome.result.success) == ["untrained", "sft", f"grpo-{steps}"]
    records = _records(outcome.report_dir)
    grpo = [r for r in records if r["stage"] == "grpo"]
    assert [r["step"] for r in grpo] == list(range(1, steps + 1))  # each step once
    # Accepted at most max_staleness (1) behind; a trajectory waiting in the one-batch
    # read-ahead ages by at most one more version, and is counted and weighted by TIS.
    assert all(r["staleness_mean"] <= 2 for r in grpo)
    assert all(0 <= r["stale_fraction"] <= 1 and "is_weight_mean" in r for r in grpo)
    # No loop-driven rollout stage: the trainer streamed its own episodes.
    assert not [r for r in records if r["stage"] == "rollouts"]
    published = [r for r in records if r.get("after") == "grpo-async"]
    sft_version = next(
        r["policy_version"] for r in records if r["stage"] == "publish" and r.get("after") == "sft"
    )
    # The trainer published after each step, past the version SFT's publish made.
    assert published and published[0]["policy_version"] >= sft_version + steps
    assert published[0]["run_id"] == outcome.result.grpo_run
    assert outcome.result.grpo_trajectories == steps * 8 and outcome.result.grpo_seconds > 0
    assert "trajectories/s" in (outcome.report_dir / "summary.md").read_text()


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
