"""Sharded checkpoints resume on another world size, and GRPO splits a batch across ranks
without changing its gradient. This process is rank 0 (as the trainer service is)."""

from __future__ import annotations

import os
import random
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import torch

from gantry.core.ports import free_port
from gantry.proto.common.v1 import chat_pb2, trajectory_pb2
from gantry.proto.trainer.v1 import trainer_pb2
from gantry.trainer import checkpoints
from gantry.trainer.ranks import RankGroup
from gantry.trainer.training import Trainer

from .helpers import sft_config, short_dataset, start_run, stubs, trainer_server, wait_run

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def demos(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Short chats: many cheap steps (envfarm's demonstrations are ~1100 tokens each)."""
    return short_dataset(tmp_path_factory.mktemp("short"))


@contextmanager
def ranks(world: int) -> Iterator[RankGroup | None]:
    if world == 1:
        yield None
        return
    group = RankGroup(world, torch.device("cpu"), timeout_s=120)
    group.start()
    try:
        yield group
    finally:
        group.close(clean=True)


def _checkpoint(trainer: Trainer, root: Path) -> Path:
    step = trainer.position.step
    meta = trainer_pb2.Checkpoint(id=checkpoints.checkpoint_id(step), step=step)
    return Path(checkpoints.save(root, meta, trainer.write_checkpoint).uri)


def _sft(tiny_path: str, demos: Path, world: int) -> trainer_pb2.RunConfig:
    """BF16 working weights: the shards carry the float32 masters in the optimiser state."""
    config = sft_config(tiny_path, demos, steps=4, world_size=world)
    config.micro_batch_size = 1
    config.extra.update({"train_dtype": "bfloat16"})
    return config


def test_two_rank_checkpoints_resume_on_four_ranks_and_on_one(
    tmp_path: Path, demos: Path, tiny_path: str
) -> None:
    reference = Trainer(_sft(tiny_path, demos, 1), 0)
    expected = [reference.sft_step() for _ in range(4)]
    with ranks(2) as group:
        first = Trainer(_sft(tiny_path, demos, 2), 0, group=group)
        for _ in range(2):
            first.sft_step()
        saved = _checkpoint(first, tmp_path / "ckpt")
    shards = saved / checkpoints.SHARDS_DIR
    assert len(list(shards.glob("*.distcp"))) == 2
    for world in (4, 1):
        with ranks(world) as group:
            resumed = Trainer(_sft(tiny_path, demos, world), 0, group=group)
            resumed.restore(saved)
            assert resumed.position.step == 2 and resumed.position.cursor == 8
            after = [resumed.sft_step() for _ in range(2)]
        # BF16 weights: agreement to BF16 rounding of the reduced gradients (see below).
        for got, want in zip(after, expected[2:], strict=True):
            assert got.step == want.step
            assert got.loss == pytest.approx(want.loss, rel=1e-4), world
            assert got.grad_norm == pytest.approx(want.grad_norm, rel=1e-2), world


def _trajectories(count: int, vocab: int) -> list[trajectory_pb2.Trajectory]:
    rng = random.Random(7)
    out = []
    for i in range(count):
        prompt = [rng.randrange(3, vocab) for _ in range(rng.randrange(4, 12))]
        completion = [rng.randrange(3, vocab) for _ in range(rng.randrange(2, 9))]
        logprobs = [-rng.uniform(0.5, 4.0) for _ in completion]
        out.append(
            trajectory_pb2.Trajectory(
                id=f"t{i}",
                group_id=f"g{i % 2}",
                final_reward=float(rng.random() < 0.5),
                turns=[
                    trajectory_pb2.Turn(
                        prompt_token_ids=prompt,
                        completion=chat_pb2.TokenSequence(token_ids=completion, logprobs=logprobs),
                    )
                ],
            )
        )
    return out


def test_grpo_on_two_ranks_takes_the_one_process_step(tiny_path: str) -> None:
    """Five trajectories on two ranks: three and two, so one rank runs a zero-weight
    forward to pair the collectives; advantages come from the whole batch. BF16 working
    weights: FSDP2 shards BF16 parameters, MasterAdamW float32 masters of the shards."""
    config = trainer_pb2.RunConfig(
        base_model=tiny_path,
        grpo=trainer_pb2.GrpoConfig(group_size=2, kl_coef=0.01),
        batch_size=5,
        micro_batch_size=1,
        max_steps=2,
    )
    config.data.submitted = True
    config.optimizer.learning_rate = 1e-3
    config.extra.update({"train_dtype": "bfloat16"})
    results = {}
    for world in (1, 2):
        config.world_size = world
        with ranks(world) as group:
            trainer = Trainer(config, 0, group=group)
            batch = _trajectories(5, trainer.vocab_size)
            results[world] = [trainer.grpo_step(batch) for _ in range(2)]
    # BF16 weights: FSDP2 rounds each reduced gradient shard to BF16 (the parameter dtype)
    # before it joins the float32 master gradient, where one process sums unreduced BF16
    # micro-batch gradients in float32: step 1's forward is identical, its gradient agrees
    # to BF16 rounding; step 2 starts from weights a flipped BF16 rounding apart.
    for step, (one, two) in enumerate(zip(results[1], results[2], strict=True)):
        assert two.loss == pytest.approx(one.loss, rel=1e-5 if step == 0 else 1e-4, abs=1e-7)
        assert two.grad_norm == pytest.approx(one.grad_norm, rel=1e-3 if step == 0 else 1e-2)
        assert two.kl == pytest.approx(one.kl, rel=1e-3, abs=1e-9)
        assert two.extra["completion_tokens"] == one.extra["completion_tokens"]
        assert two.extra["padding_fraction"] == pytest.approx(one.extra["padding_fraction"])
        assert two.tokens_per_second > 0


def test_rank_pods_serve_run_after_run(tmp_path: Path, demos: Path, tiny_path: str) -> None:
    """`pods` placement: a rank started on its own (`--serve`, as the chart's rank pods
    are) joins each run's rendezvous on the configured port, run after run."""
    port = free_port()
    env = dict(
        os.environ,
        GANTRY_TRAINER_POD_INDEX="0",
        WORLD_SIZE="2",
        MASTER_ADDR="127.0.0.1",
        MASTER_PORT=str(port),
        GANTRY_TRAINER_RANK_DEVICE="cpu",
        GANTRY_TRAINER_RANK_TIMEOUT_S="60",
    )
    log = (tmp_path / "rank.log").open("wb")
    rank = subprocess.Popen(
        [sys.executable, "-m", "gantry.trainer.rank", "--serve"],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        settings = {"ranks": "pods", "rendezvous_port": port, "rank_timeout_s": 60}
        with trainer_server(tmp_path / "data", max_world_size=2, **settings) as target:
            for _ in range(2):
                config = sft_config(tiny_path, demos, steps=2, world_size=2)
                run_id = start_run(target, config)
                with stubs(target) as (stub, _ops):
                    run = wait_run(stub, run_id, timeout_s=120)
                assert run.state == trainer_pb2.RUN_STATE_SUCCEEDED, run.error
                assert [r.pid for r in run.ranks] == [os.getpid(), rank.pid]
        assert rank.poll() is None  # still serving, waiting for the next run
    finally:
        rank.kill()
        rank.wait()
        log.close()
