from gantry.proto.common.v1 import media_pb2 as _media_pb2
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class Difficulty(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    DIFFICULTY_UNSPECIFIED: _ClassVar[Difficulty]
    DIFFICULTY_EASY: _ClassVar[Difficulty]
    DIFFICULTY_HARD: _ClassVar[Difficulty]

class ObservationMode(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    OBSERVATION_MODE_UNSPECIFIED: _ClassVar[ObservationMode]
    OBSERVATION_MODE_IMAGE: _ClassVar[ObservationMode]
    OBSERVATION_MODE_TEXT: _ClassVar[ObservationMode]
    OBSERVATION_MODE_IMAGE_AND_TEXT: _ClassVar[ObservationMode]
DIFFICULTY_UNSPECIFIED: Difficulty
DIFFICULTY_EASY: Difficulty
DIFFICULTY_HARD: Difficulty
OBSERVATION_MODE_UNSPECIFIED: ObservationMode
OBSERVATION_MODE_IMAGE: ObservationMode
OBSERVATION_MODE_TEXT: ObservationMode
OBSERVATION_MODE_IMAGE_AND_TEXT: ObservationMode

class EpisodeSettings(_message.Message):
    __slots__ = ("text_feedback", "history_window", "goal_image", "observation_mode", "max_steps")
    TEXT_FEEDBACK_FIELD_NUMBER: _ClassVar[int]
    HISTORY_WINDOW_FIELD_NUMBER: _ClassVar[int]
    GOAL_IMAGE_FIELD_NUMBER: _ClassVar[int]
    OBSERVATION_MODE_FIELD_NUMBER: _ClassVar[int]
    MAX_STEPS_FIELD_NUMBER: _ClassVar[int]
    text_feedback: bool
    history_window: int
    goal_image: bool
    observation_mode: ObservationMode
    max_steps: int
    def __init__(self, text_feedback: _Optional[bool] = ..., history_window: _Optional[int] = ..., goal_image: _Optional[bool] = ..., observation_mode: _Optional[_Union[ObservationMode, str]] = ..., max_steps: _Optional[int] = ...) -> None: ...

class Observation(_message.Message):
    __slots__ = ("text", "image")
    TEXT_FIELD_NUMBER: _ClassVar[int]
    IMAGE_FIELD_NUMBER: _ClassVar[int]
    text: str
    image: _media_pb2.Image
    def __init__(self, text: _Optional[str] = ..., image: _Optional[_Union[_media_pb2.Image, _Mapping]] = ...) -> None: ...
