"""The taxonomy as data, operator extensions, score distributions and prompt budgets."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from gantry.proto.verifier.v1 import verifier_pb2 as pb
from gantry.verifier import prompts
from gantry.verifier.judge import RawReply, score_distribution
from gantry.verifier.taxonomy import Taxonomy, TaxonomyError


def test_five_classes_thirteen_subclasses_each_with_hints() -> None:
    taxonomy = Taxonomy.load()
    reply = taxonomy.to_proto()
    assert [c.failure_class for c in reply.classes] == [1, 2, 3, 4, 5]
    subclasses = [s for c in reply.classes for s in c.subclasses]
    assert sorted(s.subclass for s in subclasses) == list(range(1, 14))
    for cls in reply.classes:
        for sub in cls.subclasses:
            assert sub.label.startswith(cls.label + ".")
            assert sub.description and len(sub.detection_hints) >= 2
            assert not sub.extension
    # every enum value of the contract has exactly one label
    assert {taxonomy.label_of(v) for v in range(1, 14)} == set(taxonomy.labels)


def test_focus_narrows_labels_in_taxonomy_order() -> None:
    taxonomy = Taxonomy.load()
    focus = taxonomy.focus([pb.FAILURE_SUBCLASS_HALLUCINATION], ["action_errors.format_mistake"])
    assert focus == ["reasoning.hallucination", "action_errors.format_mistake"]
    assert taxonomy.focus([], []) == taxonomy.labels


def test_extension_file_adds_a_subclass(tmp_path: Path) -> None:
    path = tmp_path / "extra.yaml"
    path.write_text(
        "subclasses:\n"
        "  - class: action_errors\n"
        "    label: tool_timeout\n"
        "    name: Tool timeout\n"
        "    description: A tool call ran past its time limit.\n"
        "    detection_hints: [observation says timed out]\n"
    )
    taxonomy = Taxonomy.load(path)
    label = taxonomy.label("action_errors.tool_timeout", 2, "timed out")
    assert label.failure_class == pb.FAILURE_CLASS_ACTION_ERRORS
    assert label.subclass == pb.FAILURE_SUBCLASS_UNSPECIFIED
    extension = taxonomy.to_proto().classes[3].subclasses[-1]
    assert extension.extension and extension.label == "action_errors.tool_timeout"
    assert list(extension.detection_hints) == ["observation says timed out"]


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("subclasses: [{class: nope, label: x, name: X, description: d}]", "class: must be"),
        ("subclasses: [{class: reasoning, label: Bad-Label, name: X, description: d}]", "label"),
        (
            "subclasses: [{class: reasoning, label: hallucination, name: X, description: d}]",
            "already exists",
        ),
        ("subclasses: [{class: reasoning, label: x, name: X}]", "description"),
        ("subclasses: [{class: reasoning, label: x, name: X, description: d, when: 1}]", "keys"),
        ("classes: []", "only 'subclasses'"),
        ("{not yaml", "not valid"),
    ],
)
def test_bad_extension_files_name_the_entry(tmp_path: Path, content: str, message: str) -> None:
    path = tmp_path / "extra.yaml"
    path.write_text(content)
    with pytest.raises(TaxonomyError, match=message):
        Taxonomy.load(path)


def _reply(tokens: list[str], tops: list[list[tuple[str, float]]]) -> RawReply:
    return RawReply(text="".join(tokens), model="m", tokens=tokens, tops=tops)


def test_score_distribution_renormalises_digit_alternatives() -> None:
    tokens = ['{"', "rationale", '":"', "ok", '","', "score", '":', "3", "}"]
    tops: list[list[tuple[str, float]]] = [[(t, 0.0)] for t in tokens]
    tops[7] = [
        ("3", math.log(0.5)),
        ("4", math.log(0.2)),
        ("x", math.log(0.2)),
        ("1", math.log(0.1)),
    ]
    probabilities = score_distribution(_reply(tokens, tops), "".join(tokens))
    assert probabilities == pytest.approx([0.125, 0.0, 0.625, 0.25])
    expected = sum(p * s for p, s in zip(probabilities, (1, 2, 3, 4), strict=True))
    assert expected == pytest.approx(3.0)


def test_score_distribution_reads_a_digit_glued_to_its_prefix() -> None:
    tokens = ['{"rationale":"a","score":', " 2", "}"]
    tops = [[(tokens[0], 0.0)], [(" 2", math.log(0.6)), (" 4", math.log(0.3))], [("}", 0.0)]]
    assert score_distribution(_reply(tokens, tops), "".join(tokens)) == pytest.approx(
        [0, 2 / 3, 0, 1 / 3]
    )


def test_score_distribution_is_empty_when_unknown() -> None:
    text = '{"rationale":"a","score":2}'
    assert score_distribution(RawReply(text=text, model="m"), text) == []
    tokens = ['{"rationale":"a","score":', "2", "}"]
    unlisted = [[("x", 0.0)], [("7", 0.0)], [("}", 0.0)]]  # no digit 1-4 among alternatives
    assert score_distribution(_reply(tokens, unlisted), "".join(tokens)) == []


def test_schemas_bound_what_the_judge_may_write() -> None:
    schema = prompts.decomposition_schema(["trajectory", "check:0"], 3, 40)
    items = schema["properties"]["sub_questions"]
    assert items["maxItems"] == 3 and items["minItems"] == 1
    assert items["items"]["properties"]["source"] == {"enum": ["trajectory", "check:0"]}
    assert items["items"]["properties"]["steps"]["items"] == {"enum": [-1, 0, 1, 2]}
    feedback = prompts.feedback_schema(40)
    assert feedback["properties"]["instructions"]["maxItems"] == 3
    assert list(prompts.judge_schema(40)["properties"]) == ["rationale", "score"]
    json.dumps(schema)  # plain JSON, sent as structured_output.json_schema


def test_long_trajectories_are_elided_in_the_middle() -> None:
    steps = [pb.TraceStep(index=i, action=f"act-{i}", observation="x" * 50) for i in range(200)]
    text = prompts.render_trajectory(steps, 2_000)
    assert len(text) <= 2_000
    assert text.startswith("[0]") and "act-199" in text and "steps elided" in text
    steps[5].truncated = True
    steps[6].action_parsed = False
    assert "truncated" in prompts.render_step(steps[5], 5)
    assert "did not parse" in prompts.render_step(steps[6], 6)
    assert "did not parse: steps [6]" in prompts.facts(steps, 200)
