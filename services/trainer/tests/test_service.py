"""The trainer through a real gRPC server: SFT runs, checkpoints, listing, validation."""

from __future__ import annotations

import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest

from gantry.models.loading import load_causal_lm
from gantry.proto.trainer.v1 import trainer_pb2, trainer_pb2_grpc

from .helpers import error_of, sft_config, stubs, trainer_server, wait_operation, wait_run


@pytest.fixture(scope="module")
def target(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with trainer_server(tmp_path_factory.mktemp("trainer")) as running:
        yield running


@pytest.fixture
def both(target: str) -> Iterator[tuple[trainer_pb2_grpc.TrainerServiceStub, Any]]:
    with stubs(target) as pair:
        yield pair


@pytest.fixture
def stub(
    both: tuple[trainer_pb2_grpc.TrainerServiceStub, Any],
) -> trainer_pb2_grpc.TrainerServiceStub:
    return both[0]


@pytest.mark.slow
def test_sft_on_envfarm_demonstrations_lowers_the_loss(
    both: tuple[trainer_pb2_grpc.TrainerServiceStub, Any], demos: Path, tiny_path: str
) -> None:
    stub, ops = both
    op = stub.StartRun(
        trainer_pb2.StartRunRequest(
            display_name="sft-demo",
            config=sft_config(tiny_path, demos, steps=8, checkpoint_interval=4),
        )
    )
    meta = trainer_pb2.StartRunMetadata()
    assert op.metadata.Unpack(meta) and meta.run_id
    done = wait_operation(ops, op.name)
    assert done.done and not done.HasField("error"), done.error
    final = trainer_pb2.Run()
    assert done.response.Unpack(final)
    assert final.state == trainer_pb2.RUN_STATE_SUCCEEDED
    assert final.step == 8 and final.policy_version == 8 and final.total_steps == 8
    assert final.config.sft.assistant_only_loss  # defaults filled in
    history = list(stub.StreamRunMetrics(trainer_pb2.StreamRunMetricsRequest(run_id=final.id)))
    assert [h.metrics.step for h in history] == list(range(1, 9))
    losses = [h.metrics.loss for h in history]
    assert losses[-1] < 0.8 * losses[0], losses
    assert all(h.metrics.tokens_per_second > 0 and h.metrics.grad_norm > 0 for h in history)
    later = list(
        stub.StreamRunMetrics(trainer_pb2.StreamRunMetricsRequest(run_id=final.id, since_step=6))
    )
    assert [h.metrics.step for h in later] == [6, 7, 8]

    listed = stub.ListCheckpoints(trainer_pb2.ListCheckpointsRequest(run_id=final.id))
    assert [c.step for c in listed.checkpoints] == [8, 4]
    newest = listed.checkpoints[0]
    assert newest.id == "step-000008" and newest.size_bytes > 0 and newest.policy_version == 8
    assert final.latest_checkpoint.id == newest.id
    # A checkpoint is a plain HF model directory: loadable, usable as a base model.
    assert load_causal_lm(newest.uri).model.config.model_type == "qwen3"
    page = stub.ListCheckpoints(trainer_pb2.ListCheckpointsRequest(run_id=final.id, page_size=1))
    assert len(page.checkpoints) == 1 and page.next_page_token
    follow = stub.StartRun(
        trainer_pb2.StartRunRequest(config=sft_config(newest.uri, demos, steps=1))
    )
    meta = trainer_pb2.StartRunMetadata()
    follow.metadata.Unpack(meta)
    chained = wait_run(stub, meta.run_id)
    assert chained.state == trainer_pb2.RUN_STATE_SUCCEEDED
    first = next(
        iter(stub.StreamRunMetrics(trainer_pb2.StreamRunMetricsRequest(run_id=chained.id)))
    )
    assert first.metrics.loss < losses[0]  # it starts from the trained weights
    # A page token belongs to one run's list: the next page there, refused anywhere else.
    rest = stub.ListCheckpoints(
        trainer_pb2.ListCheckpointsRequest(
            run_id=final.id, page_size=1, page_token=page.next_page_token
        )
    )
    assert [c.step for c in rest.checkpoints] == [4] and not rest.next_page_token
    err = error_of(
        stub.ListCheckpoints,
        trainer_pb2.ListCheckpointsRequest(
            run_id=chained.id, page_size=1, page_token=page.next_page_token
        ),
    )
    assert err.code == grpc.StatusCode.INVALID_ARGUMENT and "page_token" in err.message


@pytest.mark.slow
def test_cancel_saves_a_checkpoint_and_lists_newest_first(
    stub: trainer_pb2_grpc.TrainerServiceStub, chats: Path, tiny_path: str
) -> None:
    op = stub.StartRun(
        trainer_pb2.StartRunRequest(config=sft_config(tiny_path, chats, steps=10_000))
    )
    meta = trainer_pb2.StartRunMetadata()
    op.metadata.Unpack(meta)
    wait_run(stub, meta.run_id, until=lambda run: run.step >= 2)
    cancelled = stub.CancelRun(trainer_pb2.CancelRunRequest(run_id=meta.run_id)).run
    assert cancelled.state in (
        trainer_pb2.RUN_STATE_CANCELLING,
        trainer_pb2.RUN_STATE_CANCELLED,
    )
    run = wait_run(stub, meta.run_id)
    assert run.state == trainer_pb2.RUN_STATE_CANCELLED
    assert run.latest_checkpoint.step == run.step >= 2
    runs = stub.ListRuns(trainer_pb2.ListRunsRequest()).runs
    assert runs[0].id == run.id  # newest first
    only = stub.ListRuns(trainer_pb2.ListRunsRequest(states=[trainer_pb2.RUN_STATE_CANCELLED])).runs
    assert [r.id for r in only] == [run.id]
    first = stub.ListRuns(trainer_pb2.ListRunsRequest(page_size=1))
    assert len(first.runs) == 1 and first.next_page_token
    second = stub.ListRuns(
        trainer_pb2.ListRunsRequest(page_size=1, page_token=first.next_page_token)
    )
    assert second.runs[0].id != first.runs[0].id
    # The states filter defines the list: its token is no good with another filter.
    err = error_of(
        stub.ListRuns,
        trainer_pb2.ListRunsRequest(
            page_size=1,
            page_token=first.next_page_token,
            states=[trainer_pb2.RUN_STATE_CANCELLED],
        ),
    )
    assert err.code == grpc.StatusCode.INVALID_ARGUMENT and "page_token" in err.message


def test_validation_errors_name_the_field(
    stub: trainer_pb2_grpc.TrainerServiceStub, chats: Path, tiny_path: str, tmp_path: Path
) -> None:
    def start(config: trainer_pb2.RunConfig) -> trainer_pb2.StartRunRequest:
        return trainer_pb2.StartRunRequest(config=config)

    no_base = sft_config("", chats)
    err = error_of(stub.StartRun, start(no_base))
    assert err.code == grpc.StatusCode.INVALID_ARGUMENT and "config.base_model" in err.message
    no_method = sft_config(tiny_path, chats)
    no_method.ClearField("sft")
    assert "config.method" in error_of(stub.StartRun, start(no_method)).message
    no_data = sft_config(tiny_path, chats)
    no_data.ClearField("data")
    assert "config.data" in error_of(stub.StartRun, start(no_data)).message
    micro = sft_config(tiny_path, chats, micro_batch_size=3)
    assert "config.micro_batch_size" in error_of(stub.StartRun, start(micro)).message
    missing = sft_config(tiny_path, tmp_path / "nope.jsonl")
    assert "config.data.dataset_uri" in error_of(stub.StartRun, start(missing)).message
    images = tmp_path / "images.jsonl"
    images.write_text(
        '{"messages": [{"role": "user", "content": [{"type": "image", "image": "a.png"}]},'
        ' {"role": "assistant", "content": "stop"}]}\n'
    )
    err = error_of(stub.StartRun, start(sft_config(tiny_path, images)))
    assert err.code == grpc.StatusCode.INVALID_ARGUMENT and "image" in err.message
    ppo = trainer_pb2.RunConfig(base_model=tiny_path, ppo=trainer_pb2.PpoConfig())
    ppo.data.submitted = True
    err = error_of(stub.StartRun, start(ppo))
    assert err.code == grpc.StatusCode.UNIMPLEMENTED and "PPO" in err.message
    grpo_sft_data = sft_config(tiny_path, chats)
    grpo_sft_data.grpo.SetInParent()
    assert "config.data.submitted" in error_of(stub.StartRun, start(grpo_sft_data)).message
    for field, value in (("importance_cap", 1.0), ("importance_cap", math.nan)):
        corrected = trainer_pb2.RunConfig(base_model=tiny_path)
        corrected.data.submitted = True
        setattr(corrected.grpo, field, value)
        err = error_of(stub.StartRun, start(corrected))
        assert err.code == grpc.StatusCode.INVALID_ARGUMENT
        assert f"config.grpo.{field}" in err.message
    unknown = trainer_pb2.RunConfig(base_model=tiny_path)
    unknown.data.submitted = True
    unknown.grpo.off_policy_correction = 7  # type: ignore[assignment]  # a newer client's value
    err = error_of(stub.StartRun, start(unknown))
    assert "config.grpo.off_policy_correction" in err.message

    assert error_of(stub.GetRun, trainer_pb2.GetRunRequest(run_id="nope")).code == (
        grpc.StatusCode.NOT_FOUND
    )
    assert error_of(stub.GetRun, trainer_pb2.GetRunRequest()).code == (
        grpc.StatusCode.INVALID_ARGUMENT
    )
    assert error_of(stub.CancelRun, trainer_pb2.CancelRunRequest(run_id="nope")).code == (
        grpc.StatusCode.NOT_FOUND
    )
    assert (
        error_of(stub.ListCheckpoints, trainer_pb2.ListCheckpointsRequest(run_id="nope")).code
        == grpc.StatusCode.NOT_FOUND
    )
    assert (
        error_of(stub.ListRuns, trainer_pb2.ListRunsRequest(page_token="garbage")).code
        == grpc.StatusCode.INVALID_ARGUMENT
    )
    err = error_of(
        lambda r: list(stub.StreamRunMetrics(r)),
        trainer_pb2.StreamRunMetricsRequest(run_id="nope"),
    )
    assert err.code == grpc.StatusCode.NOT_FOUND


def test_submitting_to_an_sft_run_is_a_failed_precondition(
    stub: trainer_pb2_grpc.TrainerServiceStub, chats: Path, tiny_path: str
) -> None:
    op = stub.StartRun(trainer_pb2.StartRunRequest(config=sft_config(tiny_path, chats, steps=1)))
    meta = trainer_pb2.StartRunMetadata()
    op.metadata.Unpack(meta)
    err = error_of(
        lambda r: stub.SubmitTrajectories(iter([r])),
        trainer_pb2.SubmitTrajectoriesRequest(run_id=meta.run_id),
    )
    assert err.code == grpc.StatusCode.FAILED_PRECONDITION
    err = error_of(
        lambda r: stub.SubmitTrajectories(iter([r])),
        trainer_pb2.SubmitTrajectoriesRequest(run_id="nope"),
    )
    assert err.code == grpc.StatusCode.NOT_FOUND
    wait_run(stub, meta.run_id)


def test_cancel_operation_cancels_the_run(
    both: tuple[trainer_pb2_grpc.TrainerServiceStub, Any], chats: Path, tiny_path: str
) -> None:
    from google.longrunning import operations_proto_pb2 as operations_pb2

    stub, ops = both
    op = stub.StartRun(
        trainer_pb2.StartRunRequest(config=sft_config(tiny_path, chats, steps=10_000))
    )
    meta = trainer_pb2.StartRunMetadata()
    op.metadata.Unpack(meta)
    wait_run(stub, meta.run_id, until=lambda run: run.step >= 1)
    ops.CancelOperation(operations_pb2.CancelOperationRequest(name=op.name))
    run = wait_run(stub, meta.run_id)
    assert run.state == trainer_pb2.RUN_STATE_CANCELLED
    done = wait_operation(ops, op.name)
    assert done.done and done.error.code == grpc.StatusCode.CANCELLED.value[0]
