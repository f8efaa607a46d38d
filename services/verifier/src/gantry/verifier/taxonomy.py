"""The failure taxonomy as data: 5 classes, 13 subclasses, and an operator's extensions.

Labels are `<class>.<subclass>` (e.g. `reasoning.hallucination`); the judge picks labels
from this list under a JSON-schema enum, so it cannot invent one. An operator's file adds
subclasses to the existing classes; it is validated when the service starts, and a bad
file stops the start with a message naming the entry.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from gantry.proto.verifier.v1 import verifier_pb2 as pb

LABEL_PART = re.compile(r"^[a-z][a-z0-9_]{0,39}$")
MAX_EXTENSIONS = 64
MAX_TEXT = 1_000
MAX_HINTS = 8


@dataclass(frozen=True)
class Subclass:
    label: str  # "<class>.<subclass>"
    name: str
    description: str
    hints: tuple[str, ...]
    enum: int = pb.FAILURE_SUBCLASS_UNSPECIFIED  # UNSPECIFIED for extensions
    extension: bool = False


@dataclass(frozen=True)
class FailureClassInfo:
    label: str
    name: str
    description: str
    enum: int
    subclasses: list[Subclass] = field(default_factory=list)


def _sub(cls: str, key: str, enum: int, name: str, description: str, *hints: str) -> Subclass:
    return Subclass(f"{cls}.{key}", name, description, hints, enum)


def _builtin() -> list[FailureClassInfo]:
    fs, re_, pu, ae, ms = (
        "finding_sources",
        "reasoning",
        "problem_understanding",
        "action_errors",
        "max_step_reached",
    )
    return [
        FailureClassInfo(
            fs,
            "Finding Sources",
            "Searching for, choosing and trusting the evidence the answer rests on.",
            pb.FAILURE_CLASS_FINDING_SOURCES,
            [
                _sub(
                    fs,
                    "wrong_evidence",
                    pb.FAILURE_SUBCLASS_WRONG_EVIDENCE,
                    "Wrong evidence",
                    "Consulted material that does not address the question asked.",
                    "the observation cited is about a different entity, date or quantity",
                    "the answer quotes a source unrelated to the task's subject",
                ),
                _sub(
                    fs,
                    "generic_search",
                    pb.FAILURE_SUBCLASS_GENERIC_SEARCH,
                    "Generic search",
                    "Searches too broad to surface the specific source the task needs.",
                    "queries repeat the task's wording without its specific constraints",
                    "many searches, none naming the key entity or time range",
                ),
                _sub(
                    fs,
                    "invalid_source",
                    pb.FAILURE_SUBCLASS_INVALID_SOURCE,
                    "Invalid or secondary source",
                    "Relied on unreliable, outdated or second-hand sources where a primary "
                    "one was needed.",
                    "forum posts, summaries or snippets used instead of the original document",
                    "a source older than the fact asked about",
                ),
            ],
        ),
        FailureClassInfo(
            re_,
            "Reasoning",
            "Drawing conclusions from the evidence gathered.",
            pb.FAILURE_CLASS_REASONING,
            [
                _sub(
                    re_,
                    "premature_conclusion",
                    pb.FAILURE_SUBCLASS_PREMATURE_CONCLUSION,
                    "Premature conclusion",
                    "Answered before the evidence supported the answer.",
                    "the answer follows the first observation without checking it",
                    "open sub-goals remain when the agent stops",
                ),
                _sub(
                    re_,
                    "misinterpretation",
                    pb.FAILURE_SUBCLASS_MISINTERPRETATION,
                    "Misinterpretation",
                    "Misread what a source or observation says.",
                    "the answer contradicts the observation it cites",
                    "units, signs, negations or orders swapped",
                ),
                _sub(
                    re_,
                    "hallucination",
                    pb.FAILURE_SUBCLASS_HALLUCINATION,
                    "Hallucination",
                    "Stated facts that no consulted source or observation supports.",
                    "a number or name in the answer appears in no observation",
                    "confident claims without any search or tool call",
                ),
            ],
        ),
        FailureClassInfo(
            pu,
            "Problem Understanding and Decomposition",
            "Understanding what the task asks and splitting it into the right sub-goals.",
            pb.FAILURE_CLASS_PROBLEM_UNDERSTANDING,
            [
                _sub(
                    pu,
                    "misunderstood_instructions",
                    pb.FAILURE_SUBCLASS_MISUNDERSTOOD_INSTRUCTIONS,
                    "Misunderstood instructions",
                    "Missed or misread a constraint or the question itself.",
                    "the answer responds to a different question than the task's",
                    "an explicit constraint (count, unit, format, range) is ignored",
                ),
                _sub(
                    pu,
                    "goal_drift",
                    pb.FAILURE_SUBCLASS_GOAL_DRIFT,
                    "Goal drift",
                    "Moved away from the original goal during the trajectory.",
                    "later steps pursue a side question",
                    "the final answer concerns an intermediate result",
                ),
                _sub(
                    pu,
                    "faulty_decomposition",
                    pb.FAILURE_SUBCLASS_FAULTY_DECOMPOSITION,
                    "Faulty decomposition",
                    "Split the task into wrong or incomplete sub-goals.",
                    "a needed sub-goal is never attempted",
                    "sub-goals that cannot combine into the answer",
                ),
            ],
        ),
        FailureClassInfo(
            ae,
            "Action Errors",
            "Executing tools and producing the output.",
            pb.FAILURE_CLASS_ACTION_ERRORS,
            [
                _sub(
                    ae,
                    "ui_failure",
                    pb.FAILURE_SUBCLASS_UI_FAILURE,
                    "UI failure",
                    "Interaction with a browser, tool or environment failed.",
                    "observations report errors, invalid moves or blocked actions",
                    "the same action repeated without effect",
                ),
                _sub(
                    ae,
                    "format_mistake",
                    pb.FAILURE_SUBCLASS_FORMAT_MISTAKE,
                    "Format mistake",
                    "The output's or an action's format does not match what was asked.",
                    "a step's action did not parse",
                    "the answer has the wrong unit, precision, or shape",
                ),
                _sub(
                    ae,
                    "wrong_modality",
                    pb.FAILURE_SUBCLASS_WRONG_MODALITY,
                    "Wrong modality",
                    "Used the wrong tool or modality for the content.",
                    "read a chart or image as text",
                    "searched the web for what a provided file contains",
                ),
            ],
        ),
        FailureClassInfo(
            ms,
            "Max Step Reached",
            "Running out of steps before answering.",
            pb.FAILURE_CLASS_MAX_STEP_REACHED,
            [
                _sub(
                    ms,
                    "step_limit_exhausted",
                    pb.FAILURE_SUBCLASS_STEP_LIMIT_EXHAUSTED,
                    "Step limit exhausted",
                    "The step budget ran out, often through loops or repeated actions.",
                    "the episode was truncated",
                    "the trajectory used every allowed step without a terminal one",
                ),
            ],
        ),
    ]


class TaxonomyError(ValueError):
    """The operator's extension file is not valid (raised at start)."""


class Taxonomy:
    def __init__(self, classes: Sequence[FailureClassInfo]) -> None:
        self.classes = list(classes)
        self.by_label: dict[str, tuple[FailureClassInfo, Subclass]] = {
            sub.label: (cls, sub) for cls in self.classes for sub in cls.subclasses
        }
        self.by_enum: dict[int, Subclass] = {
            sub.enum: sub for _, sub in self.by_label.values() if not sub.extension
        }

    @classmethod
    def load(cls, extension_file: Path | None = None) -> Taxonomy:
        classes = _builtin()
        if extension_file is not None:
            _extend(classes, _read(extension_file), str(extension_file))
        return cls(classes)

    @property
    def labels(self) -> list[str]:
        return list(self.by_label)

    def label_of(self, subclass: int) -> str:
        return self.by_enum[subclass].label

    def focus(self, enums: Iterable[int], labels: Iterable[str]) -> list[str]:
        """Labels to consider (empty focus = all), in taxonomy order."""
        wanted = {self.label_of(e) for e in enums} | set(labels)
        return [label for label in self.by_label if not wanted or label in wanted]

    def label(self, label: str, step_index: int, description: str) -> pb.FailureLabel:
        cls, sub = self.by_label[label]
        return pb.FailureLabel(
            failure_class=cls.enum,  # type: ignore[arg-type]
            subclass=sub.enum,  # type: ignore[arg-type]
            step_index=step_index,
            description=description,
            label=label,
        )

    def rubric(self, labels: Sequence[str]) -> str:
        """The taxonomy-derived rubric text for the judge prompts."""
        lines = []
        for label in labels:
            _, sub = self.by_label[label]
            lines.append(f"- {label}: {sub.description} Signs: {'; '.join(sub.hints)}.")
        return "\n".join(lines)

    def to_proto(self) -> pb.GetTaxonomyResponse:
        reply = pb.GetTaxonomyResponse()
        for c in self.classes:
            item = reply.classes.add(
                failure_class=c.enum,  # type: ignore[arg-type]
                name=c.name,
                description=c.description,
                label=c.label,
            )
            for s in c.subclasses:
                item.subclasses.add(
                    subclass=s.enum,  # type: ignore[arg-type]
                    name=s.name,
                    description=s.description,
                    label=s.label,
                    detection_hints=s.hints,
                    extension=s.extension,
                )
        return reply


def _read(path: Path) -> Any:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise TaxonomyError(f"taxonomy_file {path}: cannot be read ({exc})") from exc
    try:
        return json.loads(text) if path.suffix == ".json" else yaml.safe_load(text)
    except (ValueError, yaml.YAMLError) as exc:
        raise TaxonomyError(f"taxonomy_file {path}: not valid YAML/JSON ({exc})") from exc


def _text(entry: dict[str, Any], key: str, where: str, *, required: bool = True) -> str:
    value = entry.get(key, "")
    if not isinstance(value, str) or (required and not value.strip()):
        raise TaxonomyError(f"{where}.{key}: must be a non-empty string")
    if len(value) > MAX_TEXT:
        raise TaxonomyError(f"{where}.{key}: longer than {MAX_TEXT} characters")
    return value.strip()


def _extend(classes: list[FailureClassInfo], data: Any, source: str) -> None:
    """Adds the file's subclasses: `{subclasses: [{class, label, name, description,
    detection_hints}]}`; every problem names its entry."""
    if not isinstance(data, dict) or set(data) - {"subclasses"}:
        raise TaxonomyError(f"taxonomy_file {source}: must be a mapping with only 'subclasses'")
    entries = data.get("subclasses") or []
    if not isinstance(entries, list) or len(entries) > MAX_EXTENSIONS:
        raise TaxonomyError(f"{source}: subclasses must be a list of at most {MAX_EXTENSIONS}")
    by_label = {c.label: c for c in classes}
    seen = {s.label for c in classes for s in c.subclasses}
    for i, entry in enumerate(entries):
        where = f"{source}: subclasses[{i}]"
        if not isinstance(entry, dict):
            raise TaxonomyError(f"{where}: must be a mapping")
        unknown = set(entry) - {"class", "label", "name", "description", "detection_hints"}
        if unknown:
            raise TaxonomyError(f"{where}: unknown keys {sorted(unknown)}")
        cls = by_label.get(entry.get("class", ""))
        if cls is None:
            raise TaxonomyError(f"{where}.class: must be one of {sorted(by_label)}")
        key = _text(entry, "label", where)
        if not LABEL_PART.match(key):
            raise TaxonomyError(f"{where}.label: must match {LABEL_PART.pattern}")
        label = f"{cls.label}.{key}"
        if label in seen:
            raise TaxonomyError(f"{where}.label: {label} already exists")
        hints = entry.get("detection_hints", [])
        if (
            not isinstance(hints, list)
            or len(hints) > MAX_HINTS
            or not all(isinstance(h, str) and 0 < len(h) <= MAX_TEXT for h in hints)
        ):
            raise TaxonomyError(f"{where}.detection_hints: at most {MAX_HINTS} non-empty strings")
        seen.add(label)
        cls.subclasses.append(
            Subclass(
                label,
                _text(entry, "name", where),
                _text(entry, "description", where),
                tuple(hints),
                extension=True,
            )
        )
