"""Ranks 1..N-1 of multi-process runs: `python -m gantry.trainer.rank [--serve]`.

Reads torchrun's variables (RANK, WORLD_SIZE, MASTER_ADDR, MASTER_PORT, LOCAL_RANK; a
StatefulSet's rank pods may give GANTRY_TRAINER_POD_INDEX instead of RANK: rank = index + 1,
as rank 0 is the trainer service), joins
rank 0's process group and does what rank 0 broadcasts (`gantry.trainer.ranks.Command`)
until STOP. Without `--serve` it trains one run and exits (the ranks a trainer service
starts itself); with it, it joins the next run's rendezvous whenever one ends (a chart
rank pod). The device: GANTRY_TRAINER_RANK_DEVICE (auto, cpu, cuda) on LOCAL_RANK.
"""

from __future__ import annotations

import argparse
import datetime
import logging
import os
import sys
import time
from pathlib import Path

import torch
import torch.distributed as dist
from torch.distributed import TCPStore  # type: ignore[attr-defined]

from gantry.core.children import die_with_parent
from gantry.trainer import ranks
from gantry.trainer.ranks import Command

log = logging.getLogger("gantry.trainer.rank")


def follow(rank: int, address: str, timeout_s: float, *, serve: bool) -> None:
    """Join run after run (serve) or the one generation we were started for (local)."""
    host, port = address.rsplit(":", 1)
    timeout = datetime.timedelta(seconds=timeout_s)
    store = TCPStore(host, int(port), is_master=False, timeout=timeout)
    pinned = int(os.environ.get("GANTRY_TRAINER_RANK_GENERATION") or 0)
    seen = 0
    while True:
        # A local rank joins the one attempt it was started for; a serving rank the next.
        local = pinned and not serve
        generation = pinned if local else _open_generation(store, after=seen)
        seen = generation
        world_size = int(store.get(f"gen/{generation}/world_size"))
        if rank < world_size:
            _train_one_run(rank, world_size, generation, store, timeout)
        else:  # a run smaller than the deployment: this rank sits it out
            log.info("%d: run generation %d has %d ranks; waiting", rank, generation, world_size)
        if not serve:
            return


def _open_generation(store: object, *, after: int) -> int:
    """The newest run attempt after `after` that rank 0 has not closed: a rank that starts
    (or restarts) while an attempt waits for it joins that attempt."""
    while True:
        current = int(store.add("generation", 0))  # type: ignore[attr-defined]
        if current > after and not ranks.generation_closed(store, current):
            return current
        time.sleep(0.5)


def _train_one_run(
    rank: int, world_size: int, generation: int, store: object, timeout: datetime.timedelta
) -> None:
    device = ranks.local_device(
        ranks.environment("GANTRY_TRAINER_RANK_DEVICE", "auto"),
        int(ranks.environment("LOCAL_RANK", "0")),
    )
    dist.init_process_group(
        ranks.backend_for(device),
        store=ranks.generation_store(store, generation),
        rank=rank,
        world_size=world_size,
        timeout=timeout,
    )
    try:
        ranks.introduce()
        _obey(device)
    finally:
        ranks.leave_process_group()


def _obey(device: object) -> None:
    from gantry.trainer.training import Trainer

    trainer: Trainer | None = None
    while True:
        command, payload = ranks.receive()
        if command == Command.STOP:
            return
        if command == Command.SETUP:
            config, seed, conversations = ranks.decode_setup(payload)
            trainer = Trainer(config, seed, str(device), conversations=conversations)
            continue
        if trainer is None:
            raise RuntimeError(f"{command.name} before SETUP")
        if command == Command.SFT_STEP:
            trainer.sft_step()
        elif command == Command.GRPO_STEP:
            batch = ranks.decode_trajectories(payload)
            trainer.grpo_step(batch)
            trainer.position.consumed += len(batch)
        elif command == Command.CHECKPOINT:
            trainer.write_checkpoint(Path(payload.decode()))
        elif command == Command.RESTORE:
            trainer.restore(Path(payload.decode()))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m gantry.trainer.rank")
    parser.add_argument(
        "--serve", action="store_true", help="join run after run (a rank pod), never exit"
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s rank %(message)s")
    if not args.serve and not die_with_parent():  # a local rank dies with its service
        return 1
    pod_index = os.environ.get("GANTRY_TRAINER_POD_INDEX")
    rank = int(pod_index) + 1 if pod_index is not None else int(ranks.environment("RANK"))
    world_size = int(ranks.environment("WORLD_SIZE", str(rank + 1)))  # the deployment's most
    address = f"{ranks.environment('MASTER_ADDR')}:{ranks.environment('MASTER_PORT')}"
    timeout_s = float(ranks.environment("GANTRY_TRAINER_RANK_TIMEOUT_S", "600"))
    if not 0 < rank < world_size:
        raise SystemExit(f"RANK {rank} must lie in 1..WORLD_SIZE-1 ({world_size - 1})")
    threads = int(os.environ.get("GANTRY_TRAINER_TORCH_THREADS", "0") or 0)
    if threads:
        torch.set_num_threads(threads)
    if os.environ.get("GANTRY_TRAINER_DETERMINISTIC", "true").lower() not in ("0", "false"):
        torch.use_deterministic_algorithms(True, warn_only=True)  # as the service does
    while True:
        try:
            follow(rank, address, timeout_s, serve=args.serve)
        except Exception:
            if not args.serve:
                raise
            log.exception("%d: the run ended with an error; joining the next one", rank)
            time.sleep(1.0)
        if not args.serve:
            return 0


if __name__ == "__main__":
    sys.exit(main())
