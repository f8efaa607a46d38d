import datetime

from gantry.proto.common.v1 import chat_pb2 as _chat_pb2
from gantry.proto.common.v1 import episode_pb2 as _episode_pb2
from gantry.proto.common.v1 import media_pb2 as _media_pb2
from gantry.proto.common.v1 import sampling_pb2 as _sampling_pb2
from gantry.proto.common.v1 import tensor_pb2 as _tensor_pb2
from google.longrunning import operations_pb2 as _operations_pb2
from google.protobuf import duration_pb2 as _duration_pb2
from google.protobuf import struct_pb2 as _struct_pb2
from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.rpc import status_pb2 as _status_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class EnvironmentKind(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    ENVIRONMENT_KIND_UNSPECIFIED: _ClassVar[EnvironmentKind]
    ENVIRONMENT_KIND_VISUAL: _ClassVar[EnvironmentKind]
    ENVIRONMENT_KIND_TERMINAL: _ClassVar[EnvironmentKind]
    ENVIRONMENT_KIND_NOTEBOOK: _ClassVar[EnvironmentKind]

class SeedSemantics(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    SEED_SEMANTICS_UNSPECIFIED: _ClassVar[SeedSemantics]
    SEED_SEMANTICS_INITIAL_STATE: _ClassVar[SeedSemantics]
    SEED_SEMANTICS_FIXED_TASK: _ClassVar[SeedSemantics]

class SolverKind(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    SOLVER_KIND_UNSPECIFIED: _ClassVar[SolverKind]
    SOLVER_KIND_PLANNER: _ClassVar[SolverKind]
    SOLVER_KIND_REFERENCE: _ClassVar[SolverKind]

class TaskType(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    TASK_TYPE_UNSPECIFIED: _ClassVar[TaskType]
    TASK_TYPE_SHELL: _ClassVar[TaskType]
    TASK_TYPE_ANALYSIS: _ClassVar[TaskType]
    TASK_TYPE_PREDICTION: _ClassVar[TaskType]

class SessionState(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    SESSION_STATE_UNSPECIFIED: _ClassVar[SessionState]
    SESSION_STATE_ACTIVE: _ClassVar[SessionState]
    SESSION_STATE_DONE: _ClassVar[SessionState]
    SESSION_STATE_CLOSED: _ClassVar[SessionState]

class ObservationEncoding(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    OBSERVATION_ENCODING_UNSPECIFIED: _ClassVar[ObservationEncoding]
    OBSERVATION_ENCODING_PNG: _ClassVar[ObservationEncoding]
    OBSERVATION_ENCODING_RAW: _ClassVar[ObservationEncoding]
    OBSERVATION_ENCODING_WEBP_LOSSLESS: _ClassVar[ObservationEncoding]

class TaskPipelineStage(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    TASK_PIPELINE_STAGE_UNSPECIFIED: _ClassVar[TaskPipelineStage]
    TASK_PIPELINE_STAGE_PROPOSING: _ClassVar[TaskPipelineStage]
    TASK_PIPELINE_STAGE_BUILDING: _ClassVar[TaskPipelineStage]
    TASK_PIPELINE_STAGE_TESTING: _ClassVar[TaskPipelineStage]
    TASK_PIPELINE_STAGE_FILTERING: _ClassVar[TaskPipelineStage]
    TASK_PIPELINE_STAGE_DONE: _ClassVar[TaskPipelineStage]

class TaskGenerationMode(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    TASK_GENERATION_MODE_UNSPECIFIED: _ClassVar[TaskGenerationMode]
    TASK_GENERATION_MODE_TEMPLATES: _ClassVar[TaskGenerationMode]
    TASK_GENERATION_MODE_MODEL: _ClassVar[TaskGenerationMode]
ENVIRONMENT_KIND_UNSPECIFIED: EnvironmentKind
ENVIRONMENT_KIND_VISUAL: EnvironmentKind
ENVIRONMENT_KIND_TERMINAL: EnvironmentKind
ENVIRONMENT_KIND_NOTEBOOK: EnvironmentKind
SEED_SEMANTICS_UNSPECIFIED: SeedSemantics
SEED_SEMANTICS_INITIAL_STATE: SeedSemantics
SEED_SEMANTICS_FIXED_TASK: SeedSemantics
SOLVER_KIND_UNSPECIFIED: SolverKind
SOLVER_KIND_PLANNER: SolverKind
SOLVER_KIND_REFERENCE: SolverKind
TASK_TYPE_UNSPECIFIED: TaskType
TASK_TYPE_SHELL: TaskType
TASK_TYPE_ANALYSIS: TaskType
TASK_TYPE_PREDICTION: TaskType
SESSION_STATE_UNSPECIFIED: SessionState
SESSION_STATE_ACTIVE: SessionState
SESSION_STATE_DONE: SessionState
SESSION_STATE_CLOSED: SessionState
OBSERVATION_ENCODING_UNSPECIFIED: ObservationEncoding
OBSERVATION_ENCODING_PNG: ObservationEncoding
OBSERVATION_ENCODING_RAW: ObservationEncoding
OBSERVATION_ENCODING_WEBP_LOSSLESS: ObservationEncoding
TASK_PIPELINE_STAGE_UNSPECIFIED: TaskPipelineStage
TASK_PIPELINE_STAGE_PROPOSING: TaskPipelineStage
TASK_PIPELINE_STAGE_BUILDING: TaskPipelineStage
TASK_PIPELINE_STAGE_TESTING: TaskPipelineStage
TASK_PIPELINE_STAGE_FILTERING: TaskPipelineStage
TASK_PIPELINE_STAGE_DONE: TaskPipelineStage
TASK_GENERATION_MODE_UNSPECIFIED: TaskGenerationMode
TASK_GENERATION_MODE_TEMPLATES: TaskGenerationMode
TASK_GENERATION_MODE_MODEL: TaskGenerationMode

class ResourceLimits(_message.Message):
    __slots__ = ("cpus", "memory_bytes", "storage_bytes", "step_timeout", "episode_timeout", "test_timeout", "network")
    CPUS_FIELD_NUMBER: _ClassVar[int]
    MEMORY_BYTES_FIELD_NUMBER: _ClassVar[int]
    STORAGE_BYTES_FIELD_NUMBER: _ClassVar[int]
    STEP_TIMEOUT_FIELD_NUMBER: _ClassVar[int]
    EPISODE_TIMEOUT_FIELD_NUMBER: _ClassVar[int]
    TEST_TIMEOUT_FIELD_NUMBER: _ClassVar[int]
    NETWORK_FIELD_NUMBER: _ClassVar[int]
    cpus: float
    memory_bytes: int
    storage_bytes: int
    step_timeout: _duration_pb2.Duration
    episode_timeout: _duration_pb2.Duration
    test_timeout: _duration_pb2.Duration
    network: bool
    def __init__(self, cpus: _Optional[float] = ..., memory_bytes: _Optional[int] = ..., storage_bytes: _Optional[int] = ..., step_timeout: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ..., episode_timeout: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ..., test_timeout: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ..., network: _Optional[bool] = ...) -> None: ...

class DifficultyLevel(_message.Message):
    __slots__ = ("difficulty", "max_steps", "description")
    DIFFICULTY_FIELD_NUMBER: _ClassVar[int]
    MAX_STEPS_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    difficulty: _episode_pb2.Difficulty
    max_steps: int
    description: str
    def __init__(self, difficulty: _Optional[_Union[_episode_pb2.Difficulty, str]] = ..., max_steps: _Optional[int] = ..., description: _Optional[str] = ...) -> None: ...

class Environment(_message.Message):
    __slots__ = ("id", "kind", "description", "instructions", "action_grammar", "action_examples", "difficulties", "observation_modes", "supports_text_feedback", "supports_goal_image", "has_solver", "solver_strategies", "limits", "requires_dataset", "finish_action", "finish_action_format", "seed_semantics", "solver_kind", "task")
    ID_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    INSTRUCTIONS_FIELD_NUMBER: _ClassVar[int]
    ACTION_GRAMMAR_FIELD_NUMBER: _ClassVar[int]
    ACTION_EXAMPLES_FIELD_NUMBER: _ClassVar[int]
    DIFFICULTIES_FIELD_NUMBER: _ClassVar[int]
    OBSERVATION_MODES_FIELD_NUMBER: _ClassVar[int]
    SUPPORTS_TEXT_FEEDBACK_FIELD_NUMBER: _ClassVar[int]
    SUPPORTS_GOAL_IMAGE_FIELD_NUMBER: _ClassVar[int]
    HAS_SOLVER_FIELD_NUMBER: _ClassVar[int]
    SOLVER_STRATEGIES_FIELD_NUMBER: _ClassVar[int]
    LIMITS_FIELD_NUMBER: _ClassVar[int]
    REQUIRES_DATASET_FIELD_NUMBER: _ClassVar[int]
    FINISH_ACTION_FIELD_NUMBER: _ClassVar[int]
    FINISH_ACTION_FORMAT_FIELD_NUMBER: _ClassVar[int]
    SEED_SEMANTICS_FIELD_NUMBER: _ClassVar[int]
    SOLVER_KIND_FIELD_NUMBER: _ClassVar[int]
    TASK_FIELD_NUMBER: _ClassVar[int]
    id: str
    kind: EnvironmentKind
    description: str
    instructions: str
    action_grammar: str
    action_examples: _containers.RepeatedScalarFieldContainer[str]
    difficulties: _containers.RepeatedCompositeFieldContainer[DifficultyLevel]
    observation_modes: _containers.RepeatedScalarFieldContainer[_episode_pb2.ObservationMode]
    supports_text_feedback: bool
    supports_goal_image: bool
    has_solver: bool
    solver_strategies: _containers.RepeatedScalarFieldContainer[str]
    limits: ResourceLimits
    requires_dataset: bool
    finish_action: str
    finish_action_format: str
    seed_semantics: SeedSemantics
    solver_kind: SolverKind
    task: TaskMetadata
    def __init__(self, id: _Optional[str] = ..., kind: _Optional[_Union[EnvironmentKind, str]] = ..., description: _Optional[str] = ..., instructions: _Optional[str] = ..., action_grammar: _Optional[str] = ..., action_examples: _Optional[_Iterable[str]] = ..., difficulties: _Optional[_Iterable[_Union[DifficultyLevel, _Mapping]]] = ..., observation_modes: _Optional[_Iterable[_Union[_episode_pb2.ObservationMode, str]]] = ..., supports_text_feedback: _Optional[bool] = ..., supports_goal_image: _Optional[bool] = ..., has_solver: _Optional[bool] = ..., solver_strategies: _Optional[_Iterable[str]] = ..., limits: _Optional[_Union[ResourceLimits, _Mapping]] = ..., requires_dataset: _Optional[bool] = ..., finish_action: _Optional[str] = ..., finish_action_format: _Optional[str] = ..., seed_semantics: _Optional[_Union[SeedSemantics, str]] = ..., solver_kind: _Optional[_Union[SolverKind, str]] = ..., task: _Optional[_Union[TaskMetadata, _Mapping]] = ...) -> None: ...

class TaskMetadata(_message.Message):
    __slots__ = ("suite", "category", "type", "metric", "higher_is_better", "data_paths", "submission_path", "knobs", "generation_seed", "source")
    class KnobsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    SUITE_FIELD_NUMBER: _ClassVar[int]
    CATEGORY_FIELD_NUMBER: _ClassVar[int]
    TYPE_FIELD_NUMBER: _ClassVar[int]
    METRIC_FIELD_NUMBER: _ClassVar[int]
    HIGHER_IS_BETTER_FIELD_NUMBER: _ClassVar[int]
    DATA_PATHS_FIELD_NUMBER: _ClassVar[int]
    SUBMISSION_PATH_FIELD_NUMBER: _ClassVar[int]
    KNOBS_FIELD_NUMBER: _ClassVar[int]
    GENERATION_SEED_FIELD_NUMBER: _ClassVar[int]
    SOURCE_FIELD_NUMBER: _ClassVar[int]
    suite: str
    category: str
    type: TaskType
    metric: str
    higher_is_better: bool
    data_paths: _containers.RepeatedScalarFieldContainer[str]
    submission_path: str
    knobs: _containers.ScalarMap[str, str]
    generation_seed: int
    source: str
    def __init__(self, suite: _Optional[str] = ..., category: _Optional[str] = ..., type: _Optional[_Union[TaskType, str]] = ..., metric: _Optional[str] = ..., higher_is_better: _Optional[bool] = ..., data_paths: _Optional[_Iterable[str]] = ..., submission_path: _Optional[str] = ..., knobs: _Optional[_Mapping[str, str]] = ..., generation_seed: _Optional[int] = ..., source: _Optional[str] = ...) -> None: ...

class Session(_message.Message):
    __slots__ = ("id", "env_id", "difficulty", "seed", "settings", "state", "step_index", "max_steps", "total_reward", "limits", "create_time", "expire_time")
    ID_FIELD_NUMBER: _ClassVar[int]
    ENV_ID_FIELD_NUMBER: _ClassVar[int]
    DIFFICULTY_FIELD_NUMBER: _ClassVar[int]
    SEED_FIELD_NUMBER: _ClassVar[int]
    SETTINGS_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    STEP_INDEX_FIELD_NUMBER: _ClassVar[int]
    MAX_STEPS_FIELD_NUMBER: _ClassVar[int]
    TOTAL_REWARD_FIELD_NUMBER: _ClassVar[int]
    LIMITS_FIELD_NUMBER: _ClassVar[int]
    CREATE_TIME_FIELD_NUMBER: _ClassVar[int]
    EXPIRE_TIME_FIELD_NUMBER: _ClassVar[int]
    id: str
    env_id: str
    difficulty: _episode_pb2.Difficulty
    seed: int
    settings: _episode_pb2.EpisodeSettings
    state: SessionState
    step_index: int
    max_steps: int
    total_reward: float
    limits: ResourceLimits
    create_time: _timestamp_pb2.Timestamp
    expire_time: _timestamp_pb2.Timestamp
    def __init__(self, id: _Optional[str] = ..., env_id: _Optional[str] = ..., difficulty: _Optional[_Union[_episode_pb2.Difficulty, str]] = ..., seed: _Optional[int] = ..., settings: _Optional[_Union[_episode_pb2.EpisodeSettings, _Mapping]] = ..., state: _Optional[_Union[SessionState, str]] = ..., step_index: _Optional[int] = ..., max_steps: _Optional[int] = ..., total_reward: _Optional[float] = ..., limits: _Optional[_Union[ResourceLimits, _Mapping]] = ..., create_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., expire_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class ListEnvironmentsRequest(_message.Message):
    __slots__ = ("page_size", "page_token", "id_prefix", "kind")
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    ID_PREFIX_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    page_size: int
    page_token: str
    id_prefix: str
    kind: EnvironmentKind
    def __init__(self, page_size: _Optional[int] = ..., page_token: _Optional[str] = ..., id_prefix: _Optional[str] = ..., kind: _Optional[_Union[EnvironmentKind, str]] = ...) -> None: ...

class ListEnvironmentsResponse(_message.Message):
    __slots__ = ("environments", "next_page_token")
    ENVIRONMENTS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    environments: _containers.RepeatedCompositeFieldContainer[Environment]
    next_page_token: str
    def __init__(self, environments: _Optional[_Iterable[_Union[Environment, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class CreateSessionRequest(_message.Message):
    __slots__ = ("env_id", "difficulty", "seed", "settings", "initial_state_json", "limits", "ttl", "observation_encoding")
    ENV_ID_FIELD_NUMBER: _ClassVar[int]
    DIFFICULTY_FIELD_NUMBER: _ClassVar[int]
    SEED_FIELD_NUMBER: _ClassVar[int]
    SETTINGS_FIELD_NUMBER: _ClassVar[int]
    INITIAL_STATE_JSON_FIELD_NUMBER: _ClassVar[int]
    LIMITS_FIELD_NUMBER: _ClassVar[int]
    TTL_FIELD_NUMBER: _ClassVar[int]
    OBSERVATION_ENCODING_FIELD_NUMBER: _ClassVar[int]
    env_id: str
    difficulty: _episode_pb2.Difficulty
    seed: int
    settings: _episode_pb2.EpisodeSettings
    initial_state_json: str
    limits: ResourceLimits
    ttl: _duration_pb2.Duration
    observation_encoding: ObservationEncoding
    def __init__(self, env_id: _Optional[str] = ..., difficulty: _Optional[_Union[_episode_pb2.Difficulty, str]] = ..., seed: _Optional[int] = ..., settings: _Optional[_Union[_episode_pb2.EpisodeSettings, _Mapping]] = ..., initial_state_json: _Optional[str] = ..., limits: _Optional[_Union[ResourceLimits, _Mapping]] = ..., ttl: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ..., observation_encoding: _Optional[_Union[ObservationEncoding, str]] = ...) -> None: ...

class CreateSessionResponse(_message.Message):
    __slots__ = ("session", "observation", "goal_image", "observation_pixels")
    SESSION_FIELD_NUMBER: _ClassVar[int]
    OBSERVATION_FIELD_NUMBER: _ClassVar[int]
    GOAL_IMAGE_FIELD_NUMBER: _ClassVar[int]
    OBSERVATION_PIXELS_FIELD_NUMBER: _ClassVar[int]
    session: Session
    observation: _episode_pb2.Observation
    goal_image: _media_pb2.Image
    observation_pixels: _tensor_pb2.Tensor
    def __init__(self, session: _Optional[_Union[Session, _Mapping]] = ..., observation: _Optional[_Union[_episode_pb2.Observation, _Mapping]] = ..., goal_image: _Optional[_Union[_media_pb2.Image, _Mapping]] = ..., observation_pixels: _Optional[_Union[_tensor_pb2.Tensor, _Mapping]] = ...) -> None: ...

class ResetRequest(_message.Message):
    __slots__ = ("session_id", "seed", "initial_state_json", "observation_encoding", "frame_region", "frame_slot")
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    SEED_FIELD_NUMBER: _ClassVar[int]
    INITIAL_STATE_JSON_FIELD_NUMBER: _ClassVar[int]
    OBSERVATION_ENCODING_FIELD_NUMBER: _ClassVar[int]
    FRAME_REGION_FIELD_NUMBER: _ClassVar[int]
    FRAME_SLOT_FIELD_NUMBER: _ClassVar[int]
    session_id: str
    seed: int
    initial_state_json: str
    observation_encoding: ObservationEncoding
    frame_region: str
    frame_slot: int
    def __init__(self, session_id: _Optional[str] = ..., seed: _Optional[int] = ..., initial_state_json: _Optional[str] = ..., observation_encoding: _Optional[_Union[ObservationEncoding, str]] = ..., frame_region: _Optional[str] = ..., frame_slot: _Optional[int] = ...) -> None: ...

class ResetResponse(_message.Message):
    __slots__ = ("session", "observation", "goal_image", "observation_pixels", "frame_in_region")
    SESSION_FIELD_NUMBER: _ClassVar[int]
    OBSERVATION_FIELD_NUMBER: _ClassVar[int]
    GOAL_IMAGE_FIELD_NUMBER: _ClassVar[int]
    OBSERVATION_PIXELS_FIELD_NUMBER: _ClassVar[int]
    FRAME_IN_REGION_FIELD_NUMBER: _ClassVar[int]
    session: Session
    observation: _episode_pb2.Observation
    goal_image: _media_pb2.Image
    observation_pixels: _tensor_pb2.Tensor
    frame_in_region: bool
    def __init__(self, session: _Optional[_Union[Session, _Mapping]] = ..., observation: _Optional[_Union[_episode_pb2.Observation, _Mapping]] = ..., goal_image: _Optional[_Union[_media_pb2.Image, _Mapping]] = ..., observation_pixels: _Optional[_Union[_tensor_pb2.Tensor, _Mapping]] = ..., frame_in_region: _Optional[bool] = ...) -> None: ...

class StepResult(_message.Message):
    __slots__ = ("observation", "reward", "terminated", "truncated", "feedback", "info", "step_index", "action_valid", "outcome", "observation_pixels", "observation_changed", "frame_in_region")
    OBSERVATION_FIELD_NUMBER: _ClassVar[int]
    REWARD_FIELD_NUMBER: _ClassVar[int]
    TERMINATED_FIELD_NUMBER: _ClassVar[int]
    TRUNCATED_FIELD_NUMBER: _ClassVar[int]
    FEEDBACK_FIELD_NUMBER: _ClassVar[int]
    INFO_FIELD_NUMBER: _ClassVar[int]
    STEP_INDEX_FIELD_NUMBER: _ClassVar[int]
    ACTION_VALID_FIELD_NUMBER: _ClassVar[int]
    OUTCOME_FIELD_NUMBER: _ClassVar[int]
    OBSERVATION_PIXELS_FIELD_NUMBER: _ClassVar[int]
    OBSERVATION_CHANGED_FIELD_NUMBER: _ClassVar[int]
    FRAME_IN_REGION_FIELD_NUMBER: _ClassVar[int]
    observation: _episode_pb2.Observation
    reward: float
    terminated: bool
    truncated: bool
    feedback: str
    info: _struct_pb2.Struct
    step_index: int
    action_valid: bool
    outcome: EpisodeOutcome
    observation_pixels: _tensor_pb2.Tensor
    observation_changed: bool
    frame_in_region: bool
    def __init__(self, observation: _Optional[_Union[_episode_pb2.Observation, _Mapping]] = ..., reward: _Optional[float] = ..., terminated: _Optional[bool] = ..., truncated: _Optional[bool] = ..., feedback: _Optional[str] = ..., info: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ..., step_index: _Optional[int] = ..., action_valid: _Optional[bool] = ..., outcome: _Optional[_Union[EpisodeOutcome, _Mapping]] = ..., observation_pixels: _Optional[_Union[_tensor_pb2.Tensor, _Mapping]] = ..., observation_changed: _Optional[bool] = ..., frame_in_region: _Optional[bool] = ...) -> None: ...

class EpisodeOutcome(_message.Message):
    __slots__ = ("success", "score", "metric", "test_output", "answer", "test_timed_out")
    SUCCESS_FIELD_NUMBER: _ClassVar[int]
    SCORE_FIELD_NUMBER: _ClassVar[int]
    METRIC_FIELD_NUMBER: _ClassVar[int]
    TEST_OUTPUT_FIELD_NUMBER: _ClassVar[int]
    ANSWER_FIELD_NUMBER: _ClassVar[int]
    TEST_TIMED_OUT_FIELD_NUMBER: _ClassVar[int]
    success: bool
    score: float
    metric: str
    test_output: str
    answer: str
    test_timed_out: bool
    def __init__(self, success: _Optional[bool] = ..., score: _Optional[float] = ..., metric: _Optional[str] = ..., test_output: _Optional[str] = ..., answer: _Optional[str] = ..., test_timed_out: _Optional[bool] = ...) -> None: ...

class StepRequest(_message.Message):
    __slots__ = ("session_id", "action", "observation_encoding", "omit_unchanged_frame", "frame_region", "frame_slot")
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    ACTION_FIELD_NUMBER: _ClassVar[int]
    OBSERVATION_ENCODING_FIELD_NUMBER: _ClassVar[int]
    OMIT_UNCHANGED_FRAME_FIELD_NUMBER: _ClassVar[int]
    FRAME_REGION_FIELD_NUMBER: _ClassVar[int]
    FRAME_SLOT_FIELD_NUMBER: _ClassVar[int]
    session_id: str
    action: str
    observation_encoding: ObservationEncoding
    omit_unchanged_frame: bool
    frame_region: str
    frame_slot: int
    def __init__(self, session_id: _Optional[str] = ..., action: _Optional[str] = ..., observation_encoding: _Optional[_Union[ObservationEncoding, str]] = ..., omit_unchanged_frame: _Optional[bool] = ..., frame_region: _Optional[str] = ..., frame_slot: _Optional[int] = ...) -> None: ...

class StepResponse(_message.Message):
    __slots__ = ("result",)
    RESULT_FIELD_NUMBER: _ClassVar[int]
    result: StepResult
    def __init__(self, result: _Optional[_Union[StepResult, _Mapping]] = ...) -> None: ...

class StepBatchItem(_message.Message):
    __slots__ = ("session_id", "action")
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    ACTION_FIELD_NUMBER: _ClassVar[int]
    session_id: str
    action: str
    def __init__(self, session_id: _Optional[str] = ..., action: _Optional[str] = ...) -> None: ...

class StepBatchRequest(_message.Message):
    __slots__ = ("items", "observation_encoding", "omit_unchanged_frames", "frame_region")
    ITEMS_FIELD_NUMBER: _ClassVar[int]
    OBSERVATION_ENCODING_FIELD_NUMBER: _ClassVar[int]
    OMIT_UNCHANGED_FRAMES_FIELD_NUMBER: _ClassVar[int]
    FRAME_REGION_FIELD_NUMBER: _ClassVar[int]
    items: _containers.RepeatedCompositeFieldContainer[StepBatchItem]
    observation_encoding: ObservationEncoding
    omit_unchanged_frames: bool
    frame_region: str
    def __init__(self, items: _Optional[_Iterable[_Union[StepBatchItem, _Mapping]]] = ..., observation_encoding: _Optional[_Union[ObservationEncoding, str]] = ..., omit_unchanged_frames: _Optional[bool] = ..., frame_region: _Optional[str] = ...) -> None: ...

class StepBatchResult(_message.Message):
    __slots__ = ("session_id", "result", "error")
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    RESULT_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    session_id: str
    result: StepResult
    error: _status_pb2.Status
    def __init__(self, session_id: _Optional[str] = ..., result: _Optional[_Union[StepResult, _Mapping]] = ..., error: _Optional[_Union[_status_pb2.Status, _Mapping]] = ...) -> None: ...

class StepBatchResponse(_message.Message):
    __slots__ = ("results",)
    RESULTS_FIELD_NUMBER: _ClassVar[int]
    results: _containers.RepeatedCompositeFieldContainer[StepBatchResult]
    def __init__(self, results: _Optional[_Iterable[_Union[StepBatchResult, _Mapping]]] = ...) -> None: ...

class SolveRequest(_message.Message):
    __slots__ = ("session_id", "strategy", "detour_count", "include_goal_image")
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    STRATEGY_FIELD_NUMBER: _ClassVar[int]
    DETOUR_COUNT_FIELD_NUMBER: _ClassVar[int]
    INCLUDE_GOAL_IMAGE_FIELD_NUMBER: _ClassVar[int]
    session_id: str
    strategy: str
    detour_count: int
    include_goal_image: bool
    def __init__(self, session_id: _Optional[str] = ..., strategy: _Optional[str] = ..., detour_count: _Optional[int] = ..., include_goal_image: _Optional[bool] = ...) -> None: ...

class SolveResponse(_message.Message):
    __slots__ = ("actions", "strategy", "detour_count", "goal_image")
    ACTIONS_FIELD_NUMBER: _ClassVar[int]
    STRATEGY_FIELD_NUMBER: _ClassVar[int]
    DETOUR_COUNT_FIELD_NUMBER: _ClassVar[int]
    GOAL_IMAGE_FIELD_NUMBER: _ClassVar[int]
    actions: _containers.RepeatedScalarFieldContainer[str]
    strategy: str
    detour_count: int
    goal_image: _media_pb2.Image
    def __init__(self, actions: _Optional[_Iterable[str]] = ..., strategy: _Optional[str] = ..., detour_count: _Optional[int] = ..., goal_image: _Optional[_Union[_media_pb2.Image, _Mapping]] = ...) -> None: ...

class GetSessionRequest(_message.Message):
    __slots__ = ("session_id",)
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    session_id: str
    def __init__(self, session_id: _Optional[str] = ...) -> None: ...

class GetSessionResponse(_message.Message):
    __slots__ = ("session",)
    SESSION_FIELD_NUMBER: _ClassVar[int]
    session: Session
    def __init__(self, session: _Optional[_Union[Session, _Mapping]] = ...) -> None: ...

class CloseSessionRequest(_message.Message):
    __slots__ = ("session_id",)
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    session_id: str
    def __init__(self, session_id: _Optional[str] = ...) -> None: ...

class CloseSessionResponse(_message.Message):
    __slots__ = ("session",)
    SESSION_FIELD_NUMBER: _ClassVar[int]
    session: Session
    def __init__(self, session: _Optional[_Union[Session, _Mapping]] = ...) -> None: ...

class ExportStateRequest(_message.Message):
    __slots__ = ("session_id",)
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    session_id: str
    def __init__(self, session_id: _Optional[str] = ...) -> None: ...

class ExportStateResponse(_message.Message):
    __slots__ = ("env_id", "difficulty", "seed", "state_json")
    ENV_ID_FIELD_NUMBER: _ClassVar[int]
    DIFFICULTY_FIELD_NUMBER: _ClassVar[int]
    SEED_FIELD_NUMBER: _ClassVar[int]
    STATE_JSON_FIELD_NUMBER: _ClassVar[int]
    env_id: str
    difficulty: _episode_pb2.Difficulty
    seed: int
    state_json: str
    def __init__(self, env_id: _Optional[str] = ..., difficulty: _Optional[_Union[_episode_pb2.Difficulty, str]] = ..., seed: _Optional[int] = ..., state_json: _Optional[str] = ...) -> None: ...

class ExportDemonstrationsRequest(_message.Message):
    __slots__ = ("env_id", "difficulty", "seeds", "strategies", "detour_count", "settings", "include_failures")
    ENV_ID_FIELD_NUMBER: _ClassVar[int]
    DIFFICULTY_FIELD_NUMBER: _ClassVar[int]
    SEEDS_FIELD_NUMBER: _ClassVar[int]
    STRATEGIES_FIELD_NUMBER: _ClassVar[int]
    DETOUR_COUNT_FIELD_NUMBER: _ClassVar[int]
    SETTINGS_FIELD_NUMBER: _ClassVar[int]
    INCLUDE_FAILURES_FIELD_NUMBER: _ClassVar[int]
    env_id: str
    difficulty: _episode_pb2.Difficulty
    seeds: _containers.RepeatedScalarFieldContainer[int]
    strategies: _containers.RepeatedScalarFieldContainer[str]
    detour_count: int
    settings: _episode_pb2.EpisodeSettings
    include_failures: bool
    def __init__(self, env_id: _Optional[str] = ..., difficulty: _Optional[_Union[_episode_pb2.Difficulty, str]] = ..., seeds: _Optional[_Iterable[int]] = ..., strategies: _Optional[_Iterable[str]] = ..., detour_count: _Optional[int] = ..., settings: _Optional[_Union[_episode_pb2.EpisodeSettings, _Mapping]] = ..., include_failures: _Optional[bool] = ...) -> None: ...

class ExportDemonstrationsResponse(_message.Message):
    __slots__ = ("seed", "strategy", "conversation", "final_reward", "detour_count")
    SEED_FIELD_NUMBER: _ClassVar[int]
    STRATEGY_FIELD_NUMBER: _ClassVar[int]
    CONVERSATION_FIELD_NUMBER: _ClassVar[int]
    FINAL_REWARD_FIELD_NUMBER: _ClassVar[int]
    DETOUR_COUNT_FIELD_NUMBER: _ClassVar[int]
    seed: int
    strategy: str
    conversation: _chat_pb2.Conversation
    final_reward: float
    detour_count: int
    def __init__(self, seed: _Optional[int] = ..., strategy: _Optional[str] = ..., conversation: _Optional[_Union[_chat_pb2.Conversation, _Mapping]] = ..., final_reward: _Optional[float] = ..., detour_count: _Optional[int] = ...) -> None: ...

class GenerateTasksRequest(_message.Message):
    __slots__ = ("suite_name", "num_tasks", "categories", "generator_target", "generator_sampling", "solver_target", "solve_attempts", "min_solved", "max_build_iterations", "limits", "seed", "mode", "solvability_filter", "difficulty")
    SUITE_NAME_FIELD_NUMBER: _ClassVar[int]
    NUM_TASKS_FIELD_NUMBER: _ClassVar[int]
    CATEGORIES_FIELD_NUMBER: _ClassVar[int]
    GENERATOR_TARGET_FIELD_NUMBER: _ClassVar[int]
    GENERATOR_SAMPLING_FIELD_NUMBER: _ClassVar[int]
    SOLVER_TARGET_FIELD_NUMBER: _ClassVar[int]
    SOLVE_ATTEMPTS_FIELD_NUMBER: _ClassVar[int]
    MIN_SOLVED_FIELD_NUMBER: _ClassVar[int]
    MAX_BUILD_ITERATIONS_FIELD_NUMBER: _ClassVar[int]
    LIMITS_FIELD_NUMBER: _ClassVar[int]
    SEED_FIELD_NUMBER: _ClassVar[int]
    MODE_FIELD_NUMBER: _ClassVar[int]
    SOLVABILITY_FILTER_FIELD_NUMBER: _ClassVar[int]
    DIFFICULTY_FIELD_NUMBER: _ClassVar[int]
    suite_name: str
    num_tasks: int
    categories: _containers.RepeatedScalarFieldContainer[str]
    generator_target: str
    generator_sampling: _sampling_pb2.SamplingParams
    solver_target: str
    solve_attempts: int
    min_solved: int
    max_build_iterations: int
    limits: ResourceLimits
    seed: int
    mode: TaskGenerationMode
    solvability_filter: bool
    difficulty: _episode_pb2.Difficulty
    def __init__(self, suite_name: _Optional[str] = ..., num_tasks: _Optional[int] = ..., categories: _Optional[_Iterable[str]] = ..., generator_target: _Optional[str] = ..., generator_sampling: _Optional[_Union[_sampling_pb2.SamplingParams, _Mapping]] = ..., solver_target: _Optional[str] = ..., solve_attempts: _Optional[int] = ..., min_solved: _Optional[int] = ..., max_build_iterations: _Optional[int] = ..., limits: _Optional[_Union[ResourceLimits, _Mapping]] = ..., seed: _Optional[int] = ..., mode: _Optional[_Union[TaskGenerationMode, str]] = ..., solvability_filter: _Optional[bool] = ..., difficulty: _Optional[_Union[_episode_pb2.Difficulty, str]] = ...) -> None: ...

class GenerateTasksMetadata(_message.Message):
    __slots__ = ("stage", "proposed_count", "built_count", "tested_count", "kept_count", "rejected_count", "progress", "start_time")
    STAGE_FIELD_NUMBER: _ClassVar[int]
    PROPOSED_COUNT_FIELD_NUMBER: _ClassVar[int]
    BUILT_COUNT_FIELD_NUMBER: _ClassVar[int]
    TESTED_COUNT_FIELD_NUMBER: _ClassVar[int]
    KEPT_COUNT_FIELD_NUMBER: _ClassVar[int]
    REJECTED_COUNT_FIELD_NUMBER: _ClassVar[int]
    PROGRESS_FIELD_NUMBER: _ClassVar[int]
    START_TIME_FIELD_NUMBER: _ClassVar[int]
    stage: TaskPipelineStage
    proposed_count: int
    built_count: int
    tested_count: int
    kept_count: int
    rejected_count: int
    progress: float
    start_time: _timestamp_pb2.Timestamp
    def __init__(self, stage: _Optional[_Union[TaskPipelineStage, str]] = ..., proposed_count: _Optional[int] = ..., built_count: _Optional[int] = ..., tested_count: _Optional[int] = ..., kept_count: _Optional[int] = ..., rejected_count: _Optional[int] = ..., progress: _Optional[float] = ..., start_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class GenerateTasksResponse(_message.Message):
    __slots__ = ("suite_name", "env_ids", "rejected_count", "rejected_by_reason")
    class RejectedByReasonEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: int
        def __init__(self, key: _Optional[str] = ..., value: _Optional[int] = ...) -> None: ...
    SUITE_NAME_FIELD_NUMBER: _ClassVar[int]
    ENV_IDS_FIELD_NUMBER: _ClassVar[int]
    REJECTED_COUNT_FIELD_NUMBER: _ClassVar[int]
    REJECTED_BY_REASON_FIELD_NUMBER: _ClassVar[int]
    suite_name: str
    env_ids: _containers.RepeatedScalarFieldContainer[str]
    rejected_count: int
    rejected_by_reason: _containers.ScalarMap[str, int]
    def __init__(self, suite_name: _Optional[str] = ..., env_ids: _Optional[_Iterable[str]] = ..., rejected_count: _Optional[int] = ..., rejected_by_reason: _Optional[_Mapping[str, int]] = ...) -> None: ...

class DeleteTaskSuiteRequest(_message.Message):
    __slots__ = ("suite_name",)
    SUITE_NAME_FIELD_NUMBER: _ClassVar[int]
    suite_name: str
    def __init__(self, suite_name: _Optional[str] = ...) -> None: ...

class DeleteTaskSuiteResponse(_message.Message):
    __slots__ = ("suite_name", "env_ids")
    SUITE_NAME_FIELD_NUMBER: _ClassVar[int]
    ENV_IDS_FIELD_NUMBER: _ClassVar[int]
    suite_name: str
    env_ids: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, suite_name: _Optional[str] = ..., env_ids: _Optional[_Iterable[str]] = ...) -> None: ...

class CreateFrameRegionRequest(_message.Message):
    __slots__ = ("slots",)
    SLOTS_FIELD_NUMBER: _ClassVar[int]
    slots: int
    def __init__(self, slots: _Optional[int] = ...) -> None: ...

class FrameRegion(_message.Message):
    __slots__ = ("id", "path", "size_bytes", "slots", "slot_offset", "slot_bytes", "nonce")
    ID_FIELD_NUMBER: _ClassVar[int]
    PATH_FIELD_NUMBER: _ClassVar[int]
    SIZE_BYTES_FIELD_NUMBER: _ClassVar[int]
    SLOTS_FIELD_NUMBER: _ClassVar[int]
    SLOT_OFFSET_FIELD_NUMBER: _ClassVar[int]
    SLOT_BYTES_FIELD_NUMBER: _ClassVar[int]
    NONCE_FIELD_NUMBER: _ClassVar[int]
    id: str
    path: str
    size_bytes: int
    slots: int
    slot_offset: int
    slot_bytes: int
    nonce: bytes
    def __init__(self, id: _Optional[str] = ..., path: _Optional[str] = ..., size_bytes: _Optional[int] = ..., slots: _Optional[int] = ..., slot_offset: _Optional[int] = ..., slot_bytes: _Optional[int] = ..., nonce: _Optional[bytes] = ...) -> None: ...

class CreateFrameRegionResponse(_message.Message):
    __slots__ = ("region",)
    REGION_FIELD_NUMBER: _ClassVar[int]
    region: FrameRegion
    def __init__(self, region: _Optional[_Union[FrameRegion, _Mapping]] = ...) -> None: ...

class DeleteFrameRegionRequest(_message.Message):
    __slots__ = ("region_id",)
    REGION_ID_FIELD_NUMBER: _ClassVar[int]
    region_id: str
    def __init__(self, region_id: _Optional[str] = ...) -> None: ...

class DeleteFrameRegionResponse(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...
