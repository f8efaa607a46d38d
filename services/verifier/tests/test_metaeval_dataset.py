"""The meta-evaluation set: built through a real envfarm process, labelled by replay."""

from __future__ import annotations

import json
import random
from collections.abc import Iterator

import grpc
import pytest

from gantry.core.client import sync_channel
from gantry.core.testing.process import spawn_service
from gantry.verifier.metaeval import dataset, failures
from gantry.verifier.metaeval.run import (
    RefinedTask,
    RefineResult,
    parse_actions,
    request,
    stratified,
)
from gantry.verifier.metaeval.scoring import Confusion, percentile
from gantry.verifier.metaeval.stack import AGENT, verifier_env
from gantry.verifier.settings import VerifierSettings

TOKEN = "metaeval-test-token"
MAZE = ["('move', 'down')", "('move', 'left')", "('move', 'up')", "stop"]
BLOCKS = ["('move', (7, 1))", "('move', (5, 2))", "stop"]


@pytest.fixture(scope="module")
def channel() -> Iterator[grpc.Channel]:
    with (
        spawn_service("gantry.envfarm", "envfarm", token=TOKEN) as envfarm,
        sync_channel(envfarm.target, token=TOKEN) as ch,
    ):
        yield ch


@pytest.fixture(scope="module")
def items(channel: grpc.Channel) -> list[dataset.Item]:
    return dataset.build(channel, 12, seed=7)


def test_half_correct_every_failure_class_labels_from_replay(
    channel: grpc.Channel, items: list[dataset.Item]
) -> None:
    assert len(items) == 12
    assert sum(i.correct for i in items) == 6
    assert {i.injected for i in items if not i.correct} == set(failures.KINDS)
    assert {i.env_id for i in items} == {f[0] for f in dataset.FAMILIES}
    builder = dataset.Builder(channel)
    for item in items:
        assert item.correct == (item.injected == "none")
        assert item.failure_class == failures.KINDS.get(item.injected, "")
        # The label is the replay's outcome: the same actions again give the same reward.
        _, _, steps = builder.replay(item.env_id, item.difficulty, item.seed, item.actions)
        success = steps[-1].terminated and steps[-1].reward >= dataset.SUCCESS_REWARD
        assert success == item.correct, item.id
        assert item.answer == dataset.answer_text(item.actions)
        # The answer parses back to its actions, except the one written in prose.
        written = [s.action for s in item.steps if s.action_valid]
        assert parse_actions(item.answer) == written


def test_failures_show_in_the_episode_facts(items: list[dataset.Item]) -> None:
    by_kind = {i.injected: i for i in items}
    limit = by_kind["step_limit"]
    assert limit.steps[-1].truncated and len(limit.steps) == limit.max_steps
    assert "stop" not in limit.actions
    assert sum(not s.action_valid for s in by_kind["format_error"].steps) == 1
    for kind in ("wrong_source", "reasoning_slip", "misread_instruction"):
        last = by_kind[kind].steps[-1]
        assert last.terminated and last.reward == 0.0 and last.action == "stop", kind


def test_same_seed_same_set(channel: grpc.Channel, items: list[dataset.Item]) -> None:
    assert dataset.build(channel, 4, seed=7) == items[:4]
    assert dataset.build(channel, 4, seed=8) != items[:4]


def test_requests_hide_the_reward_and_carry_the_check_only_where_the_mode_uses_it(
    items: list[dataset.Item],
) -> None:
    item = items[1]
    plain = request(item, "plain", judge="j", seed=3)
    assert plain.task == item.task and plain.answer == item.answer
    assert plain.max_steps == item.max_steps and plain.judge.seed == 3
    assert not plain.checks
    assert all(not s.HasField("reward") and s.HasField("action_parsed") for s in plain.trajectory)
    full = request(item, "full")
    (check,) = full.checks
    assert check.replay.env_id == item.env_id and check.replay.seed == item.seed
    assert not check.replay.actions  # the trajectory's own actions are replayed


def test_injections() -> None:
    rng = random.Random(0)
    assert failures.reasoning_slip(MAZE, rng) == [MAZE[0], MAZE[1], "stop"]
    assert failures.misread_instruction(MAZE, rng) == [
        "('move', 'up')",
        "('move', 'left')",
        "('move', 'down')",
        "stop",
    ]
    assert failures.misread_instruction(BLOCKS, rng) == [
        "('move', (7, 1))",
        "('move', (5, 0))",
        "stop",
    ]
    wrong = failures.format_error(BLOCKS, random.Random(1))
    assert sum(a.startswith("move block") for a in wrong) == 1 and wrong[-1] == "stop"
    dither = failures.step_limit(MAZE, 10)
    assert len(dither) > 10 and dither[:2] == ["('move', 'down')", "('move', 'up')"]
    assert dither[-len(MAZE) :] == MAZE


def test_scores() -> None:
    c = Confusion.of([True, True, False, False, True], [True, False, True, False, True])
    assert (c.tp, c.fp, c.fn, c.tn) == (2, 1, 1, 1)
    assert c.precision == pytest.approx(2 / 3) and c.recall == pytest.approx(2 / 3)
    assert c.f1 == pytest.approx(2 / 3) and c.accuracy == pytest.approx(3 / 5)
    assert Confusion.of([False], [True]).f1 == 0.0
    assert percentile([3.0, 1.0, 2.0], 50) == 2.0 and percentile(list(range(100)), 99) == 98


def test_stratified_subset_is_balanced_and_seeded(items: list[dataset.Item]) -> None:
    subset = stratified(items, 1, seed=3)
    failed = [i.injected for i in subset if not i.correct]
    assert sorted(failed) == sorted(failures.KINDS)  # one of each failure kind
    assert sum(i.correct for i in subset) == len(failed)  # as many correct answers
    assert [i.id for i in subset] == [i.id for i in items if i in subset]  # the set's order
    assert subset == stratified(items, 1, seed=3)
    assert len(stratified(items, 9, seed=3)) == len(items)  # capped by what the set has


def test_local_verifier_gets_an_agent_endpoint_only_when_given() -> None:
    plain = verifier_env("tiny", rollout_target="127.0.0.1:1", envfarm_target="127.0.0.1:2")
    assert "GANTRY_VERIFIER_AGENTS" not in plain
    assert json.loads(plain["GANTRY_VERIFIER_JUDGES"]) == {
        "default": {"backend": "rollout", "max_tokens": 96}
    }
    env = verifier_env(
        "tiny",
        rollout_target="127.0.0.1:1",
        envfarm_target="127.0.0.1:2",
        agent_url="http://agent.internal:8000/v1",
        agent_model="my-agent",
    )
    agents = json.loads(env["GANTRY_VERIFIER_AGENTS"])
    # What the verifier will load: its own settings model accepts it as is.
    settings = VerifierSettings(agents=agents, auth_disabled=True)
    assert settings.agents[AGENT].url == "http://agent.internal:8000/v1"
    assert settings.agents[AGENT].model == "my-agent"


def test_refine_results_by_first_answer_kind() -> None:
    def task(kind: str, right: list[bool], final: bool) -> RefinedTask:
        return RefinedTask(f"t-{kind}", kind, ["a"] * len(right), right, len(right), final)

    result = RefineResult(
        mode="programmatic",
        tasks=4,
        correct_by_round=[1, 2],
        final_correct=2,
        wrong_to_right=1,
        right_to_wrong=0,
        errors=0,
        retries=3,
        per_task=[
            task("none", [True], True),
            task("format_error", [False, True], True),
            task("format_error", [False, False], False),
            task("step_limit", [False, False], False),
        ],
    )
    assert result.by_kind() == {
        "none": (1, 1, 1),
        "format_error": (2, 0, 1),
        "step_limit": (1, 0, 0),
    }
