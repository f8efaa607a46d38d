"""Checks on arrival, before any judge call: sizes first, then values, fields named.

`field` prefixes let VerifyBatch name `requests[3].answer` and VerifyAndRefine reuse
the same rules.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from gantry.core.errors import InvalidArgument, echo
from gantry.core.limits import check_bytes, check_count, check_id
from gantry.proto.common.v1 import sampling_pb2
from gantry.proto.verifier.v1 import verifier_pb2 as pb
from gantry.verifier.settings import VerifierSettings
from gantry.verifier.taxonomy import Taxonomy

MAX_NAME_BYTES = 256
MAX_ACTION_BYTES = 4_096
MAX_STATE_BYTES = 1_048_576
MAX_STOP = 4
MAX_MAX_STEPS = 1_000_000


def _finite(value: float, field: str) -> None:
    if not math.isfinite(value):
        raise InvalidArgument.for_field(field, "must be a finite number")


def check_text(
    request: pb.VerifyRequest | pb.VerifyAndRefineRequest, s: VerifierSettings, p: str
) -> None:
    check_bytes(request.task, field=f"{p}task", limit=s.max_task_bytes)
    check_bytes(request.answer, field=f"{p}answer", limit=s.max_answer_bytes)
    check_bytes(request.rubric.text, field=f"{p}rubric.text", limit=s.max_rubric_bytes)
    check_bytes(request.evidence_collection, field=f"{p}evidence_collection", limit=MAX_NAME_BYTES)
    if not request.task.strip():
        raise InvalidArgument.for_field(f"{p}task", "must not be empty")
    if not request.answer.strip():
        raise InvalidArgument.for_field(
            f"{p}answer", "must not be empty: there is nothing to verify"
        )


def check_trajectory(steps: Sequence[pb.TraceStep], s: VerifierSettings, p: str) -> None:
    field = f"{p}trajectory"
    check_count(len(steps), field=field, limit=s.max_trajectory_steps)
    total = 0
    for i, step in enumerate(steps):
        for name in ("thought", "action", "observation"):
            value = getattr(step, name)
            check_bytes(value, field=f"{field}[{i}].{name}", limit=s.max_step_field_bytes)
            total += len(value)
        if total > s.max_trajectory_bytes:
            raise InvalidArgument.for_field(
                field, f"holds more than {s.max_trajectory_bytes} bytes of text"
            )
        if step.index not in (0, i):
            raise InvalidArgument.for_field(
                f"{field}[{i}].index", f"must be {i} (its position) or left 0"
            )
        if step.HasField("reward"):
            _finite(step.reward, f"{field}[{i}].reward")


def check_rubric(rubric: pb.Rubric, taxonomy: Taxonomy, p: str) -> None:
    if not 0 <= rubric.accept_threshold <= 4:
        raise InvalidArgument.for_field(
            f"{p}rubric.accept_threshold", "must be 1-4 (0 = the default 3)"
        )
    check_count(len(rubric.focus), field=f"{p}rubric.focus", limit=64)
    for i, value in enumerate(rubric.focus):
        if value not in taxonomy.by_enum:
            raise InvalidArgument.for_field(
                f"{p}rubric.focus[{i}]", f"{value} is not a failure subclass"
            )
    check_count(len(rubric.focus_labels), field=f"{p}rubric.focus_labels", limit=64)
    for i, label in enumerate(rubric.focus_labels):
        check_bytes(label, field=f"{p}rubric.focus_labels[{i}]", limit=MAX_NAME_BYTES)
        if label not in taxonomy.by_label:
            raise InvalidArgument.for_field(
                f"{p}rubric.focus_labels[{i}]",
                f"unknown taxonomy label {echo(label)} (GetTaxonomy lists them)",
            )


def check_sampling(params: sampling_pb2.SamplingParams, field: str) -> None:
    if params.HasField("temperature"):
        _finite(params.temperature, f"{field}.temperature")
        if params.temperature < 0:
            raise InvalidArgument.for_field(f"{field}.temperature", "must be >= 0")
    if params.HasField("top_p"):
        _finite(params.top_p, f"{field}.top_p")
        if not 0 < params.top_p <= 1:
            raise InvalidArgument.for_field(f"{field}.top_p", "must be in (0, 1]")
    if params.HasField("top_k") and params.top_k < 0:
        raise InvalidArgument.for_field(f"{field}.top_k", "must be >= 0")
    if not 0 <= params.max_tokens <= 8192:
        raise InvalidArgument.for_field(f"{field}.max_tokens", "must be 0-8192 (0 = default)")
    if params.n not in (0, 1):
        raise InvalidArgument.for_field(f"{field}.n", "must be 0 or 1 (one answer per call)")
    if params.logprobs_mode not in sampling_pb2.LogprobsMode.values():
        raise InvalidArgument.for_field(f"{field}.logprobs_mode", "is not a LogprobsMode")
    check_count(len(params.stop), field=f"{field}.stop", limit=MAX_STOP)
    for i, stop in enumerate(params.stop):
        check_bytes(stop, field=f"{field}.stop[{i}]", limit=64)
        if not stop:
            raise InvalidArgument.for_field(f"{field}.stop[{i}]", "must not be empty")
    check_count(len(params.stop_token_ids), field=f"{field}.stop_token_ids", limit=MAX_STOP)


def check_judge(config: pb.JudgeConfig, s: VerifierSettings, p: str) -> None:
    check_bytes(config.judge, field=f"{p}judge.judge", limit=MAX_NAME_BYTES)
    if config.judge and config.judge not in s.judges:
        raise InvalidArgument.for_field(
            f"{p}judge.judge",
            f"{echo(config.judge)} is not a configured judge (configured: "
            f"{', '.join(sorted(s.judges))})",
        )
    field = f"{p}judge.sampling"
    check_sampling(config.sampling, field)
    if config.sampling.HasField("structured_output"):
        raise InvalidArgument.for_field(
            f"{field}.structured_output", "is set by the verifier for each step; leave it unset"
        )
    if config.sampling.stop or config.sampling.stop_token_ids:
        raise InvalidArgument.for_field(
            f"{field}.stop", "the judge's output format is the verifier's; leave stops unset"
        )
    if config.sampling.top_logprobs:
        raise InvalidArgument.for_field(
            f"{field}.top_logprobs", "is set by the verifier (judge setting); leave it 0"
        )


def check_mode(mode: int, field: str) -> None:
    if mode not in pb.VerificationMode.values():
        raise InvalidArgument.for_field(field, f"{mode} is not a VerificationMode")


def check_checks(request: pb.VerifyRequest, s: VerifierSettings, p: str) -> None:
    check_count(len(request.checks), field=f"{p}checks", limit=s.max_checks)
    for i, check in enumerate(request.checks):
        field = f"{p}checks[{i}]"
        check_bytes(check.envfarm_peer, field=f"{field}.envfarm_peer", limit=MAX_NAME_BYTES)
        s.peers("envfarm").resolve(check.envfarm_peer, field=f"{field}.envfarm_peer")
        kind = check.WhichOneof("kind")
        if kind is None:
            raise InvalidArgument.for_field(field, "set session or replay")
        if kind == "session":
            check_id(check.session.session_id, field=f"{field}.session.session_id")
            if not check.session.session_id:
                raise InvalidArgument.for_field(f"{field}.session.session_id", "must not be empty")
            _finite(check.session.min_total_reward, f"{field}.session.min_total_reward")
            continue
        replay = check.replay
        check_id(replay.env_id, field=f"{field}.replay.env_id")
        if not replay.env_id:
            raise InvalidArgument.for_field(f"{field}.replay.env_id", "must not be empty")
        if replay.difficulty not in (0, 1, 2):
            raise InvalidArgument.for_field(f"{field}.replay.difficulty", "is not a Difficulty")
        check_bytes(
            replay.initial_state_json,
            field=f"{field}.replay.initial_state_json",
            limit=MAX_STATE_BYTES,
        )
        _finite(replay.min_total_reward, f"{field}.replay.min_total_reward")
        check_count(
            len(replay.actions), field=f"{field}.replay.actions", limit=s.max_trajectory_steps
        )
        for j, action in enumerate(replay.actions):
            check_bytes(action, field=f"{field}.replay.actions[{j}]", limit=MAX_ACTION_BYTES)
        if replay.actions_from_answer and replay.actions:
            raise InvalidArgument.for_field(
                f"{field}.replay.actions_from_answer", "set it or actions, not both"
            )
        trajectory_actions = any(step.action for step in request.trajectory)
        if not (replay.actions or replay.actions_from_answer or trajectory_actions):
            raise InvalidArgument.for_field(
                f"{field}.replay.actions",
                "is empty and the trajectory has no actions to replay (or set actions_from_answer)",
            )


def check_verify(
    request: pb.VerifyRequest, s: VerifierSettings, taxonomy: Taxonomy, p: str = ""
) -> None:
    """Everything Verify needs to be true of `request` before any peer is called."""
    check_text(request, s, p)
    check_trajectory(request.trajectory, s, p)
    check_rubric(request.rubric, taxonomy, p)
    check_mode(request.mode, f"{p}mode")
    check_judge(request.judge, s, p)
    if not 0 <= request.max_steps <= MAX_MAX_STEPS:
        raise InvalidArgument.for_field(f"{p}max_steps", f"must be 0-{MAX_MAX_STEPS} (0 = unknown)")
    check_bytes(request.retrieval_peer, field=f"{p}retrieval_peer", limit=MAX_NAME_BYTES)
    if request.retrieval_peer:
        s.peers("retrieval").resolve(request.retrieval_peer, field=f"{p}retrieval_peer")
    check_checks(request, s, p)
    if request.mode == pb.VERIFICATION_MODE_PROGRAMMATIC and not request.checks:
        raise InvalidArgument.for_field(
            f"{p}checks", "PROGRAMMATIC mode needs at least one executable check"
        )
