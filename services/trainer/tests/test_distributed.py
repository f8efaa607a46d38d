"""Multi-process runs (FSDP2 over gloo, 2 and 4 ranks on the CPU) through the service, and
sharded checkpoints resumed on other world sizes."""

from __future__ import annotations

import os
import signal
from pathlib import Path
from typing import Any

import pytest
import torch
from safetensors.torch import load_file

from gantry.proto.trainer.v1 import trainer_pb2

from .helpers import error_of, sft_config, short_dataset, start_run, stubs, trainer_server, wait_run

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def demos(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Short chats: many cheap steps (envfarm's demonstrations are ~1100 tokens each)."""
    return short_dataset(tmp_path_factory.mktemp("short"))


STEPS = 4
LEARNING_RATE = 3e-3  # sft_config's


def _run(target: str, config: trainer_pb2.RunConfig, **wait: Any) -> trainer_pb2.Run:
    run_id = start_run(target, config)
    with stubs(target) as (stub, _ops):
        return wait_run(stub, run_id, timeout_s=300, **wait)


def _metrics(target: str, run_id: str) -> list[trainer_pb2.StepMetrics]:
    with stubs(target) as (stub, _ops):
        history = stub.StreamRunMetrics(trainer_pb2.StreamRunMetricsRequest(run_id=run_id))
        return [h.metrics for h in history]


@pytest.mark.parametrize("recipe", ["fp8-jet", "bf16"])
def test_one_two_and_four_ranks_train_the_same_model(
    tmp_path: Path, demos: Path, tiny_path: str, recipe: str
) -> None:
    """The ranks compute what one process does up to the order of float sums (and AdamW's
    first steps move every weight by ±lr whatever a gradient's size, so a sum-order flip of
    a tiny gradient's sign shows): measured, 4 steps agree within 1e-4 in the loss."""
    runs = {}
    # Each rank process costs ~20 s of start-up: two world sizes per recipe cover 2 and 4.
    worlds = (1, 4) if recipe == "fp8-jet" else (1, 2)
    with trainer_server(tmp_path, max_world_size=4) as target:
        for world in worlds:
            config = sft_config(tiny_path, demos, steps=STEPS, world_size=world)
            config.micro_batch_size = 1
            config.extra.update({"precision_recipe": recipe})
            run = _run(target, config)
            assert run.state == trainer_pb2.RUN_STATE_SUCCEEDED, run.error
            runs[world] = run
            if world > 1:
                assert [r.rank for r in run.ranks] == list(range(world))
                assert all(r.state == trainer_pb2.RANK_STATE_EXITED for r in run.ranks), run.ranks
                assert len({r.pid for r in run.ranks}) == world
        metrics = {w: _metrics(target, r.id) for w, r in runs.items()}
    losses = {w: [m.loss for m in ms] for w, ms in metrics.items()}
    norms = {w: [m.grad_norm for m in ms] for w, ms in metrics.items()}
    for world in worlds[1:]:
        # The gradient itself, not only AdamW's (scale-free) step: a lost or doubled share
        # would show here.
        assert norms[world][:2] == pytest.approx(norms[1][:2], rel=1e-5), world
        assert losses[world][:2] == pytest.approx(losses[1][:2], rel=1e-7), world
        assert losses[world] == pytest.approx(losses[1], rel=3e-4), world
    weights = {
        w: load_file(str(Path(r.latest_checkpoint.uri) / "model.safetensors"))
        for w, r in runs.items()
    }
    for world in worlds[1:]:
        assert weights[world].keys() == weights[1].keys()
        for name, value in weights[1].items():
            gap = (weights[world][name] - value).abs()
            # Float noise on average (100x below AdamW's step); AdamW bounds the rest.
            assert float(gap.mean()) <= 1e-4, name
            assert float(gap.max()) <= 2 * LEARNING_RATE * STEPS, name
    # Sharded checkpoints: one file of shards per rank next to the consolidated export.
    shards = Path(runs[worlds[-1]].latest_checkpoint.uri) / "shards"
    assert len(list(shards.glob("*.distcp"))) == worlds[-1] and (shards / ".metadata").is_file()


def test_world_size_beyond_the_limit_is_invalid(
    tmp_path: Path, demos: Path, tiny_path: str
) -> None:
    with trainer_server(tmp_path, max_world_size=2) as target, stubs(target) as (stub, _ops):
        config = sft_config(tiny_path, demos, world_size=3)
        error = error_of(stub.StartRun, trainer_pb2.StartRunRequest(config=config))
        assert error.code.name == "INVALID_ARGUMENT" and "config.world_size" in error.message


def _kill_rank_one(target: str, run_id: str) -> int:
    """SIGKILL rank 1 once the run is past its first checkpoint; the step it died at."""
    with stubs(target) as (stub, _ops):
        run = wait_run(
            stub,
            run_id,
            until=lambda r: r.step >= 3 and len(r.ranks) == 2 and r.ranks[1].pid > 0,
            timeout_s=120,
        )
    assert run.ranks[1].host and run.ranks[0].pid == os.getpid()  # rank 0: the service
    os.kill(run.ranks[1].pid, signal.SIGKILL)
    return int(run.step)


def test_a_killed_rank_restarts_from_the_checkpoint_or_fails_the_run_clearly(
    tmp_path: Path, demos: Path, tiny_path: str
) -> None:
    steps = 8
    config = sft_config(tiny_path, demos, steps=steps, world_size=2, checkpoint_interval=2)
    with trainer_server(tmp_path / "a", max_world_size=2, rank_restarts=1) as target:
        run_id = start_run(target, config)
        killed_at = _kill_rank_one(target, run_id)
        with stubs(target) as (stub, _ops):
            done = wait_run(stub, run_id, timeout_s=300)
            history = list(
                stub.StreamRunMetrics(trainer_pb2.StreamRunMetricsRequest(run_id=run_id))
            )
    assert killed_at < steps
    assert done.state == trainer_pb2.RUN_STATE_SUCCEEDED, done.error
    assert [h.metrics.step for h in history] == list(range(1, steps + 1))  # each step once
    assert all(r.state == trainer_pb2.RANK_STATE_EXITED for r in done.ranks)  # the new ranks

    with trainer_server(tmp_path / "b", max_world_size=2, rank_restarts=0) as target:
        run_id = start_run(target, config)
        _kill_rank_one(target, run_id)
        with stubs(target) as (stub, _ops):
            failed = wait_run(stub, run_id, timeout_s=120)
    assert failed.state == trainer_pb2.RUN_STATE_FAILED
    assert failed.error.code == 10  # ABORTED: the checkpoints are intact
    assert "rank 1 killed by signal 9" in failed.error.message, failed.error.message
    states = {r.rank: r for r in failed.ranks}
    assert states[1].state == trainer_pb2.RANK_STATE_FAILED and "signal 9" in states[1].detail
    assert failed.latest_checkpoint.step >= 2


def test_partial_unfreezing_trains_the_same_on_two_ranks(
    tmp_path: Path, demos: Path, tiny_path: str
) -> None:
    """extra.trainable_layers under FSDP2: two ranks give one process's losses, and the
    frozen tensors of both runs' checkpoints are the base model's, bit for bit."""
    base = load_file(str(Path(tiny_path) / "model.safetensors"))
    runs = {}
    with trainer_server(tmp_path, max_world_size=2) as target:
        for world in (1, 2):
            config = sft_config(tiny_path, demos, steps=STEPS, world_size=world)
            config.micro_batch_size = 1
            config.extra.update({"precision_recipe": "bf16", "trainable_layers": 1})
            run = _run(target, config)
            assert run.state == trainer_pb2.RUN_STATE_SUCCEEDED, run.error
            runs[world] = (run, _metrics(target, run.id))
    losses = {w: [m.loss for m in ms] for w, (_, ms) in runs.items()}
    assert losses[2][:2] == pytest.approx(losses[1][:2], rel=1e-6)
    for run, _ms in runs.values():
        saved = load_file(str(Path(run.latest_checkpoint.uri) / "model.safetensors"))
        trained = {k for k in saved if not torch.equal(saved[k], base[k])}
        assert trained and all(
            k.startswith("model.layers.1.") or k == "model.norm.weight" for k in trained
        ), sorted(trained)
