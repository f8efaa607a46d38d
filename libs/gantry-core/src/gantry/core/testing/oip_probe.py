"""A real OIP client for the tests: tritonclient's gRPC client behind a JSON-lines pipe.

Runs in its own virtualenv (`make oip-client` builds .tools/oip-venv), because
tritonclient pins protobuf < 7 and Gantry runs protobuf 7; `gantry.core.testing.oip`
starts it as a subprocess. It imports nothing from Gantry: every call goes through
tritonclient's own generated stubs, so a passing test shows wire compatibility.

Each stdin line is one JSON call {"op": ..., ...}; each stdout line answers it with
{"result": ...} or {"error": {"status": "StatusCode.X", "message": ...}}.
"""

from __future__ import annotations

import json
import struct
import sys
from typing import Any

import grpc
import numpy as np
import tritonclient.grpc as triton  # type: ignore[import-not-found]
from google.protobuf import json_format
from tritonclient.grpc import service_pb2  # type: ignore[import-not-found]
from tritonclient.grpc._utils import raise_error_grpc  # type: ignore[import-not-found]
from tritonclient.utils import (  # type: ignore[import-not-found]
    InferenceServerException,
    triton_to_np_dtype,
)

CONTENTS = {
    "BOOL": "bool_contents",
    "INT32": "int_contents",
    "INT64": "int64_contents",
    "FP32": "fp32_contents",
    "FP64": "fp64_contents",
    "BYTES": "bytes_contents",
}


def _numpy(spec: dict[str, Any]) -> Any:
    if spec["datatype"] == "BYTES":
        return np.array([s.encode() for s in spec["data"]], dtype=object).reshape(spec["shape"])
    dtype = triton_to_np_dtype(spec["datatype"])
    return np.array(spec["data"], dtype=dtype).reshape(spec["shape"])


def _plain(array: Any) -> Any:
    if array is None:
        return None
    if array.dtype == object or array.dtype.kind == "S":
        return [x.decode("utf-8", "replace") for x in array.reshape(-1)]
    return array.reshape(-1).tolist()


def _bytes_raw(items: list[str]) -> bytes:
    return b"".join(struct.pack("<I", len(s.encode())) + s.encode() for s in items)


class Probe:
    def __init__(self) -> None:
        self.client: Any = None
        self.headers: dict[str, str] = {}

    def connect(self, target: str, token: str | None) -> str:
        self.client = triton.InferenceServerClient(url=target)
        self.headers = {"authorization": f"Bearer {token}"} if token else {}
        return "ok"

    def _headers(self, call: dict[str, Any]) -> dict[str, str]:
        if "token" in call:
            return {"authorization": f"Bearer {call['token']}"} if call["token"] else {}
        return self.headers

    def run(self, call: dict[str, Any]) -> Any:
        op, headers = call["op"], self._headers(call)
        c = self.client
        if op == "connect":
            return self.connect(call["target"], call.get("token"))
        if op == "server_live":
            return c.is_server_live(headers=headers)
        if op == "server_ready":
            return c.is_server_ready(headers=headers)
        if op == "model_ready":
            return c.is_model_ready(call["model"], call.get("version", ""), headers=headers)
        if op == "server_metadata":
            return c.get_server_metadata(headers=headers, as_json=True)
        if op == "model_metadata":
            return c.get_model_metadata(
                call["model"], call.get("version", ""), headers=headers, as_json=True
            )
        if op == "infer":
            return self.infer(call, headers)
        if op == "infer_typed":
            return self.infer_typed(call, headers)
        raise ValueError(f"unknown op {op!r}")

    def infer(self, call: dict[str, Any], headers: dict[str, str]) -> Any:
        """The client's own path: set_data_from_numpy sends raw_input_contents."""
        inputs = []
        for spec in call["inputs"]:
            tensor = triton.InferInput(spec["name"], spec["shape"], spec["datatype"])
            tensor.set_data_from_numpy(
                _numpy({**spec, "datatype": spec.get("numpy", spec["datatype"])})
            )
            inputs.append(tensor)
        outputs = (
            [triton.InferRequestedOutput(n) for n in call["outputs"]]
            if call.get("outputs")
            else None
        )
        result = self.client.infer(
            call["model"],
            inputs,
            outputs=outputs,
            request_id=call.get("id", ""),
            parameters=call.get("parameters") or None,
            headers=headers,
        )
        response = result.get_response()
        return {
            "id": response.id,
            "model_name": response.model_name,
            "model_version": response.model_version,
            "raw_outputs": len(response.raw_output_contents),
            "outputs": {
                o.name: {
                    "datatype": o.datatype,
                    "shape": list(o.shape),
                    "data": _plain(result.as_numpy(o.name)),
                }
                for o in response.outputs
            },
        }

    def infer_typed(self, call: dict[str, Any], headers: dict[str, str]) -> Any:
        """A hand-built request on tritonclient's stub: typed `contents`, or raw bytes
        given as hex (for malformed-request checks)."""
        request = service_pb2.ModelInferRequest(model_name=call["model"], id=call.get("id", ""))
        for spec in call["inputs"]:
            tensor = request.inputs.add(
                name=spec["name"], datatype=spec["datatype"], shape=spec["shape"]
            )
            if "data" in spec:
                values = spec["data"]
                if spec["datatype"] == "BYTES":
                    values = [v.encode() for v in values]
                else:
                    values = np.array(values).reshape(-1).tolist()
                getattr(tensor.contents, spec.get("field") or CONTENTS[spec["datatype"]]).extend(
                    values
                )
        for raw in call.get("raw_hex", []):
            request.raw_input_contents.append(bytes.fromhex(raw))
        for raw in call.get("raw_strings", []):
            request.raw_input_contents.append(_bytes_raw(raw))
        for name, params in call.get("outputs", {}).items():
            output = request.outputs.add(name=name)
            for key, value in params.items():
                output.parameters[key].bool_param = value
        for key, value in (call.get("parameters") or {}).items():
            if isinstance(value, bool):
                request.parameters[key].bool_param = value
            elif isinstance(value, int):
                request.parameters[key].int64_param = value
            elif isinstance(value, float):
                request.parameters[key].double_param = value
            else:
                request.parameters[key].string_param = value
        metadata = tuple(headers.items())
        try:
            response = self.client._client_stub.ModelInfer(request, metadata=metadata, timeout=60)
        except grpc.RpcError as exc:  # mapped the way the client maps its own calls
            raise_error_grpc(exc)
        outputs = {}
        for index, o in enumerate(response.outputs):
            if index < len(response.raw_output_contents):
                data = _plain(triton.InferResult(response).as_numpy(o.name))
            else:
                field = CONTENTS.get(o.datatype, "")
                values = list(getattr(o.contents, field)) if field else []
                data = [v.decode() for v in values] if o.datatype == "BYTES" else values
            outputs[o.name] = {"datatype": o.datatype, "shape": list(o.shape), "data": data}
        return {
            "id": response.id,
            "raw_outputs": len(response.raw_output_contents),
            "outputs": outputs,
            "json": json.loads(json_format.MessageToJson(response))
            if call.get("with_json")
            else None,
        }


def main() -> None:
    probe = Probe()
    for line in sys.stdin:
        call = json.loads(line)
        try:
            answer: dict[str, Any] = {"result": probe.run(call)}
        except InferenceServerException as exc:
            answer = {"error": {"status": exc.status(), "message": exc.message()}}
        except Exception as exc:  # a probe bug: report it instead of dying mid-test
            answer = {"error": {"status": "PROBE_ERROR", "message": repr(exc)}}
        sys.stdout.write(json.dumps(answer) + "\n")
        sys.stdout.flush()


if __name__ == "__main__":
    main()
