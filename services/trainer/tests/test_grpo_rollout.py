"""GRPO fed by a real rollout server, both sides in the fp8-jet flow, then PublishWeights."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
import torch

from gantry.core.client import sync_channel
from gantry.core.testing.threaded import serve_in_thread
from gantry.kernels.recipes import get_recipe
from gantry.models.loading import load_causal_lm
from gantry.proto.common.v1 import chat_pb2, precision_pb2, trajectory_pb2
from gantry.proto.rollout.v1 import rollout_pb2, rollout_pb2_grpc
from gantry.proto.trainer.v1 import trainer_pb2
from gantry.rollout.service import RolloutService
from gantry.rollout.settings import RolloutSettings

from .helpers import TEMP_ROOT, TOKEN, error_of, stubs, trainer_server, wait_run

GROUP = 4
PROMPTS = [[5, 17, 42, 99, 7], [11, 12, 13, 300, 8]]
FIXED_PROMPT = [21, 22, 23, 24, 25, 26]


@pytest.fixture(scope="module")
def rollout_target() -> Iterator[str]:
    settings = RolloutSettings(
        host="127.0.0.1",
        port=0,
        metrics_port=0,
        auth_token=TOKEN,
        log_json=False,
        model_path="tiny",
        precision_recipe="fp8-jet",
        # URI transfer: rollout loads the trainer's checkpoints (under pytest's temp dirs).
        checkpoints_root=TEMP_ROOT,
    )
    with serve_in_thread(RolloutService(settings)) as running:
        yield f"127.0.0.1:{running.port}"


def reward(token_ids: list[int]) -> float:
    """A verifiable toy reward: the share of even token ids in the completion."""
    return sum(1 for t in token_ids if t % 2 == 0) / max(len(token_ids), 1)


def rollouts(
    stub: rollout_pb2_grpc.RolloutServiceStub, seed: int
) -> list[trajectory_pb2.Trajectory]:
    """GROUP sampled completions per prompt from the rollout server, as trajectories."""
    request = rollout_pb2.GenerateRequest(
        input=rollout_pb2.GenerationInput(
            prompts=[
                rollout_pb2.Prompt(token_ids=chat_pb2.TokenSequence(token_ids=p)) for p in PROMPTS
            ]
        )
    )
    request.input.sampling.n = GROUP
    request.input.sampling.max_tokens = 6
    request.input.sampling.seed = seed
    reply = stub.Generate(request)
    out = []
    for result in reply.results:
        group = uuid.uuid4().hex
        for completion in result.completions:
            ids = list(completion.tokens.token_ids)
            out.append(
                trajectory_pb2.Trajectory(
                    id=uuid.uuid4().hex,
                    group_id=group,
                    final_reward=reward(ids),
                    policy_version=reply.policy_version,
                    turns=[
                        trajectory_pb2.Turn(
                            index=0,
                            prompt_token_ids=result.prompt_token_ids,
                            completion=completion.tokens,
                            policy_version=reply.policy_version,
                        )
                    ],
                )
            )
    return out


def greedy_logprobs(stub: rollout_pb2_grpc.RolloutServiceStub) -> tuple[list[int], list[float]]:
    request = rollout_pb2.GenerateRequest(
        input=rollout_pb2.GenerationInput(
            prompts=[rollout_pb2.Prompt(token_ids=chat_pb2.TokenSequence(token_ids=FIXED_PROMPT))]
        )
    )
    request.input.sampling.temperature = 0.0
    request.input.sampling.max_tokens = 8
    tokens = stub.Generate(request).results[0].completions[0].tokens
    return list(tokens.token_ids), list(tokens.logprobs)


def trainer_logprobs(checkpoint_uri: str, completion: list[int]) -> list[float]:
    """The trainer-side fp8-jet forward of the published checkpoint, on the same tokens."""
    bundle = load_causal_lm(checkpoint_uri, dtype="float32")
    get_recipe("fp8-jet").apply(bundle.model, "trainer")
    ids = torch.tensor([FIXED_PROMPT + completion])
    with torch.no_grad():
        logp = torch.log_softmax(bundle.model(input_ids=ids).logits[0, :-1].float(), -1)
    picked = logp[len(FIXED_PROMPT) - 1 :].gather(-1, ids[0, len(FIXED_PROMPT) :, None])
    return [float(x) for x in picked.squeeze(-1)]


def test_grpo_on_rollout_trajectories_then_publish(
    rollout_target: str, tiny_path: str, tmp_path: Path
) -> None:
    with (
        trainer_server(tmp_path, rollout_target=rollout_target) as target,
        stubs(target) as (trainer, _),
        sync_channel(rollout_target, token=TOKEN) as channel,
    ):
        rollout = rollout_pb2_grpc.RolloutServiceStub(channel)
        config = trainer_pb2.RunConfig(
            base_model=tiny_path,
            grpo=trainer_pb2.GrpoConfig(
                group_size=GROUP,
                clip_high=0.28,
                off_policy_correction=trainer_pb2.OFF_POLICY_CORRECTION_TIS,
            ),
            batch_size=GROUP * len(PROMPTS),
            micro_batch_size=4,
            micro_batch_tokens=256,  # packed by length instead of 4 at a time
            max_steps=2,
            seed=1,
            rollout_target=rollout_target,
            precision=precision_pb2.Precision(mode=precision_pb2.PRECISION_MODE_FP8),
        )
        config.data.submitted = True
        config.optimizer.learning_rate = 1e-2
        op = trainer.StartRun(trainer_pb2.StartRunRequest(config=config))
        meta = trainer_pb2.StartRunMetadata()
        op.metadata.Unpack(meta)
        run_id = meta.run_id

        before_ids, before_lp = greedy_logprobs(rollout)
        batch = rollouts(rollout, seed=3)
        broken = trajectory_pb2.Trajectory()
        broken.CopyFrom(batch[0])
        broken.id = "no-logprobs"
        del broken.turns[0].completion.logprobs[:]
        reply = trainer.SubmitTrajectories(
            iter(
                [
                    trainer_pb2.SubmitTrajectoriesRequest(
                        run_id=run_id, trajectories=[*batch, broken]
                    )
                ]
            )
        )
        assert reply.accepted_count == len(batch)
        assert [r.trajectory_id for r in reply.rejected] == ["no-logprobs"]
        assert "missing logprobs" in reply.rejected[0].reason

        run = wait_run(trainer, run_id, until=lambda r: r.policy_version >= 1)
        step1 = run.latest_metrics
        assert step1.step == 1 and step1.extra["trajectories"] == len(batch)
        assert step1.reward_mean == pytest.approx(sum(t.final_reward for t in batch) / len(batch))
        # fp8-jet on both sides: the trainer's logprobs match rollout's sampling logprobs
        # (rollout decodes incrementally, the trainer prefills: not bit-identical).
        assert 0 <= step1.extra["logprob_mismatch"] < 0.02
        assert 0 <= step1.extra["clip_fraction"] <= 1 and step1.entropy > 0
        # TIS: the behaviour weights pi_trainer/pi_rollout are ~1 when the engines agree.
        assert step1.extra["is_weight_mean"] == pytest.approx(1.0, abs=0.02)
        assert 1.0 <= step1.extra["is_weight_max"] < 1.1
        assert step1.extra["is_truncated_fraction"] == 0
        assert 0 <= step1.extra["padding_fraction"] < 1

        # Stale: max_staleness 0 and these came from the pre-step policy.
        stale = rollouts(rollout, seed=4)
        reply = trainer.SubmitTrajectories(
            iter([trainer_pb2.SubmitTrajectoriesRequest(run_id=run_id, trajectories=stale)])
        )
        assert reply.accepted_count == 0 and "stale" in reply.rejected[0].reason

        published = trainer.PublishWeights(trainer_pb2.PublishWeightsRequest(run_id=run_id))
        info = rollout.GetModelInfo(rollout_pb2.GetModelInfoRequest())
        assert info.policy_version == published.policy_version >= 1
        assert info.run_id == run_id
        assert published.checkpoint.policy_version == 1
        after_ids, after_lp = greedy_logprobs(rollout)
        assert (after_ids, after_lp) != (before_ids, before_lp)  # new weights are served
        reference = trainer_logprobs(published.checkpoint.uri, after_ids)
        gap = max(abs(a - b) for a, b in zip(after_lp, reference, strict=True))
        assert gap < 0.02, (after_lp, reference)

        fresh = rollouts(rollout, seed=5)  # generated by the published version: on-policy
        reply = trainer.SubmitTrajectories(
            iter([trainer_pb2.SubmitTrajectoriesRequest(run_id=run_id, trajectories=fresh)])
        )
        assert reply.accepted_count == len(fresh), reply.rejected
        done = wait_run(trainer, run_id)
        assert done.state == trainer_pb2.RUN_STATE_SUCCEEDED and done.step == 2
        assert done.latest_metrics.staleness_mean == 0

        err = error_of(
            lambda r: trainer.SubmitTrajectories(iter([r])),
            trainer_pb2.SubmitTrajectoriesRequest(run_id=run_id, trajectories=fresh),
        )
        assert err.code == grpc.StatusCode.FAILED_PRECONDITION  # the run has ended
        # The run has a rollout_target and publish_interval 0: its final checkpoint was
        # published when it ended.
        info = rollout.GetModelInfo(rollout_pb2.GetModelInfoRequest())
        assert info.policy_version == published.policy_version + 1
        # URI transfer: rollout loads the checkpoint directory itself.
        again = trainer.PublishWeights(
            trainer_pb2.PublishWeightsRequest(
                run_id=run_id, transfer=trainer_pb2.WEIGHT_TRANSFER_URI
            )
        )
        assert again.checkpoint.step == 2 and again.policy_version == info.policy_version + 1
        missing = error_of(
            trainer.PublishWeights,
            trainer_pb2.PublishWeightsRequest(run_id=run_id, checkpoint_id="step-999999"),
        )
        assert missing.code == grpc.StatusCode.NOT_FOUND
