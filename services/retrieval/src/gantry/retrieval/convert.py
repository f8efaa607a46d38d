"""Proto <-> Python conversions: enums, payload Structs, vectors, collections."""

from __future__ import annotations

import itertools
import math
from typing import Any

import numpy as np
import numpy.typing as npt
from google.protobuf import struct_pb2, timestamp_pb2

from gantry.core.codecs import tensor_to_numpy
from gantry.core.errors import InvalidArgument
from gantry.core.limits import struct_to_python
from gantry.proto.common.v1 import tensor_pb2
from gantry.proto.retrieval.v1 import retrieval_pb2
from gantry.retrieval.sparse import SparseVector
from gantry.retrieval.store import CollectionInfo, Distance, Quantization

DISTANCE_FROM_PROTO: dict[int, Distance] = {
    retrieval_pb2.DISTANCE_COSINE: "cosine",
    retrieval_pb2.DISTANCE_DOT: "dot",
    retrieval_pb2.DISTANCE_EUCLID: "euclid",
    retrieval_pb2.DISTANCE_MANHATTAN: "manhattan",
}
DISTANCE_TO_PROTO = {v: k for k, v in DISTANCE_FROM_PROTO.items()}
QUANTIZATION_FROM_PROTO: dict[int, Quantization] = {
    retrieval_pb2.QUANTIZATION_UNSPECIFIED: "",
    retrieval_pb2.QUANTIZATION_NONE: "",
    retrieval_pb2.QUANTIZATION_SCALAR_INT8: "int8",
}


def _whole_numbers(value: Any) -> Any:
    """Struct numbers arrive as doubles; 3.0 is stored as 3 so integer filters match it."""
    if isinstance(value, float) and value.is_integer() and abs(value) < 2**53:
        return int(value)
    if isinstance(value, dict):
        return {k: _whole_numbers(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_whole_numbers(v) for v in value]
    return value


def payload_from_struct(payload: struct_pb2.Struct, field: str = "payload") -> dict[str, Any]:
    """Plain JSON values; NaN/inf and nesting past 16 levels are INVALID_ARGUMENT on `field`."""
    return dict(_whole_numbers(struct_to_python(payload, field=field)))


def payload_to_struct(payload: dict[str, Any]) -> struct_pb2.Struct:
    out = struct_pb2.Struct()
    out.update(payload)
    return out


def dense_vector(tensor: tensor_pb2.Tensor, size: int, field: str) -> npt.NDArray[np.float32]:
    """A float32 [size] vector (a [1, size] tensor is accepted too), finite values only."""
    array = tensor_to_numpy(tensor, field=field)
    if array.dtype != np.float32:
        raise InvalidArgument.for_field(f"{field}.dtype", "must be DTYPE_FLOAT32")
    if array.ndim == 2 and array.shape[0] == 1:
        array = array[0]
    if array.ndim != 1 or array.shape[0] != size:
        raise InvalidArgument.for_field(
            field, f"has shape {list(array.shape)}; this collection stores [{size}] vectors"
        )
    if not np.isfinite(array).all():
        raise InvalidArgument.for_field(field, "holds NaN or infinite values")
    return np.array(array, dtype=np.float32)


def sparse_vector(message: retrieval_pb2.SparseVector, field: str) -> SparseVector:
    indices, values = list(message.indices), list(message.values)
    if len(indices) != len(values):
        raise InvalidArgument.for_field(
            field, f"has {len(indices)} indices but {len(values)} values"
        )
    if any(b <= a for a, b in itertools.pairwise(indices)):
        raise InvalidArgument.for_field(f"{field}.indices", "must be strictly ascending")
    if not all(math.isfinite(v) for v in values):
        raise InvalidArgument.for_field(f"{field}.values", "must be finite")
    return SparseVector(indices, values)


def collection_to_proto(info: CollectionInfo) -> retrieval_pb2.Collection:
    created = timestamp_pb2.Timestamp()
    created.FromDatetime(info.create_time)
    return retrieval_pb2.Collection(
        name=info.name,
        encoder_id=info.encoder_id,
        distance=DISTANCE_TO_PROTO[info.distance],  # type: ignore[arg-type]
        vector_size=info.vector_size,
        sparse_enabled=info.sparse_enabled,
        sparse_encoder_id=info.sparse_encoder_id,
        points_count=info.points_count,
        create_time=created,
        quantization=(
            retrieval_pb2.QUANTIZATION_SCALAR_INT8
            if info.quantization == "int8"
            else retrieval_pb2.QUANTIZATION_NONE
        ),
        chunks_count=max(info.chunks_count, 0),
        indexed_vectors_count=max(info.indexed_vectors_count, 0),
        indexing=info.indexing,
    )
