"""The OIP adapter (gantry.core.inference) through a real server and tritonclient.

A toy model behind `ProbeService.inference_models()` exercises the protocol: typed and
raw tensors (numbers, FP16, BYTES), requested outputs, parameters, the raw/typed
response form, readiness, auth, and every INVALID_ARGUMENT/NOT_FOUND rule. The client
runs in .tools/oip-venv (`make oip-client`).
"""

from __future__ import annotations

import asyncio
import struct
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import grpc
import numpy as np
import pytest

from gantry.core import errors
from gantry.core.client import aio_channel, sync_channel
from gantry.core.errors import InvalidArgument
from gantry.core.inference import (
    SERVICE_NAME,
    InferCall,
    InferenceModel,
    ParameterSpec,
    TensorSpec,
    decode_raw_bytes,
    encode_raw_bytes,
    server_version,
)
from gantry.core.interceptor import CallGate
from gantry.core.ports import free_port
from gantry.core.server import start_server
from gantry.core.testing.oip import OipClient, OipError
from gantry.core.testing.probe import TEST_TOKEN, ProbeService, ProbeSettings
from gantry.core.testing.threaded import serve_in_thread
from gantry.proto.inference import grpc_predict_v2_pb2 as oip
from gantry.proto.inference import grpc_predict_v2_pb2_grpc as oip_grpc


class Scale(InferenceModel):
    """y = x * factor (FP32), the row sums (FP64), and names upper-cased (BYTES)."""

    def __init__(self) -> None:
        super().__init__("scale", version="3")
        self.calls: list[InferCall] = []

    @property
    def inputs(self) -> Sequence[TensorSpec]:
        return [
            TensorSpec("x", "FP32", (-1, 3), max_elements=30),
            TensorSpec("names", "BYTES", (-1,), max_element_bytes=16, max_bytes=40, optional=True),
            TensorSpec("half", "FP16", (2,), optional=True),
        ]

    @property
    def outputs(self) -> Sequence[TensorSpec]:
        return [
            TensorSpec("y", "FP32", (-1, 3)),
            TensorSpec("total", "FP64", (-1,)),
            TensorSpec("upper", "BYTES", (-1,), optional=True),
            TensorSpec("half_out", "FP16", (2,), optional=True),
        ]

    @property
    def parameters(self) -> Mapping[str, ParameterSpec]:
        return {"factor": ParameterSpec(float, "multiplier"), "tag": ParameterSpec(str)}

    async def infer(self, call: InferCall) -> Mapping[str, Any]:
        self.calls.append(call)
        x = call.inputs["x"]
        factor = float(call.parameters.get("factor", 2.0))
        out: dict[str, Any] = {"y": x * factor, "total": x.astype(np.float64).sum(axis=1)}
        if "names" in call.inputs:
            out["upper"] = [n.decode().upper() for n in call.inputs["names"]]
        if "half" in call.inputs:
            out["half_out"] = call.inputs["half"] * 2
        return out


class ScaleService(ProbeService):
    model = Scale()

    def inference_models(self) -> Sequence[InferenceModel]:
        return [self.model]


@pytest.fixture(scope="module")
def target() -> Iterator[str]:
    settings = ProbeSettings(
        host="127.0.0.1", port=0, metrics_port=0, auth_token=TEST_TOKEN, log_json=False
    )
    with serve_in_thread(ScaleService(settings)) as running:
        yield f"127.0.0.1:{running.port}"


@pytest.fixture(scope="module")
def client(target: str) -> Iterator[OipClient]:
    with OipClient(target, TEST_TOKEN) as opened:
        yield opened


X = [[1.0, 2.0, 3.0], [4.0, 5.0, 6.5]]


def _x(data: list[list[float]] = X) -> dict[str, Any]:
    return {"name": "x", "datatype": "FP32", "shape": [len(data), 3], "data": data}


def _error(client: OipClient, op: str, **args: Any) -> OipError:
    with pytest.raises(OipError) as info:
        client.call(op, **args)
    return info.value


# ---- health and metadata -------------------------------------------------------------------


def test_server_live_ready_and_metadata(client: OipClient) -> None:
    assert client.call("server_live") is True
    assert client.call("server_ready") is True
    assert client.call("model_ready", model="scale") is True
    assert client.call("model_ready", model="scale", version="3") is True
    meta = client.call("server_metadata")
    assert meta["name"] == "gantry"
    assert meta["version"] == server_version() != "0+unknown"


def test_model_metadata(client: OipClient) -> None:
    meta = client.call("model_metadata", model="scale")
    assert meta["name"] == "scale"
    assert meta["versions"] == ["3"]
    assert meta["platform"] == "gantry"
    inputs = {t["name"]: (t["datatype"], t["shape"]) for t in meta["inputs"]}
    # as_json renders int64 as strings (protobuf JSON)
    assert inputs["x"] == ("FP32", ["-1", "3"])
    assert inputs["names"] == ("BYTES", ["-1"])
    assert [t["name"] for t in meta["outputs"]] == ["y", "total", "upper", "half_out"]


def test_unknown_model_or_version_is_not_found(client: OipClient) -> None:
    for op in ("model_metadata", "model_ready"):
        error = _error(client, op, model="nope")
        assert error.status == "StatusCode.NOT_FOUND"
        assert "nope" in error.message and "scale" in error.message
    error = _error(client, "model_metadata", model="scale", version="9")
    assert error.status == "StatusCode.NOT_FOUND" and "version" in error.message
    error = _error(client, "infer", model="nope", inputs=[_x()])
    assert error.status == "StatusCode.NOT_FOUND" and "model_name" in error.message


# ---- inference -----------------------------------------------------------------------------


def test_raw_tensors_come_back_raw(client: OipClient) -> None:
    result = client.call(
        "infer",
        model="scale",
        id="req-1",
        inputs=[_x(), {"name": "names", "datatype": "BYTES", "shape": [2], "data": ["ab", "ĉd"]}],
        outputs=["y", "total", "upper"],
        parameters={"factor": 0.5, "tag": "t"},
    )
    assert result["id"] == "req-1"
    assert (result["model_name"], result["model_version"]) == ("scale", "3")
    assert result["raw_outputs"] == 3
    y = result["outputs"]["y"]
    assert y["datatype"] == "FP32" and y["shape"] == [2, 3]
    np.testing.assert_allclose(y["data"], np.array(X).reshape(-1) * 0.5)
    np.testing.assert_allclose(result["outputs"]["total"]["data"], [6.0, 15.5])
    assert result["outputs"]["upper"]["data"] == ["AB", "ĈD"]
    call = ScaleService.model.calls[-1]
    assert call.parameters == {"factor": 0.5, "tag": "t"}
    assert call.outputs == {"y", "total", "upper"}
    assert call.inputs["names"].tolist() == [b"ab", "ĉd".encode()]


def test_typed_contents_come_back_typed(client: OipClient) -> None:
    result = client.call(
        "infer_typed",
        model="scale",
        inputs=[_x(), {"name": "names", "datatype": "BYTES", "shape": [1], "data": ["xy"]}],
        parameters={"factor": 3},  # an int64 parameter is accepted as a float
    )
    assert result["raw_outputs"] == 0
    np.testing.assert_allclose(result["outputs"]["y"]["data"], np.array(X).reshape(-1) * 3)
    assert result["outputs"]["total"]["data"] == [6.0, 15.5]
    assert set(result["outputs"]) == {"y", "total"}  # optional outputs only when asked


def test_binary_data_parameter_chooses_the_form(client: OipClient) -> None:
    raw = client.call(
        "infer_typed", model="scale", inputs=[_x()], outputs={"y": {"binary_data": True}}
    )
    assert raw["raw_outputs"] == 1
    np.testing.assert_allclose(raw["outputs"]["y"]["data"], np.array(X).reshape(-1) * 2)
    error = _error(
        client,
        "infer_typed",
        model="scale",
        inputs=[_x()],
        outputs={"y": {"binary_data": True}, "total": {"binary_data": False}},
    )
    assert error.status == "StatusCode.INVALID_ARGUMENT" and "binary_data" in error.message


def test_fp16_travels_raw(client: OipClient) -> None:
    result = client.call(
        "infer",
        model="scale",
        inputs=[_x(), {"name": "half", "datatype": "FP16", "shape": [2], "data": [1.5, -2.0]}],
        outputs=["half_out"],
    )
    assert result["outputs"]["half_out"]["datatype"] == "FP16"
    assert result["outputs"]["half_out"]["data"] == [3.0, -4.0]


def test_auth_applies_to_oip(client: OipClient) -> None:
    for token in ("", "wrong"):
        error = _error(client, "server_ready", token=token)
        assert error.status == "StatusCode.UNAUTHENTICATED"
        error = _error(client, "infer", model="scale", inputs=[_x()], token=token)
        assert error.status == "StatusCode.UNAUTHENTICATED"


@pytest.mark.parametrize(
    ("call", "field"),
    [
        ({"inputs": [{**_x(), "datatype": "FP64"}]}, "inputs[0].datatype"),
        ({"inputs": [{**_x(), "shape": [3, 2]}]}, "inputs[0].shape[1]"),
        ({"inputs": [{**_x(), "shape": [6]}]}, "inputs[0].shape"),
        ({"inputs": [_x([[1.0, 2.0, 3.0]] * 11)]}, "inputs[0].shape"),  # 33 > 30 elements
        (
            {"inputs": [{"name": "names", "datatype": "BYTES", "shape": [1], "data": ["a"]}]},
            "inputs",
        ),
        ({"inputs": [_x(), {**_x(), "name": "y"}]}, "inputs[1].name"),
        ({"inputs": [_x(), _x()]}, "inputs[1].name"),
        ({"inputs": [{**_x(), "data": [1.0, 2.0]}]}, "inputs[0].contents.fp32_contents"),
        ({"inputs": [{**_x(), "field": "fp64_contents"}]}, "inputs[0].contents.fp64_contents"),
        ({"inputs": [_x()], "raw_hex": ["00" * 24]}, "inputs[0].contents"),
        ({"inputs": [{**_x(), "data": None}], "raw_hex": ["00" * 20]}, "raw_input_contents[0]"),
        ({"inputs": [{**_x(), "data": None}], "raw_hex": ["00" * 24, "00"]}, "raw_input_contents"),
        (
            {
                "inputs": [
                    _x(),
                    {
                        "name": "half",
                        "datatype": "FP16",
                        "shape": [2],
                        "data": [1.0, 2.0],
                        "field": "fp32_contents",
                    },
                ]
            },
            "inputs[1].contents.fp32_contents",
        ),
        ({"inputs": [_x()], "parameters": {"factor": "big"}}, "parameters.factor"),
        ({"inputs": [_x()], "parameters": {"speed": 1}}, "parameters.speed"),
        ({"inputs": [_x()], "outputs": {"nope": {}}}, "outputs[0].name"),
        ({"inputs": [_x()], "outputs": {"y": {"classification": True}}}, "outputs[0].parameters"),
    ],
)
def test_bad_requests_name_the_field(client: OipClient, call: dict[str, Any], field: str) -> None:
    inputs = [{k: v for k, v in i.items() if v is not None} for i in call.pop("inputs")]
    error = _error(client, "infer_typed", model="scale", inputs=inputs, **call)
    assert error.status == "StatusCode.INVALID_ARGUMENT", error
    assert error.message.startswith(field), error.message


def _names(*items: bytes, prefix_lengths: Sequence[int] | None = None) -> str:
    lengths = prefix_lengths or [len(i) for i in items]
    return b"".join(struct.pack("<I", n) + i for n, i in zip(lengths, items, strict=True)).hex()


@pytest.mark.parametrize(
    ("raw", "count", "field"),
    [
        (_names(b"ab", b"cd", prefix_lengths=[2, 9]), 2, "raw_input_contents[1][1]"),
        (_names(b"ab"), 2, "raw_input_contents[1]"),  # one element for shape [2]
        (_names(b"ab", b"cd") + "00", 2, "raw_input_contents[1]"),  # trailing byte
        (_names(b"a" * 17), 1, "raw_input_contents[1][0]"),  # element over 16 bytes
        (_names(*[b"a" * 15] * 3), 3, "raw_input_contents[1]"),  # 45 > 40 bytes in total
    ],
)
def test_raw_bytes_framing_is_checked(client: OipClient, raw: str, count: int, field: str) -> None:
    x = np.array(X, dtype="<f4").tobytes().hex()
    error = _error(
        client,
        "infer_typed",
        model="scale",
        inputs=[
            {"name": "x", "datatype": "FP32", "shape": [2, 3]},
            {"name": "names", "datatype": "BYTES", "shape": [count]},
        ],
        raw_hex=[x, raw],
    )
    assert error.status == "StatusCode.INVALID_ARGUMENT"
    assert error.message.startswith(field), error.message


# ---- registration and readiness ------------------------------------------------------------


def test_no_models_no_inference_service() -> None:
    settings = ProbeSettings(
        host="127.0.0.1", port=0, metrics_port=0, auth_token=TEST_TOKEN, log_json=False
    )
    with serve_in_thread(ProbeService(settings)) as running:
        assert SERVICE_NAME not in running.service_names
        with sync_channel(f"127.0.0.1:{running.port}", token=TEST_TOKEN) as channel:
            stub = oip_grpc.GRPCInferenceServiceStub(channel)
            with pytest.raises(grpc.RpcError) as info:
                stub.ServerLive(oip.ServerLiveRequest(), timeout=10)
            assert info.value.code() == grpc.StatusCode.UNIMPLEMENTED


async def test_readiness_follows_the_gate() -> None:
    from gantry.core.inference import InferenceServicer

    gate = CallGate()
    servicer = InferenceServicer([Scale()], gate)
    assert not (await servicer.ServerReady(oip.ServerReadyRequest(), None)).ready
    assert (await servicer.ServerLive(oip.ServerLiveRequest(), None)).live
    gate.ready.set()
    assert (await servicer.ServerReady(oip.ServerReadyRequest(), None)).ready
    assert (await servicer.ModelReady(oip.ModelReadyRequest(name="scale"), None)).ready
    gate.draining.set()
    assert not (await servicer.ServerReady(oip.ServerReadyRequest(), None)).ready
    assert not (await servicer.ModelReady(oip.ModelReadyRequest(name="scale"), None)).ready


def test_raw_bytes_round_trip() -> None:
    spec = TensorSpec("s", "BYTES", (-1,))
    items = [b"", b"a", "é".encode(), b"\x00" * 5]
    assert decode_raw_bytes(encode_raw_bytes(items), 4, spec, "raw") == items
    with pytest.raises(InvalidArgument):
        decode_raw_bytes(b"\xff\xff\xff\xff", 1, spec, "raw")  # 4 GiB declared


# ---- while models load -------------------------------------------------------------------


async def test_probes_report_not_ready_while_models_load() -> None:
    """KServe/Triton clients poll ServerReady during a load: it answers false, not UNAVAILABLE;
    ServerLive is true; inference itself is refused by the core gate (NOT_READY)."""
    loading = asyncio.Event()

    class SlowLoad(ScaleService):
        async def start(self) -> None:
            await loading.wait()

    port = free_port()
    settings = ProbeSettings(
        host="127.0.0.1", port=port, metrics_port=0, auth_token=TEST_TOKEN, log_json=False
    )
    starting = asyncio.ensure_future(start_server(SlowLoad(settings)))
    async with aio_channel(f"127.0.0.1:{port}", token=TEST_TOKEN, retry=None) as channel:
        stub = oip_grpc.GRPCInferenceServiceStub(channel)
        live = await stub.ServerLive(oip.ServerLiveRequest(), timeout=10, wait_for_ready=True)
        ready = await stub.ServerReady(oip.ServerReadyRequest(), timeout=10)
        model = await stub.ModelReady(oip.ModelReadyRequest(name="scale"), timeout=10)
        assert (live.live, ready.ready, model.ready) == (True, False, False)
        with pytest.raises(grpc.aio.AioRpcError) as info:
            await stub.ModelInfer(oip.ModelInferRequest(model_name="scale"), timeout=10)
        assert info.value.code() == grpc.StatusCode.UNAVAILABLE
        assert errors.from_rpc_error(info.value).reason == "NOT_READY"
        loading.set()
        running = await asyncio.wait_for(starting, 30)
        try:
            ready = await stub.ServerReady(oip.ServerReadyRequest(), timeout=10)
            assert ready.ready is True
        finally:
            await running.stop(grace_s=0)
