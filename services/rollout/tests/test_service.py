"""The rollout service through real gRPC servers (rollout + envfarm) and the stubs."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import grpc
import pytest
import torch

from gantry.core import errors
from gantry.core.client import sync_channel
from gantry.core.codecs import tensor_chunks, tensor_from_torch
from gantry.proto.common.v1 import chat_pb2, episode_pb2, sampling_pb2
from gantry.proto.rollout.v1 import rollout_pb2, rollout_pb2_grpc
from gantry.rollout.service import RolloutService

from .helpers import TOKEN, engine_of, vlm_of


@pytest.fixture
def stub(stack: tuple[RolloutService, str]) -> Iterator[rollout_pb2_grpc.RolloutServiceStub]:
    with sync_channel(stack[1], token=TOKEN) as channel:
        yield rollout_pb2_grpc.RolloutServiceStub(channel)


def _input(*texts: str, **sampling: Any) -> rollout_pb2.GenerationInput:
    return rollout_pb2.GenerationInput(
        prompts=[rollout_pb2.Prompt(text=t) for t in texts],
        sampling=sampling_pb2.SamplingParams(**sampling),
    )


def _error(fn: Any, request: Any) -> errors.GantryError:
    with pytest.raises(grpc.RpcError) as info:
        fn(request)
    return errors.from_rpc_error(info.value)


def test_generate_returns_tokens_logprobs_and_usage(
    stub: rollout_pb2_grpc.RolloutServiceStub,
) -> None:
    reply = stub.Generate(
        rollout_pb2.GenerateRequest(input=_input("hello", "the maze", max_tokens=6, n=2, seed=1))
    )
    assert [r.prompt_index for r in reply.results] == [0, 1]
    for result in reply.results:
        assert len(result.completions) == 2
        for completion in result.completions:
            assert 1 <= len(completion.tokens.token_ids) <= 6
            assert len(completion.tokens.logprobs) == len(completion.tokens.token_ids)
            assert all(lp <= 0 for lp in completion.tokens.logprobs)
            assert completion.finish_reason in (
                sampling_pb2.FINISH_REASON_STOP,
                sampling_pb2.FINISH_REASON_LENGTH,
            )
    total = sum(len(c.tokens.token_ids) for r in reply.results for c in r.completions)
    assert reply.usage.completion_tokens == total
    chat = rollout_pb2.Prompt(
        messages=chat_pb2.Conversation(
            messages=[
                chat_pb2.ChatMessage(
                    role=chat_pb2.ROLE_USER, content=[chat_pb2.ContentPart(text="hi")]
                )
            ]
        )
    )
    reply = stub.Generate(
        rollout_pb2.GenerateRequest(input=rollout_pb2.GenerationInput(prompts=[chat]))
    )
    assert reply.results[0].prompt_token_ids  # rendered through the chat template


@pytest.mark.parametrize(
    ("request_", "field"),
    [
        (rollout_pb2.GenerateRequest(), "input.prompts"),
        (rollout_pb2.GenerateRequest(input=_input("x", top_p=1.5)), "input.sampling.top_p"),
        (
            rollout_pb2.GenerateRequest(input=_input("x", temperature=-1)),
            "input.sampling.temperature",
        ),
        (rollout_pb2.GenerateRequest(input=_input("x", n=100)), "input.sampling.n"),
        (rollout_pb2.GenerateRequest(input=_input("x " * 3000)), "input.prompts[0]"),
        (
            rollout_pb2.GenerateRequest(
                input=rollout_pb2.GenerationInput(
                    prompts=[
                        rollout_pb2.Prompt(token_ids=chat_pb2.TokenSequence(token_ids=[10**7]))
                    ]
                )
            ),
            "input.prompts[0].token_ids",
        ),
    ],
)
def test_bad_generate_requests_name_the_field(
    stub: rollout_pb2_grpc.RolloutServiceStub, request_: rollout_pb2.GenerateRequest, field: str
) -> None:
    error = _error(stub.Generate, request_)
    assert isinstance(error, errors.InvalidArgument)
    assert error.violations[0].field == field


def test_stream_cancellation_frees_the_slot(
    stack: tuple[RolloutService, str], stub: rollout_pb2_grpc.RolloutServiceStub
) -> None:
    service = stack[0]
    call = stub.GenerateStream(
        rollout_pb2.GenerateStreamRequest(input=_input("tell me a long story", max_tokens=2000))
    )
    first = next(call)
    assert first.tokens.token_ids
    assert engine_of(service).in_flight == 1
    call.cancel()
    deadline = time.monotonic() + 5
    while engine_of(service).in_flight and time.monotonic() < deadline:
        time.sleep(0.01)
    assert engine_of(service).in_flight == 0


def test_stream_deltas_add_up(stub: rollout_pb2_grpc.RolloutServiceStub) -> None:
    messages = list(
        stub.GenerateStream(
            rollout_pb2.GenerateStreamRequest(input=_input("abc", max_tokens=5, seed=2))
        )
    )
    assert messages[-1].finish_reason != sampling_pb2.FINISH_REASON_UNSPECIFIED
    assert sum(len(m.tokens.token_ids) for m in messages) == messages[-1].usage.completion_tokens


def test_deadline_is_respected(stub: rollout_pb2_grpc.RolloutServiceStub) -> None:
    with pytest.raises(grpc.RpcError) as info:
        stub.Generate(
            rollout_pb2.GenerateRequest(input=_input("x", max_tokens=1500, n=8)), timeout=0.3
        )
    assert info.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED


def test_model_info(stub: rollout_pb2_grpc.RolloutServiceStub) -> None:
    info = stub.GetModelInfo(rollout_pb2.GetModelInfoRequest())
    assert info.backend == "transformers" and info.context_length == 2048


def test_run_episodes_against_envfarm(stub: rollout_pb2_grpc.RolloutServiceStub) -> None:
    spec = rollout_pb2.EpisodeSpec(
        env_id="visgym/maze_2d",
        difficulty=episode_pb2.DIFFICULTY_EASY,
        seeds=[0, 1],
        episodes_per_seed=2,
        settings=episode_pb2.EpisodeSettings(
            observation_mode=episode_pb2.OBSERVATION_MODE_TEXT, text_feedback=True, history_window=2
        ),
        sampling=sampling_pb2.SamplingParams(max_tokens=8, seed=0),
        max_turns=3,
    )
    reply = stub.RunEpisodes(rollout_pb2.RunEpisodesRequest(spec=spec))
    assert not reply.errors
    assert len(reply.trajectories) == 4
    groups = {t.group_id for t in reply.trajectories}
    assert len(groups) == 2  # one GRPO group per seed
    for trajectory in reply.trajectories:
        assert 1 <= len(trajectory.turns) <= 3
        for turn in trajectory.turns:
            assert turn.prompt_token_ids and turn.observation.text.startswith("#")
            assert len(turn.completion.logprobs) == len(turn.completion.token_ids) > 0
            assert turn.feedback  # the random policy's actions are answered by envfarm
        assert trajectory.usage.completion_tokens == sum(
            len(t.completion.token_ids) for t in trajectory.turns
        )


def test_run_episodes_validates_spec(stub: rollout_pb2_grpc.RolloutServiceStub) -> None:
    goal_without_images = rollout_pb2.EpisodeSpec(
        env_id="visgym/maze_2d",
        settings=episode_pb2.EpisodeSettings(
            observation_mode=episode_pb2.OBSERVATION_MODE_TEXT, goal_image=True
        ),
    )
    error = _error(stub.RunEpisodes, rollout_pb2.RunEpisodesRequest(spec=goal_without_images))
    assert isinstance(error, errors.InvalidArgument)
    assert error.violations[0].field == "spec.settings.goal_image"
    error = _error(stub.RunEpisodes, rollout_pb2.RunEpisodesRequest(spec=rollout_pb2.EpisodeSpec()))
    assert isinstance(error, errors.InvalidArgument) and error.violations[0].field == "spec.env_id"
    unknown = rollout_pb2.EpisodeSpec(
        env_id="visgym/nope",
        seeds=[1],
        settings=episode_pb2.EpisodeSettings(observation_mode=episode_pb2.OBSERVATION_MODE_TEXT),
    )
    reply = stub.RunEpisodes(rollout_pb2.RunEpisodesRequest(spec=unknown))
    assert reply.errors[0].status.code == grpc.StatusCode.INVALID_ARGUMENT.value[0]


def test_image_episodes_go_to_the_vlm(
    stack: tuple[RolloutService, str], stub: rollout_pb2_grpc.RolloutServiceStub
) -> None:
    spec = rollout_pb2.EpisodeSpec(
        env_id="visgym/maze_2d",
        seeds=[2],
        settings=episode_pb2.EpisodeSettings(
            observation_mode=episode_pb2.OBSERVATION_MODE_IMAGE, goal_image=True, text_feedback=True
        ),
        sampling=sampling_pb2.SamplingParams(max_tokens=6, seed=0),
        max_turns=2,
    )
    reply = stub.RunEpisodes(rollout_pb2.RunEpisodesRequest(spec=spec))
    assert not reply.errors, reply.errors
    (trajectory,) = reply.trajectories
    assert len(trajectory.turns) == 2
    image_token = vlm_of(stack[0]).model.config.image_token_index
    for turn in trajectory.turns:
        # Lossless WebP from envfarm, kept in the trajectory as sent.
        assert turn.observation.image.mime_type == "image/webp"
        assert turn.observation.image.data[:4] == b"RIFF"
        assert len(turn.completion.logprobs) == len(turn.completion.token_ids) > 0
        # The tiny VLM turns each image into 16 placeholder tokens: goal + observation.
        assert list(turn.prompt_token_ids).count(image_token) == 32


def test_stream_episodes_tags_versions(stub: rollout_pb2_grpc.RolloutServiceStub) -> None:
    spec = rollout_pb2.EpisodeSpec(
        env_id="visgym/maze_2d",
        seeds=[3, 4, 5],
        settings=episode_pb2.EpisodeSettings(observation_mode=episode_pb2.OBSERVATION_MODE_TEXT),
        sampling=sampling_pb2.SamplingParams(max_tokens=4),
        max_turns=2,
        concurrency=2,
    )
    messages = list(
        stub.StreamEpisodes(rollout_pb2.StreamEpisodesRequest(spec=spec, max_staleness=1))
    )
    assert len(messages) == 3
    assert all(m.HasField("trajectory") for m in messages)
    assert {m.trajectory.seed for m in messages} == {3, 4, 5}


def test_update_weights_changes_outputs_without_restart(
    stack: tuple[RolloutService, str], stub: rollout_pb2_grpc.RolloutServiceStub
) -> None:
    greedy = rollout_pb2.GenerateRequest(input=_input("hello world", max_tokens=8, temperature=0.0))
    before = stub.Generate(greedy)
    model = engine_of(stack[0]).model
    generator = torch.Generator().manual_seed(0)
    updates = {
        name: torch.randn(t.shape, generator=generator) * 0.3
        for name, t in model.state_dict().items()
        if name.endswith("mlp.down_proj.weight")
    }

    def requests() -> Iterator[rollout_pb2.UpdateWeightsRequest]:
        yield rollout_pb2.UpdateWeightsRequest(
            header=rollout_pb2.WeightsHeader(version=1, tensor_count=len(updates), run_id="r1")
        )
        for name, tensor in updates.items():
            for chunk in tensor_chunks(name, tensor_from_torch(tensor), chunk_bytes=4096):
                yield rollout_pb2.UpdateWeightsRequest(chunk=chunk)

    reply = stub.UpdateWeights(requests())
    assert (
        reply.tensors_loaded == len(updates) and reply.policy_version == before.policy_version + 1
    )
    after = stub.Generate(greedy)
    assert after.policy_version == reply.policy_version
    assert (
        after.results[0].completions[0].tokens.token_ids
        != before.results[0].completions[0].tokens.token_ids
    )
    info = stub.GetModelInfo(rollout_pb2.GetModelInfoRequest())
    assert info.policy_version == reply.policy_version and info.run_id == "r1"


def test_update_weights_reach_the_vlm(
    stack: tuple[RolloutService, str], stub: rollout_pb2_grpc.RolloutServiceStub
) -> None:
    """An update naming the VLM's parameters goes to the VLM: image episodes then play
    with the new weights and record the VLM's new version; the text policy is untouched."""
    spec = rollout_pb2.EpisodeSpec(
        env_id="visgym/maze_2d",
        seeds=[6],
        settings=episode_pb2.EpisodeSettings(observation_mode=episode_pb2.OBSERVATION_MODE_IMAGE),
        sampling=sampling_pb2.SamplingParams(max_tokens=6, temperature=0.0),
        max_turns=1,
    )
    episodes = rollout_pb2.RunEpisodesRequest(spec=spec)
    before = stub.RunEpisodes(episodes).trajectories[0].turns[0]
    text_version = stub.GetModelInfo(rollout_pb2.GetModelInfoRequest()).policy_version
    vlm = vlm_of(stack[0])
    generator = torch.Generator().manual_seed(1)
    updates = {
        name: torch.randn(t.shape, generator=generator)
        for name, t in vlm.model.state_dict().items()
        if name.endswith(("mlp.down_proj.weight", "multi_modal_projector.linear_2.weight"))
    }
    assert updates and all("language_model" in n or "projector" in n for n in updates)
    # The language model's tensors under the names save_pretrained writes (a trainer's
    # checkpoint), the projector's under module names: both reach the VLM.
    updates = {
        n.replace("model.language_model.", "language_model.model."): t for n, t in updates.items()
    }
    wanted = vlm.policy_version + 5  # the publisher's version is adopted when higher

    def requests() -> Iterator[rollout_pb2.UpdateWeightsRequest]:
        yield rollout_pb2.UpdateWeightsRequest(
            header=rollout_pb2.WeightsHeader(version=wanted, tensor_count=len(updates))
        )
        for name, tensor in updates.items():
            for chunk in tensor_chunks(name, tensor_from_torch(tensor), chunk_bytes=1024):
                yield rollout_pb2.UpdateWeightsRequest(chunk=chunk)

    reply = stub.UpdateWeights(requests())
    assert reply.policy_version == wanted == vlm.policy_version
    after = stub.RunEpisodes(episodes).trajectories[0].turns[0]
    assert after.policy_version == wanted and before.policy_version < wanted
    assert list(after.completion.token_ids) != list(before.completion.token_ids)
    assert stub.GetModelInfo(rollout_pb2.GetModelInfoRequest()).policy_version == text_version


def test_update_weights_rejects_bad_payloads(stub: rollout_pb2_grpc.RolloutServiceStub) -> None:
    no_header = iter(
        [
            rollout_pb2.UpdateWeightsRequest(
                chunk=next(tensor_chunks("x", tensor_from_torch(torch.zeros(2))))
            )
        ]
    )
    error = _error(stub.UpdateWeights, no_header)
    assert isinstance(error, errors.InvalidArgument) and error.violations[0].field == "header"
    unknown = iter(
        [
            rollout_pb2.UpdateWeightsRequest(header=rollout_pb2.WeightsHeader()),
            *[
                rollout_pb2.UpdateWeightsRequest(chunk=c)
                for c in tensor_chunks("no.such.weight", tensor_from_torch(torch.zeros(2)))
            ],
        ]
    )
    error = _error(stub.UpdateWeights, unknown)
    assert isinstance(error, errors.InvalidArgument) and "no.such.weight" in error.message


def test_heavy_think_and_playtest(stub: rollout_pb2_grpc.RolloutServiceStub) -> None:
    think = stub.HeavyThink(
        rollout_pb2.HeavyThinkRequest(
            prompt=rollout_pb2.Prompt(text="What is 2 + 3?"),
            num_paths=3,
            path_sampling=sampling_pb2.SamplingParams(max_tokens=12, seed=1),
            reflection_sampling=sampling_pb2.SamplingParams(max_tokens=12),
        )
    )
    assert len(think.paths) == 3 and think.reflection
    # Completion tokens = every path plus the reflection pass (at least one token).
    assert think.usage.completion_tokens > sum(p.completion_tokens for p in think.paths)
    review = stub.Playtest(
        rollout_pb2.PlaytestRequest(
            rulebook="Players draft cards and race to 10 points.",
            persona=rollout_pb2.PERSONA_THRILL_SEEKER,
            num_reviews=2,
            sampling=sampling_pb2.SamplingParams(max_tokens=16),
        )
    )
    assert len(review.reviews) == 2 and len(review.rating_distribution) == 10
    error = _error(stub.Playtest, rollout_pb2.PlaytestRequest(rulebook=" "))
    assert isinstance(error, errors.InvalidArgument) and error.violations[0].field == "rulebook"
