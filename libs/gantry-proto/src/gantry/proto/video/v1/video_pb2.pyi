import datetime

from gantry.proto.common.v1 import chunk_pb2 as _chunk_pb2
from gantry.proto.common.v1 import media_pb2 as _media_pb2
from gantry.proto.common.v1 import tensor_pb2 as _tensor_pb2
from google.longrunning import operations_pb2 as _operations_pb2
from google.protobuf import duration_pb2 as _duration_pb2
from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class VideoTask(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    VIDEO_TASK_UNSPECIFIED: _ClassVar[VideoTask]
    VIDEO_TASK_EDIT: _ClassVar[VideoTask]
    VIDEO_TASK_NOVEL_VIEW: _ClassVar[VideoTask]
    VIDEO_TASK_LONG_VIDEO_EDIT: _ClassVar[VideoTask]

class AttentionMode(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    ATTENTION_MODE_UNSPECIFIED: _ClassVar[AttentionMode]
    ATTENTION_MODE_DENSE: _ClassVar[AttentionMode]
    ATTENTION_MODE_SPARSE: _ClassVar[AttentionMode]
    ATTENTION_MODE_SALAD: _ClassVar[AttentionMode]

class MemoryRetrieval(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    MEMORY_RETRIEVAL_UNSPECIFIED: _ClassVar[MemoryRetrieval]
    MEMORY_RETRIEVAL_FOV_OVERLAP: _ClassVar[MemoryRetrieval]
    MEMORY_RETRIEVAL_FEATURE_SIMILARITY: _ClassVar[MemoryRetrieval]

class GenerationStage(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    GENERATION_STAGE_UNSPECIFIED: _ClassVar[GenerationStage]
    GENERATION_STAGE_QUEUED: _ClassVar[GenerationStage]
    GENERATION_STAGE_ENCODING_INPUT: _ClassVar[GenerationStage]
    GENERATION_STAGE_RETRIEVING_MEMORY: _ClassVar[GenerationStage]
    GENERATION_STAGE_DENOISING: _ClassVar[GenerationStage]
    GENERATION_STAGE_DECODING: _ClassVar[GenerationStage]
    GENERATION_STAGE_DONE: _ClassVar[GenerationStage]
VIDEO_TASK_UNSPECIFIED: VideoTask
VIDEO_TASK_EDIT: VideoTask
VIDEO_TASK_NOVEL_VIEW: VideoTask
VIDEO_TASK_LONG_VIDEO_EDIT: VideoTask
ATTENTION_MODE_UNSPECIFIED: AttentionMode
ATTENTION_MODE_DENSE: AttentionMode
ATTENTION_MODE_SPARSE: AttentionMode
ATTENTION_MODE_SALAD: AttentionMode
MEMORY_RETRIEVAL_UNSPECIFIED: MemoryRetrieval
MEMORY_RETRIEVAL_FOV_OVERLAP: MemoryRetrieval
MEMORY_RETRIEVAL_FEATURE_SIMILARITY: MemoryRetrieval
GENERATION_STAGE_UNSPECIFIED: GenerationStage
GENERATION_STAGE_QUEUED: GenerationStage
GENERATION_STAGE_ENCODING_INPUT: GenerationStage
GENERATION_STAGE_RETRIEVING_MEMORY: GenerationStage
GENERATION_STAGE_DENOISING: GenerationStage
GENERATION_STAGE_DECODING: GenerationStage
GENERATION_STAGE_DONE: GenerationStage

class AttentionWindow(_message.Message):
    __slots__ = ("frames", "height", "width")
    FRAMES_FIELD_NUMBER: _ClassVar[int]
    HEIGHT_FIELD_NUMBER: _ClassVar[int]
    WIDTH_FIELD_NUMBER: _ClassVar[int]
    frames: int
    height: int
    width: int
    def __init__(self, frames: _Optional[int] = ..., height: _Optional[int] = ..., width: _Optional[int] = ...) -> None: ...

class AttentionSettings(_message.Message):
    __slots__ = ("mode", "sparsity", "window", "block_size")
    MODE_FIELD_NUMBER: _ClassVar[int]
    SPARSITY_FIELD_NUMBER: _ClassVar[int]
    WINDOW_FIELD_NUMBER: _ClassVar[int]
    BLOCK_SIZE_FIELD_NUMBER: _ClassVar[int]
    mode: AttentionMode
    sparsity: float
    window: AttentionWindow
    block_size: int
    def __init__(self, mode: _Optional[_Union[AttentionMode, str]] = ..., sparsity: _Optional[float] = ..., window: _Optional[_Union[AttentionWindow, _Mapping]] = ..., block_size: _Optional[int] = ...) -> None: ...

class CameraParameters(_message.Message):
    __slots__ = ("extrinsics", "intrinsics")
    EXTRINSICS_FIELD_NUMBER: _ClassVar[int]
    INTRINSICS_FIELD_NUMBER: _ClassVar[int]
    extrinsics: _tensor_pb2.Tensor
    intrinsics: _tensor_pb2.Tensor
    def __init__(self, extrinsics: _Optional[_Union[_tensor_pb2.Tensor, _Mapping]] = ..., intrinsics: _Optional[_Union[_tensor_pb2.Tensor, _Mapping]] = ...) -> None: ...

class MemorySettings(_message.Message):
    __slots__ = ("session_id", "top_k", "retrieval", "token_budget", "adaptive_token_merging", "store_result", "min_relevance")
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    TOP_K_FIELD_NUMBER: _ClassVar[int]
    RETRIEVAL_FIELD_NUMBER: _ClassVar[int]
    TOKEN_BUDGET_FIELD_NUMBER: _ClassVar[int]
    ADAPTIVE_TOKEN_MERGING_FIELD_NUMBER: _ClassVar[int]
    STORE_RESULT_FIELD_NUMBER: _ClassVar[int]
    MIN_RELEVANCE_FIELD_NUMBER: _ClassVar[int]
    session_id: str
    top_k: int
    retrieval: MemoryRetrieval
    token_budget: int
    adaptive_token_merging: bool
    store_result: bool
    min_relevance: float
    def __init__(self, session_id: _Optional[str] = ..., top_k: _Optional[int] = ..., retrieval: _Optional[_Union[MemoryRetrieval, str]] = ..., token_budget: _Optional[int] = ..., adaptive_token_merging: _Optional[bool] = ..., store_result: _Optional[bool] = ..., min_relevance: _Optional[float] = ...) -> None: ...

class VideoInput(_message.Message):
    __slots__ = ("video", "video_id", "uri")
    VIDEO_FIELD_NUMBER: _ClassVar[int]
    VIDEO_ID_FIELD_NUMBER: _ClassVar[int]
    URI_FIELD_NUMBER: _ClassVar[int]
    video: _media_pb2.Video
    video_id: str
    uri: str
    def __init__(self, video: _Optional[_Union[_media_pb2.Video, _Mapping]] = ..., video_id: _Optional[str] = ..., uri: _Optional[str] = ...) -> None: ...

class GenerateVideoRequest(_message.Message):
    __slots__ = ("input", "prompt", "negative_prompt", "model", "task", "num_frames", "width", "height", "fps", "num_inference_steps", "guidance_scale", "seed", "attention", "memory", "camera", "output_mime_type", "inline_result", "strength")
    INPUT_FIELD_NUMBER: _ClassVar[int]
    PROMPT_FIELD_NUMBER: _ClassVar[int]
    NEGATIVE_PROMPT_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    TASK_FIELD_NUMBER: _ClassVar[int]
    NUM_FRAMES_FIELD_NUMBER: _ClassVar[int]
    WIDTH_FIELD_NUMBER: _ClassVar[int]
    HEIGHT_FIELD_NUMBER: _ClassVar[int]
    FPS_FIELD_NUMBER: _ClassVar[int]
    NUM_INFERENCE_STEPS_FIELD_NUMBER: _ClassVar[int]
    GUIDANCE_SCALE_FIELD_NUMBER: _ClassVar[int]
    SEED_FIELD_NUMBER: _ClassVar[int]
    ATTENTION_FIELD_NUMBER: _ClassVar[int]
    MEMORY_FIELD_NUMBER: _ClassVar[int]
    CAMERA_FIELD_NUMBER: _ClassVar[int]
    OUTPUT_MIME_TYPE_FIELD_NUMBER: _ClassVar[int]
    INLINE_RESULT_FIELD_NUMBER: _ClassVar[int]
    STRENGTH_FIELD_NUMBER: _ClassVar[int]
    input: VideoInput
    prompt: str
    negative_prompt: str
    model: str
    task: VideoTask
    num_frames: int
    width: int
    height: int
    fps: float
    num_inference_steps: int
    guidance_scale: float
    seed: int
    attention: AttentionSettings
    memory: MemorySettings
    camera: CameraParameters
    output_mime_type: str
    inline_result: bool
    strength: float
    def __init__(self, input: _Optional[_Union[VideoInput, _Mapping]] = ..., prompt: _Optional[str] = ..., negative_prompt: _Optional[str] = ..., model: _Optional[str] = ..., task: _Optional[_Union[VideoTask, str]] = ..., num_frames: _Optional[int] = ..., width: _Optional[int] = ..., height: _Optional[int] = ..., fps: _Optional[float] = ..., num_inference_steps: _Optional[int] = ..., guidance_scale: _Optional[float] = ..., seed: _Optional[int] = ..., attention: _Optional[_Union[AttentionSettings, _Mapping]] = ..., memory: _Optional[_Union[MemorySettings, _Mapping]] = ..., camera: _Optional[_Union[CameraParameters, _Mapping]] = ..., output_mime_type: _Optional[str] = ..., inline_result: _Optional[bool] = ..., strength: _Optional[float] = ...) -> None: ...

class GenerateVideoMetadata(_message.Message):
    __slots__ = ("stage", "step", "total_steps", "progress", "start_time")
    STAGE_FIELD_NUMBER: _ClassVar[int]
    STEP_FIELD_NUMBER: _ClassVar[int]
    TOTAL_STEPS_FIELD_NUMBER: _ClassVar[int]
    PROGRESS_FIELD_NUMBER: _ClassVar[int]
    START_TIME_FIELD_NUMBER: _ClassVar[int]
    stage: GenerationStage
    step: int
    total_steps: int
    progress: float
    start_time: _timestamp_pb2.Timestamp
    def __init__(self, stage: _Optional[_Union[GenerationStage, str]] = ..., step: _Optional[int] = ..., total_steps: _Optional[int] = ..., progress: _Optional[float] = ..., start_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class GenerateVideoResponse(_message.Message):
    __slots__ = ("video_id", "video", "seed", "memory_entry_ids", "stored_entry_id", "generation_time", "retrieved", "memory_tokens", "memory_tokens_before_merge")
    VIDEO_ID_FIELD_NUMBER: _ClassVar[int]
    VIDEO_FIELD_NUMBER: _ClassVar[int]
    SEED_FIELD_NUMBER: _ClassVar[int]
    MEMORY_ENTRY_IDS_FIELD_NUMBER: _ClassVar[int]
    STORED_ENTRY_ID_FIELD_NUMBER: _ClassVar[int]
    GENERATION_TIME_FIELD_NUMBER: _ClassVar[int]
    RETRIEVED_FIELD_NUMBER: _ClassVar[int]
    MEMORY_TOKENS_FIELD_NUMBER: _ClassVar[int]
    MEMORY_TOKENS_BEFORE_MERGE_FIELD_NUMBER: _ClassVar[int]
    video_id: str
    video: _media_pb2.Video
    seed: int
    memory_entry_ids: _containers.RepeatedScalarFieldContainer[str]
    stored_entry_id: str
    generation_time: _duration_pb2.Duration
    retrieved: _containers.RepeatedCompositeFieldContainer[RetrievedMemory]
    memory_tokens: int
    memory_tokens_before_merge: int
    def __init__(self, video_id: _Optional[str] = ..., video: _Optional[_Union[_media_pb2.Video, _Mapping]] = ..., seed: _Optional[int] = ..., memory_entry_ids: _Optional[_Iterable[str]] = ..., stored_entry_id: _Optional[str] = ..., generation_time: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ..., retrieved: _Optional[_Iterable[_Union[RetrievedMemory, _Mapping]]] = ..., memory_tokens: _Optional[int] = ..., memory_tokens_before_merge: _Optional[int] = ...) -> None: ...

class RetrievedMemory(_message.Message):
    __slots__ = ("entry_id", "relevance", "tokens")
    ENTRY_ID_FIELD_NUMBER: _ClassVar[int]
    RELEVANCE_FIELD_NUMBER: _ClassVar[int]
    TOKENS_FIELD_NUMBER: _ClassVar[int]
    entry_id: str
    relevance: float
    tokens: int
    def __init__(self, entry_id: _Optional[str] = ..., relevance: _Optional[float] = ..., tokens: _Optional[int] = ...) -> None: ...

class GetCapabilitiesRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class VideoModel(_message.Message):
    __slots__ = ("id", "is_default", "salad_weights", "tiny")
    ID_FIELD_NUMBER: _ClassVar[int]
    IS_DEFAULT_FIELD_NUMBER: _ClassVar[int]
    SALAD_WEIGHTS_FIELD_NUMBER: _ClassVar[int]
    TINY_FIELD_NUMBER: _ClassVar[int]
    id: str
    is_default: bool
    salad_weights: bool
    tiny: bool
    def __init__(self, id: _Optional[str] = ..., is_default: _Optional[bool] = ..., salad_weights: _Optional[bool] = ..., tiny: _Optional[bool] = ...) -> None: ...

class GetCapabilitiesResponse(_message.Message):
    __slots__ = ("models", "frame_multiple", "frame_remainder", "size_multiple", "max_frames", "max_width", "max_height", "max_video_bytes", "max_prompt_bytes", "default_steps", "max_steps", "output_mime_types", "attention_modes", "max_memory_token_budget", "retention")
    MODELS_FIELD_NUMBER: _ClassVar[int]
    FRAME_MULTIPLE_FIELD_NUMBER: _ClassVar[int]
    FRAME_REMAINDER_FIELD_NUMBER: _ClassVar[int]
    SIZE_MULTIPLE_FIELD_NUMBER: _ClassVar[int]
    MAX_FRAMES_FIELD_NUMBER: _ClassVar[int]
    MAX_WIDTH_FIELD_NUMBER: _ClassVar[int]
    MAX_HEIGHT_FIELD_NUMBER: _ClassVar[int]
    MAX_VIDEO_BYTES_FIELD_NUMBER: _ClassVar[int]
    MAX_PROMPT_BYTES_FIELD_NUMBER: _ClassVar[int]
    DEFAULT_STEPS_FIELD_NUMBER: _ClassVar[int]
    MAX_STEPS_FIELD_NUMBER: _ClassVar[int]
    OUTPUT_MIME_TYPES_FIELD_NUMBER: _ClassVar[int]
    ATTENTION_MODES_FIELD_NUMBER: _ClassVar[int]
    MAX_MEMORY_TOKEN_BUDGET_FIELD_NUMBER: _ClassVar[int]
    RETENTION_FIELD_NUMBER: _ClassVar[int]
    models: _containers.RepeatedCompositeFieldContainer[VideoModel]
    frame_multiple: int
    frame_remainder: int
    size_multiple: int
    max_frames: int
    max_width: int
    max_height: int
    max_video_bytes: int
    max_prompt_bytes: int
    default_steps: int
    max_steps: int
    output_mime_types: _containers.RepeatedScalarFieldContainer[str]
    attention_modes: _containers.RepeatedScalarFieldContainer[AttentionMode]
    max_memory_token_budget: int
    retention: _duration_pb2.Duration
    def __init__(self, models: _Optional[_Iterable[_Union[VideoModel, _Mapping]]] = ..., frame_multiple: _Optional[int] = ..., frame_remainder: _Optional[int] = ..., size_multiple: _Optional[int] = ..., max_frames: _Optional[int] = ..., max_width: _Optional[int] = ..., max_height: _Optional[int] = ..., max_video_bytes: _Optional[int] = ..., max_prompt_bytes: _Optional[int] = ..., default_steps: _Optional[int] = ..., max_steps: _Optional[int] = ..., output_mime_types: _Optional[_Iterable[str]] = ..., attention_modes: _Optional[_Iterable[_Union[AttentionMode, str]]] = ..., max_memory_token_budget: _Optional[int] = ..., retention: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ...) -> None: ...

class VideoHeader(_message.Message):
    __slots__ = ("mime_type", "size_bytes", "fps", "frame_count", "width", "height")
    MIME_TYPE_FIELD_NUMBER: _ClassVar[int]
    SIZE_BYTES_FIELD_NUMBER: _ClassVar[int]
    FPS_FIELD_NUMBER: _ClassVar[int]
    FRAME_COUNT_FIELD_NUMBER: _ClassVar[int]
    WIDTH_FIELD_NUMBER: _ClassVar[int]
    HEIGHT_FIELD_NUMBER: _ClassVar[int]
    mime_type: str
    size_bytes: int
    fps: float
    frame_count: int
    width: int
    height: int
    def __init__(self, mime_type: _Optional[str] = ..., size_bytes: _Optional[int] = ..., fps: _Optional[float] = ..., frame_count: _Optional[int] = ..., width: _Optional[int] = ..., height: _Optional[int] = ...) -> None: ...

class UploadVideoRequest(_message.Message):
    __slots__ = ("header", "chunk")
    HEADER_FIELD_NUMBER: _ClassVar[int]
    CHUNK_FIELD_NUMBER: _ClassVar[int]
    header: VideoHeader
    chunk: _chunk_pb2.Chunk
    def __init__(self, header: _Optional[_Union[VideoHeader, _Mapping]] = ..., chunk: _Optional[_Union[_chunk_pb2.Chunk, _Mapping]] = ...) -> None: ...

class UploadVideoResponse(_message.Message):
    __slots__ = ("video_id", "header", "expire_time")
    VIDEO_ID_FIELD_NUMBER: _ClassVar[int]
    HEADER_FIELD_NUMBER: _ClassVar[int]
    EXPIRE_TIME_FIELD_NUMBER: _ClassVar[int]
    video_id: str
    header: VideoHeader
    expire_time: _timestamp_pb2.Timestamp
    def __init__(self, video_id: _Optional[str] = ..., header: _Optional[_Union[VideoHeader, _Mapping]] = ..., expire_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class DownloadVideoRequest(_message.Message):
    __slots__ = ("video_id", "chunk_size")
    VIDEO_ID_FIELD_NUMBER: _ClassVar[int]
    CHUNK_SIZE_FIELD_NUMBER: _ClassVar[int]
    video_id: str
    chunk_size: int
    def __init__(self, video_id: _Optional[str] = ..., chunk_size: _Optional[int] = ...) -> None: ...

class DownloadVideoResponse(_message.Message):
    __slots__ = ("header", "chunk")
    HEADER_FIELD_NUMBER: _ClassVar[int]
    CHUNK_FIELD_NUMBER: _ClassVar[int]
    header: VideoHeader
    chunk: _chunk_pb2.Chunk
    def __init__(self, header: _Optional[_Union[VideoHeader, _Mapping]] = ..., chunk: _Optional[_Union[_chunk_pb2.Chunk, _Mapping]] = ...) -> None: ...

class MemorySession(_message.Message):
    __slots__ = ("id", "display_name", "retrieval", "top_k", "token_budget", "max_entries", "entry_count", "create_time", "update_time")
    ID_FIELD_NUMBER: _ClassVar[int]
    DISPLAY_NAME_FIELD_NUMBER: _ClassVar[int]
    RETRIEVAL_FIELD_NUMBER: _ClassVar[int]
    TOP_K_FIELD_NUMBER: _ClassVar[int]
    TOKEN_BUDGET_FIELD_NUMBER: _ClassVar[int]
    MAX_ENTRIES_FIELD_NUMBER: _ClassVar[int]
    ENTRY_COUNT_FIELD_NUMBER: _ClassVar[int]
    CREATE_TIME_FIELD_NUMBER: _ClassVar[int]
    UPDATE_TIME_FIELD_NUMBER: _ClassVar[int]
    id: str
    display_name: str
    retrieval: MemoryRetrieval
    top_k: int
    token_budget: int
    max_entries: int
    entry_count: int
    create_time: _timestamp_pb2.Timestamp
    update_time: _timestamp_pb2.Timestamp
    def __init__(self, id: _Optional[str] = ..., display_name: _Optional[str] = ..., retrieval: _Optional[_Union[MemoryRetrieval, str]] = ..., top_k: _Optional[int] = ..., token_budget: _Optional[int] = ..., max_entries: _Optional[int] = ..., entry_count: _Optional[int] = ..., create_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., update_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class MemoryEntry(_message.Message):
    __slots__ = ("id", "session_id", "video_id", "prompt", "camera", "thumbnail", "frame_count", "create_time")
    ID_FIELD_NUMBER: _ClassVar[int]
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    VIDEO_ID_FIELD_NUMBER: _ClassVar[int]
    PROMPT_FIELD_NUMBER: _ClassVar[int]
    CAMERA_FIELD_NUMBER: _ClassVar[int]
    THUMBNAIL_FIELD_NUMBER: _ClassVar[int]
    FRAME_COUNT_FIELD_NUMBER: _ClassVar[int]
    CREATE_TIME_FIELD_NUMBER: _ClassVar[int]
    id: str
    session_id: str
    video_id: str
    prompt: str
    camera: CameraParameters
    thumbnail: _media_pb2.Image
    frame_count: int
    create_time: _timestamp_pb2.Timestamp
    def __init__(self, id: _Optional[str] = ..., session_id: _Optional[str] = ..., video_id: _Optional[str] = ..., prompt: _Optional[str] = ..., camera: _Optional[_Union[CameraParameters, _Mapping]] = ..., thumbnail: _Optional[_Union[_media_pb2.Image, _Mapping]] = ..., frame_count: _Optional[int] = ..., create_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class CreateMemorySessionRequest(_message.Message):
    __slots__ = ("display_name", "retrieval", "top_k", "token_budget", "max_entries")
    DISPLAY_NAME_FIELD_NUMBER: _ClassVar[int]
    RETRIEVAL_FIELD_NUMBER: _ClassVar[int]
    TOP_K_FIELD_NUMBER: _ClassVar[int]
    TOKEN_BUDGET_FIELD_NUMBER: _ClassVar[int]
    MAX_ENTRIES_FIELD_NUMBER: _ClassVar[int]
    display_name: str
    retrieval: MemoryRetrieval
    top_k: int
    token_budget: int
    max_entries: int
    def __init__(self, display_name: _Optional[str] = ..., retrieval: _Optional[_Union[MemoryRetrieval, str]] = ..., top_k: _Optional[int] = ..., token_budget: _Optional[int] = ..., max_entries: _Optional[int] = ...) -> None: ...

class CreateMemorySessionResponse(_message.Message):
    __slots__ = ("session",)
    SESSION_FIELD_NUMBER: _ClassVar[int]
    session: MemorySession
    def __init__(self, session: _Optional[_Union[MemorySession, _Mapping]] = ...) -> None: ...

class GetMemorySessionRequest(_message.Message):
    __slots__ = ("session_id",)
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    session_id: str
    def __init__(self, session_id: _Optional[str] = ...) -> None: ...

class GetMemorySessionResponse(_message.Message):
    __slots__ = ("session",)
    SESSION_FIELD_NUMBER: _ClassVar[int]
    session: MemorySession
    def __init__(self, session: _Optional[_Union[MemorySession, _Mapping]] = ...) -> None: ...

class ListMemoryEntriesRequest(_message.Message):
    __slots__ = ("session_id", "page_size", "page_token")
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    session_id: str
    page_size: int
    page_token: str
    def __init__(self, session_id: _Optional[str] = ..., page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class ListMemoryEntriesResponse(_message.Message):
    __slots__ = ("entries", "next_page_token")
    ENTRIES_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    entries: _containers.RepeatedCompositeFieldContainer[MemoryEntry]
    next_page_token: str
    def __init__(self, entries: _Optional[_Iterable[_Union[MemoryEntry, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class DeleteMemorySessionRequest(_message.Message):
    __slots__ = ("session_id",)
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    session_id: str
    def __init__(self, session_id: _Optional[str] = ...) -> None: ...

class DeleteMemorySessionResponse(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class DeleteMemoryEntryRequest(_message.Message):
    __slots__ = ("session_id", "entry_id")
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    ENTRY_ID_FIELD_NUMBER: _ClassVar[int]
    session_id: str
    entry_id: str
    def __init__(self, session_id: _Optional[str] = ..., entry_id: _Optional[str] = ...) -> None: ...

class DeleteMemoryEntryResponse(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...
