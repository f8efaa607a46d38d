"""KServe's Open Inference Protocol (OIP v2) over gRPC, as a thin adapter over models.

A service that offers inference-style calls (embeddings, text generation, actions)
returns `InferenceModel`s from `Service.inference_models()`; `serve()` then registers
`inference.GRPCInferenceService` on the service's own port, behind the same runtime
interceptor (auth, metrics, errors, drain) as every other RPC. KServe and Triton clients
work unchanged: the contract is `protos/inference/grpc_predict_v2.proto`.

The servicer does the protocol: it finds the model, checks every tensor's name, datatype,
shape and byte size against the model's signature *before* decoding anything, decodes
typed `contents` and `raw_input_contents` alike into numpy arrays (BYTES elements become
an object array of `bytes`), and encodes the model's outputs back. A model only sees
checked inputs and typed parameters.

Outputs travel the way the request's inputs did: raw in, raw out (what tritonclient
reads), typed in, typed out. A requested output's `binary_data` parameter overrides
that; OIP forbids mixing the two forms in one response, so all outputs must agree.
"""

from __future__ import annotations

import math
import struct
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from importlib import metadata
from typing import Any

import grpc
import numpy as np
import numpy.typing as npt

from gantry.core.errors import InvalidArgument, NotFound, Unavailable, echo
from gantry.core.interceptor import CallGate
from gantry.core.limits import check_bytes, check_count, check_id, client_key
from gantry.proto.inference import grpc_predict_v2_pb2 as oip
from gantry.proto.inference import grpc_predict_v2_pb2_grpc as oip_grpc

SERVICE_NAME = oip.DESCRIPTOR.services_by_name["GRPCInferenceService"].full_name
SERVER_NAME = "gantry"

Array = npt.NDArray[Any]
ParamValue = bool | int | float | str

# OIP datatype -> numpy dtype (little-endian on the wire). BF16 has no numpy type.
DTYPES: dict[str, np.dtype[Any]] = {
    "BOOL": np.dtype(np.bool_),
    "UINT8": np.dtype("<u1"),
    "UINT16": np.dtype("<u2"),
    "UINT32": np.dtype("<u4"),
    "UINT64": np.dtype("<u8"),
    "INT8": np.dtype("<i1"),
    "INT16": np.dtype("<i2"),
    "INT32": np.dtype("<i4"),
    "INT64": np.dtype("<i8"),
    "FP16": np.dtype("<f2"),
    "FP32": np.dtype("<f4"),
    "FP64": np.dtype("<f8"),
    "BYTES": np.dtype(object),
}
# The typed `contents` field of each datatype; FP16 travels only raw.
CONTENTS_FIELD = {
    "BOOL": "bool_contents",
    "UINT8": "uint_contents",
    "UINT16": "uint_contents",
    "UINT32": "uint_contents",
    "UINT64": "uint64_contents",
    "INT8": "int_contents",
    "INT16": "int_contents",
    "INT32": "int_contents",
    "INT64": "int64_contents",
    "FP32": "fp32_contents",
    "FP64": "fp64_contents",
    "BYTES": "bytes_contents",
}
ALL_CONTENTS_FIELDS = tuple(sorted(set(CONTENTS_FIELD.values())))
BYTES_PREFIX = 4  # a raw BYTES element: uint32 little-endian length, then the bytes
DEFAULT_MAX_ELEMENTS = 1 << 16
MAX_RANK = 8
MAX_PARAMETERS = 64
MAX_PARAMETER_BYTES = 4096
BINARY_DATA = "binary_data"  # requested-output parameter: raw (true) or typed (false)


@dataclass(frozen=True)
class TensorSpec:
    """One input or output of a model: OIP datatype and shape (-1: any size), plus the
    limits checked on arrival, before the tensor is decoded."""

    name: str
    datatype: str
    shape: tuple[int, ...]
    max_elements: int = DEFAULT_MAX_ELEMENTS
    max_element_bytes: int | None = None  # BYTES: each element
    max_bytes: int | None = None  # BYTES: all elements together
    optional: bool = False

    def __post_init__(self) -> None:
        if self.datatype not in DTYPES:
            raise ValueError(f"{self.name}: unknown OIP datatype {self.datatype!r}")

    def metadata(self) -> oip.ModelMetadataResponse.TensorMetadata:
        return oip.ModelMetadataResponse.TensorMetadata(
            name=self.name, datatype=self.datatype, shape=list(self.shape)
        )


@dataclass(frozen=True)
class ParameterSpec:
    """A request parameter a model accepts: its Python type and what it means."""

    type: type[bool] | type[int] | type[float] | type[str]
    description: str = ""


@dataclass(frozen=True)
class InferCall:
    """A checked request, as a model sees it."""

    inputs: Mapping[str, Array]  # by input name; BYTES inputs are object arrays of bytes
    parameters: Mapping[str, ParamValue]  # only names the model declared, typed
    outputs: frozenset[str]  # the outputs to return (the model may skip the others)
    client: str = ""  # the caller's key, for fair admission
    timeout_s: float | None = None  # what is left of the caller's deadline


class InferenceModel(ABC):
    """A model served over OIP: a name, a signature and an async `infer`."""

    def __init__(self, name: str, *, version: str = "1", platform: str = SERVER_NAME) -> None:
        self.name = name
        self.version = version
        self.platform = platform

    @property
    @abstractmethod
    def inputs(self) -> Sequence[TensorSpec]: ...

    @property
    @abstractmethod
    def outputs(self) -> Sequence[TensorSpec]: ...

    @property
    def parameters(self) -> Mapping[str, ParameterSpec]:
        return {}

    def ready(self) -> bool:
        """Whether the model can answer now (its backend is loaded)."""
        return True

    @abstractmethod
    async def infer(self, call: InferCall) -> Mapping[str, Array | Sequence[Any]]:
        """The requested outputs by name (BYTES outputs may be str or bytes elements)."""


# ---- decoding (requests) ------------------------------------------------------------------


def _elements(shape: Sequence[int], spec: TensorSpec, where: str) -> int:
    """Check a request shape against the signature; return its element count."""
    if len(shape) != len(spec.shape):
        raise InvalidArgument.for_field(
            f"{where}.shape",
            f"has {len(shape)} dimensions; input {spec.name!r} is {_shape_text(spec.shape)}",
        )
    count = 1
    for dim, (got, want) in enumerate(zip(shape, spec.shape, strict=True)):
        if got < 0 or (want >= 0 and got != want):
            raise InvalidArgument.for_field(
                f"{where}.shape[{dim}]",
                f"is {got}; input {spec.name!r} is {_shape_text(spec.shape)}",
            )
        count *= got
        if count > spec.max_elements:  # python ints: no overflow, stop early
            break
    if count > spec.max_elements:
        raise InvalidArgument.for_field(
            f"{where}.shape",
            f"holds {count} elements; the limit for {spec.name!r} is {spec.max_elements}",
        )
    return count


def _key(key: str) -> str:
    """A map key as a field path segment: itself when short and printable."""
    return key if len(key) <= 64 and key.isprintable() else echo(key, 32)


def _shape_text(shape: Sequence[int]) -> str:
    return "[" + ", ".join(str(d) for d in shape) + "]"


def _check_byte_elements(sizes: Sequence[int], spec: TensorSpec, where: str) -> None:
    if spec.max_element_bytes is not None:
        for index, size in enumerate(sizes):
            if size > spec.max_element_bytes:
                raise InvalidArgument.for_field(
                    f"{where}[{index}]",
                    f"is {size} bytes; the limit is {spec.max_element_bytes}",
                )
    if spec.max_bytes is not None and sum(sizes) > spec.max_bytes:
        raise InvalidArgument.for_field(
            where, f"holds {sum(sizes)} bytes in total; the limit is {spec.max_bytes}"
        )


def decode_raw_bytes(raw: bytes, count: int, spec: TensorSpec, where: str) -> list[bytes]:
    """OIP's raw BYTES form: `count` elements, each a uint32 LE length and its bytes."""
    if spec.max_bytes is not None and len(raw) > spec.max_bytes + BYTES_PREFIX * count:
        raise InvalidArgument.for_field(
            where, f"is {len(raw)} bytes; the limit for {spec.name!r} is {spec.max_bytes}"
        )
    items: list[bytes] = []
    offset = 0
    for index in range(count):
        if offset + BYTES_PREFIX > len(raw):
            raise InvalidArgument.for_field(
                where, f"ends after {index} of {count} length-prefixed elements"
            )
        (size,) = struct.unpack_from("<I", raw, offset)
        offset += BYTES_PREFIX
        if spec.max_element_bytes is not None and size > spec.max_element_bytes:
            raise InvalidArgument.for_field(
                f"{where}[{index}]", f"is {size} bytes; the limit is {spec.max_element_bytes}"
            )
        if offset + size > len(raw):
            raise InvalidArgument.for_field(
                f"{where}[{index}]", f"declares {size} bytes but only {len(raw) - offset} remain"
            )
        items.append(raw[offset : offset + size])
        offset += size
    if offset != len(raw):
        raise InvalidArgument.for_field(
            where, f"has {len(raw) - offset} bytes after its {count} elements"
        )
    _check_byte_elements([len(item) for item in items], spec, where)
    return items


def encode_raw_bytes(items: Sequence[bytes]) -> bytes:
    return b"".join(struct.pack("<I", len(item)) + item for item in items)


def _object_array(items: Sequence[bytes], shape: Sequence[int]) -> Array:
    array = np.empty(len(items), dtype=object)
    array[:] = list(items)
    return array.reshape(tuple(shape))


def _decode_raw(
    raw: bytes, shape: Sequence[int], count: int, spec: TensorSpec, where: str
) -> Array:
    if spec.datatype == "BYTES":
        return _object_array(decode_raw_bytes(raw, count, spec, where), shape)
    dtype = DTYPES[spec.datatype]
    need = count * dtype.itemsize
    if len(raw) != need:
        raise InvalidArgument.for_field(
            where,
            f"holds {len(raw)} bytes; {spec.datatype} {_shape_text(shape)} needs {need}",
        )
    if spec.datatype == "BOOL" and raw and max(raw) > 1:
        raise InvalidArgument.for_field(where, "BOOL elements must be bytes 0 or 1")
    return np.frombuffer(raw, dtype=dtype).reshape(tuple(shape))


def _decode_contents(
    tensor: oip.ModelInferRequest.InferInputTensor,
    shape: Sequence[int],
    count: int,
    spec: TensorSpec,
    where: str,
) -> Array:
    wanted = CONTENTS_FIELD.get(spec.datatype)
    for name in ALL_CONTENTS_FIELDS:
        if name != wanted and len(getattr(tensor.contents, name)):
            hint = f"use {wanted}" if wanted else "FP16 travels only in raw_input_contents"
            raise InvalidArgument.for_field(
                f"{where}.contents.{name}", f"does not fit {spec.datatype} ({hint})"
            )
    if wanted is None:
        if count:
            raise InvalidArgument.for_field(
                f"{where}.contents", f"{spec.datatype} travels only in raw_input_contents"
            )
        return np.empty(tuple(shape), dtype=DTYPES[spec.datatype])
    values = getattr(tensor.contents, wanted)
    if len(values) != count:
        raise InvalidArgument.for_field(
            f"{where}.contents.{wanted}",
            f"holds {len(values)} elements; shape {_shape_text(shape)} needs {count}",
        )
    if spec.datatype == "BYTES":
        items = list(values)
        _check_byte_elements([len(v) for v in items], spec, f"{where}.contents.{wanted}")
        return _object_array(items, shape)
    dtype = DTYPES[spec.datatype]
    wide = np.array(values, dtype=np.float64 if dtype.kind == "f" else None)
    if dtype.kind in "iu" and wide.size:
        info = np.iinfo(dtype)
        if int(wide.min()) < info.min or int(wide.max()) > info.max:
            raise InvalidArgument.for_field(
                f"{where}.contents.{wanted}", f"holds a value outside the {spec.datatype} range"
            )
    return wide.astype(dtype).reshape(tuple(shape))


def _parameter(value: oip.InferParameter, spec: ParameterSpec, where: str) -> ParamValue:
    kind = value.WhichOneof("parameter_choice")
    if kind is None:
        raise InvalidArgument.for_field(where, "has no value")
    raw: ParamValue = getattr(value, kind)
    if spec.type is bool:
        if kind == "bool_param":
            return raw
    elif spec.type is int:
        if kind in ("int64_param", "uint64_param"):
            if int(raw) > 2**63 - 1:
                raise InvalidArgument.for_field(where, "is too large")
            return int(raw)
    elif spec.type is float:
        if kind in ("double_param", "int64_param", "uint64_param"):
            number = float(raw)
            if not math.isfinite(number):
                raise InvalidArgument.for_field(where, "must be a finite number")
            return number
    elif kind == "string_param":
        assert isinstance(raw, str)
        check_bytes(raw, field=where, limit=MAX_PARAMETER_BYTES)
        return raw
    raise InvalidArgument.for_field(where, f"must be a {spec.type.__name__} (got {kind})")


# ---- encoding (responses) ------------------------------------------------------------------


def _as_bytes(item: Any) -> bytes:
    if isinstance(item, bytes):
        return item
    if isinstance(item, str):
        return item.encode("utf-8")
    raise TypeError(f"a BYTES element must be str or bytes, not {type(item).__name__}")


def _encode_output(
    value: Array | Sequence[Any], spec: TensorSpec, raw: bool
) -> tuple[oip.ModelInferResponse.InferOutputTensor, bytes | None]:
    if spec.datatype == "BYTES":
        array = np.asarray(value, dtype=object)
        items = [_as_bytes(item) for item in array.reshape(-1)]
    else:
        array = np.ascontiguousarray(np.asarray(value, dtype=DTYPES[spec.datatype]))
        items = []
    tensor = oip.ModelInferResponse.InferOutputTensor(
        name=spec.name, datatype=spec.datatype, shape=list(array.shape)
    )
    if raw:
        return tensor, encode_raw_bytes(items) if spec.datatype == "BYTES" else array.tobytes()
    target = getattr(tensor.contents, CONTENTS_FIELD[spec.datatype])
    target.extend(items if spec.datatype == "BYTES" else array.reshape(-1).tolist())
    return tensor, None


# ---- the servicer ------------------------------------------------------------------------


def server_version() -> str:
    try:
        return metadata.version("gantry-core")
    except metadata.PackageNotFoundError:
        return "0+unknown"


@dataclass
class _Request:
    """What ModelInfer decoded from a request, before calling the model."""

    inputs: dict[str, Array] = field(default_factory=dict)
    parameters: dict[str, ParamValue] = field(default_factory=dict)
    outputs: list[TensorSpec] = field(default_factory=list)
    raw: bool = False


class InferenceServicer(oip_grpc.GRPCInferenceServiceServicer):
    """`inference.GRPCInferenceService` over a fixed set of models."""

    def __init__(self, models: Sequence[InferenceModel], gate: CallGate) -> None:
        self.models = {model.name: model for model in models}
        if len(self.models) != len(models):
            raise ValueError("OIP model names must be unique")
        self.gate = gate

    def _serving(self) -> bool:
        return self.gate.ready.is_set() and not self.gate.draining.is_set()

    def _model(self, name: str, version: str, where: str = "name") -> InferenceModel:
        if not name:
            raise InvalidArgument.for_field(where, "a model name is required")
        model = self.models.get(name)
        if model is None:
            check_id(name, field=where)
            raise NotFound(
                f"{where}: unknown model {echo(name)}; served: {', '.join(sorted(self.models))}",
                resource_type="model",
                resource_name=name,
            )
        version_field = "version" if where == "name" else "model_version"
        if version and version != model.version:
            check_id(version, field=version_field)
            raise NotFound(
                f"{version_field}: model {name!r} has no version {echo(version)}; "
                f"served: {model.version}",
                resource_type="model_version",
                resource_name=f"{name}/{version}",
            )
        return model

    async def ServerLive(
        self, request: oip.ServerLiveRequest, context: Any
    ) -> oip.ServerLiveResponse:
        return oip.ServerLiveResponse(live=True)

    async def ServerReady(
        self, request: oip.ServerReadyRequest, context: Any
    ) -> oip.ServerReadyResponse:
        ready = self._serving() and all(m.ready() for m in self.models.values())
        return oip.ServerReadyResponse(ready=ready)

    async def ModelReady(
        self, request: oip.ModelReadyRequest, context: Any
    ) -> oip.ModelReadyResponse:
        model = self._model(request.name, request.version)
        return oip.ModelReadyResponse(ready=self._serving() and model.ready())

    async def ServerMetadata(
        self, request: oip.ServerMetadataRequest, context: Any
    ) -> oip.ServerMetadataResponse:
        return oip.ServerMetadataResponse(name=SERVER_NAME, version=server_version())

    async def ModelMetadata(
        self, request: oip.ModelMetadataRequest, context: Any
    ) -> oip.ModelMetadataResponse:
        model = self._model(request.name, request.version)
        return oip.ModelMetadataResponse(
            name=model.name,
            versions=[model.version],
            platform=model.platform,
            inputs=[spec.metadata() for spec in model.inputs],
            outputs=[spec.metadata() for spec in model.outputs],
        )

    async def ModelInfer(
        self, request: oip.ModelInferRequest, context: Any
    ) -> oip.ModelInferResponse:
        model = self._model(request.model_name, request.model_version, "model_name")
        check_id(request.id, field="id")
        if not model.ready():
            raise Unavailable(f"model {model.name!r} is still loading", retry_after_s=1.0)
        decoded = self._decode(model, request)
        remaining = context.time_remaining() if context is not None else None
        call = InferCall(
            inputs=decoded.inputs,
            parameters=decoded.parameters,
            outputs=frozenset(spec.name for spec in decoded.outputs),
            client=client_key(context) if context is not None else "",
            timeout_s=remaining,
        )
        produced = await model.infer(call)
        response = oip.ModelInferResponse(
            model_name=model.name, model_version=model.version, id=request.id
        )
        for spec in decoded.outputs:
            if spec.name not in produced:
                raise RuntimeError(f"model {model.name!r} did not produce output {spec.name!r}")
            tensor, raw = _encode_output(produced[spec.name], spec, decoded.raw)
            response.outputs.append(tensor)
            if raw is not None:
                response.raw_output_contents.append(raw)
        return response

    # ---- request checks, all before any decoding ----

    def _decode(self, model: InferenceModel, request: oip.ModelInferRequest) -> _Request:
        specs = {spec.name: spec for spec in model.inputs}
        check_count(len(request.inputs), field="inputs", limit=len(specs))
        raw = list(request.raw_input_contents)
        if raw and len(raw) != len(request.inputs):
            raise InvalidArgument.for_field(
                "raw_input_contents",
                f"has {len(raw)} entries for {len(request.inputs)} inputs; "
                "send one per input, in the order of inputs",
            )
        shapes: list[tuple[list[int], int, TensorSpec]] = []
        seen: set[str] = set()
        for index, tensor in enumerate(request.inputs):
            where = f"inputs[{index}]"
            spec = specs.get(tensor.name)
            if spec is None:
                raise InvalidArgument.for_field(
                    f"{where}.name",
                    f"{echo(tensor.name)} is not an input of {model.name!r}; it takes "
                    f"{', '.join(specs)}",
                )
            if spec.name in seen:
                raise InvalidArgument.for_field(f"{where}.name", f"{spec.name!r} is sent twice")
            seen.add(spec.name)
            if tensor.datatype != spec.datatype:
                raise InvalidArgument.for_field(
                    f"{where}.datatype",
                    f"is {echo(tensor.datatype)}; input {spec.name!r} is {spec.datatype}",
                )
            if tensor.parameters:
                key = sorted(tensor.parameters)[0]
                raise InvalidArgument.for_field(
                    f"{where}.parameters.{_key(key)}",
                    "input parameters (shared memory, ...) are not supported",
                )
            if raw and tensor.HasField("contents"):
                raise InvalidArgument.for_field(
                    f"{where}.contents",
                    "is set together with raw_input_contents; send one or the other",
                )
            shape = list(tensor.shape)
            shapes.append((shape, _elements(shape, spec, where), spec))
        missing = [name for name, spec in specs.items() if name not in seen and not spec.optional]
        if missing:
            raise InvalidArgument.for_field(
                "inputs", f"missing input {missing[0]!r} of model {model.name!r}"
            )
        result = _Request(raw=bool(raw))
        result.parameters = self._parameters(model, request)
        result.outputs, forced = self._requested_outputs(model, request)
        if forced is not None:
            result.raw = forced
        if not result.raw and any(o.datatype not in CONTENTS_FIELD for o in result.outputs):
            if forced is False:
                raise InvalidArgument.for_field(
                    "outputs", f"{BINARY_DATA}=false: FP16 outputs travel only raw"
                )
            result.raw = True
        for index, (tensor, (shape, count, spec)) in enumerate(
            zip(request.inputs, shapes, strict=True)
        ):
            if raw:
                value = _decode_raw(raw[index], shape, count, spec, f"raw_input_contents[{index}]")
            else:
                value = _decode_contents(tensor, shape, count, spec, f"inputs[{index}]")
            result.inputs[spec.name] = value
        return result

    @staticmethod
    def _parameters(model: InferenceModel, request: oip.ModelInferRequest) -> dict[str, ParamValue]:
        check_count(len(request.parameters), field="parameters", limit=MAX_PARAMETERS)
        accepted = model.parameters
        values: dict[str, ParamValue] = {}
        for key in sorted(request.parameters):
            where = f"parameters.{_key(key)}"
            spec = accepted.get(key)
            if spec is None:
                names = ", ".join(sorted(accepted)) or "none"
                raise InvalidArgument.for_field(
                    where, f"is not a parameter of model {model.name!r} (accepted: {names})"
                )
            values[key] = _parameter(request.parameters[key], spec, where)
        return values

    @staticmethod
    def _requested_outputs(
        model: InferenceModel, request: oip.ModelInferRequest
    ) -> tuple[list[TensorSpec], bool | None]:
        """The outputs to return, and the raw/typed form if the request forces one."""
        specs = {spec.name: spec for spec in model.outputs}
        if not request.outputs:
            chosen = [spec for spec in model.outputs if not spec.optional]
            return chosen, None
        check_count(len(request.outputs), field="outputs", limit=len(specs))
        chosen = []
        forms: set[bool] = set()
        for index, wanted in enumerate(request.outputs):
            where = f"outputs[{index}]"
            spec = specs.get(wanted.name)
            if spec is None:
                raise InvalidArgument.for_field(
                    f"{where}.name",
                    f"{echo(wanted.name)} is not an output of {model.name!r}; it returns "
                    f"{', '.join(specs)}",
                )
            if spec in chosen:
                raise InvalidArgument.for_field(f"{where}.name", f"{spec.name!r} is asked twice")
            for key in sorted(wanted.parameters):
                if key != BINARY_DATA:
                    raise InvalidArgument.for_field(
                        f"{where}.parameters.{_key(key)}",
                        f"is not supported (only {BINARY_DATA})",
                    )
                forms.add(
                    bool(
                        _parameter(
                            wanted.parameters[key],
                            ParameterSpec(bool),
                            f"{where}.parameters.{BINARY_DATA}",
                        )
                    )
                )
            chosen.append(spec)
        if len(forms) > 1:
            raise InvalidArgument.for_field(
                "outputs",
                f"{BINARY_DATA} differs between outputs; OIP sends all outputs raw or all typed",
            )
        return chosen, (forms.pop() if forms else None)


def add_inference_service(
    server: grpc.aio.Server, models: Sequence[InferenceModel], gate: CallGate
) -> str:
    """Register `inference.GRPCInferenceService` for `models`; return its full name."""
    oip_grpc.add_GRPCInferenceServiceServicer_to_server(InferenceServicer(models, gate), server)
    return SERVICE_NAME
