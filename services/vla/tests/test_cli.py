"""`gantry vla train` writes a checkpoint the service serves; `gantry vla eval` scores it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from gantry.core.testing.threaded import serve_in_thread
from gantry.vla.cli import app
from gantry.vla.model.policy import VlaPolicy
from gantry.vla.service import VlaService
from gantry.vla.settings import VlaSettings


@pytest.mark.slow
def test_train_then_serve_then_eval(tmp_path: Path) -> None:
    runner = CliRunner()
    out = tmp_path / "policy"
    result = runner.invoke(
        app,
        [
            "train", "--out", str(out), "--architecture", "single_stream",
            "--tasks", "reach-v3", "--demos-per-task", "1", "--steps", "3",
            "--batch-size", "4", "--image-size", "32", "--render", "schematic",
            "--chunk-size", "4", "--threads", "1",
        ],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "1/1 scripted episodes solved" in result.output
    policy = VlaPolicy.load(out)
    assert policy.config.architecture == "single_stream"
    assert policy.config.chunk_size == 4 and policy.config.image_size == 32
    assert len(policy.config.state_mean) == 4
    assert policy.config.info["tasks"] == {
        "reach-v3": ["reach the goal position", "move the hand to the goal"]
    }

    settings = VlaSettings(
        host="127.0.0.1", port=0, metrics_port=0, log_json=False, checkpoint=str(out),
        torch_threads=1, auth_token="t",
    )  # fmt: skip
    with serve_in_thread(VlaService(settings)) as running:
        report = tmp_path / "eval.json"
        result = runner.invoke(
            app,
            [
                "eval", "--target", f"127.0.0.1:{running.port}", "--token", "t",
                "--tasks", "reach-v3", "--episodes", "2", "--max-steps", "6",
                "--render", "schematic", "--json", str(report),
            ],
        )  # fmt: skip
    assert result.exit_code == 0, result.output
    rows = json.loads(report.read_text())["results"]
    assert rows[0]["task"] == "reach-v3" and rows[0]["episodes"] == 2
    low, high = rows[0]["wilson95"]
    assert 0.0 <= low <= rows[0]["rate"] <= high <= 1.0
    assert rows[-1]["task"] == "all" and rows[-1]["errors"] == 0


def test_train_refuses_unknown_tasks_and_existing_output(tmp_path: Path) -> None:
    runner = CliRunner()
    result = runner.invoke(app, ["train", "--out", str(tmp_path / "x"), "--tasks", "fly-v3"])
    assert result.exit_code != 0 and "unknown task" in result.output
    result = runner.invoke(app, ["train", "--out", str(tmp_path)])
    assert result.exit_code != 0 and "exists" in result.output
