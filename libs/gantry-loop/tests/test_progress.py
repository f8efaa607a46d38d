"""Progress without a terminal: plain lines, never a silent run; the live view on a TTY."""

from __future__ import annotations

import io
import re
from pathlib import Path
from typing import Any

import pytest
from rich.console import Console

from gantry.loop import calls, parse_config
from gantry.loop.loop import TrainingLoop
from gantry.loop.progress import LiveView, PlainProgress
from gantry.loop.runner import _progress
from gantry.proto.rollout.v1 import rollout_pb2


def _evaluation(label: str, k: int, n: int) -> dict[str, object]:
    return {
        "stage": "evaluate",
        "label": label,
        "iteration": 0,
        "task": "visgym/matchstick_equation/easy",
        "success_rate": k / n,
        "successes": k,
        "episodes": n,
        "tokens_per_second": 30.0,
    }


def test_plain_progress_prints_stage_step_success_and_elapsed() -> None:
    out = io.StringIO()
    with PlainProgress(out, interval_s=3600.0) as progress:
        progress.stage("evaluate", "untrained: 200 seeds")
        progress.record(_evaluation("untrained", 2, 200))
        progress.stage("sft", "200 steps")
        for step in (1, 2, 3):
            progress.record(
                {
                    "stage": "sft",
                    "iteration": 0,
                    "step": step,
                    "loss": 1.0 / step,
                    "tokens_per_second": 150.0,
                }
            )
        progress.record(_evaluation("sft", 40, 200))
        progress.record(
            {
                "stage": "rollouts",
                "iteration": 1,
                "episodes": 64,
                "success_rate": 0.25,
                "tokens_per_second": 40.0,
            }
        )
    lines = out.getvalue().splitlines()
    assert all(re.match(r"\[\s*\d+ s\] ", line) for line in lines)  # elapsed first
    assert "evaluate: untrained: 200 seeds" in lines[0]
    assert "untrained 2/200 = 1.0 % (0.3–3.6 %)" in lines[1]
    # Steps are throttled: the first SFT step prints, the next two (within 1 h) do not.
    steps = [line for line in lines if "sft step" in line]
    assert len(steps) == 1 and "loss 1.0000, 150 tokens/s" in steps[0]
    assert "held-out untrained 2/200" in steps[0]  # success so far rides along
    assert "sft 40/200 = 20.0 % (15.0–26.1 %)" in lines[-2]
    assert "sampled success 25.0 %" in lines[-1] and "held-out sft 40/200" in lines[-1]


def test_the_live_view_needs_a_terminal() -> None:
    piped = _progress(Console(file=io.StringIO()))
    assert isinstance(piped, PlainProgress)
    assert isinstance(_progress(Console(file=io.StringIO(), force_terminal=True)), LiveView)


class _FailingRollout:
    """A rollout whose every episode failed (e.g. envfarm reaped the sessions)."""

    def RunEpisodes(self, request: Any, timeout: float) -> rollout_pb2.RunEpisodesResponse:
        errors = [rollout_pb2.EpisodeError(seed=seed) for seed in request.spec.seeds]
        return rollout_pb2.RunEpisodesResponse(errors=errors)


def test_an_evaluation_with_every_episode_failed_stops_the_loop(tmp_path: Path) -> None:
    config = parse_config({"tasks": [{"env_id": "visgym/maze_2d"}], "eval": {"episodes": 3}})
    out = io.StringIO()
    stubs = calls.Stubs(envfarm=None, rollout=_FailingRollout(), trainer=None)  # type: ignore[arg-type]
    loop = TrainingLoop(
        config,
        stubs,
        base_model="tiny",
        data_dir=tmp_path,
        rollout_for_trainer="",
        observer=PlainProgress(out),
    )
    with pytest.raises(RuntimeError, match="all 3 episodes of visgym/maze_2d/easy failed"):
        loop.evaluate("untrained", 0)  # not a silent 0 %
    assert "0/0 = 0.0 % (0.0–100.0 %), 3 episodes failed" in out.getvalue()
