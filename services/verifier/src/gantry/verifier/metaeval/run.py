"""Run the meta-evaluation against a verifier: detection scores per mode, Verify latency,
and VerifyAndRefine accuracy per round (answers re-checked by replay in envfarm)."""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field

import grpc

from gantry.proto.common.v1 import episode_pb2
from gantry.proto.verifier.v1 import verifier_pb2, verifier_pb2_grpc
from gantry.verifier.evidence import answer_actions
from gantry.verifier.metaeval import dataset, failures
from gantry.verifier.metaeval.dataset import Item
from gantry.verifier.metaeval.scoring import Confusion, percentile

MODES = {
    "plain": verifier_pb2.VERIFICATION_MODE_PLAIN_JUDGE,
    "decomposed": verifier_pb2.VERIFICATION_MODE_DECOMPOSED_JUDGE,
    "full": verifier_pb2.VERIFICATION_MODE_FULL,
    "programmatic": verifier_pb2.VERIFICATION_MODE_PROGRAMMATIC,
}
WITH_CHECKS = {verifier_pb2.VERIFICATION_MODE_FULL, verifier_pb2.VERIFICATION_MODE_PROGRAMMATIC}
# The domain rubric, the same in every mode: the five subclasses the set injects (the
# whole taxonomy does not fit the tiny model's 2048-token context next to a board).
RUBRIC = verifier_pb2.Rubric(focus=list(failures.SUBCLASSES.values()))
_DIFFICULTY = {"easy": episode_pb2.DIFFICULTY_EASY, "hard": episode_pb2.DIFFICULTY_HARD}
BATCH = 16


def request(item: Item, mode: str, *, judge: str = "", seed: int = 0) -> verifier_pb2.VerifyRequest:
    """The item as the verifier sees it: task, answer, the trajectory with the harness's
    facts (parsed, terminated, truncated, step limit) but no reward, the domain rubric,
    and, in the modes that use them, the replay check that is the executable ground
    truth."""
    kind = MODES[mode]
    steps = [
        verifier_pb2.TraceStep(
            index=i,
            thought=dataset.THOUGHT,
            action=step.action,
            observation=step.observation,
            terminated=step.terminated,
            truncated=step.truncated,
            action_parsed=step.action_valid,
        )
        for i, step in enumerate(item.steps)
    ]
    out = verifier_pb2.VerifyRequest(
        task=item.task,
        answer=item.answer,
        trajectory=steps,
        mode=kind,
        judge=verifier_pb2.JudgeConfig(judge=judge, seed=seed),
        max_steps=item.max_steps,
        rubric=RUBRIC,
    )
    if kind in WITH_CHECKS:
        replay = verifier_pb2.EnvfarmReplayCheck(
            env_id=item.env_id,
            difficulty=_DIFFICULTY[item.difficulty],
            seed=item.seed,
            min_total_reward=dataset.SUCCESS_REWARD,
        )
        out.checks.append(verifier_pb2.ExecutableCheck(replay=replay))
    return out


@dataclass
class ModeResult:
    mode: str
    confusion: Confusion
    errors: int  # items the verifier refused (counted as accepts: nothing was rejected)
    by_kind: dict[str, tuple[int, int]]  # injected kind -> (rejected, total)
    latencies_s: list[float] = field(default_factory=list)
    seconds: float = 0.0
    refusals: dict[str, int] = field(default_factory=dict)  # error message -> count

    @property
    def median_s(self) -> float:
        return percentile(self.latencies_s, 50)

    @property
    def p99_s(self) -> float:
        return percentile(self.latencies_s, 99)


def evaluate(
    channel: grpc.Channel,
    items: Sequence[Item],
    mode: str,
    *,
    judge: str = "",
    seed: int = 0,
    latency_sample: int = 0,
    timeout_s: float = 3600.0,
) -> ModeResult:
    """VerifyBatch over every item; then single Verify calls, one at a time, on the first
    `latency_sample` items for the latency of one verification."""
    stub = verifier_pb2_grpc.VerifierServiceStub(channel)
    verdicts: list[bool] = []
    errors = 0
    refusals: dict[str, int] = {}
    started = time.perf_counter()
    for start in range(0, len(items), BATCH):
        chunk = items[start : start + BATCH]
        reply = stub.VerifyBatch(
            verifier_pb2.VerifyBatchRequest(
                requests=[request(i, mode, judge=judge, seed=seed) for i in chunk]
            ),
            timeout=timeout_s,
        )
        for result in sorted(reply.results, key=lambda r: r.index):
            ok = result.WhichOneof("result") == "verification"
            if not ok:
                errors += 1
                message = result.error.message[:160]
                refusals[message] = refusals.get(message, 0) + 1
            verdicts.append(ok and result.verification.verdict == verifier_pb2.VERDICT_REJECT)
    seconds = time.perf_counter() - started
    wrong = [not item.correct for item in items]
    by_kind: dict[str, tuple[int, int]] = {}
    for item, rejected in zip(items, verdicts, strict=True):
        hit, total = by_kind.get(item.injected, (0, 0))
        by_kind[item.injected] = (hit + rejected, total + 1)
    latencies = []
    for item in items[:latency_sample]:
        t0 = time.perf_counter()
        try:
            stub.Verify(request(item, mode, judge=judge, seed=seed), timeout=timeout_s)
        except grpc.RpcError as exc:
            if exc.code() != grpc.StatusCode.FAILED_PRECONDITION:  # a judge that never parsed
                raise
            continue  # refused items are counted above; their latency is not a Verify's
        latencies.append(time.perf_counter() - t0)
    confusion = Confusion.of(verdicts, wrong)
    return ModeResult(mode, confusion, errors, by_kind, latencies, seconds, refusals)


def parse_actions(answer: str) -> list[str]:
    """The action strings an answer lists, in order: the service's own reading
    (EnvfarmReplayCheck.actions_from_answer), so both agree on what an answer says."""
    return answer_actions(answer)


@dataclass
class RefineResult:
    tasks: int
    accuracy_by_round: list[float]  # answer standing after round k (k = 1..rounds)
    final_accuracy: float  # the verifier's choice (best round)
    wrong_to_right: int  # between round 1 and the final choice
    right_to_wrong: int
    errors: int


def refine(
    channel: grpc.Channel,
    builder: dataset.Builder,
    items: Sequence[Item],
    *,
    mode: str = "full",
    judge: str = "",
    rounds: int = 4,
    seed: int = 0,
    timeout_s: float = 3600.0,
) -> RefineResult:
    """VerifyAndRefine each item for up to `rounds` rounds with the verifier's default
    agent; every round's answer is replayed in envfarm to see whether it is right."""
    stub = verifier_pb2_grpc.VerifierServiceStub(channel)
    correct_by_round = [0] * rounds
    final = flips_up = flips_down = errors = 0

    def right(item: Item, answer: str) -> bool:
        plan = parse_actions(answer)
        if not plan:
            return False
        _, _, steps = builder.replay(item.env_id, item.difficulty, item.seed, plan)
        return bool(steps) and steps[-1].terminated and steps[-1].reward >= dataset.SUCCESS_REWARD

    for item in items:
        base = request(item, mode, judge=judge, seed=seed)
        call = verifier_pb2.VerifyAndRefineRequest(
            rubric=base.rubric,
            task=base.task,
            answer=base.answer,
            trajectory=base.trajectory,
            mode=base.mode,
            judge=base.judge,
            max_steps=base.max_steps,
            max_rounds=rounds,
        )
        answers: list[str] = []
        chosen = item.answer
        try:
            for message in stub.VerifyAndRefine(call, timeout=timeout_s):
                answers.append(message.round.answer)
                if message.done:
                    chosen = message.final_answer
        except grpc.RpcError:
            errors += 1
        answers = answers or [item.answer]
        standing = answers + [answers[-1]] * (rounds - len(answers))  # accepted: it stays
        outcomes = {answer: right(item, answer) for answer in set(standing) | {chosen}}
        for k in range(rounds):
            correct_by_round[k] += outcomes[standing[k]]
        final += outcomes[chosen]
        flips_up += not outcomes[standing[0]] and outcomes[chosen]
        flips_down += outcomes[standing[0]] and not outcomes[chosen]
    n = max(len(items), 1)
    return RefineResult(
        tasks=len(items),
        accuracy_by_round=[c / n for c in correct_by_round],
        final_accuracy=final / n,
        wrong_to_right=flips_up,
        right_to_wrong=flips_down,
        errors=errors,
    )
