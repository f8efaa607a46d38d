import datetime

from google.protobuf import duration_pb2 as _duration_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class Guideline(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    GUIDELINE_UNSPECIFIED: _ClassVar[Guideline]
    GUIDELINE_ALGORITHMIC_DETAILS: _ClassVar[Guideline]
    GUIDELINE_IO_FORMAT: _ClassVar[Guideline]
    GUIDELINE_EXAMPLES: _ClassVar[Guideline]
    GUIDELINE_POST_CONDITIONS: _ClassVar[Guideline]
    GUIDELINE_REQUIREMENTS: _ClassVar[Guideline]
    GUIDELINE_EXCEPTION_HANDLING: _ClassVar[Guideline]
    GUIDELINE_ASSERTIVE_LANGUAGE: _ClassVar[Guideline]
    GUIDELINE_PRE_CONDITIONS: _ClassVar[Guideline]
    GUIDELINE_CONSISTENT_TERMINOLOGY: _ClassVar[Guideline]
    GUIDELINE_CLARIFIED_CONDITIONALS: _ClassVar[Guideline]

class Severity(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    SEVERITY_UNSPECIFIED: _ClassVar[Severity]
    SEVERITY_INFO: _ClassVar[Severity]
    SEVERITY_WARNING: _ClassVar[Severity]
    SEVERITY_ERROR: _ClassVar[Severity]
GUIDELINE_UNSPECIFIED: Guideline
GUIDELINE_ALGORITHMIC_DETAILS: Guideline
GUIDELINE_IO_FORMAT: Guideline
GUIDELINE_EXAMPLES: Guideline
GUIDELINE_POST_CONDITIONS: Guideline
GUIDELINE_REQUIREMENTS: Guideline
GUIDELINE_EXCEPTION_HANDLING: Guideline
GUIDELINE_ASSERTIVE_LANGUAGE: Guideline
GUIDELINE_PRE_CONDITIONS: Guideline
GUIDELINE_CONSISTENT_TERMINOLOGY: Guideline
GUIDELINE_CLARIFIED_CONDITIONALS: Guideline
SEVERITY_UNSPECIFIED: Severity
SEVERITY_INFO: Severity
SEVERITY_WARNING: Severity
SEVERITY_ERROR: Severity

class LineRange(_message.Message):
    __slots__ = ("start_line", "end_line")
    START_LINE_FIELD_NUMBER: _ClassVar[int]
    END_LINE_FIELD_NUMBER: _ClassVar[int]
    start_line: int
    end_line: int
    def __init__(self, start_line: _Optional[int] = ..., end_line: _Optional[int] = ...) -> None: ...

class PruneRequest(_message.Message):
    __slots__ = ("text", "goal_hint", "keep_threshold", "token_budget", "language", "return_line_scores")
    TEXT_FIELD_NUMBER: _ClassVar[int]
    GOAL_HINT_FIELD_NUMBER: _ClassVar[int]
    KEEP_THRESHOLD_FIELD_NUMBER: _ClassVar[int]
    TOKEN_BUDGET_FIELD_NUMBER: _ClassVar[int]
    LANGUAGE_FIELD_NUMBER: _ClassVar[int]
    RETURN_LINE_SCORES_FIELD_NUMBER: _ClassVar[int]
    text: str
    goal_hint: str
    keep_threshold: float
    token_budget: int
    language: str
    return_line_scores: bool
    def __init__(self, text: _Optional[str] = ..., goal_hint: _Optional[str] = ..., keep_threshold: _Optional[float] = ..., token_budget: _Optional[int] = ..., language: _Optional[str] = ..., return_line_scores: _Optional[bool] = ...) -> None: ...

class PruneResponse(_message.Message):
    __slots__ = ("pruned_text", "kept_ranges", "line_scores", "original_lines", "kept_lines", "original_tokens", "pruned_tokens", "compression_ratio", "latency")
    PRUNED_TEXT_FIELD_NUMBER: _ClassVar[int]
    KEPT_RANGES_FIELD_NUMBER: _ClassVar[int]
    LINE_SCORES_FIELD_NUMBER: _ClassVar[int]
    ORIGINAL_LINES_FIELD_NUMBER: _ClassVar[int]
    KEPT_LINES_FIELD_NUMBER: _ClassVar[int]
    ORIGINAL_TOKENS_FIELD_NUMBER: _ClassVar[int]
    PRUNED_TOKENS_FIELD_NUMBER: _ClassVar[int]
    COMPRESSION_RATIO_FIELD_NUMBER: _ClassVar[int]
    LATENCY_FIELD_NUMBER: _ClassVar[int]
    pruned_text: str
    kept_ranges: _containers.RepeatedCompositeFieldContainer[LineRange]
    line_scores: _containers.RepeatedScalarFieldContainer[float]
    original_lines: int
    kept_lines: int
    original_tokens: int
    pruned_tokens: int
    compression_ratio: float
    latency: _duration_pb2.Duration
    def __init__(self, pruned_text: _Optional[str] = ..., kept_ranges: _Optional[_Iterable[_Union[LineRange, _Mapping]]] = ..., line_scores: _Optional[_Iterable[float]] = ..., original_lines: _Optional[int] = ..., kept_lines: _Optional[int] = ..., original_tokens: _Optional[int] = ..., pruned_tokens: _Optional[int] = ..., compression_ratio: _Optional[float] = ..., latency: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ...) -> None: ...

class TextSpan(_message.Message):
    __slots__ = ("start", "end")
    START_FIELD_NUMBER: _ClassVar[int]
    END_FIELD_NUMBER: _ClassVar[int]
    start: int
    end: int
    def __init__(self, start: _Optional[int] = ..., end: _Optional[int] = ...) -> None: ...

class Finding(_message.Message):
    __slots__ = ("guideline", "severity", "message", "span", "suggestion")
    GUIDELINE_FIELD_NUMBER: _ClassVar[int]
    SEVERITY_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    SPAN_FIELD_NUMBER: _ClassVar[int]
    SUGGESTION_FIELD_NUMBER: _ClassVar[int]
    guideline: Guideline
    severity: Severity
    message: str
    span: TextSpan
    suggestion: str
    def __init__(self, guideline: _Optional[_Union[Guideline, str]] = ..., severity: _Optional[_Union[Severity, str]] = ..., message: _Optional[str] = ..., span: _Optional[_Union[TextSpan, _Mapping]] = ..., suggestion: _Optional[str] = ...) -> None: ...

class GuidelineResult(_message.Message):
    __slots__ = ("guideline", "satisfied", "weight")
    GUIDELINE_FIELD_NUMBER: _ClassVar[int]
    SATISFIED_FIELD_NUMBER: _ClassVar[int]
    WEIGHT_FIELD_NUMBER: _ClassVar[int]
    guideline: Guideline
    satisfied: bool
    weight: float
    def __init__(self, guideline: _Optional[_Union[Guideline, str]] = ..., satisfied: _Optional[bool] = ..., weight: _Optional[float] = ...) -> None: ...

class CheckPromptRequest(_message.Message):
    __slots__ = ("prompt", "language", "guidelines", "suggest_rewrite")
    PROMPT_FIELD_NUMBER: _ClassVar[int]
    LANGUAGE_FIELD_NUMBER: _ClassVar[int]
    GUIDELINES_FIELD_NUMBER: _ClassVar[int]
    SUGGEST_REWRITE_FIELD_NUMBER: _ClassVar[int]
    prompt: str
    language: str
    guidelines: _containers.RepeatedScalarFieldContainer[Guideline]
    suggest_rewrite: bool
    def __init__(self, prompt: _Optional[str] = ..., language: _Optional[str] = ..., guidelines: _Optional[_Iterable[_Union[Guideline, str]]] = ..., suggest_rewrite: _Optional[bool] = ...) -> None: ...

class CheckPromptResponse(_message.Message):
    __slots__ = ("findings", "guidelines", "score", "suggested_prompt")
    FINDINGS_FIELD_NUMBER: _ClassVar[int]
    GUIDELINES_FIELD_NUMBER: _ClassVar[int]
    SCORE_FIELD_NUMBER: _ClassVar[int]
    SUGGESTED_PROMPT_FIELD_NUMBER: _ClassVar[int]
    findings: _containers.RepeatedCompositeFieldContainer[Finding]
    guidelines: _containers.RepeatedCompositeFieldContainer[GuidelineResult]
    score: float
    suggested_prompt: str
    def __init__(self, findings: _Optional[_Iterable[_Union[Finding, _Mapping]]] = ..., guidelines: _Optional[_Iterable[_Union[GuidelineResult, _Mapping]]] = ..., score: _Optional[float] = ..., suggested_prompt: _Optional[str] = ...) -> None: ...
