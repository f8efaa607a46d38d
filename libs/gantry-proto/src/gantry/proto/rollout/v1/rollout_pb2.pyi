import datetime

from gantry.proto.common.v1 import chat_pb2 as _chat_pb2
from gantry.proto.common.v1 import episode_pb2 as _episode_pb2
from gantry.proto.common.v1 import precision_pb2 as _precision_pb2
from gantry.proto.common.v1 import sampling_pb2 as _sampling_pb2
from gantry.proto.common.v1 import tensor_pb2 as _tensor_pb2
from gantry.proto.common.v1 import trajectory_pb2 as _trajectory_pb2
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

class ContextStrategy(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    CONTEXT_STRATEGY_UNSPECIFIED: _ClassVar[ContextStrategy]
    CONTEXT_STRATEGY_TRUNCATE: _ClassVar[ContextStrategy]
    CONTEXT_STRATEGY_SUMMARIZE_AND_RESET: _ClassVar[ContextStrategy]

class Persona(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    PERSONA_UNSPECIFIED: _ClassVar[Persona]
    PERSONA_SYSTEM_PURIST: _ClassVar[Persona]
    PERSONA_EFFICIENCY_ESSENTIALIST: _ClassVar[Persona]
    PERSONA_NARRATIVE_ARCHITECT: _ClassVar[Persona]
    PERSONA_SOCIAL_LUBRICATOR: _ClassVar[Persona]
    PERSONA_THRILL_SEEKER: _ClassVar[Persona]
CONTEXT_STRATEGY_UNSPECIFIED: ContextStrategy
CONTEXT_STRATEGY_TRUNCATE: ContextStrategy
CONTEXT_STRATEGY_SUMMARIZE_AND_RESET: ContextStrategy
PERSONA_UNSPECIFIED: Persona
PERSONA_SYSTEM_PURIST: Persona
PERSONA_EFFICIENCY_ESSENTIALIST: Persona
PERSONA_NARRATIVE_ARCHITECT: Persona
PERSONA_SOCIAL_LUBRICATOR: Persona
PERSONA_THRILL_SEEKER: Persona

class Prompt(_message.Message):
    __slots__ = ("text", "messages", "token_ids")
    TEXT_FIELD_NUMBER: _ClassVar[int]
    MESSAGES_FIELD_NUMBER: _ClassVar[int]
    TOKEN_IDS_FIELD_NUMBER: _ClassVar[int]
    text: str
    messages: _chat_pb2.Conversation
    token_ids: _chat_pb2.TokenSequence
    def __init__(self, text: _Optional[str] = ..., messages: _Optional[_Union[_chat_pb2.Conversation, _Mapping]] = ..., token_ids: _Optional[_Union[_chat_pb2.TokenSequence, _Mapping]] = ...) -> None: ...

class GenerationInput(_message.Message):
    __slots__ = ("prompts", "sampling", "model", "chat_template_kwargs")
    PROMPTS_FIELD_NUMBER: _ClassVar[int]
    SAMPLING_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    CHAT_TEMPLATE_KWARGS_FIELD_NUMBER: _ClassVar[int]
    prompts: _containers.RepeatedCompositeFieldContainer[Prompt]
    sampling: _sampling_pb2.SamplingParams
    model: str
    chat_template_kwargs: _struct_pb2.Struct
    def __init__(self, prompts: _Optional[_Iterable[_Union[Prompt, _Mapping]]] = ..., sampling: _Optional[_Union[_sampling_pb2.SamplingParams, _Mapping]] = ..., model: _Optional[str] = ..., chat_template_kwargs: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ...) -> None: ...

class GenerateRequest(_message.Message):
    __slots__ = ("input",)
    INPUT_FIELD_NUMBER: _ClassVar[int]
    input: GenerationInput
    def __init__(self, input: _Optional[_Union[GenerationInput, _Mapping]] = ...) -> None: ...

class Completion(_message.Message):
    __slots__ = ("index", "text", "tokens", "finish_reason", "matched_stop")
    INDEX_FIELD_NUMBER: _ClassVar[int]
    TEXT_FIELD_NUMBER: _ClassVar[int]
    TOKENS_FIELD_NUMBER: _ClassVar[int]
    FINISH_REASON_FIELD_NUMBER: _ClassVar[int]
    MATCHED_STOP_FIELD_NUMBER: _ClassVar[int]
    index: int
    text: str
    tokens: _chat_pb2.TokenSequence
    finish_reason: _sampling_pb2.FinishReason
    matched_stop: str
    def __init__(self, index: _Optional[int] = ..., text: _Optional[str] = ..., tokens: _Optional[_Union[_chat_pb2.TokenSequence, _Mapping]] = ..., finish_reason: _Optional[_Union[_sampling_pb2.FinishReason, str]] = ..., matched_stop: _Optional[str] = ...) -> None: ...

class PromptResult(_message.Message):
    __slots__ = ("prompt_index", "prompt_token_ids", "completions", "usage")
    PROMPT_INDEX_FIELD_NUMBER: _ClassVar[int]
    PROMPT_TOKEN_IDS_FIELD_NUMBER: _ClassVar[int]
    COMPLETIONS_FIELD_NUMBER: _ClassVar[int]
    USAGE_FIELD_NUMBER: _ClassVar[int]
    prompt_index: int
    prompt_token_ids: _containers.RepeatedScalarFieldContainer[int]
    completions: _containers.RepeatedCompositeFieldContainer[Completion]
    usage: _chat_pb2.Usage
    def __init__(self, prompt_index: _Optional[int] = ..., prompt_token_ids: _Optional[_Iterable[int]] = ..., completions: _Optional[_Iterable[_Union[Completion, _Mapping]]] = ..., usage: _Optional[_Union[_chat_pb2.Usage, _Mapping]] = ...) -> None: ...

class GenerateResponse(_message.Message):
    __slots__ = ("results", "usage", "policy_version")
    RESULTS_FIELD_NUMBER: _ClassVar[int]
    USAGE_FIELD_NUMBER: _ClassVar[int]
    POLICY_VERSION_FIELD_NUMBER: _ClassVar[int]
    results: _containers.RepeatedCompositeFieldContainer[PromptResult]
    usage: _chat_pb2.Usage
    policy_version: int
    def __init__(self, results: _Optional[_Iterable[_Union[PromptResult, _Mapping]]] = ..., usage: _Optional[_Union[_chat_pb2.Usage, _Mapping]] = ..., policy_version: _Optional[int] = ...) -> None: ...

class GenerateStreamRequest(_message.Message):
    __slots__ = ("input",)
    INPUT_FIELD_NUMBER: _ClassVar[int]
    input: GenerationInput
    def __init__(self, input: _Optional[_Union[GenerationInput, _Mapping]] = ...) -> None: ...

class GenerateStreamResponse(_message.Message):
    __slots__ = ("prompt_index", "sample_index", "text_delta", "tokens", "finish_reason", "usage", "policy_version")
    PROMPT_INDEX_FIELD_NUMBER: _ClassVar[int]
    SAMPLE_INDEX_FIELD_NUMBER: _ClassVar[int]
    TEXT_DELTA_FIELD_NUMBER: _ClassVar[int]
    TOKENS_FIELD_NUMBER: _ClassVar[int]
    FINISH_REASON_FIELD_NUMBER: _ClassVar[int]
    USAGE_FIELD_NUMBER: _ClassVar[int]
    POLICY_VERSION_FIELD_NUMBER: _ClassVar[int]
    prompt_index: int
    sample_index: int
    text_delta: str
    tokens: _chat_pb2.TokenSequence
    finish_reason: _sampling_pb2.FinishReason
    usage: _chat_pb2.Usage
    policy_version: int
    def __init__(self, prompt_index: _Optional[int] = ..., sample_index: _Optional[int] = ..., text_delta: _Optional[str] = ..., tokens: _Optional[_Union[_chat_pb2.TokenSequence, _Mapping]] = ..., finish_reason: _Optional[_Union[_sampling_pb2.FinishReason, str]] = ..., usage: _Optional[_Union[_chat_pb2.Usage, _Mapping]] = ..., policy_version: _Optional[int] = ...) -> None: ...

class ObservationPruning(_message.Message):
    __slots__ = ("enabled", "pruner_target", "min_chars")
    ENABLED_FIELD_NUMBER: _ClassVar[int]
    PRUNER_TARGET_FIELD_NUMBER: _ClassVar[int]
    MIN_CHARS_FIELD_NUMBER: _ClassVar[int]
    enabled: bool
    pruner_target: str
    min_chars: int
    def __init__(self, enabled: _Optional[bool] = ..., pruner_target: _Optional[str] = ..., min_chars: _Optional[int] = ...) -> None: ...

class EpisodeSpec(_message.Message):
    __slots__ = ("envfarm_target", "env_id", "difficulty", "seeds", "episodes_per_seed", "settings", "sampling", "concurrency", "max_turns", "system_prompt", "context_strategy", "pruning", "episode_timeout", "model")
    ENVFARM_TARGET_FIELD_NUMBER: _ClassVar[int]
    ENV_ID_FIELD_NUMBER: _ClassVar[int]
    DIFFICULTY_FIELD_NUMBER: _ClassVar[int]
    SEEDS_FIELD_NUMBER: _ClassVar[int]
    EPISODES_PER_SEED_FIELD_NUMBER: _ClassVar[int]
    SETTINGS_FIELD_NUMBER: _ClassVar[int]
    SAMPLING_FIELD_NUMBER: _ClassVar[int]
    CONCURRENCY_FIELD_NUMBER: _ClassVar[int]
    MAX_TURNS_FIELD_NUMBER: _ClassVar[int]
    SYSTEM_PROMPT_FIELD_NUMBER: _ClassVar[int]
    CONTEXT_STRATEGY_FIELD_NUMBER: _ClassVar[int]
    PRUNING_FIELD_NUMBER: _ClassVar[int]
    EPISODE_TIMEOUT_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    envfarm_target: str
    env_id: str
    difficulty: _episode_pb2.Difficulty
    seeds: _containers.RepeatedScalarFieldContainer[int]
    episodes_per_seed: int
    settings: _episode_pb2.EpisodeSettings
    sampling: _sampling_pb2.SamplingParams
    concurrency: int
    max_turns: int
    system_prompt: str
    context_strategy: ContextStrategy
    pruning: ObservationPruning
    episode_timeout: _duration_pb2.Duration
    model: str
    def __init__(self, envfarm_target: _Optional[str] = ..., env_id: _Optional[str] = ..., difficulty: _Optional[_Union[_episode_pb2.Difficulty, str]] = ..., seeds: _Optional[_Iterable[int]] = ..., episodes_per_seed: _Optional[int] = ..., settings: _Optional[_Union[_episode_pb2.EpisodeSettings, _Mapping]] = ..., sampling: _Optional[_Union[_sampling_pb2.SamplingParams, _Mapping]] = ..., concurrency: _Optional[int] = ..., max_turns: _Optional[int] = ..., system_prompt: _Optional[str] = ..., context_strategy: _Optional[_Union[ContextStrategy, str]] = ..., pruning: _Optional[_Union[ObservationPruning, _Mapping]] = ..., episode_timeout: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ..., model: _Optional[str] = ...) -> None: ...

class EpisodeError(_message.Message):
    __slots__ = ("seed", "group_index", "status")
    SEED_FIELD_NUMBER: _ClassVar[int]
    GROUP_INDEX_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    seed: int
    group_index: int
    status: _status_pb2.Status
    def __init__(self, seed: _Optional[int] = ..., group_index: _Optional[int] = ..., status: _Optional[_Union[_status_pb2.Status, _Mapping]] = ...) -> None: ...

class RunEpisodesRequest(_message.Message):
    __slots__ = ("spec",)
    SPEC_FIELD_NUMBER: _ClassVar[int]
    spec: EpisodeSpec
    def __init__(self, spec: _Optional[_Union[EpisodeSpec, _Mapping]] = ...) -> None: ...

class RunEpisodesResponse(_message.Message):
    __slots__ = ("trajectories", "errors", "usage")
    TRAJECTORIES_FIELD_NUMBER: _ClassVar[int]
    ERRORS_FIELD_NUMBER: _ClassVar[int]
    USAGE_FIELD_NUMBER: _ClassVar[int]
    trajectories: _containers.RepeatedCompositeFieldContainer[_trajectory_pb2.Trajectory]
    errors: _containers.RepeatedCompositeFieldContainer[EpisodeError]
    usage: _chat_pb2.Usage
    def __init__(self, trajectories: _Optional[_Iterable[_Union[_trajectory_pb2.Trajectory, _Mapping]]] = ..., errors: _Optional[_Iterable[_Union[EpisodeError, _Mapping]]] = ..., usage: _Optional[_Union[_chat_pb2.Usage, _Mapping]] = ...) -> None: ...

class StreamEpisodesRequest(_message.Message):
    __slots__ = ("spec", "max_staleness", "continuous")
    SPEC_FIELD_NUMBER: _ClassVar[int]
    MAX_STALENESS_FIELD_NUMBER: _ClassVar[int]
    CONTINUOUS_FIELD_NUMBER: _ClassVar[int]
    spec: EpisodeSpec
    max_staleness: int
    continuous: bool
    def __init__(self, spec: _Optional[_Union[EpisodeSpec, _Mapping]] = ..., max_staleness: _Optional[int] = ..., continuous: _Optional[bool] = ...) -> None: ...

class StreamEpisodesResponse(_message.Message):
    __slots__ = ("trajectory", "error", "current_policy_version")
    TRAJECTORY_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    CURRENT_POLICY_VERSION_FIELD_NUMBER: _ClassVar[int]
    trajectory: _trajectory_pb2.Trajectory
    error: EpisodeError
    current_policy_version: int
    def __init__(self, trajectory: _Optional[_Union[_trajectory_pb2.Trajectory, _Mapping]] = ..., error: _Optional[_Union[EpisodeError, _Mapping]] = ..., current_policy_version: _Optional[int] = ...) -> None: ...

class HeavyThinkRequest(_message.Message):
    __slots__ = ("prompt", "num_paths", "path_sampling", "reflection_sampling", "reflection_instruction", "model")
    PROMPT_FIELD_NUMBER: _ClassVar[int]
    NUM_PATHS_FIELD_NUMBER: _ClassVar[int]
    PATH_SAMPLING_FIELD_NUMBER: _ClassVar[int]
    REFLECTION_SAMPLING_FIELD_NUMBER: _ClassVar[int]
    REFLECTION_INSTRUCTION_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    prompt: Prompt
    num_paths: int
    path_sampling: _sampling_pb2.SamplingParams
    reflection_sampling: _sampling_pb2.SamplingParams
    reflection_instruction: str
    model: str
    def __init__(self, prompt: _Optional[_Union[Prompt, _Mapping]] = ..., num_paths: _Optional[int] = ..., path_sampling: _Optional[_Union[_sampling_pb2.SamplingParams, _Mapping]] = ..., reflection_sampling: _Optional[_Union[_sampling_pb2.SamplingParams, _Mapping]] = ..., reflection_instruction: _Optional[str] = ..., model: _Optional[str] = ...) -> None: ...

class ThinkingPath(_message.Message):
    __slots__ = ("index", "text", "answer", "finish_reason", "completion_tokens")
    INDEX_FIELD_NUMBER: _ClassVar[int]
    TEXT_FIELD_NUMBER: _ClassVar[int]
    ANSWER_FIELD_NUMBER: _ClassVar[int]
    FINISH_REASON_FIELD_NUMBER: _ClassVar[int]
    COMPLETION_TOKENS_FIELD_NUMBER: _ClassVar[int]
    index: int
    text: str
    answer: str
    finish_reason: _sampling_pb2.FinishReason
    completion_tokens: int
    def __init__(self, index: _Optional[int] = ..., text: _Optional[str] = ..., answer: _Optional[str] = ..., finish_reason: _Optional[_Union[_sampling_pb2.FinishReason, str]] = ..., completion_tokens: _Optional[int] = ...) -> None: ...

class HeavyThinkResponse(_message.Message):
    __slots__ = ("paths", "reflection", "answer", "usage")
    PATHS_FIELD_NUMBER: _ClassVar[int]
    REFLECTION_FIELD_NUMBER: _ClassVar[int]
    ANSWER_FIELD_NUMBER: _ClassVar[int]
    USAGE_FIELD_NUMBER: _ClassVar[int]
    paths: _containers.RepeatedCompositeFieldContainer[ThinkingPath]
    reflection: str
    answer: str
    usage: _chat_pb2.Usage
    def __init__(self, paths: _Optional[_Iterable[_Union[ThinkingPath, _Mapping]]] = ..., reflection: _Optional[str] = ..., answer: _Optional[str] = ..., usage: _Optional[_Union[_chat_pb2.Usage, _Mapping]] = ...) -> None: ...

class PersonaProfile(_message.Message):
    __slots__ = ("name", "motivation", "profile", "interaction_style", "keywords")
    NAME_FIELD_NUMBER: _ClassVar[int]
    MOTIVATION_FIELD_NUMBER: _ClassVar[int]
    PROFILE_FIELD_NUMBER: _ClassVar[int]
    INTERACTION_STYLE_FIELD_NUMBER: _ClassVar[int]
    KEYWORDS_FIELD_NUMBER: _ClassVar[int]
    name: str
    motivation: str
    profile: str
    interaction_style: str
    keywords: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, name: _Optional[str] = ..., motivation: _Optional[str] = ..., profile: _Optional[str] = ..., interaction_style: _Optional[str] = ..., keywords: _Optional[_Iterable[str]] = ...) -> None: ...

class PlaytestRequest(_message.Message):
    __slots__ = ("rulebook", "game_title", "persona", "custom_persona", "num_reviews", "sampling", "model")
    RULEBOOK_FIELD_NUMBER: _ClassVar[int]
    GAME_TITLE_FIELD_NUMBER: _ClassVar[int]
    PERSONA_FIELD_NUMBER: _ClassVar[int]
    CUSTOM_PERSONA_FIELD_NUMBER: _ClassVar[int]
    NUM_REVIEWS_FIELD_NUMBER: _ClassVar[int]
    SAMPLING_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    rulebook: str
    game_title: str
    persona: Persona
    custom_persona: PersonaProfile
    num_reviews: int
    sampling: _sampling_pb2.SamplingParams
    model: str
    def __init__(self, rulebook: _Optional[str] = ..., game_title: _Optional[str] = ..., persona: _Optional[_Union[Persona, str]] = ..., custom_persona: _Optional[_Union[PersonaProfile, _Mapping]] = ..., num_reviews: _Optional[int] = ..., sampling: _Optional[_Union[_sampling_pb2.SamplingParams, _Mapping]] = ..., model: _Optional[str] = ...) -> None: ...

class MdaReasoning(_message.Message):
    __slots__ = ("mechanics", "dynamics", "aesthetics")
    MECHANICS_FIELD_NUMBER: _ClassVar[int]
    DYNAMICS_FIELD_NUMBER: _ClassVar[int]
    AESTHETICS_FIELD_NUMBER: _ClassVar[int]
    mechanics: str
    dynamics: str
    aesthetics: str
    def __init__(self, mechanics: _Optional[str] = ..., dynamics: _Optional[str] = ..., aesthetics: _Optional[str] = ...) -> None: ...

class PlaytestReview(_message.Message):
    __slots__ = ("persona", "rating", "review", "reasoning", "raw_json")
    PERSONA_FIELD_NUMBER: _ClassVar[int]
    RATING_FIELD_NUMBER: _ClassVar[int]
    REVIEW_FIELD_NUMBER: _ClassVar[int]
    REASONING_FIELD_NUMBER: _ClassVar[int]
    RAW_JSON_FIELD_NUMBER: _ClassVar[int]
    persona: str
    rating: int
    review: str
    reasoning: MdaReasoning
    raw_json: str
    def __init__(self, persona: _Optional[str] = ..., rating: _Optional[int] = ..., review: _Optional[str] = ..., reasoning: _Optional[_Union[MdaReasoning, _Mapping]] = ..., raw_json: _Optional[str] = ...) -> None: ...

class PlaytestResponse(_message.Message):
    __slots__ = ("reviews", "mean_rating", "rating_distribution", "usage")
    REVIEWS_FIELD_NUMBER: _ClassVar[int]
    MEAN_RATING_FIELD_NUMBER: _ClassVar[int]
    RATING_DISTRIBUTION_FIELD_NUMBER: _ClassVar[int]
    USAGE_FIELD_NUMBER: _ClassVar[int]
    reviews: _containers.RepeatedCompositeFieldContainer[PlaytestReview]
    mean_rating: float
    rating_distribution: _containers.RepeatedScalarFieldContainer[float]
    usage: _chat_pb2.Usage
    def __init__(self, reviews: _Optional[_Iterable[_Union[PlaytestReview, _Mapping]]] = ..., mean_rating: _Optional[float] = ..., rating_distribution: _Optional[_Iterable[float]] = ..., usage: _Optional[_Union[_chat_pb2.Usage, _Mapping]] = ...) -> None: ...

class WeightsHeader(_message.Message):
    __slots__ = ("version", "checkpoint_uri", "tensor_count", "total_bytes", "precision", "run_id", "partial")
    VERSION_FIELD_NUMBER: _ClassVar[int]
    CHECKPOINT_URI_FIELD_NUMBER: _ClassVar[int]
    TENSOR_COUNT_FIELD_NUMBER: _ClassVar[int]
    TOTAL_BYTES_FIELD_NUMBER: _ClassVar[int]
    PRECISION_FIELD_NUMBER: _ClassVar[int]
    RUN_ID_FIELD_NUMBER: _ClassVar[int]
    PARTIAL_FIELD_NUMBER: _ClassVar[int]
    version: int
    checkpoint_uri: str
    tensor_count: int
    total_bytes: int
    precision: _precision_pb2.Precision
    run_id: str
    partial: bool
    def __init__(self, version: _Optional[int] = ..., checkpoint_uri: _Optional[str] = ..., tensor_count: _Optional[int] = ..., total_bytes: _Optional[int] = ..., precision: _Optional[_Union[_precision_pb2.Precision, _Mapping]] = ..., run_id: _Optional[str] = ..., partial: _Optional[bool] = ...) -> None: ...

class UpdateWeightsRequest(_message.Message):
    __slots__ = ("header", "chunk")
    HEADER_FIELD_NUMBER: _ClassVar[int]
    CHUNK_FIELD_NUMBER: _ClassVar[int]
    header: WeightsHeader
    chunk: _tensor_pb2.TensorChunk
    def __init__(self, header: _Optional[_Union[WeightsHeader, _Mapping]] = ..., chunk: _Optional[_Union[_tensor_pb2.TensorChunk, _Mapping]] = ...) -> None: ...

class UpdateWeightsResponse(_message.Message):
    __slots__ = ("policy_version", "tensors_loaded", "bytes_received", "load_time")
    POLICY_VERSION_FIELD_NUMBER: _ClassVar[int]
    TENSORS_LOADED_FIELD_NUMBER: _ClassVar[int]
    BYTES_RECEIVED_FIELD_NUMBER: _ClassVar[int]
    LOAD_TIME_FIELD_NUMBER: _ClassVar[int]
    policy_version: int
    tensors_loaded: int
    bytes_received: int
    load_time: _duration_pb2.Duration
    def __init__(self, policy_version: _Optional[int] = ..., tensors_loaded: _Optional[int] = ..., bytes_received: _Optional[int] = ..., load_time: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ...) -> None: ...

class GetModelInfoRequest(_message.Message):
    __slots__ = ("model",)
    MODEL_FIELD_NUMBER: _ClassVar[int]
    model: str
    def __init__(self, model: _Optional[str] = ...) -> None: ...

class GetModelInfoResponse(_message.Message):
    __slots__ = ("model_name", "model_path", "context_length", "precision", "policy_version", "backend", "dtype", "multimodal", "weights_update_time", "run_id")
    MODEL_NAME_FIELD_NUMBER: _ClassVar[int]
    MODEL_PATH_FIELD_NUMBER: _ClassVar[int]
    CONTEXT_LENGTH_FIELD_NUMBER: _ClassVar[int]
    PRECISION_FIELD_NUMBER: _ClassVar[int]
    POLICY_VERSION_FIELD_NUMBER: _ClassVar[int]
    BACKEND_FIELD_NUMBER: _ClassVar[int]
    DTYPE_FIELD_NUMBER: _ClassVar[int]
    MULTIMODAL_FIELD_NUMBER: _ClassVar[int]
    WEIGHTS_UPDATE_TIME_FIELD_NUMBER: _ClassVar[int]
    RUN_ID_FIELD_NUMBER: _ClassVar[int]
    model_name: str
    model_path: str
    context_length: int
    precision: _precision_pb2.Precision
    policy_version: int
    backend: str
    dtype: _tensor_pb2.DType
    multimodal: bool
    weights_update_time: _timestamp_pb2.Timestamp
    run_id: str
    def __init__(self, model_name: _Optional[str] = ..., model_path: _Optional[str] = ..., context_length: _Optional[int] = ..., precision: _Optional[_Union[_precision_pb2.Precision, _Mapping]] = ..., policy_version: _Optional[int] = ..., backend: _Optional[str] = ..., dtype: _Optional[_Union[_tensor_pb2.DType, str]] = ..., multimodal: _Optional[bool] = ..., weights_update_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., run_id: _Optional[str] = ...) -> None: ...
