import datetime

from gantry.proto.common.v1 import media_pb2 as _media_pb2
from gantry.proto.common.v1 import tensor_pb2 as _tensor_pb2
from google.protobuf import duration_pb2 as _duration_pb2
from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.rpc import status_pb2 as _status_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class BlendMode(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    BLEND_MODE_UNSPECIFIED: _ClassVar[BlendMode]
    BLEND_MODE_LATEST: _ClassVar[BlendMode]
    BLEND_MODE_WEIGHTED_AVERAGE: _ClassVar[BlendMode]

class ActionMode(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    ACTION_MODE_UNSPECIFIED: _ClassVar[ActionMode]
    ACTION_MODE_DELTA: _ClassVar[ActionMode]
    ACTION_MODE_ABSOLUTE: _ClassVar[ActionMode]
BLEND_MODE_UNSPECIFIED: BlendMode
BLEND_MODE_LATEST: BlendMode
BLEND_MODE_WEIGHTED_AVERAGE: BlendMode
ACTION_MODE_UNSPECIFIED: ActionMode
ACTION_MODE_DELTA: ActionMode
ACTION_MODE_ABSOLUTE: ActionMode

class CameraFrame(_message.Message):
    __slots__ = ("camera", "image", "raw")
    CAMERA_FIELD_NUMBER: _ClassVar[int]
    IMAGE_FIELD_NUMBER: _ClassVar[int]
    RAW_FIELD_NUMBER: _ClassVar[int]
    camera: str
    image: _media_pb2.Image
    raw: _tensor_pb2.Tensor
    def __init__(self, camera: _Optional[str] = ..., image: _Optional[_Union[_media_pb2.Image, _Mapping]] = ..., raw: _Optional[_Union[_tensor_pb2.Tensor, _Mapping]] = ...) -> None: ...

class RobotObservation(_message.Message):
    __slots__ = ("cameras", "state", "instruction", "timestep", "capture_time")
    CAMERAS_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    INSTRUCTION_FIELD_NUMBER: _ClassVar[int]
    TIMESTEP_FIELD_NUMBER: _ClassVar[int]
    CAPTURE_TIME_FIELD_NUMBER: _ClassVar[int]
    cameras: _containers.RepeatedCompositeFieldContainer[CameraFrame]
    state: _tensor_pb2.Tensor
    instruction: str
    timestep: int
    capture_time: _timestamp_pb2.Timestamp
    def __init__(self, cameras: _Optional[_Iterable[_Union[CameraFrame, _Mapping]]] = ..., state: _Optional[_Union[_tensor_pb2.Tensor, _Mapping]] = ..., instruction: _Optional[str] = ..., timestep: _Optional[int] = ..., capture_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class ActionTiming(_message.Message):
    __slots__ = ("preprocess", "inference", "total")
    PREPROCESS_FIELD_NUMBER: _ClassVar[int]
    INFERENCE_FIELD_NUMBER: _ClassVar[int]
    TOTAL_FIELD_NUMBER: _ClassVar[int]
    preprocess: _duration_pb2.Duration
    inference: _duration_pb2.Duration
    total: _duration_pb2.Duration
    def __init__(self, preprocess: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ..., inference: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ..., total: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ...) -> None: ...

class ActRequest(_message.Message):
    __slots__ = ("observation", "noise_seed", "num_denoising_steps")
    OBSERVATION_FIELD_NUMBER: _ClassVar[int]
    NOISE_SEED_FIELD_NUMBER: _ClassVar[int]
    NUM_DENOISING_STEPS_FIELD_NUMBER: _ClassVar[int]
    observation: RobotObservation
    noise_seed: int
    num_denoising_steps: int
    def __init__(self, observation: _Optional[_Union[RobotObservation, _Mapping]] = ..., noise_seed: _Optional[int] = ..., num_denoising_steps: _Optional[int] = ...) -> None: ...

class ActResponse(_message.Message):
    __slots__ = ("actions", "start_timestep", "timing")
    ACTIONS_FIELD_NUMBER: _ClassVar[int]
    START_TIMESTEP_FIELD_NUMBER: _ClassVar[int]
    TIMING_FIELD_NUMBER: _ClassVar[int]
    actions: _tensor_pb2.Tensor
    start_timestep: int
    timing: ActionTiming
    def __init__(self, actions: _Optional[_Union[_tensor_pb2.Tensor, _Mapping]] = ..., start_timestep: _Optional[int] = ..., timing: _Optional[_Union[ActionTiming, _Mapping]] = ...) -> None: ...

class StreamConfig(_message.Message):
    __slots__ = ("instruction", "control_hz", "queue_threshold", "blend", "blend_weight", "num_denoising_steps")
    INSTRUCTION_FIELD_NUMBER: _ClassVar[int]
    CONTROL_HZ_FIELD_NUMBER: _ClassVar[int]
    QUEUE_THRESHOLD_FIELD_NUMBER: _ClassVar[int]
    BLEND_FIELD_NUMBER: _ClassVar[int]
    BLEND_WEIGHT_FIELD_NUMBER: _ClassVar[int]
    NUM_DENOISING_STEPS_FIELD_NUMBER: _ClassVar[int]
    instruction: str
    control_hz: float
    queue_threshold: float
    blend: BlendMode
    blend_weight: float
    num_denoising_steps: int
    def __init__(self, instruction: _Optional[str] = ..., control_hz: _Optional[float] = ..., queue_threshold: _Optional[float] = ..., blend: _Optional[_Union[BlendMode, str]] = ..., blend_weight: _Optional[float] = ..., num_denoising_steps: _Optional[int] = ...) -> None: ...

class ObservationFrame(_message.Message):
    __slots__ = ("sequence", "observation", "queue_size", "noise_seed")
    SEQUENCE_FIELD_NUMBER: _ClassVar[int]
    OBSERVATION_FIELD_NUMBER: _ClassVar[int]
    QUEUE_SIZE_FIELD_NUMBER: _ClassVar[int]
    NOISE_SEED_FIELD_NUMBER: _ClassVar[int]
    sequence: int
    observation: RobotObservation
    queue_size: int
    noise_seed: int
    def __init__(self, sequence: _Optional[int] = ..., observation: _Optional[_Union[RobotObservation, _Mapping]] = ..., queue_size: _Optional[int] = ..., noise_seed: _Optional[int] = ...) -> None: ...

class StreamControlRequest(_message.Message):
    __slots__ = ("config", "observation", "reset")
    CONFIG_FIELD_NUMBER: _ClassVar[int]
    OBSERVATION_FIELD_NUMBER: _ClassVar[int]
    RESET_FIELD_NUMBER: _ClassVar[int]
    config: StreamConfig
    observation: ObservationFrame
    reset: EpisodeReset
    def __init__(self, config: _Optional[_Union[StreamConfig, _Mapping]] = ..., observation: _Optional[_Union[ObservationFrame, _Mapping]] = ..., reset: _Optional[_Union[EpisodeReset, _Mapping]] = ...) -> None: ...

class EpisodeReset(_message.Message):
    __slots__ = ("instruction",)
    INSTRUCTION_FIELD_NUMBER: _ClassVar[int]
    instruction: str
    def __init__(self, instruction: _Optional[str] = ...) -> None: ...

class ObservationError(_message.Message):
    __slots__ = ("status",)
    STATUS_FIELD_NUMBER: _ClassVar[int]
    status: _status_pb2.Status
    def __init__(self, status: _Optional[_Union[_status_pb2.Status, _Mapping]] = ...) -> None: ...

class StreamControlResponse(_message.Message):
    __slots__ = ("sequence", "start_timestep", "actions", "timing", "episode", "error", "reset_done")
    SEQUENCE_FIELD_NUMBER: _ClassVar[int]
    START_TIMESTEP_FIELD_NUMBER: _ClassVar[int]
    ACTIONS_FIELD_NUMBER: _ClassVar[int]
    TIMING_FIELD_NUMBER: _ClassVar[int]
    EPISODE_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    RESET_DONE_FIELD_NUMBER: _ClassVar[int]
    sequence: int
    start_timestep: int
    actions: _tensor_pb2.Tensor
    timing: ActionTiming
    episode: int
    error: ObservationError
    reset_done: bool
    def __init__(self, sequence: _Optional[int] = ..., start_timestep: _Optional[int] = ..., actions: _Optional[_Union[_tensor_pb2.Tensor, _Mapping]] = ..., timing: _Optional[_Union[ActionTiming, _Mapping]] = ..., episode: _Optional[int] = ..., error: _Optional[_Union[ObservationError, _Mapping]] = ..., reset_done: _Optional[bool] = ...) -> None: ...

class GetPolicyInfoRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class CameraSpec(_message.Message):
    __slots__ = ("name", "width", "height", "required", "view", "orientation")
    NAME_FIELD_NUMBER: _ClassVar[int]
    WIDTH_FIELD_NUMBER: _ClassVar[int]
    HEIGHT_FIELD_NUMBER: _ClassVar[int]
    REQUIRED_FIELD_NUMBER: _ClassVar[int]
    VIEW_FIELD_NUMBER: _ClassVar[int]
    ORIENTATION_FIELD_NUMBER: _ClassVar[int]
    name: str
    width: int
    height: int
    required: bool
    view: str
    orientation: str
    def __init__(self, name: _Optional[str] = ..., width: _Optional[int] = ..., height: _Optional[int] = ..., required: _Optional[bool] = ..., view: _Optional[str] = ..., orientation: _Optional[str] = ...) -> None: ...

class StateEntry(_message.Message):
    __slots__ = ("name", "unit")
    NAME_FIELD_NUMBER: _ClassVar[int]
    UNIT_FIELD_NUMBER: _ClassVar[int]
    name: str
    unit: str
    def __init__(self, name: _Optional[str] = ..., unit: _Optional[str] = ...) -> None: ...

class ActionSemantics(_message.Message):
    __slots__ = ("mode", "range_low", "range_high", "units", "gripper", "notes")
    MODE_FIELD_NUMBER: _ClassVar[int]
    RANGE_LOW_FIELD_NUMBER: _ClassVar[int]
    RANGE_HIGH_FIELD_NUMBER: _ClassVar[int]
    UNITS_FIELD_NUMBER: _ClassVar[int]
    GRIPPER_FIELD_NUMBER: _ClassVar[int]
    NOTES_FIELD_NUMBER: _ClassVar[int]
    mode: ActionMode
    range_low: float
    range_high: float
    units: _containers.RepeatedScalarFieldContainer[str]
    gripper: str
    notes: str
    def __init__(self, mode: _Optional[_Union[ActionMode, str]] = ..., range_low: _Optional[float] = ..., range_high: _Optional[float] = ..., units: _Optional[_Iterable[str]] = ..., gripper: _Optional[str] = ..., notes: _Optional[str] = ...) -> None: ...

class TaskSpec(_message.Message):
    __slots__ = ("name", "instruction_templates")
    NAME_FIELD_NUMBER: _ClassVar[int]
    INSTRUCTION_TEMPLATES_FIELD_NUMBER: _ClassVar[int]
    name: str
    instruction_templates: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, name: _Optional[str] = ..., instruction_templates: _Optional[_Iterable[str]] = ...) -> None: ...

class GetPolicyInfoResponse(_message.Message):
    __slots__ = ("policy_id", "action_dim", "chunk_size", "state_dim", "cameras", "frozen_model_id", "trainable_model_id", "action_expert_id", "num_denoising_steps", "control_hz", "action_names", "backend", "state_entries", "action_semantics", "tasks", "architecture")
    POLICY_ID_FIELD_NUMBER: _ClassVar[int]
    ACTION_DIM_FIELD_NUMBER: _ClassVar[int]
    CHUNK_SIZE_FIELD_NUMBER: _ClassVar[int]
    STATE_DIM_FIELD_NUMBER: _ClassVar[int]
    CAMERAS_FIELD_NUMBER: _ClassVar[int]
    FROZEN_MODEL_ID_FIELD_NUMBER: _ClassVar[int]
    TRAINABLE_MODEL_ID_FIELD_NUMBER: _ClassVar[int]
    ACTION_EXPERT_ID_FIELD_NUMBER: _ClassVar[int]
    NUM_DENOISING_STEPS_FIELD_NUMBER: _ClassVar[int]
    CONTROL_HZ_FIELD_NUMBER: _ClassVar[int]
    ACTION_NAMES_FIELD_NUMBER: _ClassVar[int]
    BACKEND_FIELD_NUMBER: _ClassVar[int]
    STATE_ENTRIES_FIELD_NUMBER: _ClassVar[int]
    ACTION_SEMANTICS_FIELD_NUMBER: _ClassVar[int]
    TASKS_FIELD_NUMBER: _ClassVar[int]
    ARCHITECTURE_FIELD_NUMBER: _ClassVar[int]
    policy_id: str
    action_dim: int
    chunk_size: int
    state_dim: int
    cameras: _containers.RepeatedCompositeFieldContainer[CameraSpec]
    frozen_model_id: str
    trainable_model_id: str
    action_expert_id: str
    num_denoising_steps: int
    control_hz: float
    action_names: _containers.RepeatedScalarFieldContainer[str]
    backend: str
    state_entries: _containers.RepeatedCompositeFieldContainer[StateEntry]
    action_semantics: ActionSemantics
    tasks: _containers.RepeatedCompositeFieldContainer[TaskSpec]
    architecture: str
    def __init__(self, policy_id: _Optional[str] = ..., action_dim: _Optional[int] = ..., chunk_size: _Optional[int] = ..., state_dim: _Optional[int] = ..., cameras: _Optional[_Iterable[_Union[CameraSpec, _Mapping]]] = ..., frozen_model_id: _Optional[str] = ..., trainable_model_id: _Optional[str] = ..., action_expert_id: _Optional[str] = ..., num_denoising_steps: _Optional[int] = ..., control_hz: _Optional[float] = ..., action_names: _Optional[_Iterable[str]] = ..., backend: _Optional[str] = ..., state_entries: _Optional[_Iterable[_Union[StateEntry, _Mapping]]] = ..., action_semantics: _Optional[_Union[ActionSemantics, _Mapping]] = ..., tasks: _Optional[_Iterable[_Union[TaskSpec, _Mapping]]] = ..., architecture: _Optional[str] = ...) -> None: ...
