"""A hostile client against rollout: peers, checkpoint paths, limits on arrival, odd values.

Each test names the defect of issue 13 it covers.
"""

from __future__ import annotations

import math
import os
import pickle
import select
import socket
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest
import torch
from google.protobuf import duration_pb2, struct_pb2
from safetensors.torch import save_file

from gantry.core import errors
from gantry.core.client import sync_channel
from gantry.core.codecs import tensor_chunks, tensor_from_torch
from gantry.core.testing.fuzz import deep_struct
from gantry.proto.common.v1 import chat_pb2, episode_pb2, sampling_pb2
from gantry.proto.rollout.v1 import rollout_pb2, rollout_pb2_grpc
from gantry.rollout.service import RolloutService

from .helpers import TOKEN, engine_of, error_of

Stack = tuple[RolloutService, str]
UNKNOWN_ENUM: Any = 99
TEXT = episode_pb2.EpisodeSettings(observation_mode=episode_pb2.OBSERVATION_MODE_TEXT)


@pytest.fixture
def stub(stack: Stack) -> Iterator[rollout_pb2_grpc.RolloutServiceStub]:
    with sync_channel(stack[1], token=TOKEN) as channel:
        yield rollout_pb2_grpc.RolloutServiceStub(channel)


def _field(error: errors.GantryError) -> str:
    if isinstance(error, errors.InvalidArgument) and error.violations:
        return error.violations[0].field
    return error.metadata.get("field", "")


# ----- 2. the stack token is sent only to configured envfarm peers ----------------------


@pytest.fixture
def listener() -> Iterator[socket.socket]:
    """A plain TCP listener that is not an envfarm anyone configured."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    sock.listen(16)
    try:
        yield sock
    finally:
        sock.close()


def _connection_attempted(sock: socket.socket, wait_s: float = 0.5) -> bytes | None:
    """What reached the listener (a connection sits in its accept queue), if anything."""
    readable, _, _ = select.select([sock], [], [], wait_s)
    if not readable:
        return None
    conn, _ = sock.accept()
    conn.settimeout(1)
    try:
        return conn.recv(65536) or b"<connected>"
    except OSError:
        return b"<connected>"
    finally:
        conn.close()


def test_envfarm_target_from_a_request_is_never_dialled(
    stack: Stack, stub: rollout_pb2_grpc.RolloutServiceStub, listener: socket.socket
) -> None:
    port = listener.getsockname()[1]
    for target in (
        f"127.0.0.1:{port}",
        f"localhost:{port}",
        f"dns:///127.0.0.1:{port}",
        f"ipv4:127.0.0.1:{port}",
        f"unix:///tmp/x-{port}.sock",
    ):
        spec = rollout_pb2.EpisodeSpec(
            envfarm_target=target, env_id="visgym/maze_2d", seeds=[0], settings=TEXT, max_turns=1
        )
        for call, request in (
            (stub.RunEpisodes, rollout_pb2.RunEpisodesRequest(spec=spec)),
            (
                lambda r: list(stub.StreamEpisodes(r)),
                rollout_pb2.StreamEpisodesRequest(spec=spec),
            ),
        ):
            error = error_of(call, request)
            assert isinstance(error, errors.PermissionDenied), (target, error)
            assert _field(error) == "spec.envfarm_target"
    assert _connection_attempted(listener) is None  # never connected, never saw the token
    assert all(str(port) not in t for t in stack[0].episodes._channels)


def test_named_and_configured_envfarm_peers_are_allowed(
    stub: rollout_pb2_grpc.RolloutServiceStub, envfarm_target: str
) -> None:
    for target in ("farm", envfarm_target, ""):
        spec = rollout_pb2.EpisodeSpec(
            envfarm_target=target,
            env_id="visgym/maze_2d",
            seeds=[1],
            settings=TEXT,
            max_turns=1,
            sampling=sampling_pb2.SamplingParams(max_tokens=4),
        )
        reply = stub.RunEpisodes(rollout_pb2.RunEpisodesRequest(spec=spec))
        assert len(reply.trajectories) == 1 and not reply.errors, target


def test_pruner_target_cannot_be_supplied(stub: rollout_pb2_grpc.RolloutServiceStub) -> None:
    spec = rollout_pb2.EpisodeSpec(
        env_id="visgym/maze_2d",
        settings=TEXT,
        pruning=rollout_pb2.ObservationPruning(pruner_target="127.0.0.1:1"),
    )
    error = error_of(stub.RunEpisodes, rollout_pb2.RunEpisodesRequest(spec=spec))
    assert isinstance(error, errors.PermissionDenied)
    assert _field(error) == "spec.pruning.pruner_target"


# ----- 4. checkpoint_uri resolves inside the checkpoints root; safetensors only ---------


def _update(stub: rollout_pb2_grpc.RolloutServiceStub, uri: str) -> Any:
    header = rollout_pb2.WeightsHeader(checkpoint_uri=uri, run_id="r")
    return stub.UpdateWeights(iter([rollout_pb2.UpdateWeightsRequest(header=header)]))


def _served(stack: Stack) -> dict[str, torch.Tensor]:
    return {k: v.clone() for k, v in engine_of(stack[0]).model.state_dict().items()}


PROJ = "model.layers.0.mlp.down_proj.weight"


@pytest.fixture
def root(stack: Stack) -> Path:
    path = stack[0].model.checkpoints.path
    assert path is not None
    return path


def test_checkpoints_load_from_inside_the_root(
    stack: Stack, stub: rollout_pb2_grpc.RolloutServiceStub, root: Path
) -> None:
    weights = {PROJ: torch.randn_like(_served(stack)[PROJ]) * 0.1}
    (root / "step-1").mkdir(exist_ok=True)
    save_file(weights, str(root / "step-1" / "model.safetensors"))
    for uri in (
        "step-1",
        "step-1/model.safetensors",
        str(root / "step-1"),
        f"file://{root / 'step-1'}",
    ):
        before = stack[0].model.generator.policy_version
        reply = _update(stub, uri)
        assert reply.tensors_loaded == 1 and reply.policy_version == before + 1, uri
    assert torch.equal(_served(stack)[PROJ], weights[PROJ])


def test_checkpoint_paths_cannot_escape_the_root(
    stack: Stack, stub: rollout_pb2_grpc.RolloutServiceStub, root: Path, tmp_path: Path
) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    save_file({PROJ: torch.zeros_like(_served(stack)[PROJ])}, str(outside / "model.safetensors"))
    link = root / "link"
    if not link.exists():
        link.symlink_to(outside)
    mixed = root / "mixed"
    mixed.mkdir(exist_ok=True)
    shard = mixed / "model-00001.safetensors"
    if not shard.exists():
        shard.symlink_to(outside / "model.safetensors")
    before = stack[0].model.generator.policy_version
    for uri in (
        "../outside",
        "step-1/../../outside",
        str(outside),
        f"file://{outside}",
        "/etc/passwd",
        "file:///etc/passwd",
        "/proc/self/environ",
        "s3://bucket/model.safetensors",
        "link",
        "link/model.safetensors",
        "mixed",
        ".",
    ):
        error = _refused(stub, uri)
        assert isinstance(error, errors.PermissionDenied), (uri, error)
        assert _field(error) == "header.checkpoint_uri"
    assert stack[0].model.generator.policy_version == before


def _refused(stub: rollout_pb2_grpc.RolloutServiceStub, uri: str) -> errors.GantryError:
    with pytest.raises(grpc.RpcError) as info:
        _update(stub, uri)
    return errors.from_rpc_error(info.value)


class _Evil:
    """Unpickling it would create a marker file (a stand-in for arbitrary code)."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> Any:
        return (Path.touch, (self.marker,))


def test_bad_checkpoints_are_client_errors_and_change_nothing(
    stack: Stack, stub: rollout_pb2_grpc.RolloutServiceStub, root: Path, tmp_path: Path
) -> None:
    served = _served(stack)
    marker = tmp_path / "unpickled"
    (root / "pickles").mkdir(exist_ok=True)
    torch.save({PROJ: served[PROJ]}, root / "pickles" / "model.pt")
    (root / "pickles" / "model.bin").write_bytes(pickle.dumps(_Evil(marker)))
    (root / "disguised.safetensors").write_bytes(pickle.dumps(_Evil(marker)))
    (root / "garbage.safetensors").write_bytes(os.urandom(64))
    (root / "empty").mkdir(exist_ok=True)
    save_file({PROJ: torch.zeros(3, 3)}, str(root / "wrong-shape.safetensors"))
    save_file({"no.such.weight": torch.zeros(3)}, str(root / "unknown.safetensors"))
    nan = served[PROJ].clone()
    nan[0, 0] = math.nan
    save_file({PROJ: nan}, str(root / "nan.safetensors"))
    before = stack[0].model.generator.policy_version
    cases: list[tuple[str, type[errors.GantryError]]] = [
        ("missing", errors.NotFound),
        ("missing.safetensors", errors.NotFound),
        ("empty", errors.NotFound),
        ("pickles", errors.NotFound),  # no safetensors inside: pickles are never read
        ("pickles/model.pt", errors.InvalidArgument),
        ("pickles/model.bin", errors.InvalidArgument),
        ("disguised.safetensors", errors.InvalidArgument),
        ("garbage.safetensors", errors.InvalidArgument),
        ("wrong-shape.safetensors", errors.InvalidArgument),
        ("unknown.safetensors", errors.InvalidArgument),
        ("nan.safetensors", errors.InvalidArgument),
        ("a\x00b", errors.InvalidArgument),
        ("x" * 300, errors.InvalidArgument),
    ]
    for uri, expected in cases:
        error = _refused(stub, uri)
        assert type(error) is expected, (uri, error)
        assert "header.checkpoint_uri" in (_field(error) or error.message), (uri, error)
    assert not marker.exists()
    assert stack[0].model.generator.policy_version == before
    after = _served(stack)
    assert all(torch.equal(after[k], served[k]) for k in served)


def test_streamed_updates_are_bounded_and_validated(
    stack: Stack, stub: rollout_pb2_grpc.RolloutServiceStub
) -> None:
    served = _served(stack)
    before = stack[0].model.generator.policy_version
    header = rollout_pb2.UpdateWeightsRequest(header=rollout_pb2.WeightsHeader())

    def chunks(name: str, tensor: torch.Tensor) -> list[rollout_pb2.UpdateWeightsRequest]:
        return [
            rollout_pb2.UpdateWeightsRequest(chunk=c)
            for c in tensor_chunks(name, tensor_from_torch(tensor), chunk_bytes=1 << 20)
        ]

    nan = served[PROJ].clone()
    nan[1, 1] = math.inf
    big = torch.zeros(stack[0].model.max_weights_bytes // 4 + 1)
    cases: list[tuple[list[rollout_pb2.UpdateWeightsRequest], str]] = [
        ([header, *chunks(PROJ, nan)], "chunk"),
        ([header, *chunks("x" * 1000, served[PROJ])], "chunk.name"),
        ([header, *chunks(PROJ, big)], "chunk"),
        ([rollout_pb2.UpdateWeightsRequest(header={"run_id": "r" * 10_000})], "header.run_id"),
        ([rollout_pb2.UpdateWeightsRequest(header={"tensor_count": -1})], "header.tensor_count"),
        ([rollout_pb2.UpdateWeightsRequest(header={"total_bytes": 2**62})], "header.total_bytes"),
        ([header, header], "header"),
        ([rollout_pb2.UpdateWeightsRequest()], "payload"),
        ([header], "chunk"),
    ]
    for messages, field in cases:
        error = error_of(stub.UpdateWeights, iter(messages))
        assert isinstance(error, errors.InvalidArgument), (field, error)
        assert _field(error) == field, error
    assert stack[0].model.generator.policy_version == before
    after = _served(stack)
    assert all(torch.equal(after[k], served[k]) for k in served)


# ----- 6. limits on arrival, before any tokenization -----------------------------------


def _gen(*prompts: rollout_pb2.Prompt, **sampling: Any) -> rollout_pb2.GenerateRequest:
    return rollout_pb2.GenerateRequest(
        input=rollout_pb2.GenerationInput(
            prompts=list(prompts), sampling=sampling_pb2.SamplingParams(**sampling)
        )
    )


def _text(text: str) -> rollout_pb2.Prompt:
    return rollout_pb2.Prompt(text=text)


def _chat(*messages: chat_pb2.ChatMessage) -> rollout_pb2.Prompt:
    return rollout_pb2.Prompt(messages=chat_pb2.Conversation(messages=list(messages)))


def _user(*parts: chat_pb2.ContentPart) -> chat_pb2.ChatMessage:
    return chat_pb2.ChatMessage(role=chat_pb2.ROLE_USER, content=list(parts))


def _kwargs(**values: Any) -> struct_pb2.Struct:
    struct = struct_pb2.Struct()
    struct.update(values)
    return struct


HI = chat_pb2.ContentPart(text="hi")
IMAGE = chat_pb2.ContentPart(image={"data": b"\x89PNG", "mime_type": "image/png"})
GENERATE_CASES: list[tuple[str, rollout_pb2.GenerateRequest, str]] = [
    ("n 65536", _gen(_text("x"), n=65536), "input.sampling.n"),
    ("n negative", _gen(_text("x"), n=-1), "input.sampling.n"),
    ("sequences", _gen(*[_text("x")] * 64, n=64), "input.sampling.n"),
    ("prompts", _gen(*[_text("x")] * 300), "input.prompts"),
    ("max_tokens huge", _gen(_text("x"), max_tokens=2**31 - 1), "input.sampling.max_tokens"),
    ("max_tokens context", _gen(_text("x"), max_tokens=2048), "input.sampling.max_tokens"),
    ("max_tokens negative", _gen(_text("x"), max_tokens=-5), "input.sampling.max_tokens"),
    ("stops", _gen(_text("x"), stop=["a"] * 17), "input.sampling.stop"),
    ("stop bytes", _gen(_text("x"), stop=["s" * 300]), "input.sampling.stop[0]"),
    ("stop empty", _gen(_text("x"), stop=[""]), "input.sampling.stop"),
    ("stop ids", _gen(_text("x"), stop_token_ids=[1] * 17), "input.sampling.stop_token_ids"),
    ("temperature nan", _gen(_text("x"), temperature=math.nan), "input.sampling.temperature"),
    ("temperature inf", _gen(_text("x"), temperature=math.inf), "input.sampling.temperature"),
    ("top_p nan", _gen(_text("x"), top_p=math.nan), "input.sampling.top_p"),
    ("top_k negative", _gen(_text("x"), top_k=-1), "input.sampling.top_k"),
    ("prompt bytes", _gen(_text("x" * 100_000)), "input.prompts[0]"),
    ("empty prompt", _gen(rollout_pb2.Prompt()), "input.prompts[0]"),
    ("empty text", _gen(_text("")), "input.prompts[0]"),
    ("messages", _gen(_chat(*[_user(HI)] * 1025)), "input.prompts[0].messages"),
    ("no messages", _gen(_chat()), "input.prompts[0].messages"),
    ("parts", _gen(_chat(_user(*[HI] * 4097))), "input.prompts[0].messages.content"),
    (
        "role",
        _gen(_chat(chat_pb2.ChatMessage(role=UNKNOWN_ENUM, content=[HI]))),
        "input.prompts[0]",
    ),
    ("images", _gen(_chat(_user(*[IMAGE] * 17))), "input.prompts.image"),
    ("image", _gen(_chat(_user(IMAGE))), "input.prompts[0].messages[0].content[0].image"),
    (
        "token ids",
        _gen(rollout_pb2.Prompt(token_ids={"token_ids": [1] * 5000})),
        "input.prompts[0].token_ids",
    ),
    (
        "negative token",
        _gen(rollout_pb2.Prompt(token_ids={"token_ids": [-1]})),
        "input.prompts[0].token_ids",
    ),
    (
        "model",
        rollout_pb2.GenerateRequest(input={"prompts": [_text("x")], "model": "m" * 300}),
        "input.model",
    ),
]
for _name, _kw in (
    ("kwargs nan", _kwargs(t=math.nan)),
    ("kwargs inf", _kwargs(t=-math.inf)),
    ("kwargs deep", deep_struct(20)),
    ("kwargs template", _kwargs(chat_template="{% for i in range(10**9) %}x{% endfor %}")),
    ("kwargs tokenize", _kwargs(tokenize=False)),
    ("kwargs many", _kwargs(**{f"k{i}": 1 for i in range(40)})),
):
    _request = _gen(_chat(_user(HI)))
    _request.input.chat_template_kwargs.CopyFrom(_kw)
    GENERATE_CASES.append((_name, _request, "input.chat_template_kwargs"))


@pytest.mark.parametrize(
    ("name", "request_", "field"), GENERATE_CASES, ids=[c[0] for c in GENERATE_CASES]
)
def test_bad_generation_inputs_are_invalid_argument_naming_the_field(
    stub: rollout_pb2_grpc.RolloutServiceStub,
    name: str,
    request_: rollout_pb2.GenerateRequest,
    field: str,
) -> None:
    for call in (stub.Generate, lambda r: list(stub.GenerateStream(r))):
        stream_request: Any = (
            request_
            if call is stub.Generate
            else rollout_pb2.GenerateStreamRequest(input=request_.input)
        )
        error = error_of(call, stream_request)
        assert isinstance(error, errors.InvalidArgument), (name, error)
        assert _field(error).startswith(field), (name, error)
        assert len(error.message.encode()) <= 1024


def test_a_10mb_prompt_is_refused_before_tokenization(
    stub: rollout_pb2_grpc.RolloutServiceStub,
) -> None:
    started = time.perf_counter()
    error = error_of(stub.Generate, _gen(_text("hello world " * 900_000)))  # ~10.8 MB
    elapsed = time.perf_counter() - started
    assert isinstance(error, errors.InvalidArgument) and _field(error) == "input.prompts[0]"
    assert "bytes" in error.message
    assert elapsed < 5.0  # tokenizing it takes ~15 s on an idle core (bound loose for loaded CI)


def test_tiny_temperature_samples_greedily_and_harms_no_one(
    stub: rollout_pb2_grpc.RolloutServiceStub,
) -> None:
    reply = stub.Generate(_gen(_text("hello"), temperature=1e-30, max_tokens=4, n=2))
    first, second = reply.results[0].completions
    assert first.tokens.token_ids == second.tokens.token_ids  # greedy, not NaN


def _spec(**fields: Any) -> rollout_pb2.EpisodeSpec:
    base: dict[str, Any] = {"env_id": "visgym/maze_2d", "settings": TEXT}
    base.update(fields)
    return rollout_pb2.EpisodeSpec(**base)


EPISODE_CASES: list[tuple[str, rollout_pb2.EpisodeSpec, str]] = [
    ("seeds", _spec(seeds=list(range(1025))), "spec.seeds"),
    ("per seed", _spec(seeds=[1, 2], episodes_per_seed=600), "spec.episodes_per_seed"),
    ("per seed negative", _spec(episodes_per_seed=-1), "spec.episodes_per_seed"),
    ("turns", _spec(max_turns=100_000), "spec.max_turns"),
    ("concurrency", _spec(concurrency=-3), "spec.concurrency"),
    ("difficulty", _spec(difficulty=99), "spec.difficulty"),
    ("mode", _spec(settings={"observation_mode": 42}), "spec.settings.observation_mode"),
    ("strategy", _spec(context_strategy=-1), "spec.context_strategy"),
    (
        "history",
        _spec(settings={"observation_mode": 2, "history_window": -1}),
        "spec.settings.history_window",
    ),
    ("env id", _spec(env_id="e" * 1000), "spec.env_id"),
    ("env id control", _spec(env_id="a\nb"), "spec.env_id"),
    ("no env", _spec(env_id=""), "spec.env_id"),
    ("system prompt", _spec(system_prompt="s" * 100_000), "spec.system_prompt"),
    ("sampling n", _spec(sampling={"n": 1000}), "spec.sampling.n"),
    (
        "sampling temperature",
        _spec(sampling={"temperature": math.nan}),
        "spec.sampling.temperature",
    ),
    ("timeout", _spec(episode_timeout=duration_pb2.Duration(seconds=-1)), "spec.episode_timeout"),
    (
        "timeout huge",
        _spec(episode_timeout=duration_pb2.Duration(seconds=10**11)),
        "spec.episode_timeout",
    ),
    ("model", _spec(model="m" * 1000), "spec.model"),
]


@pytest.mark.parametrize(
    ("name", "spec", "field"), EPISODE_CASES, ids=[c[0] for c in EPISODE_CASES]
)
def test_bad_episode_specs_are_invalid_argument_naming_the_field(
    stub: rollout_pb2_grpc.RolloutServiceStub, name: str, spec: rollout_pb2.EpisodeSpec, field: str
) -> None:
    for call, request in (
        (stub.RunEpisodes, rollout_pb2.RunEpisodesRequest(spec=spec)),
        (lambda r: list(stub.StreamEpisodes(r)), rollout_pb2.StreamEpisodesRequest(spec=spec)),
    ):
        error = error_of(call, request)
        assert isinstance(error, errors.InvalidArgument), (name, error)
        assert _field(error) == field, (name, error)


def test_bad_heavy_think_and_playtest_requests_name_the_field(
    stub: rollout_pb2_grpc.RolloutServiceStub,
) -> None:
    think = rollout_pb2.HeavyThinkRequest
    play = rollout_pb2.PlaytestRequest
    persona = rollout_pb2.PERSONA_THRILL_SEEKER
    cases: list[tuple[Any, Any, str]] = [
        (stub.HeavyThink, think(prompt=_text("q"), num_paths=33), "num_paths"),
        (stub.HeavyThink, think(prompt=_text("q"), num_paths=-1), "num_paths"),
        (stub.HeavyThink, think(prompt=_text("q" * 100_000)), "prompt"),
        (
            stub.HeavyThink,
            think(prompt=_text("q"), reflection_instruction="r" * 100_000),
            "reflection_instruction",
        ),
        (stub.HeavyThink, think(prompt=_text("q"), path_sampling={"n": 99}), "path_sampling.n"),
        (
            stub.HeavyThink,
            think(prompt=_text("q"), path_sampling={"max_tokens": 10**6}),
            "path_sampling.max_tokens",
        ),
        (stub.HeavyThink, think(prompt=rollout_pb2.Prompt(token_ids={"token_ids": [1]})), "prompt"),
        (
            stub.HeavyThink,
            think(prompt=_chat(chat_pb2.ChatMessage(role=UNKNOWN_ENUM))),
            "prompt.messages[0].role",
        ),
        (stub.Playtest, play(rulebook="r" * 100_000, persona=persona), "rulebook"),
        (stub.Playtest, play(rulebook="r", persona=persona, num_reviews=65), "num_reviews"),
        (stub.Playtest, play(rulebook="r", persona=persona, num_reviews=-2), "num_reviews"),
        (stub.Playtest, play(rulebook="r", persona=UNKNOWN_ENUM), "persona"),
        (stub.Playtest, play(rulebook="r", persona=persona, game_title="t" * 5000), "game_title"),
        (
            stub.Playtest,
            play(rulebook="r", custom_persona={"name": "n", "keywords": ["k"] * 65}),
            "custom_persona.keywords",
        ),
        (
            stub.Playtest,
            play(rulebook="r", custom_persona={"name": "n" * 5000}),
            "custom_persona.name",
        ),
        (
            stub.Playtest,
            play(rulebook="r", persona=persona, sampling={"top_p": 2}),
            "sampling.top_p",
        ),
    ]
    for call, request, field in cases:
        error = error_of(call, request)
        assert isinstance(error, errors.InvalidArgument), (field, error)
        assert _field(error) == field, (field, error)


def test_model_info_refuses_an_over_long_model_name(
    stub: rollout_pb2_grpc.RolloutServiceStub,
) -> None:
    error = error_of(stub.GetModelInfo, rollout_pb2.GetModelInfoRequest(model="m" * 10_000))
    assert isinstance(error, errors.InvalidArgument) and _field(error) == "model"


def test_overload_is_resource_exhausted_with_retry_info(
    stack: Stack, stub: rollout_pb2_grpc.RolloutServiceStub
) -> None:
    engine = engine_of(stack[0])
    bound, engine.max_queued = engine.max_queued, 0  # any sequence beyond the batch is too many
    try:
        error = error_of(stub.Generate, _gen(*[_text("x")] * 8, n=4))  # 32 > 16 slots
    finally:
        engine.max_queued = bound
    assert isinstance(error, errors.ResourceExhausted)
    assert error.retry_after_s is not None and error.retry_after_s > 0
    assert engine.in_flight == 0
