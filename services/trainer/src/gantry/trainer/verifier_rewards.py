"""The verifier reward hook (`config.data.verifier_target`): GRPO rewards for trajectories
that no environment scored, from VerifierService.

A submitted trajectory without an `env_id` has no environment reward to trust, so the
trainer asks the verifier (VerifyBatch, one call per submitted message) and trains on
reward = (score - 1) / 3, the judge's 1-4 score mapped to [0, 1]; accept (score >= the
verifier's threshold) is then reward >= 2/3 at the default threshold 3. Trajectories with
an `env_id` keep their environment's reward. The trajectory carries a short summary in
`metadata["verification"]` (so a resumed run trains on the same rewards without asking
again), and the full report (labels, sub-questions, feedback, per-step audit) is appended
to `<run>/verifications.jsonl`, fsynced before the trajectories are acknowledged.

Errors: a verifier that cannot be reached fails the SubmitTrajectories call with
UNAVAILABLE before anything is kept (the client resubmits); a trajectory the verifier
refuses (an empty final answer, too many turns) is rejected alone with its reason.
"""

from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import grpc
from google.protobuf import json_format

from gantry.core.client import sync_channel
from gantry.core.errors import Unavailable
from gantry.proto.common.v1 import trajectory_pb2
from gantry.proto.verifier.v1 import verifier_pb2, verifier_pb2_grpc

REPORTS = "verifications.jsonl"
MIN_SCORE, MAX_SCORE = 1, 4


def needs_verifier(trajectory: trajectory_pb2.Trajectory) -> bool:
    """No environment scored it: its reward comes from the verifier."""
    return not trajectory.env_id


def reward(score: int) -> float:
    """The 1-4 score on [0, 1]."""
    clamped = min(max(score, MIN_SCORE), MAX_SCORE)
    return (clamped - MIN_SCORE) / (MAX_SCORE - MIN_SCORE)


MODES = {
    "full": verifier_pb2.VERIFICATION_MODE_FULL,
    "decomposed": verifier_pb2.VERIFICATION_MODE_DECOMPOSED_JUDGE,
    "plain": verifier_pb2.VERIFICATION_MODE_PLAIN_JUDGE,
}


def verify_request(
    trajectory: trajectory_pb2.Trajectory, mode: str = "full", judge: str = ""
) -> verifier_pb2.VerifyRequest:
    """Task, final answer (the last turn's completion) and every turn as a trace step."""
    turns = trajectory.turns
    steps = [
        verifier_pb2.TraceStep(
            index=i,
            thought=turn.completion_text,
            action=turn.action,
            observation="\n".join(filter(None, (turn.feedback, turn.observation.text))),
        )
        for i, turn in enumerate(turns)
    ]
    answer = turns[-1].completion_text if turns else ""
    return verifier_pb2.VerifyRequest(
        task=trajectory.task,
        answer=answer,
        trajectory=steps,
        mode=MODES[mode],
        judge=verifier_pb2.JudgeConfig(judge=judge),
    )


@dataclass(frozen=True)
class Outcome:
    """Per trajectory: the new copy to keep, or why the verifier refused it."""

    trajectory: trajectory_pb2.Trajectory | None
    reason: str | None


class VerifierRewards:
    """Scores one run's verifier-less trajectories through a configured verifier peer."""

    def __init__(
        self,
        target: str,
        *,
        token: str | None,
        timeout_s: float,
        batch_size: int,
        reports: Path,
        mode: str = "full",
        judge: str = "",
    ) -> None:
        self.target = target
        self.mode = mode
        self.judge = judge
        self.token = token
        self.timeout_s = timeout_s
        self.batch_size = batch_size
        self.reports = reports
        self._write = threading.Lock()

    def _verify(
        self, requests: Sequence[verifier_pb2.VerifyRequest], time_left_s: float | None
    ) -> list[verifier_pb2.VerifyBatchResult]:
        results: list[verifier_pb2.VerifyBatchResult] = []
        deadline = time.monotonic() + min(time_left_s or self.timeout_s, self.timeout_s)
        # No transparent retries: an unreachable verifier fails the call at once, with
        # nothing kept, and the client resubmits (SubmitTrajectories is not idempotent).
        with sync_channel(
            self.target, token=self.token, default_timeout_s=self.timeout_s, retry=None
        ) as ch:
            stub = verifier_pb2_grpc.VerifierServiceStub(ch)
            for start in range(0, len(requests), self.batch_size):
                chunk = requests[start : start + self.batch_size]
                try:
                    reply = stub.VerifyBatch(
                        verifier_pb2.VerifyBatchRequest(requests=chunk),
                        timeout=max(0.0, deadline - time.monotonic()),
                    )
                except grpc.RpcError as exc:
                    raise Unavailable(
                        f"verifier {self.target} (config.data.verifier_target) failed: "
                        f"{exc.code().name}: {exc.details()}; nothing was kept, resubmit",
                        retry_after_s=5.0,
                        reason="VERIFIER_UNAVAILABLE",
                    ) from exc
                results.extend(sorted(reply.results, key=lambda r: r.index))
        return results

    def score(
        self, trajectories: Sequence[trajectory_pb2.Trajectory], *, time_left_s: float | None
    ) -> list[Outcome]:
        """Blocking: one Outcome per trajectory, in order; reports written durably. The
        verifier calls end within `time_left_s` (the submitting call's deadline) and
        `verifier_timeout_s`."""
        todo = [i for i, t in enumerate(trajectories) if needs_verifier(t)]
        outcomes = [Outcome(t, None) for t in trajectories]
        if not todo:
            return outcomes
        requests = [verify_request(trajectories[i], self.mode, self.judge) for i in todo]
        results = self._verify(requests, time_left_s)
        lines = []
        for i, result in zip(todo, results, strict=True):
            original = trajectories[i]
            if result.WhichOneof("result") != "verification":
                outcomes[i] = Outcome(None, f"verifier refused it: {result.error.message}")
                continue
            v = result.verification
            kept = trajectory_pb2.Trajectory()
            kept.CopyFrom(original)
            kept.final_reward = reward(v.score)
            kept.metadata["verification"] = {
                "score": v.score,
                "accepted": v.verdict == verifier_pb2.VERDICT_ACCEPT,
                "mode": verifier_pb2.VerificationMode.Name(v.mode),
                "judge_model": v.judge_model,
            }
            outcomes[i] = Outcome(kept, None)
            report = json_format.MessageToDict(v)
            lines.append(json.dumps({"trajectory_id": original.id, "verification": report}))
        self._append(lines)
        return outcomes

    def _append(self, lines: list[str]) -> None:
        if not lines:
            return
        with self._write, self.reports.open("a") as fh:
            fh.write("".join(line + "\n" for line in lines))
            fh.flush()
            os.fsync(fh.fileno())


def step_metrics(trajectories: Sequence[trajectory_pb2.Trajectory]) -> dict[str, float]:
    """StepMetrics.extra for the verified trajectories of a batch (empty when none)."""
    summaries = [
        t.metadata.fields["verification"].struct_value.fields
        for t in trajectories
        if "verification" in t.metadata.fields
    ]
    if not summaries:
        return {}
    n = float(len(summaries))
    return {
        "verified_trajectories": n,
        "verifier_score_mean": sum(s["score"].number_value for s in summaries) / n,
        "verifier_accept_rate": sum(1.0 for s in summaries if s["accepted"].bool_value) / n,
    }
