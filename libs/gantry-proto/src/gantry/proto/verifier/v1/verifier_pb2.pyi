from gantry.proto.common.v1 import chat_pb2 as _chat_pb2
from gantry.proto.common.v1 import sampling_pb2 as _sampling_pb2
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
SUB_QUESTION_ANSWER_UNSPECIFIED: SubQuestionAnswer
SUB_QUESTION_ANSWER_YES: SubQuestionAnswer
SUB_QUESTION_ANSWER_NO: SubQuestionAnswer

class TraceStep(_message.Message):
    __slots__ = ("index", "thought", "action", "observation")
    INDEX_FIELD_NUMBER: _ClassVar[int]
    THOUGHT_FIELD_NUMBER: _ClassVar[int]
    ACTION_FIELD_NUMBER: _ClassVar[int]
    OBSERVATION_FIELD_NUMBER: _ClassVar[int]
    index: int
    thought: str
    action: str
    observation: str
    def __init__(self, index: _Optional[int] = ..., thought: _Optional[str] = ..., action: _Optional[str] = ..., observation: _Optional[str] = ...) -> None: ...

class Rubric(_message.Message):
    __slots__ = ("text", "focus", "accept_threshold")
    TEXT_FIELD_NUMBER: _ClassVar[int]
    FOCUS_FIELD_NUMBER: _ClassVar[int]
    ACCEPT_THRESHOLD_FIELD_NUMBER: _ClassVar[int]
    text: str
    focus: _containers.RepeatedScalarFieldContainer[FailureSubclass]
    accept_threshold: int
    def __init__(self, text: _Optional[str] = ..., focus: _Optional[_Iterable[_Union[FailureSubclass, str]]] = ..., accept_threshold: _Optional[int] = ...) -> None: ...

class FailureLabel(_message.Message):
    __slots__ = ("failure_class", "subclass", "step_index", "description")
    FAILURE_CLASS_FIELD_NUMBER: _ClassVar[int]
    SUBCLASS_FIELD_NUMBER: _ClassVar[int]
    STEP_INDEX_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    failure_class: FailureClass
    subclass: FailureSubclass
    step_index: int
    description: str
    def __init__(self, failure_class: _Optional[_Union[FailureClass, str]] = ..., subclass: _Optional[_Union[FailureSubclass, str]] = ..., step_index: _Optional[int] = ..., description: _Optional[str] = ...) -> None: ...

class SubQuestion(_message.Message):
    __slots__ = ("question", "source", "evidence", "answer")
    QUESTION_FIELD_NUMBER: _ClassVar[int]
    SOURCE_FIELD_NUMBER: _ClassVar[int]
    EVIDENCE_FIELD_NUMBER: _ClassVar[int]
    ANSWER_FIELD_NUMBER: _ClassVar[int]
    question: str
    source: str
    evidence: str
    answer: SubQuestionAnswer
    def __init__(self, question: _Optional[str] = ..., source: _Optional[str] = ..., evidence: _Optional[str] = ..., answer: _Optional[_Union[SubQuestionAnswer, str]] = ...) -> None: ...

class Feedback(_message.Message):
    __slots__ = ("reflection", "instructions")
    REFLECTION_FIELD_NUMBER: _ClassVar[int]
    INSTRUCTIONS_FIELD_NUMBER: _ClassVar[int]
    reflection: str
    instructions: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, reflection: _Optional[str] = ..., instructions: _Optional[_Iterable[str]] = ...) -> None: ...

class Verification(_message.Message):
    __slots__ = ("verdict", "score", "failures", "sub_questions", "feedback", "rationale", "usage")
    VERDICT_FIELD_NUMBER: _ClassVar[int]
    SCORE_FIELD_NUMBER: _ClassVar[int]
    FAILURES_FIELD_NUMBER: _ClassVar[int]
    SUB_QUESTIONS_FIELD_NUMBER: _ClassVar[int]
    FEEDBACK_FIELD_NUMBER: _ClassVar[int]
    RATIONALE_FIELD_NUMBER: _ClassVar[int]
    USAGE_FIELD_NUMBER: _ClassVar[int]
    verdict: Verdict
    score: int
    failures: _containers.RepeatedCompositeFieldContainer[FailureLabel]
    sub_questions: _containers.RepeatedCompositeFieldContainer[SubQuestion]
    feedback: Feedback
    rationale: str
    usage: _chat_pb2.Usage
    def __init__(self, verdict: _Optional[_Union[Verdict, str]] = ..., score: _Optional[int] = ..., failures: _Optional[_Iterable[_Union[FailureLabel, _Mapping]]] = ..., sub_questions: _Optional[_Iterable[_Union[SubQuestion, _Mapping]]] = ..., feedback: _Optional[_Union[Feedback, _Mapping]] = ..., rationale: _Optional[str] = ..., usage: _Optional[_Union[_chat_pb2.Usage, _Mapping]] = ...) -> None: ...

class VerifyRequest(_message.Message):
    __slots__ = ("task", "answer", "trajectory", "rubric", "evidence_collection")
    TASK_FIELD_NUMBER: _ClassVar[int]
    ANSWER_FIELD_NUMBER: _ClassVar[int]
    TRAJECTORY_FIELD_NUMBER: _ClassVar[int]
    RUBRIC_FIELD_NUMBER: _ClassVar[int]
    EVIDENCE_COLLECTION_FIELD_NUMBER: _ClassVar[int]
    task: str
    answer: str
    trajectory: _containers.RepeatedCompositeFieldContainer[TraceStep]
    rubric: Rubric
    evidence_collection: str
    def __init__(self, task: _Optional[str] = ..., answer: _Optional[str] = ..., trajectory: _Optional[_Iterable[_Union[TraceStep, _Mapping]]] = ..., rubric: _Optional[_Union[Rubric, _Mapping]] = ..., evidence_collection: _Optional[str] = ...) -> None: ...

class VerifyResponse(_message.Message):
    __slots__ = ("verification",)
    VERIFICATION_FIELD_NUMBER: _ClassVar[int]
    verification: Verification
    def __init__(self, verification: _Optional[_Union[Verification, _Mapping]] = ...) -> None: ...

class RefineAgent(_message.Message):
    __slots__ = ("rollout_target", "model", "sampling", "system_prompt")
    ROLLOUT_TARGET_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    SAMPLING_FIELD_NUMBER: _ClassVar[int]
    SYSTEM_PROMPT_FIELD_NUMBER: _ClassVar[int]
    rollout_target: str
    model: str
    sampling: _sampling_pb2.SamplingParams
    system_prompt: str
    def __init__(self, rollout_target: _Optional[str] = ..., model: _Optional[str] = ..., sampling: _Optional[_Union[_sampling_pb2.SamplingParams, _Mapping]] = ..., system_prompt: _Optional[str] = ...) -> None: ...

class VerifyAndRefineRequest(_message.Message):
    __slots__ = ("task", "answer", "trajectory", "rubric", "evidence_collection", "agent", "max_rounds")
    TASK_FIELD_NUMBER: _ClassVar[int]
    ANSWER_FIELD_NUMBER: _ClassVar[int]
    TRAJECTORY_FIELD_NUMBER: _ClassVar[int]
    RUBRIC_FIELD_NUMBER: _ClassVar[int]
    EVIDENCE_COLLECTION_FIELD_NUMBER: _ClassVar[int]
    AGENT_FIELD_NUMBER: _ClassVar[int]
    MAX_ROUNDS_FIELD_NUMBER: _ClassVar[int]
    task: str
    answer: str
    trajectory: _containers.RepeatedCompositeFieldContainer[TraceStep]
    rubric: Rubric
    evidence_collection: str
    agent: RefineAgent
    max_rounds: int
    def __init__(self, task: _Optional[str] = ..., answer: _Optional[str] = ..., trajectory: _Optional[_Iterable[_Union[TraceStep, _Mapping]]] = ..., rubric: _Optional[_Union[Rubric, _Mapping]] = ..., evidence_collection: _Optional[str] = ..., agent: _Optional[_Union[RefineAgent, _Mapping]] = ..., max_rounds: _Optional[int] = ...) -> None: ...

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
    __slots__ = ("subclass", "name", "description")
    SUBCLASS_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    subclass: FailureSubclass
    name: str
    description: str
    def __init__(self, subclass: _Optional[_Union[FailureSubclass, str]] = ..., name: _Optional[str] = ..., description: _Optional[str] = ...) -> None: ...

class TaxonomyClass(_message.Message):
    __slots__ = ("failure_class", "name", "description", "subclasses")
    FAILURE_CLASS_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    DESCRIPTION_FIELD_NUMBER: _ClassVar[int]
    SUBCLASSES_FIELD_NUMBER: _ClassVar[int]
    failure_class: FailureClass
    name: str
    description: str
    subclasses: _containers.RepeatedCompositeFieldContainer[TaxonomySubclass]
    def __init__(self, failure_class: _Optional[_Union[FailureClass, str]] = ..., name: _Optional[str] = ..., description: _Optional[str] = ..., subclasses: _Optional[_Iterable[_Union[TaxonomySubclass, _Mapping]]] = ...) -> None: ...

class GetTaxonomyResponse(_message.Message):
    __slots__ = ("classes",)
    CLASSES_FIELD_NUMBER: _ClassVar[int]
    classes: _containers.RepeatedCompositeFieldContainer[TaxonomyClass]
    def __init__(self, classes: _Optional[_Iterable[_Union[TaxonomyClass, _Mapping]]] = ...) -> None: ...
