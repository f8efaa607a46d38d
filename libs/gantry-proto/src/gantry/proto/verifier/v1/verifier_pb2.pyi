import datetime

from gantry.proto.common.v1 import chat_pb2 as _chat_pb2
from gantry.proto.common.v1 import episode_pb2 as _episode_pb2
from gantry.proto.common.v1 import sampling_pb2 as _sampling_pb2
from google.protobuf import duration_pb2 as _duration_pb2
from google.protobuf import struct_pb2 as _struct_pb2
from google.rpc import status_pb2 as _status_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class FailureClass(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    FAILURE_CLASS_UNSPECIFIED: _ClassVar[FailureClass]
    FAILURE_CLASS_FINDING_SOURCES: _ClassVar[FailureClass]
    FAILURE_CLASS_REASONING: _ClassVar[FailureClass]
    FAILURE_CLASS_PROBLEM_UNDERSTANDING: _ClassVar[FailureClass]
    FAILURE_CLASS_ACTION_ERRORS: _ClassVar[FailureClass]
    FAILURE_CLASS_MAX_STEP_REACHED: _ClassVar[FailureClass]

class FailureSubclass(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    FAILURE_SUBCLASS_UNSPECIFIED: _ClassVar[FailureSubclass]
    FAILURE_SUBCLASS_WRONG_EVIDENCE: _ClassVar[FailureSubclass]
    FAILURE_SUBCLASS_GENERIC_SEARCH: _ClassVar[FailureSubclass]
    FAILURE_SUBCLASS_INVALID_SOURCE: _ClassVar[FailureSubclass]
    FAILURE_SUBCLASS_PREMATURE_CONCLUSION: _ClassVar[FailureSubclass]
    FAILURE_SUBCLASS_MISINTERPRETATION: _ClassVar[FailureSubclass]
    FAILURE_SUBCLASS_HALLUCINATION: _ClassVar[FailureSubclass]
    FAILURE_SUBCLASS_MISUNDERSTOOD_INSTRUCTIONS: _ClassVar[FailureSubclass]
    FAILURE_SUBCLASS_GOAL_DRIFT: _ClassVar[FailureSubclass]
    FAILURE_SUBCLASS_FAULTY_DECOMPOSITION: _ClassVar[FailureSubclass]
    FAILURE_SUBCLASS_UI_FAILURE: _ClassVar[FailureSubclass]
    FAILURE_SUBCLASS_FORMAT_MISTAKE: _ClassVar[FailureSubclass]
    FAILURE_SUBCLASS_WRONG_MODALITY: _ClassVar[FailureSubclass]
    FAILURE_SUBCLASS_STEP_LIMIT_EXHAUSTED: _ClassVar[FailureSubclass]

class Verdict(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    VERDICT_UNSPECIFIED: _ClassVar[Verdict]
    VERDICT_ACCEPT: _ClassVar[Verdict]
    VERDICT_REJECT: _ClassVar[Verdict]

class VerificationMode(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    VERIFICATION_MODE_UNSPECIFIED: _ClassVar[VerificationMode]
    VERIFICATION_MODE_PLAIN_JUDGE: _ClassVar[VerificationMode]
    VERIFICATION_MODE_DECOMPOSED_JUDGE: _ClassVar[VerificationMode]
    VERIFICATION_MODE_FULL: _ClassVar[VerificationMode]
    VERIFICATION_MODE_PROGRAMMATIC: _ClassVar[VerificationMode]

class SubQuestionAnswer(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    SUB_QUESTION_ANSWER_UNSPECIFIED: _ClassVar[SubQuestionAnswer]
    SUB_QUESTION_ANSWER_YES: _ClassVar[SubQuestionAnswer]
    SUB_QUESTION_ANSWER_NO: _ClassVar[SubQuestionAnswer]
FAILURE_CLASS_UNSPECIFIED: FailureClass
FAILURE_CLASS_FINDING_SOURCES: FailureClass
FAILURE_CLASS_REASONING: FailureClass
FAILURE_CLASS_PROBLEM_UNDERSTANDING: FailureClass
FAILURE_CLASS_ACTION_ERRORS: FailureClass
FAILURE_CLASS_MAX_STEP_REACHED: FailureClass
FAILURE_SUBCLASS_UNSPECIFIED: FailureSubclass
FAILURE_SUBCLASS_WRONG_EVIDENCE: FailureSubclass
FAILURE_SUBCLASS_GENERIC_SEARCH: FailureSubclass
FAILURE_SUBCLASS_INVALID_SOURCE: FailureSubclass
FAILURE_SUBCLASS_PREMATURE_CONCLUSION: FailureSubclass
FAILURE_SUBCLASS_MISINTERPRETATION: FailureSubclass
FAILURE_SUBCLASS_HALLUCINATION: FailureSubclass
FAILURE_SUBCLASS_MISUNDERSTOOD_INSTRUCTIONS: FailureSubclass
FAILURE_SUBCLASS_GOAL_DRIFT: FailureSubclass
FAILURE_SUBCLASS_FAULTY_DECOMPOSITION: FailureSubclass
FAILURE_SUBCLASS_UI_FAILURE: FailureSubclass
FAILURE_SUBCLASS_FORMAT_MISTAKE: FailureSubclass
FAILURE_SUBCLASS_WRONG_MODALITY: FailureSubclass
FAILURE_SUBCLASS_STEP_LIMIT_EXHAUSTED: FailureSubclass
VERDICT_UNSPECIFIED: Verdict
VERDICT_ACCEPT: Verdict
VERDICT_REJECT: Verdict
VERIFICATION_MODE_UNSPECIFIED: VerificationMode
VERIFICATION_MODE_PLAIN_JUDGE: VerificationMode
VERIFICATION_MODE_DECOMPOSED_JUDGE: VerificationMode
VERIFICATION_MODE_FULL: VerificationMode
VERIFICATION_MODE_PROGRAMMATIC: VerificationMode
SUB_QUESTION_ANSWER_UNSPECIFIED: SubQuestionAnswer
SUB_QUESTION_ANSWER_YES: SubQuestionAnswer
SUB_QUESTION_ANSWER_NO: SubQuestionAnswer

class TraceStep(_message.Message):
    __slots__ = ("index", "thought", "action", "observation", "reward", "terminated", "truncated", "action_parsed")
    INDEX_FIELD_NUMBER: _ClassVar[int]
    THOUGHT_FIELD_NUMBER: _ClassVar[int]
    ACTION_FIELD_NUMBER: _ClassVar[int]
    OBSERVATION_FIELD_NUMBER: _ClassVar[int]
    REWARD_FIELD_NUMBER: _ClassVar[int]
    TERMINATED_FIELD_NUMBER: _ClassVar[int]
    TRUNCATED_FIELD_NUMBER: _ClassVar[int]
    ACTION_PARSED_FIELD_NUMBER: _ClassVar[int]
    index: int
    thought: str
    action: str
    observation: str
    reward: float
    terminated: bool
    truncated: bool
    action_parsed: bool
    def __init__(self, index: _Optional[int] = ..., thought: _Optional[str] = ..., action: _Optional[str] = ..., observation: _Optional[str] = ..., reward: _Optional[float] = ..., terminated: _Optional[bool] = ..., truncated: _Optional[bool] = ..., action_parsed: _Optional[bool] = ...) -> None: ...

class Rubric(_message.Message):
    __slots__ = ("text", "focus", "accept_threshold", "focus_labels")
    TEXT_FIELD_NUMBER: _ClassVar[int]
    FOCUS_FIELD_NUMBER: _ClassVar[int]
    ACCEPT_THRESHOLD_FIELD_NUMBER: _ClassVar[int]
    FOCUS_LABELS_FIELD_NUMBER: _ClassVar[int]
    text: str
    focus: _containers.RepeatedScalarFieldContainer[FailureSubclass]
    accept_threshold: int
    focus_labels: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, text: _Optional[str] = ..., focus: _Optional[_Iterable[_Union[FailureSubclass, str]]] = ..., accept_threshold: _Optional[int] = ..., focus_labels: _Optional[_Iterable[str]] = ...) -> None: ...

class JudgeConfig(_message.Message):
    __slots__ = ("judge", "sampling", "seed")
    JUDGE_FIELD_NUMBER: _ClassVar[int]
    SAMPLING_FIELD_NUMBER: _ClassVar[int]
    SEED_FIELD_NUMBER: _ClassVar[int]
    judge: str
    sampling: _sampling_pb2.SamplingParams
    seed: int
    def __init__(self, judge: _Optional[str] = ..., sampling: _Optional[_Union[_sampling_pb2.SamplingParams, _Mapping]] = ..., seed: _Optional[int] = ...) -> None: ...

class TrajectoryRef(_message.Message):
    __slots__ = ("step_indices",)
    STEP_INDICES_FIELD_NUMBER: _ClassVar[int]
    step_indices: _containers.RepeatedScalarFieldContainer[int]
    def __init__(self, step_indices: _Optional[_Iterable[int]] = ...) -> None: ...

class EvidenceSource(_message.Message):
    __slots__ = ("collection", "trajectory", "check")
    COLLECTION_FIELD_NUMBER: _ClassVar[int]
    TRAJECTORY_FIELD_NUMBER: _ClassVar[int]
    CHECK_FIELD_NUMBER: _ClassVar[int]
    collection: str
    trajectory: TrajectoryRef
    check: int
    def __init__(self, collection: _Optional[str] = ..., trajectory: _Optional[_Union[TrajectoryRef, _Mapping]] = ..., check: _Optional[int] = ...) -> None: ...

class EnvfarmSessionCheck(_message.Message):
    __slots__ = ("session_id", "min_total_reward")
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    MIN_TOTAL_REWARD_FIELD_NUMBER: _ClassVar[int]
    session_id: str
    min_total_reward: float
    def __init__(self, session_id: _Optional[str] = ..., min_total_reward: _Optional[float] = ...) -> None: ...

class EnvfarmReplayCheck(_message.Message):
    __slots__ = ("env_id", "difficulty", "seed", "initial_state_json", "actions", "min_total_reward", "actions_from_answer")
    ENV_ID_FIELD_NUMBER: _ClassVar[int]
    DIFFICULTY_FIELD_NUMBER: _ClassVar[int]
    SEED_FIELD_NUMBER: _ClassVar[int]
    INITIAL_STATE_JSON_FIELD_NUMBER: _ClassVar[int]
    ACTIONS_FIELD_NUMBER: _ClassVar[int]
    MIN_TOTAL_REWARD_FIELD_NUMBER: _ClassVar[int]
    ACTIONS_FROM_ANSWER_FIELD_NUMBER: _ClassVar[int]
    env_id: str
    difficulty: _episode_pb2.Difficulty
    seed: int
    initial_state_json: str
    actions: _containers.RepeatedScalarFieldContainer[str]
    min_total_reward: float
    actions_from_answer: bool
    def __init__(self, env_id: _Optional[str] = ..., difficulty: _Optional[_Union[_episode_pb2.Difficulty, str]] = ..., seed: _Optional[int] = ..., initial_state_json: _Optional[str] = ..., actions: _Optional[_Iterable[str]] = ..., min_total_reward: _Optional[float] = ..., actions_from_answer: _Optional[bool] = ...) -> None: ...

class ExecutableCheck(_message.Message):
    __slots__ = ("envfarm_peer", "session", "replay")
    ENVFARM_PEER_FIELD_NUMBER: _ClassVar[int]
    SESSION_FIELD_NUMBER: _ClassVar[int]
    REPLAY_FIELD_NUMBER: _ClassVar[int]
    envfarm_peer: str
    session: EnvfarmSessionCheck
    replay: EnvfarmReplayCheck
    def __init__(self, envfarm_peer: _Optional[str] = ..., session: _Optional[_Union[EnvfarmSessionCheck, _Mapping]] = ..., replay: _Optional[_Union[EnvfarmReplayCheck, _Mapping]] = ...) -> None: ...

class CheckResult(_message.Message):
    __slots__ = ("index", "passed", "total_reward", "steps", "terminated", "truncated", "detail")
    INDEX_FIELD_NUMBER: _ClassVar[int]
    PASSED_FIELD_NUMBER: _ClassVar[int]
    TOTAL_REWARD_FIELD_NUMBER: _ClassVar[int]
    STEPS_FIELD_NUMBER: _ClassVar[int]
    TERMINATED_FIELD_NUMBER: _ClassVar[int]
    TRUNCATED_FIELD_NUMBER: _ClassVar[int]
    DETAIL_FIELD_NUMBER: _ClassVar[int]
    index: int
    passed: bool
    total_reward: float
    steps: int
    terminated: bool
    truncated: bool
    detail: str
    def __init__(self, index: _Optional[int] = ..., passed: _Optional[bool] = ..., total_reward: _Optional[float] = ..., steps: _Optional[int] = ..., terminated: _Optional[bool] = ..., truncated: _Optional[bool] = ..., detail: _Optional[str] = ...) -> None: ...

class PipelineStep(_message.Message):
    __slots__ = ("name", "input", "output", "duration", "attempts", "usage")
    NAME_FIELD_NUMBER: _ClassVar[int]
    INPUT_FIELD_NUMBER: _ClassVar[int]
    OUTPUT_FIELD_NUMBER: _ClassVar[int]
    DURATION_FIELD_NUMBER: _ClassVar[int]
    ATTEMPTS_FIELD_NUMBER: _ClassVar[int]
    USAGE_FIELD_NUMBER: _ClassVar[int]
    name: str
    input: _struct_pb2.Struct
    output: _struct_pb2.Struct
    duration: _duration_pb2.Duration
    attempts: int
    usage: _chat_pb2.Usage
    def __init__(self, name: _Optional[str] = ..., input: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ..., output: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ..., duration: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ..., attempts: _Optional[int] = ..., usage: _Optional[_Union[_chat_pb2.Usage, _Mapping]] = ...) -> None: ...

class FailureLabel(_message.Message):
    __slots__ = ("failure_class", "subclass", "step_index", "description", "label")
    FAILURE_CLASS_FIELD_NUMBER: _ClassVar[int]
    SUBCLASS_FIELD_NUMBER: _ClassVar[int]
    STEP_INDEX_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    LABEL_FIELD_NUMBER: _ClassVar[int]
    failure_class: FailureClass
    subclass: FailureSubclass
    step_index: int
    description: str
    label: str
    def __init__(self, failure_class: _Optional[_Union[FailureClass, str]] = ..., subclass: _Optional[_Union[FailureSubclass, str]] = ..., step_index: _Optional[int] = ..., description: _Optional[str] = ..., label: _Optional[str] = ...) -> None: ...

class SubQuestion(_message.Message):
    __slots__ = ("question", "source", "evidence", "answer", "source_ref")
    QUESTION_FIELD_NUMBER: _ClassVar[int]
    SOURCE_FIELD_NUMBER: _ClassVar[int]
    EVIDENCE_FIELD_NUMBER: _ClassVar[int]
    ANSWER_FIELD_NUMBER: _ClassVar[int]
    SOURCE_REF_FIELD_NUMBER: _ClassVar[int]
    question: str
    source: str
    evidence: str
    answer: SubQuestionAnswer
    source_ref: EvidenceSource
    def __init__(self, question: _Optional[str] = ..., source: _Optional[str] = ..., evidence: _Optional[str] = ..., answer: _Optional[_Union[SubQuestionAnswer, str]] = ..., source_ref: _Optional[_Union[EvidenceSource, _Mapping]] = ...) -> None: ...

class Feedback(_message.Message):
    __slots__ = ("reflection", "instructions")
    REFLECTION_FIELD_NUMBER: _ClassVar[int]
    INSTRUCTIONS_FIELD_NUMBER: _ClassVar[int]
    reflection: str
    instructions: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, reflection: _Optional[str] = ..., instructions: _Optional[_Iterable[str]] = ...) -> None: ...

class Verification(_message.Message):
    __slots__ = ("verdict", "score", "failures", "sub_questions", "feedback", "rationale", "usage", "mode", "judge", "judge_model", "accept_threshold", "expected_score", "score_probabilities", "checks", "steps", "duration")
    VERDICT_FIELD_NUMBER: _ClassVar[int]
    SCORE_FIELD_NUMBER: _ClassVar[int]
    FAILURES_FIELD_NUMBER: _ClassVar[int]
    SUB_QUESTIONS_FIELD_NUMBER: _ClassVar[int]
    FEEDBACK_FIELD_NUMBER: _ClassVar[int]
    RATIONALE_FIELD_NUMBER: _ClassVar[int]
    USAGE_FIELD_NUMBER: _ClassVar[int]
    MODE_FIELD_NUMBER: _ClassVar[int]
    JUDGE_FIELD_NUMBER: _ClassVar[int]
    JUDGE_MODEL_FIELD_NUMBER: _ClassVar[int]
    ACCEPT_THRESHOLD_FIELD_NUMBER: _ClassVar[int]
    EXPECTED_SCORE_FIELD_NUMBER: _ClassVar[int]
    SCORE_PROBABILITIES_FIELD_NUMBER: _ClassVar[int]
    CHECKS_FIELD_NUMBER: _ClassVar[int]
    STEPS_FIELD_NUMBER: _ClassVar[int]
    DURATION_FIELD_NUMBER: _ClassVar[int]
    verdict: Verdict
    score: int
    failures: _containers.RepeatedCompositeFieldContainer[FailureLabel]
    sub_questions: _containers.RepeatedCompositeFieldContainer[SubQuestion]
    feedback: Feedback
    rationale: str
    usage: _chat_pb2.Usage
    mode: VerificationMode
    judge: str
    judge_model: str
    accept_threshold: int
    expected_score: float
    score_probabilities: _containers.RepeatedScalarFieldContainer[float]
    checks: _containers.RepeatedCompositeFieldContainer[CheckResult]
    steps: _containers.RepeatedCompositeFieldContainer[PipelineStep]
    duration: _duration_pb2.Duration
    def __init__(self, verdict: _Optional[_Union[Verdict, str]] = ..., score: _Optional[int] = ..., failures: _Optional[_Iterable[_Union[FailureLabel, _Mapping]]] = ..., sub_questions: _Optional[_Iterable[_Union[SubQuestion, _Mapping]]] = ..., feedback: _Optional[_Union[Feedback, _Mapping]] = ..., rationale: _Optional[str] = ..., usage: _Optional[_Union[_chat_pb2.Usage, _Mapping]] = ..., mode: _Optional[_Union[VerificationMode, str]] = ..., judge: _Optional[str] = ..., judge_model: _Optional[str] = ..., accept_threshold: _Optional[int] = ..., expected_score: _Optional[float] = ..., score_probabilities: _Optional[_Iterable[float]] = ..., checks: _Optional[_Iterable[_Union[CheckResult, _Mapping]]] = ..., steps: _Optional[_Iterable[_Union[PipelineStep, _Mapping]]] = ..., duration: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ...) -> None: ...

class VerifyRequest(_message.Message):
    __slots__ = ("task", "answer", "trajectory", "rubric", "evidence_collection", "mode", "judge", "max_steps", "checks", "retrieval_peer")
    TASK_FIELD_NUMBER: _ClassVar[int]
    ANSWER_FIELD_NUMBER: _ClassVar[int]
    TRAJECTORY_FIELD_NUMBER: _ClassVar[int]
    RUBRIC_FIELD_NUMBER: _ClassVar[int]
    EVIDENCE_COLLECTION_FIELD_NUMBER: _ClassVar[int]
    MODE_FIELD_NUMBER: _ClassVar[int]
    JUDGE_FIELD_NUMBER: _ClassVar[int]
    MAX_STEPS_FIELD_NUMBER: _ClassVar[int]
    CHECKS_FIELD_NUMBER: _ClassVar[int]
    RETRIEVAL_PEER_FIELD_NUMBER: _ClassVar[int]
    task: str
    answer: str
    trajectory: _containers.RepeatedCompositeFieldContainer[TraceStep]
    rubric: Rubric
    evidence_collection: str
    mode: VerificationMode
    judge: JudgeConfig
    max_steps: int
    checks: _containers.RepeatedCompositeFieldContainer[ExecutableCheck]
    retrieval_peer: str
    def __init__(self, task: _Optional[str] = ..., answer: _Optional[str] = ..., trajectory: _Optional[_Iterable[_Union[TraceStep, _Mapping]]] = ..., rubric: _Optional[_Union[Rubric, _Mapping]] = ..., evidence_collection: _Optional[str] = ..., mode: _Optional[_Union[VerificationMode, str]] = ..., judge: _Optional[_Union[JudgeConfig, _Mapping]] = ..., max_steps: _Optional[int] = ..., checks: _Optional[_Iterable[_Union[ExecutableCheck, _Mapping]]] = ..., retrieval_peer: _Optional[str] = ...) -> None: ...

class VerifyBatchRequest(_message.Message):
    __slots__ = ("requests",)
    REQUESTS_FIELD_NUMBER: _ClassVar[int]
    requests: _containers.RepeatedCompositeFieldContainer[VerifyRequest]
    def __init__(self, requests: _Optional[_Iterable[_Union[VerifyRequest, _Mapping]]] = ...) -> None: ...

class VerifyBatchResult(_message.Message):
    __slots__ = ("index", "verification", "error")
    INDEX_FIELD_NUMBER: _ClassVar[int]
    VERIFICATION_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    index: int
    verification: Verification
    error: _status_pb2.Status
    def __init__(self, index: _Optional[int] = ..., verification: _Optional[_Union[Verification, _Mapping]] = ..., error: _Optional[_Union[_status_pb2.Status, _Mapping]] = ...) -> None: ...

class VerifyBatchResponse(_message.Message):
    __slots__ = ("results",)
    RESULTS_FIELD_NUMBER: _ClassVar[int]
    results: _containers.RepeatedCompositeFieldContainer[VerifyBatchResult]
    def __init__(self, results: _Optional[_Iterable[_Union[VerifyBatchResult, _Mapping]]] = ...) -> None: ...

class VerifyResponse(_message.Message):
    __slots__ = ("verification",)
    VERIFICATION_FIELD_NUMBER: _ClassVar[int]
    verification: Verification
    def __init__(self, verification: _Optional[_Union[Verification, _Mapping]] = ...) -> None: ...

class RefineAgent(_message.Message):
    __slots__ = ("rollout_target", "model", "sampling", "system_prompt", "endpoint")
    ROLLOUT_TARGET_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    SAMPLING_FIELD_NUMBER: _ClassVar[int]
    SYSTEM_PROMPT_FIELD_NUMBER: _ClassVar[int]
    ENDPOINT_FIELD_NUMBER: _ClassVar[int]
    rollout_target: str
    model: str
    sampling: _sampling_pb2.SamplingParams
    system_prompt: str
    endpoint: str
    def __init__(self, rollout_target: _Optional[str] = ..., model: _Optional[str] = ..., sampling: _Optional[_Union[_sampling_pb2.SamplingParams, _Mapping]] = ..., system_prompt: _Optional[str] = ..., endpoint: _Optional[str] = ...) -> None: ...

class VerifyAndRefineRequest(_message.Message):
    __slots__ = ("task", "answer", "trajectory", "rubric", "evidence_collection", "agent", "max_rounds", "mode", "judge", "max_steps", "retrieval_peer", "checks")
    TASK_FIELD_NUMBER: _ClassVar[int]
    ANSWER_FIELD_NUMBER: _ClassVar[int]
    TRAJECTORY_FIELD_NUMBER: _ClassVar[int]
    RUBRIC_FIELD_NUMBER: _ClassVar[int]
    EVIDENCE_COLLECTION_FIELD_NUMBER: _ClassVar[int]
    AGENT_FIELD_NUMBER: _ClassVar[int]
    MAX_ROUNDS_FIELD_NUMBER: _ClassVar[int]
    MODE_FIELD_NUMBER: _ClassVar[int]
    JUDGE_FIELD_NUMBER: _ClassVar[int]
    MAX_STEPS_FIELD_NUMBER: _ClassVar[int]
    RETRIEVAL_PEER_FIELD_NUMBER: _ClassVar[int]
    CHECKS_FIELD_NUMBER: _ClassVar[int]
    task: str
    answer: str
    trajectory: _containers.RepeatedCompositeFieldContainer[TraceStep]
    rubric: Rubric
    evidence_collection: str
    agent: RefineAgent
    max_rounds: int
    mode: VerificationMode
    judge: JudgeConfig
    max_steps: int
    retrieval_peer: str
    checks: _containers.RepeatedCompositeFieldContainer[ExecutableCheck]
    def __init__(self, task: _Optional[str] = ..., answer: _Optional[str] = ..., trajectory: _Optional[_Iterable[_Union[TraceStep, _Mapping]]] = ..., rubric: _Optional[_Union[Rubric, _Mapping]] = ..., evidence_collection: _Optional[str] = ..., agent: _Optional[_Union[RefineAgent, _Mapping]] = ..., max_rounds: _Optional[int] = ..., mode: _Optional[_Union[VerificationMode, str]] = ..., judge: _Optional[_Union[JudgeConfig, _Mapping]] = ..., max_steps: _Optional[int] = ..., retrieval_peer: _Optional[str] = ..., checks: _Optional[_Iterable[_Union[ExecutableCheck, _Mapping]]] = ...) -> None: ...

class RefinementRound(_message.Message):
    __slots__ = ("round", "answer", "verification", "refined_answer")
    ROUND_FIELD_NUMBER: _ClassVar[int]
    ANSWER_FIELD_NUMBER: _ClassVar[int]
    VERIFICATION_FIELD_NUMBER: _ClassVar[int]
    REFINED_ANSWER_FIELD_NUMBER: _ClassVar[int]
    round: int
    answer: str
    verification: Verification
    refined_answer: str
    def __init__(self, round: _Optional[int] = ..., answer: _Optional[str] = ..., verification: _Optional[_Union[Verification, _Mapping]] = ..., refined_answer: _Optional[str] = ...) -> None: ...

class VerifyAndRefineResponse(_message.Message):
    __slots__ = ("round", "done", "best_round", "final_answer")
    ROUND_FIELD_NUMBER: _ClassVar[int]
    DONE_FIELD_NUMBER: _ClassVar[int]
    BEST_ROUND_FIELD_NUMBER: _ClassVar[int]
    FINAL_ANSWER_FIELD_NUMBER: _ClassVar[int]
    round: RefinementRound
    done: bool
    best_round: int
    final_answer: str
    def __init__(self, round: _Optional[_Union[RefinementRound, _Mapping]] = ..., done: _Optional[bool] = ..., best_round: _Optional[int] = ..., final_answer: _Optional[str] = ...) -> None: ...

class GetTaxonomyRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class TaxonomySubclass(_message.Message):
    __slots__ = ("subclass", "name", "description", "label", "detection_hints", "extension")
    SUBCLASS_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    LABEL_FIELD_NUMBER: _ClassVar[int]
    DETECTION_HINTS_FIELD_NUMBER: _ClassVar[int]
    EXTENSION_FIELD_NUMBER: _ClassVar[int]
    subclass: FailureSubclass
    name: str
    description: str
    label: str
    detection_hints: _containers.RepeatedScalarFieldContainer[str]
    extension: bool
    def __init__(self, subclass: _Optional[_Union[FailureSubclass, str]] = ..., name: _Optional[str] = ..., description: _Optional[str] = ..., label: _Optional[str] = ..., detection_hints: _Optional[_Iterable[str]] = ..., extension: _Optional[bool] = ...) -> None: ...

class TaxonomyClass(_message.Message):
    __slots__ = ("failure_class", "name", "description", "subclasses", "label")
    FAILURE_CLASS_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    SUBCLASSES_FIELD_NUMBER: _ClassVar[int]
    LABEL_FIELD_NUMBER: _ClassVar[int]
    failure_class: FailureClass
    name: str
    description: str
    subclasses: _containers.RepeatedCompositeFieldContainer[TaxonomySubclass]
    label: str
    def __init__(self, failure_class: _Optional[_Union[FailureClass, str]] = ..., name: _Optional[str] = ..., description: _Optional[str] = ..., subclasses: _Optional[_Iterable[_Union[TaxonomySubclass, _Mapping]]] = ..., label: _Optional[str] = ...) -> None: ...

class GetTaxonomyResponse(_message.Message):
    __slots__ = ("classes",)
    CLASSES_FIELD_NUMBER: _ClassVar[int]
    classes: _containers.RepeatedCompositeFieldContainer[TaxonomyClass]
    def __init__(self, classes: _Optional[_Iterable[_Union[TaxonomyClass, _Mapping]]] = ...) -> None: ...
