"""The loop against a trainer that refuses its paths or rollout target (storage roots,
configured peers): a clear error naming the loop setting to change, before any work; and
the local stack's trainer roots hold the loop's SFT data and base model."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import grpc
import pytest

from gantry.core.client import sync_channel
from gantry.core.errors import GantryError, InvalidArgument, PermissionDenied
from gantry.loop import calls, parse_config
from gantry.loop.runner import local_stack_env
from gantry.proto.trainer.v1 import trainer_pb2, trainer_pb2_grpc


def _denied(field: str) -> PermissionDenied:
    return PermissionDenied(
        f"{field}: resolves outside the root", metadata={"field": field, "kind": "x"}
    )


class _FakeTrainer(trainer_pb2_grpc.TrainerServiceServicer):
    """StartRun/PublishWeights checks the way the trainer orders them (paths, then data)."""

    def __init__(self, datasets_root: Path) -> None:
        self.datasets_root = datasets_root

    async def _fail(self, context: Any, error: GantryError) -> None:
        status = error.to_grpc_status()
        await context.abort(status.code, status.details, status.trailing_metadata)

    async def StartRun(self, request: trainer_pb2.StartRunRequest, context: Any) -> Any:
        config = request.config
        if not config.base_model.startswith("/models/"):
            await self._fail(context, _denied("config.base_model"))
        if not Path(config.data.dataset_uri).is_relative_to(self.datasets_root):
            await self._fail(context, _denied("config.data.dataset_uri"))
        await self._fail(
            context, InvalidArgument.for_field("config.data.dataset_uri", "holds no examples")
        )

    async def PublishWeights(self, request: trainer_pb2.PublishWeightsRequest, context: Any) -> Any:
        if request.rollout_target:
            await self._fail(context, _denied("rollout_target"))
        return trainer_pb2.PublishWeightsResponse(policy_version=1)


@contextmanager
def fake_trainer(datasets_root: Path) -> Iterator[calls.Stubs]:
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()

    async def start() -> tuple[grpc.aio.Server, int]:
        server = grpc.aio.server()
        servicer = _FakeTrainer(datasets_root)  # type: ignore[abstract]  # the rest UNIMPLEMENTED
        trainer_pb2_grpc.add_TrainerServiceServicer_to_server(servicer, server)
        port = server.add_insecure_port("127.0.0.1:0")
        await server.start()
        return server, port

    server, port = asyncio.run_coroutine_threadsafe(start(), loop).result(30)
    try:
        with sync_channel(f"127.0.0.1:{port}") as channel:
            trainer = trainer_pb2_grpc.TrainerServiceStub(channel)
            yield calls.Stubs(envfarm=None, rollout=None, trainer=trainer)  # type: ignore[arg-type]
    finally:
        asyncio.run_coroutine_threadsafe(server.stop(0), loop).result(30)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(30)


def test_refused_paths_and_targets_name_the_loop_setting(tmp_path: Path) -> None:
    shared, elsewhere = tmp_path / "shared", tmp_path / "elsewhere"
    shared.mkdir()
    elsewhere.mkdir()
    with fake_trainer(shared) as stubs:
        calls.check_trainer_access(stubs, "/models/base", shared, "")  # all accepted
        with pytest.raises(calls.Refused, match="GANTRY_TRAINER_DATASETS_ROOT"):
            calls.check_trainer_access(stubs, "/models/base", elsewhere, "")
        with pytest.raises(calls.Refused, match=r"policy\.base_model"):
            calls.check_trainer_access(stubs, "/elsewhere/base", shared, "")
        with pytest.raises(calls.Refused, match="rollout_for_trainer"):
            calls.publish(stubs, "run-1", "10.0.0.9:50051")
        assert calls.publish(stubs, "run-1", "").policy_version == 1
    assert list(shared.iterdir()) == list(elsewhere.iterdir()) == []  # probes removed


def test_local_stack_roots_hold_the_loop_data_and_model(tmp_path: Path) -> None:
    config = parse_config({"tasks": [{"env_id": "visgym/counting"}]})
    model = tmp_path / "base-model"
    env = local_stack_env(config, str(model), tmp_path / "data", tmp_path / "stack")
    assert env["GANTRY_TRAINER_DATASETS_ROOT"] == str((tmp_path / "data").resolve())
    assert env["GANTRY_TRAINER_MODELS_ROOT"] == str(tmp_path.resolve())
    assert env["GANTRY_ROLLOUT_MODEL_PATH"] == str(model)
