"""config.data.verifier_target: GRPO rewards from a real verifier process (judge: rollout
serving the tiny model), reports in the run's folder, step metrics, errors."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest

from gantry.core.ports import free_port
from gantry.core.testing.process import spawn_service
from gantry.proto.common.v1 import chat_pb2, episode_pb2, trajectory_pb2
from gantry.proto.trainer.v1 import trainer_pb2, trainer_pb2_grpc
from gantry.trainer.verifier_rewards import REPORTS, reward

from .helpers import TOKEN, error_of, stubs, trainer_server, wait_run

# Three real servers, judge calls and a GRPO step on the tiny model.
pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]


@pytest.fixture(scope="module")
def verifier() -> Iterator[str]:
    with (
        spawn_service(
            "gantry.rollout",
            "rollout",
            token=TOKEN,
            env={"GANTRY_ROLLOUT_MODEL_PATH": "tiny"},
            startup_timeout_s=240,
        ) as rollout,
        spawn_service(
            "gantry.verifier",
            "verifier",
            token=TOKEN,
            env={
                "GANTRY_VERIFIER_ROLLOUT_TARGET": rollout.target,
                # The tiny model's prose is noise: short judge answers (as in the
                # verifier's own tests) keep a verification to a few seconds.
                "GANTRY_VERIFIER_JUDGES": json.dumps(
                    {"default": {"backend": "rollout", "max_tokens": 96}}
                ),
                "GANTRY_VERIFIER_JUDGE_TEXT_CHARS": "8",
                "GANTRY_VERIFIER_MAX_PROMPT_CHARS": "600",
            },
            startup_timeout_s=240,
        ) as verifier,
    ):
        yield verifier.target


@pytest.fixture(scope="module")
def trainer(verifier: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    data = tmp_path_factory.mktemp("trainer")
    peers = {"judge": verifier, "down": f"127.0.0.1:{free_port()}"}
    # The plain judge (one call per trajectory) keeps the test short; the verifier's own
    # tests cover the other modes.
    with trainer_server(
        data, verifier_peers=peers, verifier_timeout_s=600.0, verifier_mode="plain"
    ) as target:
        yield target, data


def _trajectory(
    tid: str, answer: str, *, env_id: str = "", env_reward: float = 0.0
) -> trajectory_pb2.Trajectory:
    turn = trajectory_pb2.Turn(
        index=0,
        observation=episode_pb2.Observation(text="3 apples and 4 pears on the table."),
        prompt_token_ids=[5, 6, 7],
        completion_text=answer,
        action=answer,
        completion=chat_pb2.TokenSequence(token_ids=[8, 9], logprobs=[-1.0, -2.0]),
    )
    return trajectory_pb2.Trajectory(
        id=tid,
        group_id="g",
        env_id=env_id,
        task="How many fruits are on the table? Answer with a number.",
        turns=[turn],
        final_reward=env_reward,
    )


def _start(stub: trainer_pb2_grpc.TrainerServiceStub, tiny_path: str, verifier: str) -> str:
    config = trainer_pb2.RunConfig(
        base_model=tiny_path, grpo=trainer_pb2.GrpoConfig(group_size=3), batch_size=3, max_steps=1
    )
    config.data.submitted = True
    config.data.verifier_target = verifier
    op = stub.StartRun(trainer_pb2.StartRunRequest(config=config))
    meta = trainer_pb2.StartRunMetadata()
    op.metadata.Unpack(meta)
    return meta.run_id


def _submit(
    stub: trainer_pb2_grpc.TrainerServiceStub, run_id: str, items: list[trajectory_pb2.Trajectory]
) -> trainer_pb2.SubmitTrajectoriesResponse:
    message = trainer_pb2.SubmitTrajectoriesRequest(run_id=run_id, trajectories=items)
    # Verification takes judge calls: seconds each, minutes on a busy CPU.
    return stub.SubmitTrajectories(iter([message]), timeout=600)  # type: ignore[no-any-return]


def test_verifier_scores_rewards_and_reports_stay_with_the_run(
    trainer: tuple[str, Path], tiny_path: str
) -> None:
    target, data = trainer
    with stubs(target) as (stub, _):
        run_id = _start(stub, tiny_path, "judge")
        reply = _submit(
            stub,
            run_id,
            [
                _trajectory("seven", "7"),
                _trajectory("twelve", "12"),
                _trajectory("env", "('move', 'up')", env_id="visgym/maze_2d", env_reward=1.0),
                _trajectory("empty", ""),  # the verifier refuses an empty answer
            ],
        )
        assert reply.accepted_count == 3
        (refused,) = reply.rejected
        assert refused.trajectory_id == "empty" and "answer" in refused.reason
        run = wait_run(stub, run_id)
        assert run.state == trainer_pb2.RUN_STATE_SUCCEEDED, run.error
    lines = (data / "runs" / run_id / REPORTS).read_text().splitlines()
    reports = {r["trajectory_id"]: r["verification"] for r in map(json.loads, lines)}
    assert set(reports) == {"seven", "twelve"}  # the env trajectory kept its own reward
    scores = {tid: int(v["score"]) for tid, v in reports.items()}
    for v in reports.values():
        assert v["mode"] == "VERIFICATION_MODE_PLAIN_JUDGE" and v["steps"]  # audit kept
        assert (v["verdict"] == "VERDICT_ACCEPT") == (int(v["score"]) >= v["acceptThreshold"])
    # The step trained on the verifier's rewards: reward_mean over the three trajectories.
    expected = (reward(scores["seven"]) + reward(scores["twelve"]) + 1.0) / 3
    assert run.latest_metrics.reward_mean == pytest.approx(expected, abs=1e-6)
    extra = run.latest_metrics.extra
    assert extra["verified_trajectories"] == 2
    assert extra["verifier_score_mean"] == pytest.approx(sum(scores.values()) / 2)
    accepted = sum(v["verdict"] == "VERDICT_ACCEPT" for v in reports.values())
    assert extra["verifier_accept_rate"] == pytest.approx(accepted / 2)


def test_unreachable_verifier_keeps_nothing(trainer: tuple[str, Path], tiny_path: str) -> None:
    target, _ = trainer
    with stubs(target) as (stub, _):
        run_id = _start(stub, tiny_path, "down")
        err = error_of(
            lambda r: stub.SubmitTrajectories(iter([r])),
            trainer_pb2.SubmitTrajectoriesRequest(
                run_id=run_id, trajectories=[_trajectory("a", "7")]
            ),
        )
        assert err.code == grpc.StatusCode.UNAVAILABLE
        assert "config.data.verifier_target" in err.message
        empty = trainer_pb2.SubmitTrajectoriesRequest(run_id=run_id)
        assert stub.SubmitTrajectories(iter([empty])).buffered_count == 0
        stub.CancelRun(trainer_pb2.CancelRunRequest(run_id=run_id))


def test_verifier_target_is_checked_at_start(trainer: tuple[str, Path], tiny_path: str) -> None:
    target, _ = trainer
    with stubs(target) as (stub, _):

        def start(config: trainer_pb2.RunConfig) -> trainer_pb2.StartRunRequest:
            return trainer_pb2.StartRunRequest(config=config)

        config = trainer_pb2.RunConfig(base_model=tiny_path, grpo=trainer_pb2.GrpoConfig())
        config.data.submitted = True
        config.data.verifier_target = "10.0.0.1:443"  # an address nobody configured
        err = error_of(stub.StartRun, start(config))
        assert err.code == grpc.StatusCode.PERMISSION_DENIED
        assert "config.data.verifier_target" in err.message
        config.data.episodes.env_id = "visgym/maze_2d"  # envfarm rewards these already
        config.data.verifier_target = "judge"
        config.rollout_target = ""
        err = error_of(stub.StartRun, start(config))
        assert err.code == grpc.StatusCode.INVALID_ARGUMENT
        assert "config.data.verifier_target" in err.message
