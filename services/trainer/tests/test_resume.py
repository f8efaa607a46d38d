"""kill -9 mid-run, restart on the same data_dir: the run resumes and ends exactly as an
uninterrupted run with the same seed (every step once, bit-identical weights)."""

from __future__ import annotations

import math
import signal
from pathlib import Path

import pytest
from google.protobuf import json_format
from safetensors.torch import load_file

from gantry.core.testing.process import spawn_service
from gantry.proto.trainer.v1 import trainer_pb2

from .helpers import (
    TOKEN,
    root_env,
    sft_config,
    start_run,
    stubs,
    tensorboard_scalars,
    trainer_server,
    wait_run,
)

STEPS = 24  # short chats: enough steps that the kill lands mid-run


def _env(data_dir: Path) -> dict[str, str]:
    return {
        "GANTRY_TRAINER_DATA_DIR": str(data_dir),
        "GANTRY_TRAINER_TORCH_THREADS": "1",
        "GANTRY_TRAINER_LOG_JSON": "false",
        **root_env(),
    }


@pytest.mark.slow
def test_sigkill_then_restart_resumes_without_lost_or_repeated_steps(
    tmp_path: Path, chats: Path, tiny_path: str
) -> None:
    data_dir = tmp_path / "state"
    config = sft_config(tiny_path, chats, steps=STEPS, seed=11, checkpoint_interval=4)
    with spawn_service("gantry.trainer", "trainer", token=TOKEN, env=_env(data_dir)) as first:
        run_id = start_run(first.target, config)
        with stubs(first.target) as (stub, _):
            # past a checkpoint, before the end: steps after it must be recomputed
            killed_at = wait_run(stub, run_id, until=lambda r: r.step >= 5).step
        first.process.send_signal(signal.SIGKILL)
        first.process.wait()
    assert killed_at < STEPS

    with spawn_service("gantry.trainer", "trainer", token=TOKEN, env=_env(data_dir)) as second:
        with stubs(second.target) as (stub, _):
            resumed = wait_run(stub, run_id)
            assert resumed.state == trainer_pb2.RUN_STATE_SUCCEEDED
            assert resumed.step == STEPS
            history = list(
                stub.StreamRunMetrics(
                    trainer_pb2.StreamRunMetricsRequest(run_id=run_id, follow=True)
                )
            )
            assert [h.metrics.step for h in history] == list(range(1, STEPS + 1))
            assert history[-1].state == trainer_pb2.RUN_STATE_SUCCEEDED
        reference_id = start_run(second.target, config)
        with stubs(second.target) as (stub, _):
            reference = wait_run(stub, reference_id)
            reference_losses = [
                h.metrics.loss
                for h in stub.StreamRunMetrics(
                    trainer_pb2.StreamRunMetricsRequest(run_id=reference_id)
                )
            ]
    assert reference.state == trainer_pb2.RUN_STATE_SUCCEEDED
    assert [h.metrics.loss for h in history] == reference_losses
    _assert_tensorboard_shows_each_step_once(
        data_dir / "outputs" / "tensorboard" / run_id, [h.metrics for h in history]
    )
    ours = load_file(str(Path(resumed.latest_checkpoint.uri) / "model.safetensors"))
    theirs = load_file(str(Path(reference.latest_checkpoint.uri) / "model.safetensors"))
    assert ours.keys() == theirs.keys()
    assert all(ours[k].equal(theirs[k]) for k in ours)


def _assert_tensorboard_shows_each_step_once(
    directory: Path, history: list[trainer_pb2.StepMetrics]
) -> None:
    """The killed process's event file and the resumed one: the resumed file starts with
    a purge at the first step it recomputes, so TensorBoard shows every step once, with
    the values of the steps that count."""
    from tensorboard.backend.event_processing.event_file_loader import (  # type: ignore[import-untyped]
        EventFileLoader,
    )
    from tensorboard.compat.proto.event_pb2 import SessionLog  # type: ignore[import-untyped]

    first, resumed = sorted(directory.glob("events.out.tfevents.*"))
    restarts = [
        e.step
        for e in EventFileLoader(str(resumed)).Load()
        if e.session_log.status == SessionLog.START
    ]
    steps = [e.step for e in EventFileLoader(str(resumed)).Load() if e.summary.value]
    assert restarts == [min(steps)] and min(steps) > 1
    assert any(e.summary.value for e in EventFileLoader(str(first)).Load())
    losses = tensorboard_scalars(directory)["sft/loss"]
    assert [step for step, _ in losses] == [m.step for m in history]
    assert all(
        math.isclose(value, m.loss, rel_tol=1e-6)
        for (_, value), m in zip(losses, history, strict=True)
    )


@pytest.mark.slow
def test_sigterm_checkpoints_and_the_next_start_resumes(
    tmp_path: Path, chats: Path, tiny_path: str
) -> None:
    """Service.stop (what SIGTERM triggers): the run saves its current step and stays
    RUNNING; the next server on the same data_dir finishes it."""
    config = sft_config(tiny_path, chats, steps=10_000, seed=3)  # no checkpoint_interval
    with trainer_server(tmp_path) as target:
        run_id = start_run(target, config)
        with stubs(target) as (stub, _):
            wait_run(stub, run_id, until=lambda r: r.step >= 2)
    saved = json_format.Parse(
        (tmp_path / "runs" / run_id / "run.json").read_text(), trainer_pb2.Run()
    )
    assert saved.state == trainer_pb2.RUN_STATE_RUNNING
    assert saved.latest_checkpoint.step == saved.step >= 2
    with trainer_server(tmp_path) as target, stubs(target) as (stub, _):
        resumed = wait_run(stub, run_id, until=lambda r: r.step > saved.step)
        assert resumed.state == trainer_pb2.RUN_STATE_RUNNING
        stub.CancelRun(trainer_pb2.CancelRunRequest(run_id=run_id))
        final = wait_run(stub, run_id)
        steps = [
            h.metrics.step
            for h in stub.StreamRunMetrics(trainer_pb2.StreamRunMetricsRequest(run_id=run_id))
        ]
    assert final.state == trainer_pb2.RUN_STATE_CANCELLED
    assert steps == list(range(1, final.step + 1))
