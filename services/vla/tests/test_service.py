"""The vla service through a real gRPC server, the generated stubs and VlaClient."""

from __future__ import annotations

import io
import queue
from collections.abc import Iterator
from typing import Any

import grpc
import numpy as np
import pytest
from PIL import Image

from gantry.core import errors
from gantry.core.client import sync_channel
from gantry.core.codecs import tensor_from_numpy, tensor_to_numpy
from gantry.core.testing.threaded import serve_in_thread
from gantry.proto.common.v1 import media_pb2, tensor_pb2
from gantry.proto.vla.v1 import vla_pb2, vla_pb2_grpc
from gantry.vla.client import ActionQueue, VlaClient
from gantry.vla.service import VlaService
from gantry.vla.settings import VlaSettings

TOKEN = "vla-test-token"
TEXT = "reach the goal position"


@pytest.fixture(scope="module")
def target() -> Iterator[str]:
    settings = VlaSettings(
        host="127.0.0.1",
        port=0,
        metrics_port=0,
        auth_token=TOKEN,
        log_json=False,
        torch_threads=1,
        max_image_pixels=128 * 128,
    )
    with serve_in_thread(VlaService(settings)) as running:
        yield f"127.0.0.1:{running.port}"


@pytest.fixture
def stub(target: str) -> Iterator[vla_pb2_grpc.VlaServiceStub]:
    with sync_channel(target, token=TOKEN) as channel:
        yield vla_pb2_grpc.VlaServiceStub(channel)


def _obs(**changes: Any) -> vla_pb2.RobotObservation:
    image = np.full((64, 64, 3), 120, dtype=np.uint8)
    obs = vla_pb2.RobotObservation(
        cameras=[vla_pb2.CameraFrame(camera="corner", raw=tensor_from_numpy(image))],
        state=tensor_from_numpy(np.array([0.0, 0.6, 0.2, 1.0], dtype=np.float32)),
        instruction=TEXT,
        timestep=3,
    )
    for key, value in changes.items():
        if value is None:
            obs.ClearField(key)
        elif key == "cameras":
            del obs.cameras[:]
            obs.cameras.extend(value)
        else:
            getattr(obs, key).CopyFrom(value) if hasattr(value, "DESCRIPTOR") else setattr(
                obs, key, value
            )
    return obs


def _error(fn: Any, request: Any) -> errors.GantryError:
    with pytest.raises(grpc.RpcError) as info:
        fn(request)
    return errors.from_rpc_error(info.value)


def _png(pixels: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG")
    return buffer.getvalue()


def test_act_returns_a_chunk_repeatable_by_seed(stub: vla_pb2_grpc.VlaServiceStub) -> None:
    info = stub.GetPolicyInfo(vla_pb2.GetPolicyInfoRequest())
    reply = stub.Act(vla_pb2.ActRequest(observation=_obs(), noise_seed=5))
    actions = tensor_to_numpy(reply.actions)
    assert actions.shape == (info.chunk_size, info.action_dim)
    assert actions.dtype == np.float32
    assert np.all(np.abs(actions) <= 1.0)
    assert reply.start_timestep == 3
    assert reply.timing.total.ToNanoseconds() >= reply.timing.inference.ToNanoseconds() > 0
    again = stub.Act(vla_pb2.ActRequest(observation=_obs(), noise_seed=5))
    assert tensor_to_numpy(again.actions).tobytes() == actions.tobytes()
    # The same observation as a PNG gives the same pixels, hence the same chunk.
    png = vla_pb2.CameraFrame(
        camera="corner",
        image=media_pb2.Image(
            data=_png(np.full((64, 64, 3), 120, np.uint8)), mime_type="image/png"
        ),
    )
    encoded = stub.Act(vla_pb2.ActRequest(observation=_obs(cameras=[png]), noise_seed=5))
    assert np.allclose(tensor_to_numpy(encoded.actions), actions)


def test_policy_info_describes_the_contract(stub: vla_pb2_grpc.VlaServiceStub) -> None:
    info = stub.GetPolicyInfo(vla_pb2.GetPolicyInfoRequest())
    assert info.architecture == "twinbrain"
    assert info.state_dim == len(info.state_entries) == 4
    assert [e.name for e in info.state_entries][:3] == ["hand_x", "hand_y", "hand_z"]
    assert all(e.unit for e in info.state_entries)
    assert len(info.action_names) == info.action_dim == len(info.action_semantics.units)
    assert info.action_semantics.mode == vla_pb2.ACTION_MODE_DELTA
    assert (info.action_semantics.range_low, info.action_semantics.range_high) == (-1.0, 1.0)
    assert "closes" in info.action_semantics.gripper
    camera = info.cameras[0]
    assert camera.name == "corner" and camera.width == camera.height == 64 and camera.required
    assert camera.view and camera.orientation
    assert {t.name for t in info.tasks} == {
        "reach-v3",
        "button-press-topdown-v3",
        "drawer-close-v3",
    }
    assert all(t.instruction_templates for t in info.tasks)
    assert "frozen" in info.frozen_model_id and info.backend == "torch-cpu"


def _raw(pixels: np.ndarray) -> vla_pb2.CameraFrame:
    return vla_pb2.CameraFrame(camera="corner", raw=tensor_from_numpy(pixels))


BAD_ACTS = [
    ("empty instruction", {"instruction": "  "}, "observation.instruction"),
    ("missing state", {"state": None}, "observation.state"),
    (
        "NaN state",
        {"state": tensor_from_numpy(np.array([0, np.nan, 0, 0], dtype=np.float32))},
        "observation.state",
    ),
    (
        "inf state",
        {"state": tensor_from_numpy(np.array([0, 0, np.inf, 0], dtype=np.float32))},
        "observation.state",
    ),
    (
        "wrong state dimension",
        {"state": tensor_from_numpy(np.zeros(7, dtype=np.float32))},
        "observation.state.shape",
    ),
    (
        "float64 state",
        {"state": tensor_from_numpy(np.zeros(4, dtype=np.float64))},
        "observation.state.dtype",
    ),
    ("missing camera", {"cameras": []}, "observation.cameras"),
    (
        "unknown camera",
        {
            "cameras": [
                vla_pb2.CameraFrame(
                    camera="wrist", raw=tensor_from_numpy(np.zeros((8, 8, 3), np.uint8))
                )
            ]
        },
        "observation.cameras[0].camera",
    ),
    (
        "float image",
        {"cameras": [_raw(np.zeros((8, 8, 3), np.float32))]},
        "observation.cameras[0].raw.dtype",
    ),
    (
        "grey image",
        {"cameras": [_raw(np.zeros((8, 8), np.uint8))]},
        "observation.cameras[0].raw.shape",
    ),
    (
        "image too large",
        {"cameras": [_raw(np.zeros((200, 200, 3), np.uint8))]},
        "observation.cameras[0].raw.shape",
    ),
    (
        "short raw bytes",
        {
            "cameras": [
                vla_pb2.CameraFrame(
                    camera="corner",
                    raw=tensor_pb2.Tensor(dtype=tensor_pb2.DTYPE_UINT8, shape=[8, 8, 3], data=b"x"),
                )
            ]
        },
        "observation.cameras[0].raw.data",
    ),
    (
        "not an image",
        {
            "cameras": [
                vla_pb2.CameraFrame(camera="corner", image=media_pb2.Image(data=b"GIF89a..."))
            ]
        },
        "observation.cameras[0].image.data",
    ),
    (
        "decompression bomb",
        {
            "cameras": [
                vla_pb2.CameraFrame(
                    camera="corner",
                    image=media_pb2.Image(data=_png(np.zeros((300, 300, 3), np.uint8))),
                )
            ]
        },
        "observation.cameras[0].image.data",
    ),
    ("negative timestep", {"timestep": -1}, "observation.timestep"),
]


@pytest.mark.parametrize(("case", "changes", "field"), BAD_ACTS, ids=[c[0] for c in BAD_ACTS])
def test_bad_observations_are_invalid_argument_naming_the_field(
    stub: vla_pb2_grpc.VlaServiceStub, case: str, changes: dict[str, Any], field: str
) -> None:
    err = _error(stub.Act, vla_pb2.ActRequest(observation=_obs(**changes)))
    assert isinstance(err, errors.InvalidArgument), case
    assert err.violations[0].field == field


@pytest.mark.parametrize("steps", [-1, 10_000])
def test_denoising_steps_out_of_range(stub: vla_pb2_grpc.VlaServiceStub, steps: int) -> None:
    err = _error(stub.Act, vla_pb2.ActRequest(observation=_obs(), num_denoising_steps=steps))
    assert isinstance(err, errors.InvalidArgument)
    assert err.violations[0].field == "num_denoising_steps"


def test_missing_observation(stub: vla_pb2_grpc.VlaServiceStub) -> None:
    err = _error(stub.Act, vla_pb2.ActRequest())
    assert isinstance(err, errors.InvalidArgument)
    assert err.violations[0].field == "observation"


# ---- StreamControl ------------------------------------------------------------------------


class Stream:
    """A StreamControl call driven message by message."""

    def __init__(self, stub: vla_pb2_grpc.VlaServiceStub, config: vla_pb2.StreamConfig) -> None:
        self.requests: queue.Queue[vla_pb2.StreamControlRequest | None] = queue.Queue()
        self.requests.put(vla_pb2.StreamControlRequest(config=config))
        self.call = stub.StreamControl(iter(self.requests.get, None), timeout=60)

    def send(self, **payload: Any) -> vla_pb2.StreamControlResponse:
        self.requests.put(vla_pb2.StreamControlRequest(**payload))
        return next(self.call)

    def close(self) -> list[vla_pb2.StreamControlResponse]:
        self.requests.put(None)
        return list(self.call)


def _frame(sequence: int, **changes: Any) -> vla_pb2.ObservationFrame:
    return vla_pb2.ObservationFrame(sequence=sequence, observation=_obs(**changes), noise_seed=1)


def test_stream_survives_bad_observations_and_resets(stub: vla_pb2_grpc.VlaServiceStub) -> None:
    stream = Stream(stub, vla_pb2.StreamConfig(instruction=TEXT, queue_threshold=0.5))
    first = stream.send(observation=_frame(1, timestep=0))
    assert first.sequence == 1 and first.start_timestep == 0 and not first.HasField("error")
    assert tensor_to_numpy(first.actions).shape == (8, 4)
    # A NaN state: an error event naming the field, and the stream goes on.
    bad = stream.send(
        observation=_frame(2, state=tensor_from_numpy(np.array([np.nan] * 4, np.float32)))
    )
    assert bad.sequence == 2 and bad.HasField("error") and not bad.HasField("actions")
    err = errors.error_from_status(bad.error.status)
    assert isinstance(err, errors.InvalidArgument)
    assert err.violations[0].field == "observation.observation.state"
    # Out of order: rejected, the stream goes on.
    stale = stream.send(observation=_frame(2))
    assert stale.HasField("error")
    assert errors.error_from_status(stale.error.status).violations[0].field == (  # type: ignore[attr-defined]
        "observation.sequence"
    )
    # The config's instruction stands in for an empty one.
    ok = stream.send(observation=_frame(3, instruction="", timestep=4))
    assert ok.sequence == 3 and ok.start_timestep == 4 and ok.episode == 0
    ack = stream.send(reset=vla_pb2.EpisodeReset(instruction="close the drawer"))
    assert ack.reset_done and ack.episode == 1
    after = stream.send(observation=_frame(4, timestep=0))
    assert after.episode == 1 and after.sequence == 4 and not after.HasField("error")
    assert stream.close() == []


@pytest.mark.parametrize(
    ("config", "field"),
    [
        (vla_pb2.StreamConfig(queue_threshold=1.5), "config.queue_threshold"),
        (vla_pb2.StreamConfig(blend_weight=-0.1), "config.blend_weight"),
        (vla_pb2.StreamConfig(control_hz=-1), "config.control_hz"),
        (vla_pb2.StreamConfig(control_hz=float("nan")), "config.control_hz"),
        (vla_pb2.StreamConfig(queue_threshold=float("nan")), "config.queue_threshold"),
        (vla_pb2.StreamConfig(num_denoising_steps=-2), "config.num_denoising_steps"),
    ],
)
def test_bad_stream_config_ends_the_stream(
    stub: vla_pb2_grpc.VlaServiceStub, config: vla_pb2.StreamConfig, field: str
) -> None:
    call = stub.StreamControl(iter([vla_pb2.StreamControlRequest(config=config)]), timeout=30)
    with pytest.raises(grpc.RpcError) as info:
        list(call)
    err = errors.from_rpc_error(info.value)
    assert isinstance(err, errors.InvalidArgument)
    assert err.violations[0].field == field


def test_stream_must_start_with_a_config(stub: vla_pb2_grpc.VlaServiceStub) -> None:
    call = stub.StreamControl(
        iter([vla_pb2.StreamControlRequest(observation=_frame(1))]), timeout=30
    )
    with pytest.raises(grpc.RpcError) as info:
        list(call)
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT


def test_action_queue_blends_and_drops_late_actions() -> None:
    actions = ActionQueue(vla_pb2.BLEND_MODE_WEIGHTED_AVERAGE, 0.25)
    assert actions.merge(0, np.ones((4, 2), np.float32), now=0)
    # Starts at 2, executed up to 3: its first action is late, the next two overlap.
    assert actions.merge(2, np.full((4, 2), 5.0, np.float32), now=3)
    assert np.allclose(actions.actions[3], 0.25 * 5 + 0.75 * 1)
    assert np.allclose(actions.actions[5], 5.0)
    assert np.allclose(actions.actions[2], 1.0)  # the new chunk's late action is dropped
    assert not actions.merge(0, np.ones((2, 2), np.float32), now=3)  # wholly late
    latest = ActionQueue(vla_pb2.BLEND_MODE_LATEST, 0.5)
    latest.merge(0, np.zeros((3, 1), np.float32), now=0)
    latest.merge(1, np.ones((3, 1), np.float32), now=1)
    assert latest.pop(1) == 1.0 and 0 not in latest.actions


class _Env:
    """A tiny gymnasium-style env: the policy's observation format, success at step 14."""

    def __init__(self, action_dim: int = 4) -> None:
        import gymnasium as gym

        self.action_space = gym.spaces.Box(-1.0, 1.0, (action_dim,), dtype=np.float32)
        self.instruction = TEXT
        self.max_steps = 20
        self.t = 0
        self.taken: list[np.ndarray] = []

    def _obs(self) -> dict[str, np.ndarray]:
        return {
            "image": np.full((64, 64, 3), 10 * self.t % 255, np.uint8),
            "state": np.array([0.0, 0.6, 0.2, self.t / 10], np.float32),
        }

    def reset(self) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        self.t = 0
        return self._obs(), {}

    def step(self, action: np.ndarray) -> tuple[Any, float, bool, bool, dict[str, Any]]:
        self.taken.append(action)
        self.t += 1
        return self._obs(), 0.0, False, self.t >= self.max_steps, {"success": self.t == 14}


def test_client_control_runs_an_episode_through_the_stream(target: str) -> None:
    client = VlaClient(target, token=TOKEN)
    env = _Env()
    result = client.control(env)
    assert result.success and result.steps == 14 and result.errors == []
    # Half-chunk threshold with 8-step chunks: a new observation whenever < 4 remain, so
    # 14 steps need at least 2 chunks and at most one per step after the first.
    assert 2 <= result.chunks <= 11
    assert len(result.chunk_latency_s) == result.chunks
    assert all(np.all(np.abs(a) <= 1.0) for a in env.taken)
    with pytest.raises(ValueError, match="policy's are"):
        client.control(_Env(action_dim=7))
    client.close()


class _BrokenEnv(_Env):
    def _obs(self) -> dict[str, np.ndarray]:
        obs = super()._obs()
        obs["state"][1] = np.nan
        return obs


def test_client_gives_up_when_every_observation_is_rejected(target: str) -> None:
    client = VlaClient(target, token=TOKEN)
    with pytest.raises(errors.InvalidArgument, match="NaN"):
        client.control(_BrokenEnv())
    client.close()


def test_stream_answers_the_newest_observation_in_order(
    stub: vla_pb2_grpc.VlaServiceStub,
) -> None:
    requests = [vla_pb2.StreamControlRequest(config=vla_pb2.StreamConfig(instruction=TEXT))]
    requests += [
        vla_pb2.StreamControlRequest(observation=_frame(seq, timestep=seq)) for seq in range(1, 7)
    ]
    answers = list(stub.StreamControl(iter(requests), timeout=60))
    sequences = [a.sequence for a in answers]
    # Older observations still waiting may be skipped, never answered out of order, and
    # the newest one is always answered, starting at its own timestep.
    assert sequences == sorted(set(sequences)) and sequences[-1] == 6
    assert all(a.start_timestep == a.sequence and not a.HasField("error") for a in answers)
