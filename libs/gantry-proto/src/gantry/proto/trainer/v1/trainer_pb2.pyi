import datetime

from gantry.proto.common.v1 import episode_pb2 as _episode_pb2
from gantry.proto.common.v1 import precision_pb2 as _precision_pb2
from gantry.proto.common.v1 import sampling_pb2 as _sampling_pb2
from gantry.proto.common.v1 import trajectory_pb2 as _trajectory_pb2
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

class RunState(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    RUN_STATE_UNSPECIFIED: _ClassVar[RunState]
    RUN_STATE_PENDING: _ClassVar[RunState]
    RUN_STATE_RUNNING: _ClassVar[RunState]
    RUN_STATE_CANCELLING: _ClassVar[RunState]
    RUN_STATE_SUCCEEDED: _ClassVar[RunState]
    RUN_STATE_FAILED: _ClassVar[RunState]
    RUN_STATE_CANCELLED: _ClassVar[RunState]

class OffPolicyCorrection(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    OFF_POLICY_CORRECTION_UNSPECIFIED: _ClassVar[OffPolicyCorrection]
    OFF_POLICY_CORRECTION_NONE: _ClassVar[OffPolicyCorrection]
    OFF_POLICY_CORRECTION_TIS: _ClassVar[OffPolicyCorrection]
    OFF_POLICY_CORRECTION_MIS: _ClassVar[OffPolicyCorrection]

class RankState(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    RANK_STATE_UNSPECIFIED: _ClassVar[RankState]
    RANK_STATE_STARTING: _ClassVar[RankState]
    RANK_STATE_RUNNING: _ClassVar[RankState]
    RANK_STATE_EXITED: _ClassVar[RankState]
    RANK_STATE_FAILED: _ClassVar[RankState]

class WeightTransfer(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    WEIGHT_TRANSFER_UNSPECIFIED: _ClassVar[WeightTransfer]
    WEIGHT_TRANSFER_STREAM: _ClassVar[WeightTransfer]
    WEIGHT_TRANSFER_URI: _ClassVar[WeightTransfer]
RUN_STATE_UNSPECIFIED: RunState
RUN_STATE_PENDING: RunState
RUN_STATE_RUNNING: RunState
RUN_STATE_CANCELLING: RunState
RUN_STATE_SUCCEEDED: RunState
RUN_STATE_FAILED: RunState
RUN_STATE_CANCELLED: RunState
OFF_POLICY_CORRECTION_UNSPECIFIED: OffPolicyCorrection
OFF_POLICY_CORRECTION_NONE: OffPolicyCorrection
OFF_POLICY_CORRECTION_TIS: OffPolicyCorrection
OFF_POLICY_CORRECTION_MIS: OffPolicyCorrection
RANK_STATE_UNSPECIFIED: RankState
RANK_STATE_STARTING: RankState
RANK_STATE_RUNNING: RankState
RANK_STATE_EXITED: RankState
RANK_STATE_FAILED: RankState
WEIGHT_TRANSFER_UNSPECIFIED: WeightTransfer
WEIGHT_TRANSFER_STREAM: WeightTransfer
WEIGHT_TRANSFER_URI: WeightTransfer

class SftConfig(_message.Message):
    __slots__ = ("assistant_only_loss", "packing")
    ASSISTANT_ONLY_LOSS_FIELD_NUMBER: _ClassVar[int]
    PACKING_FIELD_NUMBER: _ClassVar[int]
    assistant_only_loss: bool
    packing: bool
    def __init__(self, assistant_only_loss: _Optional[bool] = ..., packing: _Optional[bool] = ...) -> None: ...

class GrpoConfig(_message.Message):
    __slots__ = ("group_size", "kl_coef", "clip_low", "clip_high", "scale_advantages", "sampling", "max_staleness", "off_policy_correction", "importance_cap")
    GROUP_SIZE_FIELD_NUMBER: _ClassVar[int]
    KL_COEF_FIELD_NUMBER: _ClassVar[int]
    CLIP_LOW_FIELD_NUMBER: _ClassVar[int]
    CLIP_HIGH_FIELD_NUMBER: _ClassVar[int]
    SCALE_ADVANTAGES_FIELD_NUMBER: _ClassVar[int]
    SAMPLING_FIELD_NUMBER: _ClassVar[int]
    MAX_STALENESS_FIELD_NUMBER: _ClassVar[int]
    OFF_POLICY_CORRECTION_FIELD_NUMBER: _ClassVar[int]
    IMPORTANCE_CAP_FIELD_NUMBER: _ClassVar[int]
    group_size: int
    kl_coef: float
    clip_low: float
    clip_high: float
    scale_advantages: bool
    sampling: _sampling_pb2.SamplingParams
    max_staleness: int
    off_policy_correction: OffPolicyCorrection
    importance_cap: float
    def __init__(self, group_size: _Optional[int] = ..., kl_coef: _Optional[float] = ..., clip_low: _Optional[float] = ..., clip_high: _Optional[float] = ..., scale_advantages: _Optional[bool] = ..., sampling: _Optional[_Union[_sampling_pb2.SamplingParams, _Mapping]] = ..., max_staleness: _Optional[int] = ..., off_policy_correction: _Optional[_Union[OffPolicyCorrection, str]] = ..., importance_cap: _Optional[float] = ...) -> None: ...

class PpoConfig(_message.Message):
    __slots__ = ("clip_epsilon", "kl_coef", "gamma", "gae_lambda", "value_coef", "ppo_epochs", "critic_model", "sampling")
    CLIP_EPSILON_FIELD_NUMBER: _ClassVar[int]
    KL_COEF_FIELD_NUMBER: _ClassVar[int]
    GAMMA_FIELD_NUMBER: _ClassVar[int]
    GAE_LAMBDA_FIELD_NUMBER: _ClassVar[int]
    VALUE_COEF_FIELD_NUMBER: _ClassVar[int]
    PPO_EPOCHS_FIELD_NUMBER: _ClassVar[int]
    CRITIC_MODEL_FIELD_NUMBER: _ClassVar[int]
    SAMPLING_FIELD_NUMBER: _ClassVar[int]
    clip_epsilon: float
    kl_coef: float
    gamma: float
    gae_lambda: float
    value_coef: float
    ppo_epochs: int
    critic_model: str
    sampling: _sampling_pb2.SamplingParams
    def __init__(self, clip_epsilon: _Optional[float] = ..., kl_coef: _Optional[float] = ..., gamma: _Optional[float] = ..., gae_lambda: _Optional[float] = ..., value_coef: _Optional[float] = ..., ppo_epochs: _Optional[int] = ..., critic_model: _Optional[str] = ..., sampling: _Optional[_Union[_sampling_pb2.SamplingParams, _Mapping]] = ...) -> None: ...

class EpisodeSource(_message.Message):
    __slots__ = ("env_id", "difficulty", "settings", "seeds", "max_turns", "system_prompt")
    ENV_ID_FIELD_NUMBER: _ClassVar[int]
    DIFFICULTY_FIELD_NUMBER: _ClassVar[int]
    SETTINGS_FIELD_NUMBER: _ClassVar[int]
    SEEDS_FIELD_NUMBER: _ClassVar[int]
    MAX_TURNS_FIELD_NUMBER: _ClassVar[int]
    SYSTEM_PROMPT_FIELD_NUMBER: _ClassVar[int]
    env_id: str
    difficulty: _episode_pb2.Difficulty
    settings: _episode_pb2.EpisodeSettings
    seeds: _containers.RepeatedScalarFieldContainer[int]
    max_turns: int
    system_prompt: str
    def __init__(self, env_id: _Optional[str] = ..., difficulty: _Optional[_Union[_episode_pb2.Difficulty, str]] = ..., settings: _Optional[_Union[_episode_pb2.EpisodeSettings, _Mapping]] = ..., seeds: _Optional[_Iterable[int]] = ..., max_turns: _Optional[int] = ..., system_prompt: _Optional[str] = ...) -> None: ...

class DataSource(_message.Message):
    __slots__ = ("dataset_uri", "episodes", "submitted", "verifier_target")
    DATASET_URI_FIELD_NUMBER: _ClassVar[int]
    EPISODES_FIELD_NUMBER: _ClassVar[int]
    SUBMITTED_FIELD_NUMBER: _ClassVar[int]
    VERIFIER_TARGET_FIELD_NUMBER: _ClassVar[int]
    dataset_uri: str
    episodes: EpisodeSource
    submitted: bool
    verifier_target: str
    def __init__(self, dataset_uri: _Optional[str] = ..., episodes: _Optional[_Union[EpisodeSource, _Mapping]] = ..., submitted: _Optional[bool] = ..., verifier_target: _Optional[str] = ...) -> None: ...

class OptimizerConfig(_message.Message):
    __slots__ = ("learning_rate", "weight_decay", "warmup_steps", "lr_schedule", "max_grad_norm")
    LEARNING_RATE_FIELD_NUMBER: _ClassVar[int]
    WEIGHT_DECAY_FIELD_NUMBER: _ClassVar[int]
    WARMUP_STEPS_FIELD_NUMBER: _ClassVar[int]
    LR_SCHEDULE_FIELD_NUMBER: _ClassVar[int]
    MAX_GRAD_NORM_FIELD_NUMBER: _ClassVar[int]
    learning_rate: float
    weight_decay: float
    warmup_steps: int
    lr_schedule: str
    max_grad_norm: float
    def __init__(self, learning_rate: _Optional[float] = ..., weight_decay: _Optional[float] = ..., warmup_steps: _Optional[int] = ..., lr_schedule: _Optional[str] = ..., max_grad_norm: _Optional[float] = ...) -> None: ...

class RunConfig(_message.Message):
    __slots__ = ("base_model", "sft", "grpo", "ppo", "data", "optimizer", "batch_size", "micro_batch_size", "max_steps", "max_seq_len", "precision", "rollout_target", "publish_interval", "checkpoint_interval", "output_uri", "seed", "extra", "micro_batch_tokens", "world_size")
    BASE_MODEL_FIELD_NUMBER: _ClassVar[int]
    SFT_FIELD_NUMBER: _ClassVar[int]
    GRPO_FIELD_NUMBER: _ClassVar[int]
    PPO_FIELD_NUMBER: _ClassVar[int]
    DATA_FIELD_NUMBER: _ClassVar[int]
    OPTIMIZER_FIELD_NUMBER: _ClassVar[int]
    BATCH_SIZE_FIELD_NUMBER: _ClassVar[int]
    MICRO_BATCH_SIZE_FIELD_NUMBER: _ClassVar[int]
    MAX_STEPS_FIELD_NUMBER: _ClassVar[int]
    MAX_SEQ_LEN_FIELD_NUMBER: _ClassVar[int]
    PRECISION_FIELD_NUMBER: _ClassVar[int]
    ROLLOUT_TARGET_FIELD_NUMBER: _ClassVar[int]
    PUBLISH_INTERVAL_FIELD_NUMBER: _ClassVar[int]
    CHECKPOINT_INTERVAL_FIELD_NUMBER: _ClassVar[int]
    OUTPUT_URI_FIELD_NUMBER: _ClassVar[int]
    SEED_FIELD_NUMBER: _ClassVar[int]
    EXTRA_FIELD_NUMBER: _ClassVar[int]
    MICRO_BATCH_TOKENS_FIELD_NUMBER: _ClassVar[int]
    WORLD_SIZE_FIELD_NUMBER: _ClassVar[int]
    base_model: str
    sft: SftConfig
    grpo: GrpoConfig
    ppo: PpoConfig
    data: DataSource
    optimizer: OptimizerConfig
    batch_size: int
    micro_batch_size: int
    max_steps: int
    max_seq_len: int
    precision: _precision_pb2.Precision
    rollout_target: str
    publish_interval: int
    checkpoint_interval: int
    output_uri: str
    seed: int
    extra: _struct_pb2.Struct
    micro_batch_tokens: int
    world_size: int
    def __init__(self, base_model: _Optional[str] = ..., sft: _Optional[_Union[SftConfig, _Mapping]] = ..., grpo: _Optional[_Union[GrpoConfig, _Mapping]] = ..., ppo: _Optional[_Union[PpoConfig, _Mapping]] = ..., data: _Optional[_Union[DataSource, _Mapping]] = ..., optimizer: _Optional[_Union[OptimizerConfig, _Mapping]] = ..., batch_size: _Optional[int] = ..., micro_batch_size: _Optional[int] = ..., max_steps: _Optional[int] = ..., max_seq_len: _Optional[int] = ..., precision: _Optional[_Union[_precision_pb2.Precision, _Mapping]] = ..., rollout_target: _Optional[str] = ..., publish_interval: _Optional[int] = ..., checkpoint_interval: _Optional[int] = ..., output_uri: _Optional[str] = ..., seed: _Optional[int] = ..., extra: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ..., micro_batch_tokens: _Optional[int] = ..., world_size: _Optional[int] = ...) -> None: ...

class StepMetrics(_message.Message):
    __slots__ = ("step", "loss", "reward_mean", "reward_std", "kl", "grad_norm", "tokens_per_second", "learning_rate", "entropy", "staleness_mean", "policy_version", "time", "extra")
    class ExtraEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: float
        def __init__(self, key: _Optional[str] = ..., value: _Optional[float] = ...) -> None: ...
    STEP_FIELD_NUMBER: _ClassVar[int]
    LOSS_FIELD_NUMBER: _ClassVar[int]
    REWARD_MEAN_FIELD_NUMBER: _ClassVar[int]
    REWARD_STD_FIELD_NUMBER: _ClassVar[int]
    KL_FIELD_NUMBER: _ClassVar[int]
    GRAD_NORM_FIELD_NUMBER: _ClassVar[int]
    TOKENS_PER_SECOND_FIELD_NUMBER: _ClassVar[int]
    LEARNING_RATE_FIELD_NUMBER: _ClassVar[int]
    ENTROPY_FIELD_NUMBER: _ClassVar[int]
    STALENESS_MEAN_FIELD_NUMBER: _ClassVar[int]
    POLICY_VERSION_FIELD_NUMBER: _ClassVar[int]
    TIME_FIELD_NUMBER: _ClassVar[int]
    EXTRA_FIELD_NUMBER: _ClassVar[int]
    step: int
    loss: float
    reward_mean: float
    reward_std: float
    kl: float
    grad_norm: float
    tokens_per_second: float
    learning_rate: float
    entropy: float
    staleness_mean: float
    policy_version: int
    time: _timestamp_pb2.Timestamp
    extra: _containers.ScalarMap[str, float]
    def __init__(self, step: _Optional[int] = ..., loss: _Optional[float] = ..., reward_mean: _Optional[float] = ..., reward_std: _Optional[float] = ..., kl: _Optional[float] = ..., grad_norm: _Optional[float] = ..., tokens_per_second: _Optional[float] = ..., learning_rate: _Optional[float] = ..., entropy: _Optional[float] = ..., staleness_mean: _Optional[float] = ..., policy_version: _Optional[int] = ..., time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., extra: _Optional[_Mapping[str, float]] = ...) -> None: ...

class Checkpoint(_message.Message):
    __slots__ = ("id", "run_id", "step", "uri", "size_bytes", "policy_version", "precision", "metrics", "create_time")
    ID_FIELD_NUMBER: _ClassVar[int]
    RUN_ID_FIELD_NUMBER: _ClassVar[int]
    STEP_FIELD_NUMBER: _ClassVar[int]
    URI_FIELD_NUMBER: _ClassVar[int]
    SIZE_BYTES_FIELD_NUMBER: _ClassVar[int]
    POLICY_VERSION_FIELD_NUMBER: _ClassVar[int]
    PRECISION_FIELD_NUMBER: _ClassVar[int]
    METRICS_FIELD_NUMBER: _ClassVar[int]
    CREATE_TIME_FIELD_NUMBER: _ClassVar[int]
    id: str
    run_id: str
    step: int
    uri: str
    size_bytes: int
    policy_version: int
    precision: _precision_pb2.Precision
    metrics: StepMetrics
    create_time: _timestamp_pb2.Timestamp
    def __init__(self, id: _Optional[str] = ..., run_id: _Optional[str] = ..., step: _Optional[int] = ..., uri: _Optional[str] = ..., size_bytes: _Optional[int] = ..., policy_version: _Optional[int] = ..., precision: _Optional[_Union[_precision_pb2.Precision, _Mapping]] = ..., metrics: _Optional[_Union[StepMetrics, _Mapping]] = ..., create_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class Run(_message.Message):
    __slots__ = ("id", "display_name", "config", "state", "operation_name", "step", "total_steps", "policy_version", "latest_metrics", "latest_checkpoint", "error", "create_time", "start_time", "end_time", "replicas", "ranks")
    ID_FIELD_NUMBER: _ClassVar[int]
    DISPLAY_NAME_FIELD_NUMBER: _ClassVar[int]
    CONFIG_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    OPERATION_NAME_FIELD_NUMBER: _ClassVar[int]
    STEP_FIELD_NUMBER: _ClassVar[int]
    TOTAL_STEPS_FIELD_NUMBER: _ClassVar[int]
    POLICY_VERSION_FIELD_NUMBER: _ClassVar[int]
    LATEST_METRICS_FIELD_NUMBER: _ClassVar[int]
    LATEST_CHECKPOINT_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    CREATE_TIME_FIELD_NUMBER: _ClassVar[int]
    START_TIME_FIELD_NUMBER: _ClassVar[int]
    END_TIME_FIELD_NUMBER: _ClassVar[int]
    REPLICAS_FIELD_NUMBER: _ClassVar[int]
    RANKS_FIELD_NUMBER: _ClassVar[int]
    id: str
    display_name: str
    config: RunConfig
    state: RunState
    operation_name: str
    step: int
    total_steps: int
    policy_version: int
    latest_metrics: StepMetrics
    latest_checkpoint: Checkpoint
    error: _status_pb2.Status
    create_time: _timestamp_pb2.Timestamp
    start_time: _timestamp_pb2.Timestamp
    end_time: _timestamp_pb2.Timestamp
    replicas: _containers.RepeatedCompositeFieldContainer[ReplicaWeights]
    ranks: _containers.RepeatedCompositeFieldContainer[RankStatus]
    def __init__(self, id: _Optional[str] = ..., display_name: _Optional[str] = ..., config: _Optional[_Union[RunConfig, _Mapping]] = ..., state: _Optional[_Union[RunState, str]] = ..., operation_name: _Optional[str] = ..., step: _Optional[int] = ..., total_steps: _Optional[int] = ..., policy_version: _Optional[int] = ..., latest_metrics: _Optional[_Union[StepMetrics, _Mapping]] = ..., latest_checkpoint: _Optional[_Union[Checkpoint, _Mapping]] = ..., error: _Optional[_Union[_status_pb2.Status, _Mapping]] = ..., create_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., start_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., end_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., replicas: _Optional[_Iterable[_Union[ReplicaWeights, _Mapping]]] = ..., ranks: _Optional[_Iterable[_Union[RankStatus, _Mapping]]] = ...) -> None: ...

class RankStatus(_message.Message):
    __slots__ = ("rank", "host", "pid", "state", "detail")
    RANK_FIELD_NUMBER: _ClassVar[int]
    HOST_FIELD_NUMBER: _ClassVar[int]
    PID_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    DETAIL_FIELD_NUMBER: _ClassVar[int]
    rank: int
    host: str
    pid: int
    state: RankState
    detail: str
    def __init__(self, rank: _Optional[int] = ..., host: _Optional[str] = ..., pid: _Optional[int] = ..., state: _Optional[_Union[RankState, str]] = ..., detail: _Optional[str] = ...) -> None: ...

class ReplicaWeights(_message.Message):
    __slots__ = ("target", "policy_version", "run_policy_version", "checkpoint_id", "acknowledge_time", "error", "seconds")
    TARGET_FIELD_NUMBER: _ClassVar[int]
    POLICY_VERSION_FIELD_NUMBER: _ClassVar[int]
    RUN_POLICY_VERSION_FIELD_NUMBER: _ClassVar[int]
    CHECKPOINT_ID_FIELD_NUMBER: _ClassVar[int]
    ACKNOWLEDGE_TIME_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    SECONDS_FIELD_NUMBER: _ClassVar[int]
    target: str
    policy_version: int
    run_policy_version: int
    checkpoint_id: str
    acknowledge_time: _timestamp_pb2.Timestamp
    error: _status_pb2.Status
    seconds: float
    def __init__(self, target: _Optional[str] = ..., policy_version: _Optional[int] = ..., run_policy_version: _Optional[int] = ..., checkpoint_id: _Optional[str] = ..., acknowledge_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., error: _Optional[_Union[_status_pb2.Status, _Mapping]] = ..., seconds: _Optional[float] = ...) -> None: ...

class StartRunRequest(_message.Message):
    __slots__ = ("display_name", "config", "request_id")
    DISPLAY_NAME_FIELD_NUMBER: _ClassVar[int]
    CONFIG_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    display_name: str
    config: RunConfig
    request_id: str
    def __init__(self, display_name: _Optional[str] = ..., config: _Optional[_Union[RunConfig, _Mapping]] = ..., request_id: _Optional[str] = ...) -> None: ...

class StartRunMetadata(_message.Message):
    __slots__ = ("run_id", "state", "step", "total_steps", "progress", "latest_metrics", "start_time", "replicas")
    RUN_ID_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    STEP_FIELD_NUMBER: _ClassVar[int]
    TOTAL_STEPS_FIELD_NUMBER: _ClassVar[int]
    PROGRESS_FIELD_NUMBER: _ClassVar[int]
    LATEST_METRICS_FIELD_NUMBER: _ClassVar[int]
    START_TIME_FIELD_NUMBER: _ClassVar[int]
    REPLICAS_FIELD_NUMBER: _ClassVar[int]
    run_id: str
    state: RunState
    step: int
    total_steps: int
    progress: float
    latest_metrics: StepMetrics
    start_time: _timestamp_pb2.Timestamp
    replicas: _containers.RepeatedCompositeFieldContainer[ReplicaWeights]
    def __init__(self, run_id: _Optional[str] = ..., state: _Optional[_Union[RunState, str]] = ..., step: _Optional[int] = ..., total_steps: _Optional[int] = ..., progress: _Optional[float] = ..., latest_metrics: _Optional[_Union[StepMetrics, _Mapping]] = ..., start_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., replicas: _Optional[_Iterable[_Union[ReplicaWeights, _Mapping]]] = ...) -> None: ...

class GetRunRequest(_message.Message):
    __slots__ = ("run_id",)
    RUN_ID_FIELD_NUMBER: _ClassVar[int]
    run_id: str
    def __init__(self, run_id: _Optional[str] = ...) -> None: ...

class GetRunResponse(_message.Message):
    __slots__ = ("run",)
    RUN_FIELD_NUMBER: _ClassVar[int]
    run: Run
    def __init__(self, run: _Optional[_Union[Run, _Mapping]] = ...) -> None: ...

class ListRunsRequest(_message.Message):
    __slots__ = ("page_size", "page_token", "states")
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    STATES_FIELD_NUMBER: _ClassVar[int]
    page_size: int
    page_token: str
    states: _containers.RepeatedScalarFieldContainer[RunState]
    def __init__(self, page_size: _Optional[int] = ..., page_token: _Optional[str] = ..., states: _Optional[_Iterable[_Union[RunState, str]]] = ...) -> None: ...

class ListRunsResponse(_message.Message):
    __slots__ = ("runs", "next_page_token")
    RUNS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    runs: _containers.RepeatedCompositeFieldContainer[Run]
    next_page_token: str
    def __init__(self, runs: _Optional[_Iterable[_Union[Run, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class CancelRunRequest(_message.Message):
    __slots__ = ("run_id",)
    RUN_ID_FIELD_NUMBER: _ClassVar[int]
    run_id: str
    def __init__(self, run_id: _Optional[str] = ...) -> None: ...

class CancelRunResponse(_message.Message):
    __slots__ = ("run",)
    RUN_FIELD_NUMBER: _ClassVar[int]
    run: Run
    def __init__(self, run: _Optional[_Union[Run, _Mapping]] = ...) -> None: ...

class SubmitTrajectoriesRequest(_message.Message):
    __slots__ = ("run_id", "trajectories")
    RUN_ID_FIELD_NUMBER: _ClassVar[int]
    TRAJECTORIES_FIELD_NUMBER: _ClassVar[int]
    run_id: str
    trajectories: _containers.RepeatedCompositeFieldContainer[_trajectory_pb2.Trajectory]
    def __init__(self, run_id: _Optional[str] = ..., trajectories: _Optional[_Iterable[_Union[_trajectory_pb2.Trajectory, _Mapping]]] = ...) -> None: ...

class RejectedTrajectory(_message.Message):
    __slots__ = ("trajectory_id", "reason")
    TRAJECTORY_ID_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    trajectory_id: str
    reason: str
    def __init__(self, trajectory_id: _Optional[str] = ..., reason: _Optional[str] = ...) -> None: ...

class SubmitTrajectoriesResponse(_message.Message):
    __slots__ = ("accepted_count", "rejected", "buffered_count")
    ACCEPTED_COUNT_FIELD_NUMBER: _ClassVar[int]
    REJECTED_FIELD_NUMBER: _ClassVar[int]
    BUFFERED_COUNT_FIELD_NUMBER: _ClassVar[int]
    accepted_count: int
    rejected: _containers.RepeatedCompositeFieldContainer[RejectedTrajectory]
    buffered_count: int
    def __init__(self, accepted_count: _Optional[int] = ..., rejected: _Optional[_Iterable[_Union[RejectedTrajectory, _Mapping]]] = ..., buffered_count: _Optional[int] = ...) -> None: ...

class StreamRunMetricsRequest(_message.Message):
    __slots__ = ("run_id", "since_step", "follow")
    RUN_ID_FIELD_NUMBER: _ClassVar[int]
    SINCE_STEP_FIELD_NUMBER: _ClassVar[int]
    FOLLOW_FIELD_NUMBER: _ClassVar[int]
    run_id: str
    since_step: int
    follow: bool
    def __init__(self, run_id: _Optional[str] = ..., since_step: _Optional[int] = ..., follow: _Optional[bool] = ...) -> None: ...

class StreamRunMetricsResponse(_message.Message):
    __slots__ = ("metrics", "state")
    METRICS_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    metrics: StepMetrics
    state: RunState
    def __init__(self, metrics: _Optional[_Union[StepMetrics, _Mapping]] = ..., state: _Optional[_Union[RunState, str]] = ...) -> None: ...

class ListCheckpointsRequest(_message.Message):
    __slots__ = ("run_id", "page_size", "page_token")
    RUN_ID_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    run_id: str
    page_size: int
    page_token: str
    def __init__(self, run_id: _Optional[str] = ..., page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class ListCheckpointsResponse(_message.Message):
    __slots__ = ("checkpoints", "next_page_token")
    CHECKPOINTS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    checkpoints: _containers.RepeatedCompositeFieldContainer[Checkpoint]
    next_page_token: str
    def __init__(self, checkpoints: _Optional[_Iterable[_Union[Checkpoint, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class PublishWeightsRequest(_message.Message):
    __slots__ = ("run_id", "checkpoint_id", "rollout_target", "transfer")
    RUN_ID_FIELD_NUMBER: _ClassVar[int]
    CHECKPOINT_ID_FIELD_NUMBER: _ClassVar[int]
    ROLLOUT_TARGET_FIELD_NUMBER: _ClassVar[int]
    TRANSFER_FIELD_NUMBER: _ClassVar[int]
    run_id: str
    checkpoint_id: str
    rollout_target: str
    transfer: WeightTransfer
    def __init__(self, run_id: _Optional[str] = ..., checkpoint_id: _Optional[str] = ..., rollout_target: _Optional[str] = ..., transfer: _Optional[_Union[WeightTransfer, str]] = ...) -> None: ...

class PublishWeightsResponse(_message.Message):
    __slots__ = ("policy_version", "checkpoint", "duration", "replicas")
    POLICY_VERSION_FIELD_NUMBER: _ClassVar[int]
    CHECKPOINT_FIELD_NUMBER: _ClassVar[int]
    DURATION_FIELD_NUMBER: _ClassVar[int]
    REPLICAS_FIELD_NUMBER: _ClassVar[int]
    policy_version: int
    checkpoint: Checkpoint
    duration: _duration_pb2.Duration
    replicas: _containers.RepeatedCompositeFieldContainer[ReplicaWeights]
    def __init__(self, policy_version: _Optional[int] = ..., checkpoint: _Optional[_Union[Checkpoint, _Mapping]] = ..., duration: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ..., replicas: _Optional[_Iterable[_Union[ReplicaWeights, _Mapping]]] = ...) -> None: ...
