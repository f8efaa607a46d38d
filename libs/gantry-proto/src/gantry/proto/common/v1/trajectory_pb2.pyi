import datetime

from gantry.proto.common.v1 import chat_pb2 as _chat_pb2
from gantry.proto.common.v1 import episode_pb2 as _episode_pb2
from gantry.proto.common.v1 import sampling_pb2 as _sampling_pb2
from google.protobuf import duration_pb2 as _duration_pb2
from google.protobuf import struct_pb2 as _struct_pb2
from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class Turn(_message.Message):
    __slots__ = ("index", "observation", "prompt_token_ids", "completion_text", "action", "completion", "finish_reason", "reward", "feedback", "info", "policy_version")
    INDEX_FIELD_NUMBER: _ClassVar[int]
    OBSERVATION_FIELD_NUMBER: _ClassVar[int]
    PROMPT_TOKEN_IDS_FIELD_NUMBER: _ClassVar[int]
    COMPLETION_TEXT_FIELD_NUMBER: _ClassVar[int]
    ACTION_FIELD_NUMBER: _ClassVar[int]
    COMPLETION_FIELD_NUMBER: _ClassVar[int]
    FINISH_REASON_FIELD_NUMBER: _ClassVar[int]
    REWARD_FIELD_NUMBER: _ClassVar[int]
    FEEDBACK_FIELD_NUMBER: _ClassVar[int]
    INFO_FIELD_NUMBER: _ClassVar[int]
    POLICY_VERSION_FIELD_NUMBER: _ClassVar[int]
    index: int
    observation: _episode_pb2.Observation
    prompt_token_ids: _containers.RepeatedScalarFieldContainer[int]
    completion_text: str
    action: str
    completion: _chat_pb2.TokenSequence
    finish_reason: _sampling_pb2.FinishReason
    reward: float
    feedback: str
    info: _struct_pb2.Struct
    policy_version: int
    def __init__(self, index: _Optional[int] = ..., observation: _Optional[_Union[_episode_pb2.Observation, _Mapping]] = ..., prompt_token_ids: _Optional[_Iterable[int]] = ..., completion_text: _Optional[str] = ..., action: _Optional[str] = ..., completion: _Optional[_Union[_chat_pb2.TokenSequence, _Mapping]] = ..., finish_reason: _Optional[_Union[_sampling_pb2.FinishReason, str]] = ..., reward: _Optional[float] = ..., feedback: _Optional[str] = ..., info: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ..., policy_version: _Optional[int] = ...) -> None: ...

class Trajectory(_message.Message):
    __slots__ = ("id", "group_id", "env_id", "difficulty", "seed", "settings", "task", "turns", "final_reward", "terminated", "truncated", "policy_version", "usage", "start_time", "duration", "metadata")
    ID_FIELD_NUMBER: _ClassVar[int]
    GROUP_ID_FIELD_NUMBER: _ClassVar[int]
    ENV_ID_FIELD_NUMBER: _ClassVar[int]
    DIFFICULTY_FIELD_NUMBER: _ClassVar[int]
    SEED_FIELD_NUMBER: _ClassVar[int]
    SETTINGS_FIELD_NUMBER: _ClassVar[int]
    TASK_FIELD_NUMBER: _ClassVar[int]
    TURNS_FIELD_NUMBER: _ClassVar[int]
    FINAL_REWARD_FIELD_NUMBER: _ClassVar[int]
    TERMINATED_FIELD_NUMBER: _ClassVar[int]
    TRUNCATED_FIELD_NUMBER: _ClassVar[int]
    POLICY_VERSION_FIELD_NUMBER: _ClassVar[int]
    USAGE_FIELD_NUMBER: _ClassVar[int]
    START_TIME_FIELD_NUMBER: _ClassVar[int]
    DURATION_FIELD_NUMBER: _ClassVar[int]
    METADATA_FIELD_NUMBER: _ClassVar[int]
    id: str
    group_id: str
    env_id: str
    difficulty: _episode_pb2.Difficulty
    seed: int
    settings: _episode_pb2.EpisodeSettings
    task: str
    turns: _containers.RepeatedCompositeFieldContainer[Turn]
    final_reward: float
    terminated: bool
    truncated: bool
    policy_version: int
    usage: _chat_pb2.Usage
    start_time: _timestamp_pb2.Timestamp
    duration: _duration_pb2.Duration
    metadata: _struct_pb2.Struct
    def __init__(self, id: _Optional[str] = ..., group_id: _Optional[str] = ..., env_id: _Optional[str] = ..., difficulty: _Optional[_Union[_episode_pb2.Difficulty, str]] = ..., seed: _Optional[int] = ..., settings: _Optional[_Union[_episode_pb2.EpisodeSettings, _Mapping]] = ..., task: _Optional[str] = ..., turns: _Optional[_Iterable[_Union[Turn, _Mapping]]] = ..., final_reward: _Optional[float] = ..., terminated: _Optional[bool] = ..., truncated: _Optional[bool] = ..., policy_version: _Optional[int] = ..., usage: _Optional[_Union[_chat_pb2.Usage, _Mapping]] = ..., start_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., duration: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ..., metadata: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ...) -> None: ...
