"""TensorBoard event files of runs through a real gRPC server, read back the way
TensorBoard reads them: the tags and steps are the run's reported metrics."""

from __future__ import annotations

import math
from collections.abc import Iterable
from pathlib import Path

import grpc
import pytest

from gantry.proto.common.v1 import chat_pb2, trajectory_pb2
from gantry.proto.trainer.v1 import trainer_pb2, trainer_pb2_grpc

from .helpers import error_of, sft_config, stubs, tensorboard_scalars, trainer_server, wait_run

SFT_TAGS = {"loss", "learning_rate", "grad_norm", "tokens_per_second", "step_seconds"}
GRPO_TAGS = SFT_TAGS | {
    "reward_mean",
    "reward_std",
    "kl",
    "entropy",
    "staleness_mean",
    "logprob_mismatch",
    "clip_fraction",
    "completion_tokens",
    "trajectories",
    "skipped_turns",
    "zero_advantage_turns",
    "stale_fraction",
    "padding_fraction",
}


def _value(metrics: trainer_pb2.StepMetrics, name: str) -> float:
    return float(metrics.extra[name] if name in metrics.extra else getattr(metrics, name))


def _start(stub: trainer_pb2_grpc.TrainerServiceStub, config: trainer_pb2.RunConfig) -> str:
    op = stub.StartRun(trainer_pb2.StartRunRequest(config=config))
    meta = trainer_pb2.StartRunMetadata()
    op.metadata.Unpack(meta)
    return meta.run_id


def _history(
    stub: trainer_pb2_grpc.TrainerServiceStub, run_id: str
) -> list[trainer_pb2.StepMetrics]:
    request = trainer_pb2.StreamRunMetricsRequest(run_id=run_id)
    return [h.metrics for h in stub.StreamRunMetrics(request)]


def _assert_board_matches(
    directory: Path, method: str, names: Iterable[str], history: list[trainer_pb2.StepMetrics]
) -> None:
    shown = tensorboard_scalars(directory)
    assert set(shown) == {f"{method}/{name}" for name in names}
    steps = [m.step for m in history]
    for name in names:
        points = shown[f"{method}/{name}"]
        assert [step for step, _ in points] == steps, name
        for (_, value), metrics in zip(points, history, strict=True):
            # Event files hold float32.
            assert math.isclose(value, _value(metrics, name), rel_tol=1e-6, abs_tol=1e-30)


def _trajectories(count: int, group_size: int) -> list[trajectory_pb2.Trajectory]:
    out = []
    for i in range(count):
        completion = [20 + i % 5, 21, 22]
        out.append(
            trajectory_pb2.Trajectory(
                id=f"t{i}",
                group_id=f"g{i // group_size}",
                final_reward=float(i % 2),
                turns=[
                    trajectory_pb2.Turn(
                        prompt_token_ids=[5, 9, 11 + i % 3],
                        completion=chat_pb2.TokenSequence(
                            token_ids=completion, logprobs=[-1.0, -2.0, -1.5]
                        ),
                    )
                ],
            )
        )
    return out


@pytest.mark.slow
def test_sft_and_grpo_runs_write_their_metrics_as_tensorboard_scalars(
    tmp_path: Path, chats: Path, tiny_path: str
) -> None:
    outputs = tmp_path / "outputs"
    with (
        trainer_server(tmp_path / "state", outputs_root=outputs) as target,
        stubs(target) as (stub, _),
    ):
        sft_id = _start(stub, sft_config(tiny_path, chats, steps=3))
        grpo = trainer_pb2.RunConfig(
            base_model=tiny_path,
            grpo=trainer_pb2.GrpoConfig(group_size=2),
            batch_size=4,
            max_steps=2,
            seed=0,
            output_uri="experiments/grpo-a",
        )
        grpo.data.submitted = True
        grpo_id = _start(stub, grpo)
        stub.SubmitTrajectories(
            iter(
                [
                    trainer_pb2.SubmitTrajectoriesRequest(
                        run_id=grpo_id, trajectories=_trajectories(8, 2)
                    )
                ]
            )
        )
        # The default runs' event folder is no run's output folder.
        taken = trainer_pb2.RunConfig()
        taken.CopyFrom(grpo)
        taken.output_uri = "tensorboard/mine"
        err = error_of(stub.StartRun, trainer_pb2.StartRunRequest(config=taken))
        assert err.code == grpc.StatusCode.FAILED_PRECONDITION and "tensorboard" in err.message
        for run_id in (sft_id, grpo_id):
            assert wait_run(stub, run_id).state == trainer_pb2.RUN_STATE_SUCCEEDED
        sft_history = _history(stub, sft_id)
        grpo_history = _history(stub, grpo_id)
    assert [m.step for m in sft_history] == [1, 2, 3]
    assert [m.step for m in grpo_history] == [1, 2]
    # A run without output_uri: <outputs root>/tensorboard/<run id>; with one: inside it.
    _assert_board_matches(outputs / "tensorboard" / sft_id, "sft", SFT_TAGS, sft_history)
    _assert_board_matches(
        outputs / "experiments" / "grpo-a" / "tensorboard", "grpo", GRPO_TAGS, grpo_history
    )


def test_tensorboard_off_writes_no_event_files(tmp_path: Path, chats: Path, tiny_path: str) -> None:
    outputs = tmp_path / "outputs"
    with (
        trainer_server(tmp_path / "state", outputs_root=outputs, tensorboard=False) as target,
        stubs(target) as (stub, _),
    ):
        run_id = _start(stub, sft_config(tiny_path, chats, steps=1))
        assert wait_run(stub, run_id).state == trainer_pb2.RUN_STATE_SUCCEEDED
    assert not list(outputs.rglob("events.out.tfevents.*"))
