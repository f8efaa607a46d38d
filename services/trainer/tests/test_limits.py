"""Bad input is INVALID_ARGUMENT (or RESOURCE_EXHAUSTED for capacity), never INTERNAL:
checked on arrival, naming the field, with bounded error details. And concurrent saves
of run.json never share a temp file."""

from __future__ import annotations

import math
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest
from google.protobuf import json_format

from gantry.proto.common.v1 import chat_pb2, trajectory_pb2
from gantry.proto.trainer.v1 import trainer_pb2, trainer_pb2_grpc
from gantry.trainer import limits
from gantry.trainer.paths import Roots
from gantry.trainer.runs import RunRecord

from .helpers import error_of, sft_config, stubs, trainer_server, wait_run

MAX_PER_MESSAGE = 8
MAX_TOKENS = 1000


@pytest.fixture(scope="module")
def stub(tmp_path_factory: pytest.TempPathFactory) -> Iterator[trainer_pb2_grpc.TrainerServiceStub]:
    with (
        trainer_server(
            tmp_path_factory.mktemp("limits"),
            max_runs=3,
            max_active_runs=1,
            max_trajectories_per_message=MAX_PER_MESSAGE,
            max_tokens_per_trajectory=MAX_TOKENS,
        ) as target,
        stubs(target) as (trainer, _),
    ):
        yield trainer


def invalid(stub: trainer_pb2_grpc.TrainerServiceStub, config: trainer_pb2.RunConfig) -> Any:
    err = error_of(stub.StartRun, trainer_pb2.StartRunRequest(config=config))
    assert err.code == grpc.StatusCode.INVALID_ARGUMENT, err
    return err


def test_non_finite_extra_and_hyperparameters(
    stub: trainer_pb2_grpc.TrainerServiceStub, demos: Path, tiny_path: str
) -> None:
    for value in (math.nan, math.inf, -math.inf):
        config = sft_config(tiny_path, demos)
        config.extra.update({"precision_recipe": "bf16", "nested": {"x": value}})
        assert "config.extra.nested.x" in invalid(stub, config).message
        for field in ("weight_decay", "max_grad_norm", "learning_rate"):
            config = sft_config(tiny_path, demos)
            setattr(config.optimizer, field, value)
            assert f"config.optimizer.{field}" in invalid(stub, config).message
        config = sft_config(tiny_path, demos)
        config.ClearField("sft")
        config.grpo.kl_coef = value
        assert "config.grpo.kl_coef" in invalid(stub, config).message
    deep = sft_config(tiny_path, demos)
    level: Any = {"leaf": 1}
    for _ in range(20):  # past MAX_STRUCT_DEPTH, within protobuf's own limit
        level = {"n": level}
    deep.extra.update({"deep": level})
    assert "config.extra" in invalid(stub, deep).message


def test_unknown_train_dtype_attention_checkpointing_or_layers_names_the_field(
    stub: trainer_pb2_grpc.TrainerServiceStub, demos: Path, tiny_path: str
) -> None:
    for key in ("train_dtype", "attn_implementation"):
        for value in ("flash", ["eager"], 1.0):
            config = sft_config(tiny_path, demos)
            config.extra.update({key: value})
            assert f"config.extra.{key}" in invalid(stub, config).message
    for flag in ("yes", 1.0, ["on"]):
        config = sft_config(tiny_path, demos)
        config.extra.update({"gradient_checkpointing": flag})
        assert "config.extra.gradient_checkpointing" in invalid(stub, config).message
    for layers in (-1, 2.5, True, "4", 10_000):
        config = sft_config(tiny_path, demos)
        config.extra.update({"trainable_layers": layers})
        assert "config.extra.trainable_layers" in invalid(stub, config).message


def test_long_paths_and_ids(
    stub: trainer_pb2_grpc.TrainerServiceStub, demos: Path, tiny_path: str
) -> None:
    long_name = "x" * 300
    for field in ("base_model", "output_uri"):
        config = sft_config(tiny_path, demos)
        setattr(config, field, f"/{long_name}/model")
        assert f"config.{field}" in invalid(stub, config).message
    config = sft_config(tiny_path, demos)
    config.data.dataset_uri = long_name
    assert "config.data.dataset_uri" in invalid(stub, config).message
    huge = "r" * 100_000
    err = error_of(
        stub.StartRun,
        trainer_pb2.StartRunRequest(config=sft_config(tiny_path, demos), request_id=huge),
    )
    assert err.code == grpc.StatusCode.INVALID_ARGUMENT and "request_id" in err.message
    assert len(err.message) < 2048  # the value is not echoed back
    err = error_of(
        stub.StartRun,
        trainer_pb2.StartRunRequest(config=sft_config(tiny_path, demos), display_name=huge),
    )
    assert err.code == grpc.StatusCode.INVALID_ARGUMENT and "display_name" in err.message
    for call, request in (
        (stub.GetRun, trainer_pb2.GetRunRequest(run_id=huge)),
        (stub.CancelRun, trainer_pb2.CancelRunRequest(run_id=huge)),
        (stub.ListCheckpoints, trainer_pb2.ListCheckpointsRequest(run_id=huge)),
        (stub.PublishWeights, trainer_pb2.PublishWeightsRequest(run_id=huge)),
        (stub.ListRuns, trainer_pb2.ListRunsRequest(page_token=huge)),
    ):
        err = error_of(call, request)
        assert err.code == grpc.StatusCode.INVALID_ARGUMENT, (call, err)
        assert len(err.message) < 2048
    err = error_of(
        lambda r: list(stub.StreamRunMetrics(r)), trainer_pb2.StreamRunMetricsRequest(run_id=huge)
    )
    assert err.code == grpc.StatusCode.INVALID_ARGUMENT


def test_huge_counts(
    stub: trainer_pb2_grpc.TrainerServiceStub, demos: Path, tiny_path: str
) -> None:
    config = sft_config(tiny_path, demos, steps=limits.MAX_STEPS + 1)
    assert "config.max_steps" in invalid(stub, config).message
    for field, value in (
        ("batch_size", limits.MAX_BATCH_SIZE + 1),
        ("micro_batch_size", 2**30),
        ("max_seq_len", limits.MAX_SEQ_LEN + 1),
        ("checkpoint_interval", 2**31 - 1),
    ):
        config = sft_config(tiny_path, demos, **{field: value})
        assert f"config.{field}" in invalid(stub, config).message
    config = sft_config(tiny_path, demos)
    config.optimizer.warmup_steps = 2**31 - 1
    assert "config.optimizer.warmup_steps" in invalid(stub, config).message
    grpo = trainer_pb2.RunConfig(
        base_model=tiny_path, grpo=trainer_pb2.GrpoConfig(group_size=limits.MAX_GROUP_SIZE + 1)
    )
    grpo.data.submitted = True
    assert "config.grpo.group_size" in invalid(stub, grpo).message
    episodes = trainer_pb2.RunConfig(base_model=tiny_path, grpo=trainer_pb2.GrpoConfig())
    episodes.data.episodes.env_id = "maze_2d"
    episodes.data.episodes.seeds.extend(range(limits.MAX_SEEDS + 1))
    assert "config.data.episodes.seeds" in invalid(stub, episodes).message


def trajectory(i: int, prompt: int, completion: int) -> trajectory_pb2.Trajectory:
    turn = trajectory_pb2.Turn(
        prompt_token_ids=[5] * prompt,
        completion=chat_pb2.TokenSequence(token_ids=[7] * completion, logprobs=[-1.0] * completion),
    )
    return trajectory_pb2.Trajectory(id=f"t{i}", group_id="g", turns=[turn])


def test_submit_sizes_and_run_capacity(
    stub: trainer_pb2_grpc.TrainerServiceStub, tiny_path: str
) -> None:
    config = trainer_pb2.RunConfig(
        base_model=tiny_path, grpo=trainer_pb2.GrpoConfig(group_size=2), batch_size=2
    )
    config.data.submitted = True
    op = stub.StartRun(trainer_pb2.StartRunRequest(config=config))
    meta = trainer_pb2.StartRunMetadata()
    op.metadata.Unpack(meta)

    def submit(trajectories: list[trajectory_pb2.Trajectory]) -> Any:
        return error_of(
            lambda r: stub.SubmitTrajectories(iter([r])),
            trainer_pb2.SubmitTrajectoriesRequest(run_id=meta.run_id, trajectories=trajectories),
        )

    err = submit([trajectory(i, 4, 4) for i in range(MAX_PER_MESSAGE + 1)])
    assert err.code == grpc.StatusCode.INVALID_ARGUMENT and "trajectories" in err.message
    err = submit([trajectory(0, 4, 4), trajectory(1, MAX_TOKENS, 1)])
    assert err.code == grpc.StatusCode.INVALID_ARGUMENT
    assert "trajectories[1].turns" in err.message
    long_id = trajectory(0, 4, 4)
    long_id.id = "i" * 10_000
    assert "trajectories[0].id" in submit([long_id]).message
    assert (
        stub.SubmitTrajectories(
            iter([trainer_pb2.SubmitTrajectoriesRequest(run_id=meta.run_id)])
        ).buffered_count
        == 0
    )  # nothing of the refused messages was kept
    # Token ids outside the vocabulary are rejected (they would crash the step).
    wait_run(stub, meta.run_id, until=lambda r: r.state == trainer_pb2.RUN_STATE_RUNNING)
    negative, huge = trajectory(0, 4, 4), trajectory(1, 4, 4)
    negative.turns[0].prompt_token_ids[0] = -1
    huge.turns[0].completion.token_ids[0] = 10**9
    reply = stub.SubmitTrajectories(
        iter(
            [
                trainer_pb2.SubmitTrajectoriesRequest(
                    run_id=meta.run_id, trajectories=[negative, huge]
                )
            ]
        )
    )
    assert reply.accepted_count == 0
    assert all("vocabulary" in r.reason for r in reply.rejected) and len(reply.rejected) == 2

    # Capacity: one active run at a time (retry later), three stored runs in all.
    busy = error_of(stub.StartRun, trainer_pb2.StartRunRequest(config=config))
    assert busy.code == grpc.StatusCode.RESOURCE_EXHAUSTED and "max_active_runs" in busy.message
    assert getattr(busy, "retry_after_s", None)
    stub.CancelRun(trainer_pb2.CancelRunRequest(run_id=meta.run_id))
    wait_run(stub, meta.run_id)
    for _ in range(3 - len(stub.ListRuns(trainer_pb2.ListRunsRequest()).runs)):
        op = stub.StartRun(trainer_pb2.StartRunRequest(config=config))
        op.metadata.Unpack(meta)
        stub.CancelRun(trainer_pb2.CancelRunRequest(run_id=meta.run_id))
        wait_run(stub, meta.run_id)
    full = error_of(stub.StartRun, trainer_pb2.StartRunRequest(config=config))
    assert full.code == grpc.StatusCode.RESOURCE_EXHAUSTED and "max_runs" in full.message


def test_concurrent_saves_of_run_json_never_collide(tmp_path: Path) -> None:
    run = trainer_pb2.Run(id="run-x", state=trainer_pb2.RUN_STATE_RUNNING)
    (tmp_path / "run-x").mkdir()
    record = RunRecord(tmp_path / "run-x", run, Roots.under(tmp_path / "data"))
    errors: list[BaseException] = []

    def save(n: int) -> None:
        try:
            for step in range(40):
                with record.lock:
                    record.run.step = n * 1000 + step
                record.save()
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=save, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    saved = json_format.Parse((tmp_path / "run-x" / "run.json").read_text(), trainer_pb2.Run())
    assert saved.step == record.run.step  # the last write holds the newest state
    assert [p.name for p in (tmp_path / "run-x").iterdir()] == ["run.json"]  # no temp left
