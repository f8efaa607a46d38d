"""A multi-process run's ranks: the process group, the commands rank 0 sends, and health.

Rank 0 is the trainer service itself (its run worker thread): it owns the run's records,
checkpoints' metadata and the gRPC front. Ranks 1..N-1 (`python -m gantry.trainer.rank`)
build the same Trainer and mirror every collective step rank 0 takes, in the same order,
because rank 0 tells them: before each step, checkpoint or restore it broadcasts a command
over the process group itself (gloo on CPU, NCCL on GPUs), so the ranks need no channel of
their own. Payloads are protobuf or JSON bytes, never pickles.

Rendezvous has torchrun's semantics: MASTER_ADDR/MASTER_PORT (rank 0's store), RANK,
WORLD_SIZE, LOCAL_RANK. `local` ranks are processes rank 0 starts on its machine, one per
GPU; `pods` ranks run elsewhere with `--serve` and join every run's rendezvous (the chart's
rank pods). A rank that dies breaks the next collective; rank 0 then fails the run naming
the rank, and the run resumes from its last checkpoint when started again.
"""

from __future__ import annotations

import base64
import contextlib
import datetime
import enum
import gc
import json
import logging
import os
import socket
import subprocess
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
from torch.distributed import PrefixStore, TCPStore  # type: ignore[attr-defined]

from gantry.core import preload
from gantry.core.errors import Aborted
from gantry.core.ports import free_port
from gantry.proto.common.v1 import trajectory_pb2
from gantry.proto.trainer.v1 import trainer_pb2

log = logging.getLogger("gantry.trainer.ranks")


@dataclass(frozen=True)
class RankSettings:
    """The service's settings for multi-process runs (TrainerSettings' rank fields)."""

    max_world_size: int = 1
    placement: str = "local"
    host: str = "127.0.0.1"
    port: int = 0
    timeout_s: float = 600.0
    restarts: int = 3


class RankFailure(Aborted):
    """A rank died or a collective failed; the run restarts its ranks from a checkpoint, and
    fails with ABORTED (reason RANK_FAILED) when the restarts are spent."""

    default_reason = "RANK_FAILED"


class Command(enum.IntEnum):
    SETUP = 1  # payload: JSON {config, seed, conversations}
    SFT_STEP = 2
    GRPO_STEP = 3  # payload: length-prefixed Trajectory messages
    CHECKPOINT = 4  # payload: the folder to write into (UTF-8)
    RESTORE = 5  # payload: the checkpoint folder
    STOP = 6


def backend_for(device: torch.device) -> str:
    return "nccl" if device.type == "cuda" else "gloo"


def send(command: Command, payload: bytes = b"") -> None:
    """Rank 0: broadcast one command to every other rank."""
    header = torch.tensor([int(command), len(payload)], dtype=torch.int64)
    dist.broadcast(_on_wire(header), src=0)
    if payload:
        dist.broadcast(_on_wire(torch.frombuffer(bytearray(payload), dtype=torch.uint8)), src=0)


def receive() -> tuple[Command, bytes]:
    """Ranks 1..N-1: the next command rank 0 broadcast."""
    header = _on_wire(torch.zeros(2, dtype=torch.int64))
    dist.broadcast(header, src=0)
    command, size = (int(x) for x in header.cpu().tolist())
    payload = b""
    if size:
        body = _on_wire(torch.empty(size, dtype=torch.uint8))
        dist.broadcast(body, src=0)
        payload = body.cpu().numpy().tobytes()
    return Command(command), payload


def _on_wire(t: torch.Tensor) -> torch.Tensor:
    """NCCL moves CUDA tensors only."""
    if dist.get_backend() == "nccl":
        return t.to(torch.device("cuda", torch.cuda.current_device()))
    return t


def encode_trajectories(trajectories: Sequence[trajectory_pb2.Trajectory]) -> bytes:
    parts = []
    for t in trajectories:
        body = t.SerializeToString()
        parts.append(len(body).to_bytes(8, "little") + body)
    return b"".join(parts)


def decode_trajectories(payload: bytes) -> list[trajectory_pb2.Trajectory]:
    out, at = [], 0
    while at < len(payload):
        size = int.from_bytes(payload[at : at + 8], "little")
        out.append(trajectory_pb2.Trajectory.FromString(payload[at + 8 : at + 8 + size]))
        at += 8 + size
    return out


def encode_setup(
    config: trainer_pb2.RunConfig, seed: int, conversations: list[list[dict[str, str]]] | None
) -> bytes:
    return json.dumps(
        {
            "config": base64.b64encode(config.SerializeToString()).decode(),
            "seed": seed,
            "conversations": conversations,
        }
    ).encode()


def decode_setup(
    payload: bytes,
) -> tuple[trainer_pb2.RunConfig, int, list[list[dict[str, str]]] | None]:
    raw = json.loads(payload)
    config = trainer_pb2.RunConfig.FromString(base64.b64decode(raw["config"]))
    return config, int(raw["seed"]), raw["conversations"]


# Rendezvous: rank 0 keeps one store open per port for the life of the service. Each run
# attempt is a new generation: its world size under "gen/<g>/world_size", then the counter
# "generation" moves to g, and the attempt's process group lives under the prefix "gen/<g>/".
# Ranks that serve run after run (pods) wait for the counter to move; an attempt never
# meets a store or keys left by an earlier one.
_MASTER_STORES: dict[int, Any] = {}
_MASTER_LOCK = threading.Lock()
_PORTS: dict[str, int] = {}


def master_store(port: int, timeout: datetime.timedelta) -> tuple[Any, int]:
    """Rank 0's rendezvous store on every interface (0 = a free port, chosen once)."""
    with _MASTER_LOCK:
        if not port:
            port = _PORTS.setdefault("free", free_port("0.0.0.0"))
        store = _MASTER_STORES.get(port)
        if store is None:
            store = TCPStore(
                "0.0.0.0", port, is_master=True, timeout=timeout, wait_for_workers=False
            )
            _MASTER_STORES[port] = store
        return store, port


def next_generation(store: Any, world_size: int) -> int:
    generation = int(store.add("generation", 0)) + 1
    store.set(f"gen/{generation}/world_size", str(world_size))
    store.add("generation", 1)
    return generation


def close_generation(store: Any, generation: int) -> None:
    store.set(f"gen/{generation}/closed", "1")


def generation_closed(store: Any, generation: int) -> bool:
    return bool(store.check([f"gen/{generation}/closed"]))


def generation_store(store: Any, generation: int) -> Any:
    return PrefixStore(f"gen/{generation}/", store)


class RankGroup:
    """Rank 0's side of one run's process group: starts local ranks, sends commands, and
    tells which rank failed."""

    def __init__(
        self,
        world_size: int,
        device: torch.device,
        *,
        placement: str = "local",
        host: str = "127.0.0.1",
        port: int = 0,
        timeout_s: float = 600.0,
        log_dir: Path | None = None,
    ) -> None:
        self.world_size = world_size
        self.device = device
        self.placement = placement
        self.host = host
        self.port = port  # 0: a free one, chosen when the first run starts
        self.generation = 0
        self.store: Any = None
        self.timeout = datetime.timedelta(seconds=timeout_s)
        self.log_dir = log_dir
        self.processes: dict[int, preload.Child] = {}
        self.states = dict.fromkeys(range(world_size), trainer_pb2.RANK_STATE_STARTING)
        self.details = dict.fromkeys(range(world_size), "")
        self.hosts = {0: socket.gethostname()}
        self.pids = {0: os.getpid()}
        self._lock = threading.Lock()
        self.joined = False

    # ----- lifecycle -----
    def start(self) -> None:
        """Start the local ranks (if local) and join the group as rank 0; blocks until every
        rank joined or the timeout passed."""
        if dist.is_initialized():
            raise RuntimeError("this process already trains a multi-process run")
        self.store, self.port = master_store(self.port, self.timeout)
        self.generation = next_generation(self.store, self.world_size)
        if self.placement == "local":
            for r in range(1, self.world_size):
                self.processes[r] = self._spawn(r)
        dist.init_process_group(
            backend_for(self.device),
            store=generation_store(self.store, self.generation),
            rank=0,
            world_size=self.world_size,
            timeout=self.timeout,
        )
        self.joined = True
        peers = introduce()
        with self._lock:
            for r, (pid, host) in enumerate(peers):
                self.states[r] = trainer_pb2.RANK_STATE_RUNNING
                self.hosts[r], self.pids[r] = host, pid

    def _spawn(self, r: int) -> preload.Child:
        env = dict(os.environ)
        env.update(
            RANK=str(r),
            LOCAL_RANK=str(r),
            WORLD_SIZE=str(self.world_size),
            MASTER_ADDR=self.host,
            MASTER_PORT=str(self.port),
            GANTRY_TRAINER_RANK_GENERATION=str(self.generation),
            GANTRY_TRAINER_RANK_DEVICE=self.device.type,
            GANTRY_TRAINER_RANK_TIMEOUT_S=str(self.timeout.total_seconds()),
        )
        log = None
        if self.log_dir is not None:
            self.log_dir.mkdir(parents=True, exist_ok=True)
            log = self.log_dir / f"rank-{r}.log"
        # Forked from the service's preloader: a rank starts in ~0.1 s, not ~8 CPU-s of imports.
        proc = preload.start("gantry.trainer.rank", env=env, output=log, imports_torch=True)
        self.hosts[r], self.pids[r] = socket.gethostname(), proc.pid
        return proc

    def send(self, command: Command, payload: bytes = b"") -> None:
        send(command, payload)

    def close(self, *, clean: bool) -> None:
        """Leave the group; `clean` (the ranks are healthy) tells them to stop first."""
        try:
            if clean and self.joined:
                send(Command.STOP)
        except Exception as exc:  # a rank already gone: nothing to tell it
            log.warning("could not stop the ranks cleanly: %s", exc)
        finally:
            if self.store is not None:  # ranks (re)starting now wait for the next attempt
                close_generation(self.store, self.generation)
            if self.joined:
                leave_process_group()
                self.joined = False
            for r, proc in self.processes.items():
                try:
                    proc.wait(timeout=30 if clean else 5)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
                self._observe(r, proc)
            with self._lock:
                for r, state in self.states.items():
                    if state != trainer_pb2.RANK_STATE_FAILED:
                        self.states[r] = trainer_pb2.RANK_STATE_EXITED

    # ----- health -----
    def _observe(self, r: int, proc: preload.Child) -> None:
        code = proc.poll()
        if code is None or code == 0:
            return
        with self._lock:
            self.states[r] = trainer_pb2.RANK_STATE_FAILED
            self.details[r] = (
                f"killed by signal {-code}" if code < 0 else f"exited with status {code}"
            )

    def failed_rank(self, wait_s: float = 0.0) -> str:
        """Which local rank died, for the run's error; '' when none is known to have.
        `wait_s`: a broken collective can beat the dead rank's exit status; wait for it."""
        deadline = time.monotonic() + wait_s
        for r, proc in list(self.processes.items()):
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=max(0.0, deadline - time.monotonic()))
            self._observe(r, proc)
        with self._lock:
            dead = [r for r, s in self.states.items() if s == trainer_pb2.RANK_STATE_FAILED]
            return "; ".join(f"rank {r} {self.details[r]}" for r in dead)

    def mark_failed(self, detail: str) -> None:
        """A collective failed with no local rank dead (a pod rank, or the network)."""
        with self._lock:
            for r in range(1, self.world_size):
                if r not in self.processes and self.states[r] == trainer_pb2.RANK_STATE_RUNNING:
                    self.states[r] = trainer_pb2.RANK_STATE_FAILED
                    self.details[r] = detail

    def statuses(self) -> list[trainer_pb2.RankStatus]:
        # A copy: the run's thread may still be starting ranks while GetRun reads them.
        for r, proc in list(self.processes.items()):
            self._observe(r, proc)
        with self._lock:
            return [
                trainer_pb2.RankStatus(
                    rank=r,
                    host=self.hosts.get(r, ""),
                    pid=self.pids.get(r, 0),
                    state=self.states[r],
                    detail=self.details[r],
                )
                for r in range(self.world_size)
            ]


def leave_process_group() -> None:
    """Destroy the process group and let go of what still points at it (DTensor's caches
    hold its device mesh, and with it gloo's sockets) so a long-lived process can join the
    next run's group cleanly."""
    dist.destroy_process_group()
    with contextlib.suppress(Exception):  # private caches: best effort, version-dependent
        from torch.distributed.tensor import DTensor
        from torch.distributed.tensor._collective_utils import MeshTopoInfo

        MeshTopoInfo.build_from_mesh.cache_clear()
        propagator = DTensor._op_dispatcher.sharding_propagator
        for name in ("propagate_op_sharding", "_propagate_tensor_meta_cached"):
            clear = getattr(getattr(propagator, name, None), "cache_clear", None)
            if callable(clear):
                clear()
    gc.collect()


_NAME_BYTES = 64


def introduce() -> list[tuple[int, str]]:
    """Every rank's (pid, host), gathered once after joining (a collective)."""
    mine = bytearray(8 + _NAME_BYTES)
    mine[:8] = os.getpid().to_bytes(8, "little")
    name = socket.gethostname().encode()[:_NAME_BYTES]
    mine[8 : 8 + len(name)] = name
    local = _on_wire(torch.frombuffer(mine, dtype=torch.uint8))
    gathered = [torch.empty_like(local) for _ in range(dist.get_world_size())]
    dist.all_gather(gathered, local)
    out = []
    for t in gathered:
        raw = t.cpu().numpy().tobytes()
        out.append(
            (int.from_bytes(raw[:8], "little"), raw[8:].rstrip(b"\0").decode(errors="replace"))
        )
    return out


def local_device(kind: str, local_rank: int) -> torch.device:
    """One device per rank: cuda:LOCAL_RANK on GPUs, the CPU otherwise."""
    if kind == "cuda" or (kind == "auto" and torch.cuda.is_available()):
        torch.cuda.set_device(local_rank)
        return torch.device("cuda", local_rank)
    return torch.device("cpu")


def environment(name: str, default: Any = None) -> str:
    value = os.environ.get(name, default)
    if value is None:
        raise SystemExit(f"{name} is not set (torchrun semantics: RANK, WORLD_SIZE, ...)")
    return str(value)
