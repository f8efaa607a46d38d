"""The loop's TensorBoard events and spans, against fake envfarm/rollout/trainer servicers
on a real gRPC server: every stage is a span of one trace (with the calls it makes below
it), and the event files read back with TensorBoard's own reader hold the loop's numbers."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import grpc
import pytest
from google.longrunning import operations_proto_pb2
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.trace import SpanKind
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator  # type: ignore[import-untyped]

from gantry.core.client import sync_channel
from gantry.core.testing.spans import memory_spans, named
from gantry.loop import calls, parse_config
from gantry.loop.loop import Record, TrainingLoop
from gantry.loop.tensorboard_log import TensorBoardWriter, scalars, step_of
from gantry.proto.common.v1 import chat_pb2, trajectory_pb2
from gantry.proto.envfarm.v1 import envfarm_pb2, envfarm_pb2_grpc
from gantry.proto.rollout.v1 import rollout_pb2, rollout_pb2_grpc
from gantry.proto.trainer.v1 import trainer_pb2, trainer_pb2_grpc

SUCCEEDED = trainer_pb2.RUN_STATE_SUCCEEDED


class _Stack(
    envfarm_pb2_grpc.EnvFarmServiceServicer,
    rollout_pb2_grpc.RolloutServiceServicer,
    trainer_pb2_grpc.TrainerServiceServicer,
):
    """Fake services (other methods UNIMPLEMENTED): the policy solves one more seed in
    four per published version."""

    def __init__(self) -> None:
        self.version = 0
        self.runs: dict[str, int] = {}  # run id -> max_steps

    # envfarm
    async def ExportDemonstrations(self, request: Any, context: Any) -> AsyncIterator[Any]:
        for seed in request.seeds:
            conversation = chat_pb2.Conversation(
                messages=[
                    chat_pb2.ChatMessage(
                        role=chat_pb2.ROLE_USER, content=[chat_pb2.ContentPart(text="?")]
                    ),
                    chat_pb2.ChatMessage(
                        role=chat_pb2.ROLE_ASSISTANT, content=[chat_pb2.ContentPart(text="a")]
                    ),
                ]
            )
            yield envfarm_pb2.ExportDemonstrationsResponse(
                seed=seed, strategy="solver", conversation=conversation, final_reward=1.0
            )

    # rollout
    async def RunEpisodes(self, request: Any, context: Any) -> Any:
        spec = request.spec
        trajectories = []
        for seed in spec.seeds:
            for _ in range(spec.episodes_per_seed):
                solved = seed % 4 < self.version
                turn = trajectory_pb2.Turn(index=0)
                turn.completion.token_ids.extend([1, 2, 3])
                trajectories.append(
                    trajectory_pb2.Trajectory(
                        seed=seed, turns=[turn] * (1 if solved else 3), final_reward=float(solved)
                    )
                )
        return rollout_pb2.RunEpisodesResponse(trajectories=trajectories)

    # trainer
    async def StartRun(self, request: Any, context: Any) -> Any:
        run_id = f"run-{len(self.runs) + 1}"
        self.runs[run_id] = request.config.max_steps
        operation = operations_proto_pb2.Operation(name=f"trainer/operations/{run_id}")
        operation.metadata.Pack(trainer_pb2.StartRunMetadata(run_id=run_id))
        return operation

    async def StreamRunMetrics(self, request: Any, context: Any) -> AsyncIterator[Any]:
        last = self.runs[request.run_id]
        for step in range(max(request.since_step, 1), last + 1):
            metrics = trainer_pb2.StepMetrics(
                step=step, loss=1.0 / step, tokens_per_second=100.0 * step, reward_mean=0.5
            )
            metrics.extra["logprob_mismatch"] = 1e-4 * step
            state = SUCCEEDED if step == last else trainer_pb2.RUN_STATE_RUNNING
            yield trainer_pb2.StreamRunMetricsResponse(metrics=metrics, state=state)

    async def GetRun(self, request: Any, context: Any) -> Any:
        steps = self.runs[request.run_id]
        run = trainer_pb2.Run(id=request.run_id, state=SUCCEEDED, step=steps)
        run.latest_checkpoint.uri = f"/checkpoints/{request.run_id}"
        return trainer_pb2.GetRunResponse(run=run)

    async def SubmitTrajectories(self, requests: Any, context: Any) -> Any:
        accepted = sum([len(r.trajectories) async for r in requests])
        return trainer_pb2.SubmitTrajectoriesResponse(accepted_count=accepted)

    async def PublishWeights(self, request: Any, context: Any) -> Any:
        self.version += 1
        return trainer_pb2.PublishWeightsResponse(policy_version=self.version)

    async def CancelRun(self, request: Any, context: Any) -> Any:
        return trainer_pb2.CancelRunResponse()


@contextmanager
def fake_stack() -> Iterator[calls.Stubs]:
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    fake = _Stack()  # type: ignore[abstract]

    async def start() -> tuple[grpc.aio.Server, int]:
        server = grpc.aio.server()
        envfarm_pb2_grpc.add_EnvFarmServiceServicer_to_server(fake, server)  # type: ignore[arg-type]
        rollout_pb2_grpc.add_RolloutServiceServicer_to_server(fake, server)  # type: ignore[arg-type]
        trainer_pb2_grpc.add_TrainerServiceServicer_to_server(fake, server)  # type: ignore[arg-type]
        port = server.add_insecure_port("127.0.0.1:0")
        await server.start()
        return server, port

    server, port = asyncio.run_coroutine_threadsafe(start(), loop).result(30)
    try:
        with sync_channel(f"127.0.0.1:{port}") as channel:
            yield calls.Stubs(
                envfarm=envfarm_pb2_grpc.EnvFarmServiceStub(channel),
                rollout=rollout_pb2_grpc.RolloutServiceStub(channel),
                trainer=trainer_pb2_grpc.TrainerServiceStub(channel),
            )
    finally:
        asyncio.run_coroutine_threadsafe(server.stop(0), loop).result(30)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(30)


CONFIG = {
    "name": "traced",
    "tasks": [{"env_id": "visgym/counting"}],
    "sft": {"demonstrations": 4, "steps": 3},
    "grpo": {"iterations": 2, "seeds_per_iteration": 4, "group_size": 2},
    "eval": {"episodes": 8, "seed_offset": 100},
}
TASK = "visgym/counting/easy"


def _scalars(directory: Path) -> dict[str, list[tuple[int, float]]]:
    events = EventAccumulator(str(directory), size_guidance={"scalars": 0})
    events.Reload()
    return {
        tag: [(e.step, round(e.value, 6)) for e in events.Scalars(tag)]  # stored as float32
        for tag in events.Tags()["scalars"]
    }


def _children(spans: tuple[ReadableSpan, ...], parent: ReadableSpan) -> list[str]:
    return [
        s.name
        for s in sorted(spans, key=lambda s: s.start_time or 0)
        if s.parent is not None and s.parent.span_id == parent.context.span_id
    ]


def test_the_loop_writes_tensorboard_events_and_one_trace(tmp_path: Path) -> None:
    spans = memory_spans()
    config = parse_config(CONFIG)
    board = TensorBoardWriter(tmp_path / "tensorboard")
    with fake_stack() as stubs:
        result = TrainingLoop(
            config,
            stubs,
            base_model="/models/tiny",
            data_dir=tmp_path,
            rollout_for_trainer="",
            observer=board,
        ).run()
    board.close()
    assert result.success == {"untrained": 0.0, "sft": 0.25, "grpo-1": 0.5, "grpo-2": 0.75}

    found = _scalars(tmp_path / "tensorboard")
    assert found[f"evaluate/{TASK}/success_rate"] == [(0, 0.0), (1, 0.25), (2, 0.5), (3, 0.75)]
    assert found[f"rollouts/{TASK}/success_rate"] == [(1, 0.25), (2, 0.5)]
    assert found[f"rollouts/{TASK}/mean_reward"] == [(1, 0.25), (2, 0.5)]
    # Episode length: solved episodes take 1 turn, the others 3.
    assert found[f"rollouts/{TASK}/mean_turns"] == [(1, 2.5), (2, 2.0)]
    assert [s for s, _ in found[f"rollouts/{TASK}/tokens_per_second"]] == [1, 2]
    assert found["sft/loss"] == [(1, 1.0), (2, 0.5), (3, 0.333333)]
    assert found["grpo/logprob_mismatch"] == [(1, 0.0001), (2, 0.0002)]
    assert found["grpo/tokens_per_second"] == [(1, 100.0), (2, 200.0)]
    assert [v for _, v in found["publish/policy_version"]] == [1.0, 2.0, 3.0]
    assert found[f"demonstrations/{TASK}/examples"] == [(0, 4.0)]

    finished = spans.get_finished_spans()
    root = named(finished, "loop.run")
    assert root.parent is None
    assert {s.context.trace_id for s in finished} == {root.context.trace_id}
    trainer = "gantry.trainer.v1.TrainerService"
    assert _children(finished, root) == [
        "loop.demonstrations",
        "loop.evaluate",
        "loop.sft",
        "loop.publish",
        "loop.evaluate",
        f"{trainer}/StartRun",  # the GRPO run, then its iterations
        "loop.iteration",
        "loop.iteration",
        f"{trainer}/GetRun",  # waits for the run's end
    ]
    iterations = [s for s in finished if s.name == "loop.iteration"]
    assert [dict(s.attributes or {})["iteration"] for s in iterations] == [1, 2]
    assert _children(finished, iterations[0]) == [
        "loop.rollouts",
        "loop.grpo",
        "loop.publish",
        "loop.evaluate",
    ]
    publish = next(
        s for s in finished if s.name == "loop.publish" and s.parent == iterations[0].context
    )
    (call,) = [
        s for s in finished if s.parent is not None and s.parent.span_id == publish.context.span_id
    ]
    assert call.kind == SpanKind.CLIENT
    assert call.name == "gantry.trainer.v1.TrainerService/PublishWeights"


@pytest.mark.parametrize(
    ("record", "step", "tags"),
    [
        (
            {
                "stage": "evaluate",
                "label": "untrained",
                "iteration": 0,
                "task": "t",
                "success_rate": 0.5,
            },
            0,
            {"evaluate/t/success_rate": 0.5},
        ),
        (
            {"stage": "evaluate", "label": "grpo-2", "iteration": 2, "task": "t", "errors": 1},
            3,
            {"evaluate/t/errors": 1.0},
        ),
        (
            {"stage": "sft", "iteration": 0, "step": 7, "loss": 2.0, "flag": True},
            7,
            {"sft/loss": 2.0},
        ),
        (
            {"stage": "publish", "after": "sft", "iteration": 0, "seconds": 1.5},
            1,
            {"publish/seconds": 1.5},
        ),
    ],
)
def test_records_map_to_tags_and_steps(record: Record, step: int, tags: dict[str, float]) -> None:
    assert step_of(record) == step
    assert scalars(record) == tags


def test_tensorboard_can_be_turned_off() -> None:
    assert parse_config(CONFIG).telemetry.tensorboard is True
    config = parse_config({**CONFIG, "telemetry": {"tensorboard": False}})
    assert config.telemetry.tensorboard is False
