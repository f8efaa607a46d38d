from gantry.proto.common.v1 import tensor_pb2 as _tensor_pb2
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class PrecisionMode(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    PRECISION_MODE_UNSPECIFIED: _ClassVar[PrecisionMode]
    PRECISION_MODE_BF16: _ClassVar[PrecisionMode]
    PRECISION_MODE_FP8: _ClassVar[PrecisionMode]
PRECISION_MODE_UNSPECIFIED: PrecisionMode
PRECISION_MODE_BF16: PrecisionMode
PRECISION_MODE_FP8: PrecisionMode

class Fp8Recipe(_message.Message):
    __slots__ = ("format", "weight_block_rows", "weight_block_cols", "activation_group_size", "gradient_group_size")
    FORMAT_FIELD_NUMBER: _ClassVar[int]
    WEIGHT_BLOCK_ROWS_FIELD_NUMBER: _ClassVar[int]
    WEIGHT_BLOCK_COLS_FIELD_NUMBER: _ClassVar[int]
    ACTIVATION_GROUP_SIZE_FIELD_NUMBER: _ClassVar[int]
    GRADIENT_GROUP_SIZE_FIELD_NUMBER: _ClassVar[int]
    format: _tensor_pb2.DType
    weight_block_rows: int
    weight_block_cols: int
    activation_group_size: int
    gradient_group_size: int
    def __init__(self, format: _Optional[_Union[_tensor_pb2.DType, str]] = ..., weight_block_rows: _Optional[int] = ..., weight_block_cols: _Optional[int] = ..., activation_group_size: _Optional[int] = ..., gradient_group_size: _Optional[int] = ...) -> None: ...

class Precision(_message.Message):
    __slots__ = ("mode", "fp8")
    MODE_FIELD_NUMBER: _ClassVar[int]
    FP8_FIELD_NUMBER: _ClassVar[int]
    mode: PrecisionMode
    fp8: Fp8Recipe
    def __init__(self, mode: _Optional[_Union[PrecisionMode, str]] = ..., fp8: _Optional[_Union[Fp8Recipe, _Mapping]] = ...) -> None: ...
