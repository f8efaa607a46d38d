"""Retrieval's encoders over KServe's Open Inference Protocol, called with tritonclient.

The client runs in .tools/oip-venv (`make oip-client`) against a real retrieval server
with two tiny encoders; the same vectors must come back as from Embed, the same limits
must hold, and auth applies.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest

from gantry.core.client import sync_channel
from gantry.core.codecs import tensor_to_numpy
from gantry.core.testing.oip import OipClient, OipError
from gantry.core.testing.threaded import serve_in_thread
from gantry.proto.retrieval.v1 import retrieval_pb2 as pb
from gantry.proto.retrieval.v1 import retrieval_pb2_grpc
from gantry.retrieval.service import RetrievalService
from gantry.retrieval.settings import EncoderSpec, RetrievalSettings

from .tiny_models import tiny_encoder

TOKEN = "retrieval-oip-token"
TEXTS = ["hello world", "a longer second text", "é"]


@pytest.fixture(scope="module")
def target(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    path = str(tiny_encoder())
    settings = RetrievalSettings(
        host="127.0.0.1",
        port=0,
        metrics_port=0,
        auth_token=TOKEN,
        log_json=False,
        qdrant_path=":memory:",
        data_dir=tmp_path_factory.mktemp("oip"),
        encoders=[
            EncoderSpec(id="tiny", path=path),
            EncoderSpec(id="tiny-q", path=path, query_prefix="query: "),
        ],
        default_encoder_id="tiny",
        device="cpu",
        max_batch_texts=4,
        max_text_bytes=100,
        max_request_text_bytes=250,
    )
    with serve_in_thread(RetrievalService(settings)) as running:
        yield f"127.0.0.1:{running.port}"


@pytest.fixture(scope="module")
def client(target: str) -> Iterator[OipClient]:
    with OipClient(target, TOKEN) as opened:
        yield opened


def _embed(target: str, texts: list[str], **request: Any) -> Any:
    with sync_channel(target, token=TOKEN) as channel:
        stub = retrieval_pb2_grpc.RetrievalServiceStub(channel)
        reply = stub.Embed(pb.EmbedRequest(texts=texts, **request))
    return tensor_to_numpy(reply.embeddings)


def _text(texts: list[str]) -> dict[str, Any]:
    return {"name": "text", "datatype": "BYTES", "shape": [len(texts)], "data": texts}


def test_each_encoder_is_a_ready_model(client: OipClient) -> None:
    assert client.call("server_live") and client.call("server_ready")
    for name in ("tiny", "tiny-q"):
        assert client.call("model_ready", model=name)
        meta = client.call("model_metadata", model=name)
        assert meta["inputs"] == [{"name": "text", "datatype": "BYTES", "shape": ["-1"]}]
        (output,) = meta["outputs"]
        assert output["name"] == "embedding" and output["datatype"] == "FP32"
        assert output["shape"][0] == "-1" and int(output["shape"][1]) > 0
    with pytest.raises(OipError) as info:
        client.call("model_metadata", model="bm25")  # the sparse encoder is not an OIP model
    assert info.value.status == "StatusCode.NOT_FOUND"


def test_raw_embeddings_match_embed(client: OipClient, target: str) -> None:
    result = client.call(
        "infer", model="tiny", inputs=[_text(TEXTS)], parameters={"normalize": True}
    )
    (name,) = result["outputs"]
    output = result["outputs"][name]
    assert name == "embedding" and result["raw_outputs"] == 1
    vectors = np.array(output["data"], dtype=np.float32).reshape(output["shape"])
    expected = _embed(target, TEXTS, encoder_id="tiny", normalize=True)
    assert vectors.shape == expected.shape == (3, expected.shape[1])
    np.testing.assert_allclose(vectors, expected, rtol=1e-5, atol=1e-6)
    assert np.linalg.norm(vectors, axis=1) == pytest.approx([1.0] * 3, abs=1e-5)


def test_typed_request_and_input_type(client: OipClient, target: str) -> None:
    query = client.call(
        "infer_typed",
        model="tiny-q",
        inputs=[_text(TEXTS[:1])],
        parameters={"input_type": "query"},
    )
    assert query["raw_outputs"] == 0
    vector = np.array(query["outputs"]["embedding"]["data"], dtype=np.float32)
    expected = _embed(target, TEXTS[:1], encoder_id="tiny-q", input_type=pb.INPUT_TYPE_QUERY)
    np.testing.assert_allclose(vector, expected.reshape(-1), rtol=1e-5, atol=1e-6)
    document = client.call("infer_typed", model="tiny-q", inputs=[_text(TEXTS[:1])])
    assert not np.allclose(document["outputs"]["embedding"]["data"], vector)  # no prefix


@pytest.mark.parametrize(
    ("call", "field"),
    [
        ({"inputs": [_text(["a"] * 5)]}, "inputs[0].shape"),  # max_batch_texts = 4
        ({"inputs": [_text(["a" * 101])]}, "inputs[0].contents.bytes_contents[0]"),
        ({"inputs": [_text(["a" * 100] * 3)]}, "inputs[0].contents.bytes_contents"),
        ({"inputs": [_text([])]}, "inputs[text].shape"),
        ({"inputs": [{**_text(["a"]), "datatype": "FP32", "data": None}]}, "inputs[0].datatype"),
        (
            {"inputs": [_text(["a"])], "parameters": {"input_type": "passage"}},
            "parameters.input_type",
        ),
        ({"inputs": [_text(["a"])], "parameters": {"normalize": 1}}, "parameters.normalize"),
        (
            {
                "inputs": [{"name": "text", "datatype": "BYTES", "shape": [1]}],
                "raw_hex": ["01000000ff"],
            },
            "inputs[text][0]",
        ),
    ],
)
def test_limits_and_bad_input(client: OipClient, call: dict[str, Any], field: str) -> None:
    call["inputs"] = [{k: v for k, v in i.items() if v is not None} for i in call["inputs"]]
    with pytest.raises(OipError) as info:
        client.call("infer_typed", model="tiny", **call)
    assert info.value.status == "StatusCode.INVALID_ARGUMENT"
    assert info.value.message.startswith(field), info.value.message


def test_auth(client: OipClient) -> None:
    with pytest.raises(OipError) as info:
        client.call("infer", model="tiny", inputs=[_text(["a"])], token="")
    assert info.value.status == "StatusCode.UNAUTHENTICATED"


def test_unknown_model_lists_the_encoders(client: OipClient) -> None:
    with pytest.raises(OipError) as info:
        client.call("infer", model="nope", inputs=[_text(["a"])])
    assert info.value.status == "StatusCode.NOT_FOUND"
    assert "tiny, tiny-q" in info.value.message
