"""The episodes data source: the trainer pulls GRPO groups from a real rollout server,
which plays them against a real envfarm, and publishes after every step."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest

from gantry.core.client import sync_channel
from gantry.core.testing.threaded import serve_in_thread
from gantry.envfarm.service import EnvFarmService
from gantry.envfarm.settings import EnvFarmSettings
from gantry.proto.common.v1 import episode_pb2
from gantry.proto.rollout.v1 import rollout_pb2, rollout_pb2_grpc
from gantry.proto.trainer.v1 import trainer_pb2
from gantry.rollout.service import RolloutService
from gantry.rollout.settings import RolloutSettings

from .helpers import TOKEN, error_of, sft_config, stubs, trainer_server, wait_run

GROUP = 2


@pytest.fixture
def rollout_target(tiny_path: str) -> Iterator[str]:
    """A real rollout server playing episodes against a real envfarm (fresh per test:
    the tests publish weights to it)."""
    common = {"host": "127.0.0.1", "port": 0, "metrics_port": 0, "auth_token": TOKEN}
    with serve_in_thread(EnvFarmService(EnvFarmSettings(**common))) as farm:  # type: ignore[arg-type]
        rollout_settings = RolloutSettings(
            **common,  # type: ignore[arg-type]
            model_path=tiny_path,
            envfarm_target=f"127.0.0.1:{farm.port}",
        )
        with serve_in_thread(RolloutService(rollout_settings)) as rollout_server:
            yield f"127.0.0.1:{rollout_server.port}"


def test_grpo_pulls_episodes_from_rollout_and_publishes_each_step(
    tmp_path: Path, tiny_path: str, rollout_target: str
) -> None:
    config = trainer_pb2.RunConfig(
        base_model=tiny_path,
        grpo=trainer_pb2.GrpoConfig(group_size=GROUP, max_staleness=1),
        batch_size=2 * GROUP,
        max_steps=2,
        seed=0,
        rollout_target=rollout_target,
    )
    source = config.data.episodes
    source.env_id = "maze_2d"
    source.seeds.extend([0, 1, 2])
    source.max_turns = 2
    source.settings.observation_mode = episode_pb2.OBSERVATION_MODE_TEXT
    config.grpo.sampling.max_tokens = 8
    config.optimizer.learning_rate = 1e-3
    with (
        trainer_server(tmp_path, rollout_target=rollout_target) as target,
        stubs(target) as (trainer, _),
    ):
        bad = trainer_pb2.RunConfig()
        bad.CopyFrom(config)
        bad.batch_size = 3
        err = error_of(trainer.StartRun, trainer_pb2.StartRunRequest(config=bad))
        assert err.code == grpc.StatusCode.INVALID_ARGUMENT
        assert "config.batch_size" in err.message
        op = trainer.StartRun(trainer_pb2.StartRunRequest(config=config))
        meta = trainer_pb2.StartRunMetadata()
        op.metadata.Unpack(meta)
        run = wait_run(trainer, meta.run_id, timeout_s=180)
        assert run.state == trainer_pb2.RUN_STATE_SUCCEEDED, run.error
        assert run.config.publish_interval == 1  # filled in for this source
        history = [
            h.metrics
            for h in trainer.StreamRunMetrics(trainer_pb2.StreamRunMetricsRequest(run_id=run.id))
        ]
        assert [m.step for m in history] == [1, 2]
        assert all(m.extra["trajectories"] == 2 * GROUP for m in history)
        assert all(m.staleness_mean <= 1 for m in history)
    with sync_channel(rollout_target, token=TOKEN) as channel:
        info = rollout_pb2_grpc.RolloutServiceStub(channel).GetModelInfo(
            rollout_pb2.GetModelInfoRequest()
        )
    assert info.run_id == run.id and info.policy_version >= 2


@pytest.mark.slow
def test_the_agent_training_loop_flow(
    tmp_path: Path, tiny_path: str, chats: Path, rollout_target: str
) -> None:
    """SFT -> PublishWeights -> GRPO from the SFT checkpoint, fed by RunEpisodes, with
    SubmitTrajectories -> wait for the next policy version -> PublishWeights, twice."""
    with (
        trainer_server(tmp_path, rollout_target=rollout_target) as target,
        stubs(target) as (trainer, _),
        sync_channel(rollout_target, token=TOKEN) as channel,
    ):
        rollout = rollout_pb2_grpc.RolloutServiceStub(channel)
        sft = sft_config(tiny_path, chats, steps=2)
        op = trainer.StartRun(trainer_pb2.StartRunRequest(config=sft))
        meta = trainer_pb2.StartRunMetadata()
        op.metadata.Unpack(meta)
        sft_run = wait_run(trainer, meta.run_id)
        assert sft_run.state == trainer_pb2.RUN_STATE_SUCCEEDED
        trainer.PublishWeights(
            trainer_pb2.PublishWeightsRequest(run_id=sft_run.id, rollout_target=rollout_target)
        )

        grpo = trainer_pb2.RunConfig(
            base_model=sft_run.latest_checkpoint.uri,
            grpo=trainer_pb2.GrpoConfig(group_size=GROUP),
            batch_size=2 * GROUP,
            seed=0,
            rollout_target=rollout_target,
        )
        grpo.data.submitted = True
        op = trainer.StartRun(trainer_pb2.StartRunRequest(config=grpo))
        op.metadata.Unpack(meta)
        run_id = meta.run_id
        spec = rollout_pb2.EpisodeSpec(
            env_id="maze_2d", seeds=[0, 1], episodes_per_seed=GROUP, max_turns=2
        )
        spec.settings.observation_mode = episode_pb2.OBSERVATION_MODE_TEXT
        spec.sampling.max_tokens = 8
        for version in (1, 2):
            episodes = rollout.RunEpisodes(rollout_pb2.RunEpisodesRequest(spec=spec))
            assert not episodes.errors and len(episodes.trajectories) == 2 * GROUP
            reply = trainer.SubmitTrajectories(
                iter(
                    [
                        trainer_pb2.SubmitTrajectoriesRequest(
                            run_id=run_id, trajectories=episodes.trajectories
                        )
                    ]
                )
            )
            assert reply.accepted_count == 2 * GROUP, reply.rejected
            wait_run(trainer, run_id, until=lambda r, v=version: r.policy_version >= v)
            published = trainer.PublishWeights(trainer_pb2.PublishWeightsRequest(run_id=run_id))
            info = rollout.GetModelInfo(rollout_pb2.GetModelInfoRequest())
            assert info.run_id == run_id and info.policy_version == published.policy_version
            assert published.checkpoint.policy_version == version
        trainer.CancelRun(trainer_pb2.CancelRunRequest(run_id=run_id))
        assert wait_run(trainer, run_id).state == trainer_pb2.RUN_STATE_CANCELLED
