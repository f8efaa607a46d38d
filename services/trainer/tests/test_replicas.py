"""PublishWeights to every rollout replica, with two real rollout processes on the tiny
model: both acknowledge one version, a replica that was down misses a publish, and on
restart it catches up from the published record; the run reports each replica's version.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack, contextmanager
from pathlib import Path

import grpc
import pytest

from gantry.core.client import sync_channel
from gantry.core.ports import free_port
from gantry.core.testing.process import ServiceProcess, spawn_service
from gantry.proto.common.v1 import chat_pb2
from gantry.proto.rollout.v1 import rollout_pb2, rollout_pb2_grpc
from gantry.proto.trainer.v1 import trainer_pb2

from .helpers import TOKEN, sft_config, stubs, trainer_server, wait_run

pytestmark = pytest.mark.slow  # two rollout processes and a trainer (~15 s)

PROMPT = [21, 22, 23, 24, 25, 26]


@contextmanager
def rollout_process(shared: Path, port: int) -> Iterator[ServiceProcess]:
    env = {
        "GANTRY_ROLLOUT_PORT": str(port),
        "GANTRY_ROLLOUT_MODEL_PATH": "tiny",
        "GANTRY_ROLLOUT_TORCH_THREADS": "1",
        "GANTRY_ROLLOUT_LOG_JSON": "false",
        "GANTRY_ROLLOUT_CHECKPOINTS_ROOT": str(shared),
        "GANTRY_ROLLOUT_PUBLISHED_WEIGHTS": "published",
    }
    with spawn_service("gantry.rollout", "rollout", token=TOKEN, env=env) as process:
        yield process


def served(target: str) -> tuple[int, str, list[float]]:
    """A replica's policy version, run id and greedy logprobs on a fixed prompt."""
    with sync_channel(target, token=TOKEN) as channel:
        stub = rollout_pb2_grpc.RolloutServiceStub(channel)
        info = stub.GetModelInfo(rollout_pb2.GetModelInfoRequest(), wait_for_ready=True)
        request = rollout_pb2.GenerateRequest(
            input=rollout_pb2.GenerationInput(
                prompts=[rollout_pb2.Prompt(token_ids=chat_pb2.TokenSequence(token_ids=PROMPT))]
            )
        )
        request.input.sampling.max_tokens = 4
        request.input.sampling.temperature = 0.0
        completion = stub.Generate(request).results[0].completions[0]
        return int(info.policy_version), info.run_id, list(completion.tokens.logprobs)


def test_publish_reaches_every_replica_and_a_late_one_catches_up(
    tmp_path: Path, tiny_path: str, chats: Path
) -> None:
    shared = tmp_path / "shared"  # the checkpoints storage trainer and replicas share
    shared.mkdir()
    ports = free_port(), free_port()
    targets = [f"127.0.0.1:{port}" for port in ports]
    with ExitStack() as stack:
        starting = [rollout_process(shared, port) for port in ports]
        with ThreadPoolExecutor(2) as pool:  # both start at once (imports dominate)
            first, second = pool.map(lambda started: started.__enter__(), starting)
        for started in starting:
            stack.push(started.__exit__)
        base = served(targets[1])
        assert base[0] == 0
        trainer = stack.enter_context(
            trainer_server(
                tmp_path / "trainer",
                rollout_target=targets[0],
                rollout_peers={"second": targets[1]},
                rollout_replicas=[targets[0], "second"],
                published_weights_dir=shared / "published",
                publish_attempts=1,
            )
        )
        stub, _ = stack.enter_context(stubs(trainer))
        config = sft_config(tiny_path, chats, steps=2)
        op = stub.StartRun(trainer_pb2.StartRunRequest(config=config))
        meta = trainer_pb2.StartRunMetadata()
        op.metadata.Unpack(meta)
        assert wait_run(stub, meta.run_id).state == trainer_pb2.RUN_STATE_SUCCEEDED

        # Both replicas acknowledge the same version.
        one = stub.PublishWeights(trainer_pb2.PublishWeightsRequest(run_id=meta.run_id))
        assert sorted(r.target for r in one.replicas) == sorted(targets)
        assert all(r.policy_version == one.policy_version >= 1 for r in one.replicas)
        assert all(not r.HasField("error") and r.checkpoint_id for r in one.replicas)
        trained = served(targets[0])
        assert served(targets[1]) == trained and trained[0] == one.policy_version
        assert trained[2] != base[2]  # the trained weights are being served

        # The second replica goes down and misses the next publish.
        second.process.kill()
        second.process.wait()
        two = stub.PublishWeights(trainer_pb2.PublishWeightsRequest(run_id=meta.run_id))
        by_target = {r.target: r for r in two.replicas}
        assert two.policy_version == one.policy_version + 1
        assert by_target[targets[0]].policy_version == two.policy_version
        missed = by_target[targets[1]]
        assert missed.error.code == grpc.StatusCode.UNAVAILABLE.value[0]
        run = stub.GetRun(trainer_pb2.GetRunRequest(run_id=meta.run_id)).run
        status = {r.target: r for r in run.replicas}
        assert status[targets[0]].policy_version == two.policy_version
        # What the missing replica last acknowledged is kept next to the error.
        assert status[targets[1]].policy_version == one.policy_version
        assert status[targets[1]].HasField("error")
        record = json.loads((shared / "published" / "latest.json").read_text())
        assert record["policy_version"] == two.policy_version
        assert record["run_id"] == meta.run_id

        # Restarted on the same address, it serves the published version before any publish.
        stack.enter_context(rollout_process(shared, ports[1]))
        version, run_id, logprobs = served(targets[1])
        assert (version, run_id) == (two.policy_version, meta.run_id)
        assert logprobs == served(targets[0])[2]
        assert first.process.poll() is None

        # The next publish reaches both again, at one version.
        three = stub.PublishWeights(trainer_pb2.PublishWeightsRequest(run_id=meta.run_id))
        assert {r.policy_version for r in three.replicas} == {two.policy_version + 1}
        run = stub.GetRun(trainer_pb2.GetRunRequest(run_id=meta.run_id)).run
        assert not any(r.HasField("error") for r in run.replicas)
        # A request may still name one configured replica; only it is published to.
        only = stub.PublishWeights(
            trainer_pb2.PublishWeightsRequest(run_id=meta.run_id, rollout_target="second")
        )
        assert [r.target for r in only.replicas] == [targets[1]]
        # ... and it is not what replicas start from: only the whole fleet's publishes are.
        record = json.loads((shared / "published" / "latest.json").read_text())
        assert record["policy_version"] == three.policy_version
