"""Shared helpers for the trainer tests: a server, stubs, waiting for runs."""

from __future__ import annotations

import json
import os
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import grpc
import pytest
from google.longrunning import operations_pb2_grpc
from google.longrunning import operations_proto_pb2 as operations_pb2

from gantry.core import errors
from gantry.core.client import sync_channel
from gantry.core.testing.threaded import serve_in_thread
from gantry.models.tiny.cache import cache_root
from gantry.proto.trainer.v1 import trainer_pb2, trainer_pb2_grpc
from gantry.trainer.service import TrainerService
from gantry.trainer.settings import TrainerSettings

TOKEN = "trainer-test-token"
# The tests' data and models live in pytest's temporary folders and the tiny-model cache:
# those are the servers' datasets and models roots unless a test narrows them.
TEMP_ROOT = Path(os.path.realpath(tempfile.gettempdir()))
MODELS_ROOT = cache_root()


def root_env() -> dict[str, str]:
    """The same roots for a trainer started as a process."""
    return {
        "GANTRY_TRAINER_DATASETS_ROOT": str(TEMP_ROOT),
        "GANTRY_TRAINER_MODELS_ROOT": str(MODELS_ROOT),
    }


@contextmanager
def trainer_server(data_dir: Path, **extra: Any) -> Iterator[str]:
    with serve_in_thread(TrainerService(trainer_settings(data_dir, **extra))) as running:
        yield f"127.0.0.1:{running.port}"


def trainer_settings(data_dir: Path, **extra: Any) -> TrainerSettings:
    fields: dict[str, Any] = {
        "datasets_root": TEMP_ROOT,
        "models_root": MODELS_ROOT,
        **extra,
    }
    return TrainerSettings(
        host="127.0.0.1",
        port=0,
        metrics_port=0,
        auth_token=TOKEN,
        log_json=False,
        data_dir=data_dir,
        torch_threads=1,
        **fields,
    )


@contextmanager
def stubs(
    target: str,
) -> Iterator[tuple[trainer_pb2_grpc.TrainerServiceStub, operations_pb2_grpc.OperationsStub]]:
    with sync_channel(target, token=TOKEN) as channel:
        yield (
            trainer_pb2_grpc.TrainerServiceStub(channel),
            operations_pb2_grpc.OperationsStub(channel),  # type: ignore[no-untyped-call]
        )


def error_of(fn: Any, request: Any) -> errors.GantryError:
    with pytest.raises(grpc.RpcError) as info:
        fn(request)
    return errors.from_rpc_error(info.value)


def sft_config(
    base_model: str, dataset: Path, *, steps: int = 6, seed: int = 0, **fields: Any
) -> trainer_pb2.RunConfig:
    fields = {"batch_size": 4, "micro_batch_size": 2, **fields}
    config = trainer_pb2.RunConfig(
        base_model=base_model, sft=trainer_pb2.SftConfig(), max_steps=steps, seed=seed, **fields
    )
    config.data.dataset_uri = str(dataset)
    config.optimizer.learning_rate = 3e-3
    return config


def start_run(target: str, config: trainer_pb2.RunConfig) -> str:
    """StartRun at `target`; the new run's id."""
    with stubs(target) as (stub, _ops):
        op = stub.StartRun(trainer_pb2.StartRunRequest(config=config))
    meta = trainer_pb2.StartRunMetadata()
    op.metadata.Unpack(meta)
    return meta.run_id


def wait_run(
    stub: trainer_pb2_grpc.TrainerServiceStub,
    run_id: str,
    *,
    until: Any = None,
    timeout_s: float = 120.0,
) -> trainer_pb2.Run:
    """Poll GetRun until `until(run)` (default: a terminal state)."""
    terminal = (
        trainer_pb2.RUN_STATE_SUCCEEDED,
        trainer_pb2.RUN_STATE_FAILED,
        trainer_pb2.RUN_STATE_CANCELLED,
    )
    check = until or (lambda run: run.state in terminal)
    deadline = time.monotonic() + timeout_s
    while True:
        run = stub.GetRun(trainer_pb2.GetRunRequest(run_id=run_id)).run
        if check(run):
            return run
        if time.monotonic() > deadline:
            raise TimeoutError(f"run {run_id} stuck: {run}")
        time.sleep(0.05)


def wait_operation(
    ops: operations_pb2_grpc.OperationsStub, name: str, timeout_s: float = 120.0
) -> operations_pb2.Operation:
    deadline = time.monotonic() + timeout_s
    while True:
        op = ops.GetOperation(operations_pb2.GetOperationRequest(name=name))
        if op.done or time.monotonic() > deadline:
            return op  # type: ignore[no-any-return]
        time.sleep(0.05)


def tensorboard_scalars(directory: Path) -> dict[str, list[tuple[int, float]]]:
    """What TensorBoard shows for one run folder: each scalar tag's (step, value) points."""
    from tensorboard.backend.event_processing.event_accumulator import (  # type: ignore[import-untyped]
        EventAccumulator,
    )

    events = EventAccumulator(str(directory))
    events.Reload()
    return {
        tag: [(int(e.step), float(e.value)) for e in events.Scalars(tag)]
        for tag in events.Tags()["scalars"]
    }


def short_dataset(folder: Path, count: int = 16) -> Path:
    """`count` short chats (arithmetic questions, ~60 tokens each) as SFT JSONL: for tests
    that need many cheap steps rather than envfarm's long demonstrations."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "short.jsonl"
    lines = []
    for i in range(count):
        a, b = 3 + i, 7 + 2 * i
        messages = [
            {"role": "user", "content": f"what is {a} plus {b}?"},
            {"role": "assistant", "content": f"{a} plus {b} is {a + b}."},
        ]
        lines.append(json.dumps({"messages": messages}))
    path.write_text("\n".join(lines) + "\n")
    return path
