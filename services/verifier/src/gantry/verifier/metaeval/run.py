"""Run the meta-evaluation against a verifier: detection scores per mode, Verify latency,
and VerifyAndRefine accuracy per round (answers re-checked by replay in envfarm)."""

from __future__ import annotations

import random
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

import grpc

from gantry.proto.common.v1 import episode_pb2, sampling_pb2
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


def request(
    item: Item, mode: str, *, judge: str = "", seed: int = 0, from_answer: bool = False
) -> verifier_pb2.VerifyRequest:
    """The item as the verifier sees it: task, answer, the trajectory with the harness's
    facts (parsed, terminated, truncated, step limit) but no reward, the domain rubric,
    and, in the modes that use them, the replay check that is the executable ground
    truth (replaying the trajectory's actions, or with `from_answer` the answer's)."""
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
            actions_from_answer=from_answer,
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
    scores: list[int] = field(default_factory=list)  # per item in order; 0 = refused

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
    sequential: bool = False,
) -> ModeResult:
    """VerifyBatch over every item; then single Verify calls, one at a time, on the first
    `latency_sample` items for the latency of one verification. `sequential`: single
    Verify calls only, one at a time, each timed (for slow judges: no call is made twice)."""
    if sequential:
        return _sequential(channel, items, mode, judge=judge, seed=seed, timeout_s=timeout_s)
    stub = verifier_pb2_grpc.VerifierServiceStub(channel)
    verdicts: list[bool] = []
    scores: list[int] = []
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
            scores.append(result.verification.score if ok else 0)
        print(  # a long run is readable batch by batch, even if cut short
            f"  {mode} {len(verdicts)}/{len(items)}: {sum(verdicts)} rejected, {errors} "
            f"refused, {time.perf_counter() - started:.0f} s",
            flush=True,
        )
    seconds = time.perf_counter() - started
    wrong = [not item.correct for item in items]
    by_kind = _by_kind(items, verdicts)
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
    return ModeResult(mode, confusion, errors, by_kind, latencies, seconds, refusals, scores)


def _by_kind(items: Sequence[Item], verdicts: Sequence[bool]) -> dict[str, tuple[int, int]]:
    by_kind: dict[str, tuple[int, int]] = {}
    for item, rejected in zip(items, verdicts, strict=True):
        hit, total = by_kind.get(item.injected, (0, 0))
        by_kind[item.injected] = (hit + rejected, total + 1)
    return by_kind


def _sequential(
    channel: grpc.Channel,
    items: Sequence[Item],
    mode: str,
    *,
    judge: str,
    seed: int,
    timeout_s: float,
    progress: bool = True,
) -> ModeResult:
    stub = verifier_pb2_grpc.VerifierServiceStub(channel)
    verdicts: list[bool] = []
    scores: list[int] = []
    latencies: list[float] = []
    refusals: dict[str, int] = {}
    errors = 0
    started = time.perf_counter()
    for item in items:
        t0 = time.perf_counter()
        try:
            reply = stub.Verify(request(item, mode, judge=judge, seed=seed), timeout=timeout_s)
        except grpc.RpcError as exc:
            if exc.code() != grpc.StatusCode.FAILED_PRECONDITION:  # a judge that never parsed
                raise
            errors += 1
            message = str(exc.details())[:160]
            refusals[message] = refusals.get(message, 0) + 1
            verdicts.append(False)
            scores.append(0)
            continue
        latencies.append(time.perf_counter() - t0)
        verdicts.append(reply.verification.verdict == verifier_pb2.VERDICT_REJECT)
        scores.append(reply.verification.score)
        if progress:  # a slow judge's run is readable item by item, even if cut short
            v = reply.verification
            print(
                f"  {mode} {len(verdicts)}/{len(items)} {item.id}: score {v.score} "
                f"{verifier_pb2.Verdict.Name(v.verdict)} in {latencies[-1]:.1f} s",
                flush=True,
            )
    seconds = time.perf_counter() - started
    confusion = Confusion.of(verdicts, [not item.correct for item in items])
    by_kind = _by_kind(items, verdicts)
    return ModeResult(mode, confusion, errors, by_kind, latencies, seconds, refusals, scores)


def stratified(items: Sequence[Item], per_kind: int, seed: int) -> list[Item]:
    """A seeded subset, in the set's order: `per_kind` items of each injected failure kind
    and as many correct answers as failed ones (the full set's half-and-half balance, so
    precision and the reject-all floor mean the same on both)."""
    rng = random.Random(seed)
    chosen: set[str] = set()
    counts = dict.fromkeys(failures.KINDS, per_kind) | {"none": per_kind * len(failures.KINDS)}
    for kind, count in counts.items():
        pool = [item.id for item in items if item.injected == kind]
        chosen.update(rng.sample(pool, min(count, len(pool))))
    return [item for item in items if item.id in chosen]


def parse_actions(answer: str) -> list[str]:
    """The action strings an answer lists, in order: the service's own reading
    (EnvfarmReplayCheck.actions_from_answer), so both agree on what an answer says."""
    return answer_actions(answer)


@dataclass
class RefinedTask:
    """One VerifyAndRefine stream: what was answered in each round and whether envfarm's
    replay found it right (kept in the JSON report, so every retry can be read)."""

    id: str
    injected: str
    answers: list[str]  # round 1's (the item's), then each refined answer verified
    right: list[bool]  # per answer above
    best_round: int  # the verifier's choice, 1-based (0: the stream failed)
    final_right: bool


@dataclass
class RefineResult:
    """VerifyAndRefine on tasks whose every answer envfarm can grade by replay."""

    mode: str
    tasks: int
    correct_by_round: list[int]  # answers right after round k (k = 1..rounds)
    final_correct: int  # the verifier's choice (best round)
    wrong_to_right: int  # between round 1 and the final choice
    right_to_wrong: int
    errors: int  # streams that failed (their rounds so far count)
    retries: int  # refined answers the agent wrote
    seconds: float = 0.0
    per_task: list[RefinedTask] = field(default_factory=list)

    def by_kind(self) -> dict[str, tuple[int, int, int]]:
        """injected kind -> (tasks, right in round 1, right in the verifier's choice)."""
        out: dict[str, tuple[int, int, int]] = {}
        for task in self.per_task:
            n, first, final = out.get(task.injected, (0, 0, 0))
            out[task.injected] = (n + 1, first + task.right[0], final + task.final_right)
        return out

    @property
    def accuracy_by_round(self) -> list[float]:
        return [c / max(self.tasks, 1) for c in self.correct_by_round]

    @property
    def final_accuracy(self) -> float:
        return self.final_correct / max(self.tasks, 1)


def refine(
    channel: grpc.Channel,
    builder: dataset.Builder,
    items: Sequence[Item],
    *,
    mode: str = "full",
    judge: str = "",
    rounds: int = 4,
    seed: int = 0,
    agent_max_tokens: int = 0,
    agent_temperature: float = 0.0,
    agent_endpoint: str = "",
    timeout_s: float = 3600.0,
) -> RefineResult:
    """VerifyAndRefine each item for up to `rounds` rounds, the first answer being the
    item's and the agent the verifier's default or its configured `agent_endpoint`
    (seeded; greedy unless `agent_temperature` is set). In the modes with
    checks, the replay check reads each round's answer (`actions_from_answer`), so the
    verifier and the agent see ground truth on every retry. Independently of the
    verifier, every round's answer is replayed here in envfarm to score it."""
    stub = verifier_pb2_grpc.VerifierServiceStub(channel)
    correct_by_round = [0] * rounds
    final = flips_up = flips_down = errors = retries = 0
    started = time.perf_counter()

    def right(item: Item, answer: str) -> bool:
        plan = parse_actions(answer)
        if not plan:
            return False
        _, _, steps = builder.replay(item.env_id, item.difficulty, item.seed, plan)
        return bool(steps) and steps[-1].terminated and steps[-1].reward >= dataset.SUCCESS_REWARD

    sampling = sampling_pb2.SamplingParams(
        temperature=agent_temperature, seed=seed, max_tokens=agent_max_tokens
    )
    per_task: list[RefinedTask] = []
    for item in items:
        base = request(item, mode, judge=judge, seed=seed, from_answer=True)
        call = verifier_pb2.VerifyAndRefineRequest(
            rubric=base.rubric,
            task=base.task,
            answer=base.answer,
            trajectory=base.trajectory,
            mode=base.mode,
            judge=base.judge,
            max_steps=base.max_steps,
            max_rounds=rounds,
            checks=base.checks,
            agent=verifier_pb2.RefineAgent(sampling=sampling, endpoint=agent_endpoint),
        )
        answers: list[str] = []
        chosen, best_round = item.answer, 0
        try:
            for message in stub.VerifyAndRefine(call, timeout=timeout_s):
                answers.append(message.round.answer)
                retries += bool(message.round.refined_answer)
                if message.done:
                    chosen, best_round = message.final_answer, message.best_round
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
        per_task.append(
            RefinedTask(
                item.id,
                item.injected,
                answers,
                [outcomes[a] for a in answers],
                best_round,
                outcomes[chosen],
            )
        )
    return RefineResult(
        mode=mode,
        tasks=len(items),
        correct_by_round=correct_by_round,
        final_correct=final,
        wrong_to_right=flips_up,
        right_to_wrong=flips_down,
        errors=errors,
        retries=retries,
        seconds=time.perf_counter() - started,
        per_task=per_task,
    )
