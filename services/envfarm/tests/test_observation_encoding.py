"""Observation encodings (PNG, raw pixels, WebP lossless) and omitted unchanged frames,
through a real envfarm server and the client helpers."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import grpc
import numpy as np
import pytest

from gantry.core import errors
from gantry.core.client import sync_channel
from gantry.core.codecs import image_to_array, tensor_to_numpy
from gantry.core.testing.threaded import serve_in_thread
from gantry.envfarm.client import (
    FrameRegionView,
    RemoteEnv,
    RemoteVectorEnv,
    best_encoding,
    is_local,
)
from gantry.envfarm.envs import make
from gantry.envfarm.service import EnvFarmService
from gantry.envfarm.settings import EnvFarmSettings
from gantry.proto.common.v1 import episode_pb2
from gantry.proto.envfarm.v1 import envfarm_pb2, envfarm_pb2_grpc

TOKEN = "encoding-test-token"
PNG = envfarm_pb2.OBSERVATION_ENCODING_PNG
RAW = envfarm_pb2.OBSERVATION_ENCODING_RAW
WEBP = envfarm_pb2.OBSERVATION_ENCODING_WEBP_LOSSLESS
ENV = "visgym/maze_2d"
BAD_MOVE = "('move', 9)"  # parsed, refused by the maze: the state (and frame) stay


@pytest.fixture(scope="module")
def target() -> Iterator[str]:
    settings = EnvFarmSettings(
        host="127.0.0.1",
        port=0,
        metrics_port=0,
        auth_token=TOKEN,
        log_json=False,
        max_message_bytes=4 * 2**20,  # the floor: 9 raw frames fit a reply
    )
    with serve_in_thread(EnvFarmService(settings)) as running:
        yield f"127.0.0.1:{running.port}"


@pytest.fixture
def channel(target: str) -> Iterator[grpc.Channel]:
    with sync_channel(target, token=TOKEN) as ch:
        yield ch


@pytest.fixture
def stub(channel: grpc.Channel) -> envfarm_pb2_grpc.EnvFarmServiceStub:
    return envfarm_pb2_grpc.EnvFarmServiceStub(channel)


def _frame(message: Any) -> np.ndarray[Any, Any]:
    if message.observation_pixels.data:
        assert not message.observation.HasField("image")
        return tensor_to_numpy(message.observation_pixels)
    return image_to_array(message.observation.image)


def _local_frames(seed: int, actions: list[str]) -> list[np.ndarray[Any, Any]]:
    env = make("maze_2d", "easy")
    frames = [env.reset(seed=seed)[0]["image"]]
    frames += [env.step(action)[0]["image"] for action in actions]
    return frames


@pytest.mark.parametrize(
    ("encoding", "mime"), [(PNG, "image/png"), (RAW, ""), (WEBP, "image/webp")]
)
def test_every_encoding_delivers_the_rendered_pixels(
    stub: envfarm_pb2_grpc.EnvFarmServiceStub, encoding: envfarm_pb2.ObservationEncoding, mime: str
) -> None:
    created = stub.CreateSession(
        envfarm_pb2.CreateSessionRequest(env_id=ENV, seed=3, observation_encoding=encoding)
    )
    session = created.session.id
    plan = list(stub.Solve(envfarm_pb2.SolveRequest(session_id=session)).actions)[:2]
    expected = _local_frames(3, plan)
    assert created.observation.image.mime_type == mime
    np.testing.assert_array_equal(_frame(created), expected[0])
    for action, want in zip(plan, expected[1:], strict=True):
        result = stub.Step(
            envfarm_pb2.StepRequest(
                session_id=session, action=action, observation_encoding=encoding
            )
        ).result
        assert not result.HasField("observation_changed")  # not asked for
        np.testing.assert_array_equal(_frame(result), want)
    reset = stub.Reset(envfarm_pb2.ResetRequest(session_id=session, observation_encoding=encoding))
    np.testing.assert_array_equal(_frame(reset), expected[0])
    stub.CloseSession(envfarm_pb2.CloseSessionRequest(session_id=session))


def test_unchanged_frames_are_left_out_only_when_asked(
    stub: envfarm_pb2_grpc.EnvFarmServiceStub,
) -> None:
    created = stub.CreateSession(envfarm_pb2.CreateSessionRequest(env_id=ENV, seed=5))
    session = created.session.id
    move = stub.Solve(envfarm_pb2.SolveRequest(session_id=session)).actions[0]

    def step(action: str, omit: bool) -> envfarm_pb2.StepResult:
        request = envfarm_pb2.StepRequest(
            session_id=session, action=action, omit_unchanged_frame=omit
        )
        return stub.Step(request).result

    same = step(BAD_MOVE, True)
    assert same.HasField("observation_changed") and not same.observation_changed
    assert not same.observation.HasField("image") and not same.observation_pixels.data
    assert step(BAD_MOVE, False).observation.HasField("image")  # sent when not asked
    moved = step(move, True)
    assert moved.observation_changed and moved.observation.HasField("image")
    stub.CloseSession(envfarm_pb2.CloseSessionRequest(session_id=session))

    # Text mode has no frame: the field stays unset and the text still comes.
    text = episode_pb2.EpisodeSettings(observation_mode=episode_pb2.OBSERVATION_MODE_TEXT)
    created = stub.CreateSession(envfarm_pb2.CreateSessionRequest(env_id=ENV, settings=text))
    session = created.session.id
    result = step(BAD_MOVE, True)
    assert not result.HasField("observation_changed") and result.observation.text
    stub.CloseSession(envfarm_pb2.CloseSessionRequest(session_id=session))


def _invalid(fn: Any, request: Any) -> str:
    with pytest.raises(grpc.RpcError) as info:
        fn(request)
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    error = errors.from_rpc_error(info.value)
    assert isinstance(error, errors.InvalidArgument)
    return error.violations[0].field


def test_unknown_encoding_and_oversized_raw_batch_name_the_field(
    stub: envfarm_pb2_grpc.EnvFarmServiceStub,
) -> None:
    bad: Any = 99
    create = envfarm_pb2.CreateSessionRequest(env_id=ENV, observation_encoding=bad)
    assert _invalid(stub.CreateSession, create) == "observation_encoding"
    # Checked before the session is looked up: the id need not exist.
    step = envfarm_pb2.StepRequest(session_id="any", action="x", observation_encoding=bad)
    assert _invalid(stub.Step, step) == "observation_encoding"
    reset = envfarm_pb2.ResetRequest(session_id="any", observation_encoding=bad)
    assert _invalid(stub.Reset, reset) == "observation_encoding"
    items = [envfarm_pb2.StepBatchItem(session_id=f"s{i}", action="x") for i in range(2)]
    batch = envfarm_pb2.StepBatchRequest(items=items, observation_encoding=bad)
    assert _invalid(stub.StepBatch, batch) == "observation_encoding"
    # Raw frames of 10 image sessions (~3.2 MiB) do not fit this server's 4 MiB replies;
    # text sessions and unknown ids carry no frame and do not count.
    text = episode_pb2.EpisodeSettings(observation_mode=episode_pb2.OBSERVATION_MODE_TEXT)
    sessions = {
        mode: [
            stub.CreateSession(
                envfarm_pb2.CreateSessionRequest(env_id=ENV, settings=settings)
            ).session.id
            for _ in range(10)
        ]
        for mode, settings in (("image", None), ("text", text))
    }
    for mode, count, fits in (("image", 10, False), ("text", 10, True), ("image", 9, True)):
        ids = [*sessions[mode][:count], "unknown"]
        items = [envfarm_pb2.StepBatchItem(session_id=i, action=BAD_MOVE) for i in ids]
        batch = envfarm_pb2.StepBatchRequest(items=items, observation_encoding=RAW)
        if fits:
            results = stub.StepBatch(batch).results
            assert [r.HasField("result") for r in results] == [True] * (len(ids) - 1) + [False]
        else:
            assert _invalid(stub.StepBatch, batch) == "items"
    for session in sessions["image"] + sessions["text"]:
        stub.CloseSession(envfarm_pb2.CloseSessionRequest(session_id=session))


def test_clients_pick_raw_locally_and_reuse_unchanged_frames(
    channel: grpc.Channel, target: str
) -> None:
    assert best_encoding(target) == RAW
    with RemoteEnv(channel, ENV, seed=7) as env:
        assert env.observation_encoding == RAW
        first, _ = env.reset(seed=7)
        expected = _local_frames(7, [BAD_MOVE])
        np.testing.assert_array_equal(first["image"], expected[0])
        obs, *_ = env.step(BAD_MOVE)  # the server leaves the frame out; the client reuses it
        np.testing.assert_array_equal(obs["image"], expected[1])
    with RemoteVectorEnv(channel, ENV, 3, observation_encoding=WEBP) as vec:
        first_frames = vec.reset(seeds=[0, 1, 2])
        plans = [env.solve() for env in vec.envs]
        observations, *_ = vec.step([plans[0][0], BAD_MOVE, plans[2][0]])
        for i, (seed, action) in enumerate([(0, plans[0][0]), (1, BAD_MOVE), (2, plans[2][0])]):
            np.testing.assert_array_equal(
                observations[i]["image"], _local_frames(seed, [action])[1]
            )
        np.testing.assert_array_equal(observations[1]["image"], first_frames[1]["image"])


def test_finished_episodes_restart_within_the_vector_step(channel: grpc.Channel) -> None:
    """Same-step autoreset: the finished envs' Reset calls (concurrent) replay their
    episodes; the last frame of each is in final_observation."""
    with RemoteVectorEnv(channel, ENV, 3) as vec:
        first = vec.reset(seeds=[0, 1, 2])
        moves = [env.solve()[0] for env in vec.envs]
        vec.step(moves)
        observations, _, terminated, _, infos = vec.step(["('stop',)", BAD_MOVE, "('stop',)"])
        assert terminated.tolist() == [True, False, True]
        for i in (0, 2):
            moved = _local_frames(i, [moves[i]])[1]
            np.testing.assert_array_equal(infos[i]["final_observation"]["image"], moved)
            np.testing.assert_array_equal(observations[i]["image"], first[i]["image"])
            assert vec.envs[i].session.step_index == 0
        assert "final_observation" not in infos[1]
        observations, *_ = vec.step([BAD_MOVE] * 3)  # unchanged frames: the fresh ones reused
        for i in range(3):
            expected = first[i]["image"] if i != 1 else _local_frames(1, [moves[1]])[1]
            np.testing.assert_array_equal(observations[i]["image"], expected)


@pytest.mark.parametrize(
    ("target", "local"),
    [
        ("127.0.0.1:50051", True),
        ("localhost:1", True),
        ("dns:///localhost:50051", True),
        ("ipv4:127.0.0.2:9", True),
        ("[::1]:50051", True),
        ("ipv6:[::1]:50051", True),
        ("unix:/tmp/envfarm.sock", True),
        ("envfarm.gantry.svc:50051", False),
        ("dns:///envfarm:50051", False),
        ("10.0.0.7:50051", False),
        ("[2001:db8::1]:50051", False),
    ],
)
def test_is_local(target: str, local: bool) -> None:
    assert is_local(target) is local
    assert best_encoding(target) == (RAW if local else WEBP)


def test_frame_regions_carry_raw_frames_and_refuse_misuse(
    stub: envfarm_pb2_grpc.EnvFarmServiceStub, channel: grpc.Channel
) -> None:
    region = FrameRegionView.open(stub, 2)
    assert region is not None
    session = stub.CreateSession(envfarm_pb2.CreateSessionRequest(env_id=ENV, seed=5)).session.id
    move = envfarm_pb2.SolveRequest(session_id=session)
    action = stub.Solve(move).actions[0]
    step = envfarm_pb2.StepRequest(
        session_id=session, action=action, observation_encoding=RAW, frame_region=region.id
    )
    result = stub.Step(step).result
    assert result.frame_in_region and not result.observation_pixels.data
    np.testing.assert_array_equal(
        region.frame(0, result.observation_pixels), _local_frames(5, [action])[1]
    )
    # Misuse is refused before any step, naming the field.
    png = envfarm_pb2.StepRequest(session_id=session, action=BAD_MOVE, frame_region=region.id)
    assert _invalid(stub.Step, png) == "observation_encoding"
    items = [envfarm_pb2.StepBatchItem(session_id=f"s{i}", action="x") for i in range(3)]
    batch = envfarm_pb2.StepBatchRequest(
        items=items, observation_encoding=RAW, frame_region=region.id
    )
    assert _invalid(stub.StepBatch, batch) == "items"  # 3 items, 2 slots
    stepped = stub.GetSession(envfarm_pb2.GetSessionRequest(session_id=session)).session
    assert stepped.step_index == 1  # the refused calls took no step
    reset = envfarm_pb2.ResetRequest(
        session_id=session, observation_encoding=RAW, frame_region=region.id, frame_slot=2
    )
    assert _invalid(stub.Reset, reset) == "frame_slot"
    reset.frame_slot = 1
    reply = stub.Reset(reset)
    assert reply.frame_in_region and not reply.observation_pixels.data
    np.testing.assert_array_equal(
        region.frame(1, reply.observation_pixels), _local_frames(5, [])[0]
    )
    assert _invalid(stub.CreateFrameRegion, envfarm_pb2.CreateFrameRegionRequest()) == "slots"
    assert _invalid(stub.DeleteFrameRegion, envfarm_pb2.DeleteFrameRegionRequest()) == "region_id"
    region.close()  # deletes it on the server
    with pytest.raises(grpc.RpcError) as gone:
        stub.Step(step)
    assert gone.value.code() == grpc.StatusCode.NOT_FOUND
    stub.CloseSession(envfarm_pb2.CloseSessionRequest(session_id=session))
    # The clients use a region for raw frames from this host, and none when told not to.
    with (
        RemoteVectorEnv(channel, ENV, 2) as vec,
        RemoteVectorEnv(channel, ENV, 2, shared_memory=False) as plain,
    ):
        assert vec._region is not None and plain._region is None
        vec.reset(seeds=[0, 1])
        plain.reset(seeds=[0, 1])
        actions = [env.solve()[0] for env in vec.envs]
        for a, b in zip(vec.step(actions)[0], plain.step(actions)[0], strict=True):
            np.testing.assert_array_equal(a["image"], b["image"])
