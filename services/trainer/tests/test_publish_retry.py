"""PublishWeights against a rollout server that goes UNAVAILABLE mid-stream or restarts on
the same port, with the trainer as a real process: it must stay alive and serving, and a
publish either succeeds after the retries or fails with a clear status.

(gRPC's built-in retry of the client-streaming UpdateWeights aborted the whole trainer
process with `promise_based_filter.cc ... ILLEGAL STATE: FORWARDED_BATCH`.)
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest

from gantry.core.client import sync_channel
from gantry.core.errors import from_rpc_error
from gantry.core.testing.process import ServiceProcess, spawn_service
from gantry.proto.trainer.v1 import trainer_pb2, trainer_pb2_grpc

from .fake_rollout import FakeRollout, Script, fake_rollout
from .helpers import TOKEN, error_of, root_env, sft_config, stubs, wait_run

ATTEMPTS = 4

pytestmark = pytest.mark.slow  # one trainer process for the module (~10 s)


@pytest.fixture(scope="module")
def rollout() -> Iterator[FakeRollout]:
    with fake_rollout() as fake:
        yield fake


@pytest.fixture(scope="module")
def trainer(
    rollout: FakeRollout, tmp_path_factory: pytest.TempPathFactory, chats: Path, tiny_path: str
) -> Iterator[tuple[ServiceProcess, str]]:
    env = {
        "GANTRY_TRAINER_DATA_DIR": str(tmp_path_factory.mktemp("publish")),
        "GANTRY_TRAINER_TORCH_THREADS": "1",
        "GANTRY_TRAINER_LOG_JSON": "false",
        "GANTRY_TRAINER_ROLLOUT_TARGET": rollout.target,
        "GANTRY_TRAINER_PUBLISH_ATTEMPTS": str(ATTEMPTS),
        **root_env(),
    }
    with spawn_service("gantry.trainer", "trainer", token=TOKEN, env=env) as process:
        with stubs(process.target) as (stub, _):
            op = stub.StartRun(
                trainer_pb2.StartRunRequest(config=sft_config(tiny_path, chats, steps=1))
            )
            meta = trainer_pb2.StartRunMetadata()
            op.metadata.Unpack(meta)
            assert wait_run(stub, meta.run_id).state == trainer_pb2.RUN_STATE_SUCCEEDED
        yield process, meta.run_id


def assert_alive_and_serving(process: ServiceProcess, run_id: str) -> None:
    assert process.process.poll() is None, process.log.read_text()[-4000:]
    with stubs(process.target) as (stub, _):
        assert stub.GetRun(trainer_pb2.GetRunRequest(run_id=run_id)).run.id == run_id


def publish(process: ServiceProcess, run_id: str) -> trainer_pb2.PublishWeightsResponse:
    with stubs(process.target) as (stub, _):
        reply: trainer_pb2.PublishWeightsResponse = stub.PublishWeights(
            trainer_pb2.PublishWeightsRequest(run_id=run_id), timeout=60
        )
        return reply


def test_unavailable_mid_stream_is_retried_from_the_first_chunk(
    rollout: FakeRollout, trainer: tuple[ServiceProcess, str]
) -> None:
    process, run_id = trainer
    rollout.script = Script(unavailable=2)
    reply = publish(process, run_id)
    calls = rollout.script.calls
    assert [c.completed for c in calls] == [False, False, True]
    assert reply.policy_version == 3
    last = calls[-1]
    assert last.header is not None and last.header.tensor_count == last.tensors > 0
    assert last.authorization == f"Bearer {TOKEN}"  # the configured peer gets the token
    assert_alive_and_serving(process, run_id)


def test_a_rollout_that_stays_unavailable_fails_the_publish_not_the_process(
    rollout: FakeRollout, trainer: tuple[ServiceProcess, str]
) -> None:
    process, run_id = trainer
    rollout.script = Script(unavailable=1000)
    # A client without gRPC retries: one PublishWeights, so the trainer's attempts count.
    with sync_channel(process.target, token=TOKEN, retry=None) as channel:
        stub = trainer_pb2_grpc.TrainerServiceStub(channel)
        err = error_of(stub.PublishWeights, trainer_pb2.PublishWeightsRequest(run_id=run_id))
    assert err.code == grpc.StatusCode.UNAVAILABLE, err
    assert f"{ATTEMPTS} attempts" in err.message and rollout.target in err.message
    assert getattr(err, "retry_after_s", None)
    assert len(rollout.script.calls) == ATTEMPTS
    assert_alive_and_serving(process, run_id)


def test_a_rollout_restarting_on_the_same_port_during_a_publish(
    rollout: FakeRollout, trainer: tuple[ServiceProcess, str]
) -> None:
    process, run_id = trainer
    rollout.script = Script(restart_after_s=1.0)
    try:
        reply = publish(process, run_id)
    except grpc.RpcError as exc:  # allowed: a clear status naming rollout
        err = from_rpc_error(exc)
        assert err.code in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.FAILED_PRECONDITION)
        assert "rollout" in err.message
    else:
        assert rollout.script.calls[-1].completed and reply.policy_version >= 2
        print(f"publish succeeded after the restart: {len(rollout.script.calls)} calls")
    assert rollout.script.restarted.wait(10)
    assert_alive_and_serving(process, run_id)
    rollout.script = Script()
    assert publish(process, run_id).policy_version == 1  # the restarted server took it
