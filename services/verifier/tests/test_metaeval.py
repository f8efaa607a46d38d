"""`python -m gantry.verifier.metaeval` end to end on a few items: real envfarm, rollout
(tiny judge and agent) and verifier processes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from gantry.verifier.metaeval.cli import main

# Three real servers and tiny-model judge calls (minutes on a busy 2-core machine).
pytestmark = [pytest.mark.slow, pytest.mark.timeout(1200)]


ITEMS = 6  # three tasks, each correct and with one injected failure (suite time)


def test_metaeval_reports_every_mode_latency_and_refine_rounds(tmp_path: Path) -> None:
    out = tmp_path / "metaeval.json"
    report = main(
        [
            f"--items={ITEMS}",
            "--models=tiny",
            "--modes",
            "plain",
            "programmatic",
            "--sequential",
            "--refine-tasks=2",
            "--rounds=2",
            "--refine-modes=programmatic",
            "--agent-max-tokens=16",
            f"--json={out}",
        ]
    )
    assert json.loads(out.read_text()) == json.loads(json.dumps(report))
    assert report["set"]["items"] == ITEMS
    assert report["set"]["kinds"]["none"] == ITEMS // 2
    tiny = report["models"]["tiny"]
    modes = {m["mode"]: m for m in tiny["modes"]}
    assert set(modes) == {"plain", "programmatic"}
    for mode in modes.values():
        c = mode["confusion"]
        assert c["tp"] + c["fp"] + c["fn"] + c["tn"] == ITEMS
        assert mode["errors"] == 0, mode["refusals"]  # every item fits the tiny model
        assert sum(total for _, total in mode["by_kind"].values()) == ITEMS
        # --sequential: every item is one timed Verify call
        assert len(mode["latencies_s"]) == ITEMS and min(mode["latencies_s"]) > 0
    # The executable check is the ground truth: with it, verdicts equal the labels (the
    # full pipeline's checks outranking its judge is the verifier's own tests' subject).
    c = modes["programmatic"]["confusion"]
    assert (c["fp"], c["fn"]) == (0, 0) and modes["programmatic"]["f1"] == 1.0
    (refine,) = tiny["refine"]
    assert refine["mode"] == "programmatic" and refine["tasks"] == 2
    assert refine["errors"] == 0 and len(refine["correct_by_round"]) == 2
    assert refine["correct_by_round"][0] == 1  # one correct and one failed answer first
    # The replay check reads each round's answer: the correct first answer is accepted in
    # round 1 and kept; the failed one is rejected and retried by the agent.
    assert refine["right_to_wrong"] == 0 and refine["retries"] == 1
    assert refine["final_correct"] >= 1
    # Every stream's answers are kept with envfarm's grading of each.
    tasks = {t["injected"] == "none": t for t in refine["per_task"]}
    assert set(tasks) == {True, False}
    assert tasks[True]["answers"] and tasks[True]["right"] == [True]  # accepted in round 1
    assert tasks[True]["best_round"] == 1 and tasks[True]["final_right"]
    assert len(tasks[False]["answers"]) == 2 and tasks[False]["right"][0] is False
    assert len(tasks[False]["right"]) == len(tasks[False]["answers"])
    # Every item's score is kept, in the set's order, and agrees with its verdict.
    for mode in modes.values():
        assert len(mode["scores"]) == ITEMS and all(1 <= s <= 4 for s in mode["scores"])
    assert [s < 3 for s in modes["programmatic"]["scores"]] == [
        not item["correct"] for item in report["set"]["verified"]
    ]
