"""The DeepVerifier pipeline, callable in-process (`Pipeline.verify`) or through gRPC.

Steps by mode (each recorded as a PipelineStep with inputs, outputs and timing):

  PLAIN_JUDGE       judge -> feedback
  DECOMPOSED_JUDGE  error_identification -> decomposition -> evidence (trajectory) ->
                    judge -> feedback
  FULL              checks -> error_identification -> decomposition -> evidence
                    (retrieval, trajectory, checks) -> judge -> feedback
  PROGRAMMATIC      checks -> feedback (no judge model)

Executable checks are ground truth: in FULL mode a failing check makes the score 1 and
passing checks lift it to the accept threshold; the judge's own score stays in its step.
Episode facts (truncation, unparsed actions, the step limit) become taxonomy labels
directly instead of being guessed from text. The verdict is computed from the score,
so accept <=> score >= threshold always holds.
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections.abc import Awaitable, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

from google.protobuf import duration_pb2, json_format, struct_pb2

from gantry.core import tracing
from gantry.core.errors import DeadlineExceeded, GantryError, clip
from gantry.proto.common.v1 import chat_pb2
from gantry.proto.verifier.v1 import verifier_pb2 as pb
from gantry.verifier import prompts
from gantry.verifier.evidence import PeerChannels, answer_actions, run_check, search
from gantry.verifier.judge import Judge, JudgeBackend, OpenAIJudge, Reply, RolloutJudge, Sampling
from gantry.verifier.metrics import VerifierMetrics
from gantry.verifier.settings import VerifierSettings
from gantry.verifier.taxonomy import Taxonomy
from gantry.verifier.validation import check_verify

T = TypeVar("T")
DEFAULT_THRESHOLD = 3
MODE_NAMES: dict[int, str] = {
    pb.VERIFICATION_MODE_PLAIN_JUDGE: "plain_judge",
    pb.VERIFICATION_MODE_DECOMPOSED_JUDGE: "decomposed_judge",
    pb.VERIFICATION_MODE_FULL: "full",
    pb.VERIFICATION_MODE_PROGRAMMATIC: "programmatic",
}
ANSWER_WORDS = {
    pb.SUB_QUESTION_ANSWER_UNSPECIFIED: "no evidence",
    pb.SUB_QUESTION_ANSWER_YES: "yes",
    pb.SUB_QUESTION_ANSWER_NO: "no",
}
STEP_LIMIT = "max_step_reached.step_limit_exhausted"
FORMAT = "action_errors.format_mistake"


def _struct(value: dict[str, Any]) -> struct_pb2.Struct:
    out = struct_pb2.Struct()
    out.update(value)
    return out


def _duration(seconds: float) -> duration_pb2.Duration:
    out = duration_pb2.Duration()
    out.FromNanoseconds(int(seconds * 1e9))
    return out


@dataclass
class Run:
    """One verification in progress: its request, judge, clock and audit trail."""

    request: pb.VerifyRequest
    mode: int
    judge: Judge | None
    sampling: Sampling
    deadline: float | None  # time.monotonic() value
    peer_timeout_s: float
    steps: list[pb.PipelineStep] = field(default_factory=list)
    prompt_tokens: int = 0
    completion_tokens: int = 0
    calls: int = 0
    judge_model: str = ""

    def timeout(self) -> float:
        if self.deadline is None:
            return self.peer_timeout_s
        left = self.deadline - time.monotonic()
        if left <= 0:
            raise DeadlineExceeded("the verification ran out of its deadline")
        return min(left, self.peer_timeout_s)

    def next_sampling(self) -> Sampling:
        """Judge call i of this verification uses seed + i."""
        seed = None if self.sampling.seed is None else self.sampling.seed + self.calls
        self.calls += 1
        return dataclasses.replace(self.sampling, seed=seed)


def sampling_of(config: pb.JudgeConfig) -> Sampling:
    params = config.sampling
    seed = (
        config.seed if config.HasField("seed") else params.seed if params.HasField("seed") else None
    )
    return Sampling(
        temperature=params.temperature if params.HasField("temperature") else 0.0,
        top_p=params.top_p if params.HasField("top_p") else 1.0,
        top_k=params.top_k,
        seed=seed,
        max_tokens=params.max_tokens,
    )


def build_judges(settings: VerifierSettings) -> dict[str, Judge]:
    judges: dict[str, Judge] = {}
    for name, spec in settings.judges.items():
        backend: JudgeBackend
        if spec.backend == "rollout":
            target = settings.peers("rollout").resolve(spec.peer, field=f"judges.{name}.peer")
            backend = RolloutJudge(
                target,
                settings.peer_token("rollout"),
                spec.model,
                spec.max_tokens,
                spec.top_logprobs,
            )
        else:
            key = spec.api_key_file.read_text().strip() if spec.api_key_file else None
            backend = OpenAIJudge(spec.url, spec.model, key, spec.max_tokens, spec.top_logprobs)
        judges[name] = Judge(name, backend, spec.model, settings.judge_attempts)
    return judges


class Pipeline:
    """Verification over the configured judges and peers (one instance per service)."""

    def __init__(
        self,
        settings: VerifierSettings,
        taxonomy: Taxonomy,
        judges: dict[str, Judge],
        channels: PeerChannels,
        metrics: VerifierMetrics | None = None,
    ) -> None:
        self.settings, self.taxonomy, self.judges = settings, taxonomy, judges
        self.channels, self.metrics = channels, metrics
        self.chars = settings.judge_text_chars

    @classmethod
    def from_settings(
        cls, settings: VerifierSettings, metrics: VerifierMetrics | None = None
    ) -> Pipeline:
        """The pipeline an operator's settings describe (the taxonomy file is validated)."""
        return cls(
            settings,
            Taxonomy.load(settings.taxonomy_file),
            build_judges(settings),
            PeerChannels(settings),
            metrics,
        )

    async def close(self) -> None:
        for judge in self.judges.values():
            await judge.backend.close()
        await self.channels.close()

    # ----- the pipeline -----
    async def verify(
        self, request: pb.VerifyRequest, *, timeout_s: float | None = None, field: str = ""
    ) -> pb.Verification:
        """Validate, then run the request's mode; errors are typed (gantry.core.errors)."""
        check_verify(request, self.settings, self.taxonomy, field)
        started = time.monotonic()
        mode = request.mode or pb.VERIFICATION_MODE_FULL
        judge = None
        if mode != pb.VERIFICATION_MODE_PROGRAMMATIC:
            judge = self.judges[request.judge.judge or self.settings.default_judge]
        run = Run(
            request,
            mode,
            judge,
            sampling_of(request.judge),
            None if timeout_s is None else started + timeout_s,
            self.settings.peer_timeout_s,
        )
        threshold = request.rubric.accept_threshold or DEFAULT_THRESHOLD
        result = pb.Verification(
            mode=mode,  # type: ignore[arg-type]
            judge=judge.name if judge else "",
            accept_threshold=threshold,
        )
        labels = self.taxonomy.focus(request.rubric.focus, request.rubric.focus_labels)
        checks: list[pb.CheckResult] = []
        if (
            mode in (pb.VERIFICATION_MODE_FULL, pb.VERIFICATION_MODE_PROGRAMMATIC)
            and request.checks
        ):
            checks = await self._step(run, "checks", self._checks(run))
            result.checks.extend(checks)
        if mode in (pb.VERIFICATION_MODE_DECOMPOSED_JUDGE, pb.VERIFICATION_MODE_FULL):
            result.failures.extend(
                await self._step(run, "error_identification", self._identify(run, labels))
            )
            questions = await self._step(
                run, "decomposition", self._decompose(run, result.failures)
            )
            await self._step(run, "evidence", self._evidence(run, questions, checks))
            result.sub_questions.extend(questions)
        elif mode == pb.VERIFICATION_MODE_PROGRAMMATIC:
            result.failures.extend(self._fact_labels(request, labels))

        if mode == pb.VERIFICATION_MODE_PROGRAMMATIC:
            result.score = 4 if all(c.passed for c in checks) else 1
            result.rationale = self._checks_summary(checks)
            result.score_probabilities.extend([float(result.score == s) for s in (1, 2, 3, 4)])
            result.expected_score = result.score
        else:
            reply = await self._step(run, "judge", self._judge(run, result, labels))
            result.score = int(reply.data["score"])
            result.rationale = str(reply.data["rationale"])
            if reply.score_probabilities:
                result.score_probabilities.extend(reply.score_probabilities)
                result.expected_score = sum(
                    p * s for p, s in zip(reply.score_probabilities, (1, 2, 3, 4), strict=True)
                )
            if checks:  # ground truth outranks the judge
                judged = result.score
                passed = all(c.passed for c in checks)
                result.score = max(judged, threshold) if passed else 1
                if result.score != judged:
                    result.rationale = (
                        f"{self._checks_summary(checks)} (the judge scored {judged}: "
                        f"{clip(result.rationale, 300)})"
                    )
        accepted = result.score >= threshold
        result.verdict = pb.VERDICT_ACCEPT if accepted else pb.VERDICT_REJECT
        if not accepted:
            result.feedback.CopyFrom(await self._step(run, "feedback", self._feedback(run, result)))
        result.judge_model = run.judge_model
        result.steps.extend(run.steps)
        result.usage.CopyFrom(
            chat_pb2.Usage(
                prompt_tokens=run.prompt_tokens,
                completion_tokens=run.completion_tokens,
                total_tokens=run.prompt_tokens + run.completion_tokens,
            )
        )
        result.duration.CopyFrom(_duration(time.monotonic() - started))
        if self.metrics is not None:
            self.metrics.verified(MODE_NAMES[mode], accepted, time.monotonic() - started)
        return result

    async def _step(self, run: Run, name: str, work: Awaitable[T]) -> T:
        """Times `work`, traces it, and counts its failures by code."""
        started = time.monotonic()
        mode = MODE_NAMES[run.mode]
        try:
            with tracing.stage(f"verifier.{name}", mode=mode):
                value = await work
        except GantryError as error:
            if self.metrics is not None:
                self.metrics.step_failed(name, error.code.name)
            raise
        elapsed = time.monotonic() - started
        if run.steps and not run.steps[-1].HasField("duration"):
            run.steps[-1].duration.CopyFrom(_duration(elapsed))
        if self.metrics is not None:
            self.metrics.step_done(name, mode, elapsed)
        return value

    def _record(
        self,
        run: Run,
        name: str,
        inputs: dict[str, Any],
        outputs: dict[str, Any],
        reply: Reply | None = None,
    ) -> None:
        if reply is not None and reply.rejected:
            outputs = outputs | {"rejected_attempts": reply.rejected}
        step = pb.PipelineStep(name=name, input=_struct(inputs), output=_struct(outputs))
        if reply is not None:
            step.attempts = reply.attempts
            step.usage.prompt_tokens = reply.prompt_tokens
            step.usage.completion_tokens = reply.completion_tokens
            step.usage.total_tokens = reply.prompt_tokens + reply.completion_tokens
            run.prompt_tokens += reply.prompt_tokens
            run.completion_tokens += reply.completion_tokens
            run.judge_model = reply.model
        run.steps.append(step)

    async def _ask(
        self, run: Run, step: str, user: str, schema: dict[str, Any], *, distribution: bool = False
    ) -> Reply:
        assert run.judge is not None
        messages = [("system", prompts.SYSTEM), ("user", user)]
        try:
            reply = await run.judge.ask(
                step,
                messages,
                schema,
                run.next_sampling(),
                run.timeout(),
                want_distribution=distribution,
            )
        finally:
            if self.metrics is not None:
                self.metrics.judge_call(run.judge.name, step)
        return reply

    # ----- checks -----
    async def _checks(self, run: Run) -> list[pb.CheckResult]:
        request = run.request
        trajectory = [s.action for s in request.trajectory if s.action]

        async def one(i: int, check: pb.ExecutableCheck) -> pb.CheckResult:
            target = self.settings.peers("envfarm").resolve(
                check.envfarm_peer, field=f"checks[{i}].envfarm_peer"
            )
            if check.replay.actions_from_answer:
                actions = answer_actions(request.answer)
            else:
                actions = list(check.replay.actions) or trajectory
            return await run_check(self.channels, target, i, check, actions, run.timeout())

        results = list(await asyncio.gather(*(one(i, c) for i, c in enumerate(request.checks))))
        self._record(
            run,
            "checks",
            {"checks": [json_format.MessageToDict(c) for c in request.checks]},
            {
                "results": [
                    json_format.MessageToDict(r, always_print_fields_with_no_presence=True)
                    for r in results
                ]
            },
        )
        return results

    @staticmethod
    def _checks_summary(checks: Sequence[pb.CheckResult]) -> str:
        passed = sum(c.passed for c in checks)
        details = "; ".join(
            f"check {c.index}: {'PASS' if c.passed else 'FAIL'} - {c.detail}" for c in checks
        )
        return f"executable checks: {passed}/{len(checks)} passed ({details})"

    # ----- error identification -----
    def _fact_labels(
        self, request: pb.VerifyRequest, allowed: Sequence[str]
    ) -> list[pb.FailureLabel]:
        """Labels the episode facts prove, no judge needed."""
        out: list[pb.FailureLabel] = []
        steps = request.trajectory
        truncated = next((i for i, s in enumerate(steps) if s.truncated), None)
        ended = any(s.terminated for s in steps)
        used_all = request.max_steps > 0 and len(steps) >= request.max_steps and not ended
        if STEP_LIMIT in allowed and (truncated is not None or used_all):
            at = truncated if truncated is not None else len(steps) - 1
            why = (
                "the episode was truncated"
                if truncated is not None
                else (f"all {request.max_steps} allowed steps were used without a terminal step")
            )
            out.append(self.taxonomy.label(STEP_LIMIT, at, why))
        if FORMAT in allowed:
            for i, s in enumerate(steps):
                if s.HasField("action_parsed") and not s.action_parsed:
                    out.append(
                        self.taxonomy.label(FORMAT, i, "the environment could not parse the action")
                    )
                    break
        return out

    async def _identify(self, run: Run, labels: Sequence[str]) -> list[pb.FailureLabel]:
        request = run.request
        found = self._fact_labels(request, labels)
        user = (
            f"{prompts.task_block(request, self.settings.max_prompt_chars)}\n\n"
            f"Failure taxonomy:\n{self.taxonomy.rubric(labels)}\n\n"
            "List the suspicious behaviours of the trajectory (at most 3), each with the one "
            "taxonomy label that fits, the step it shows at (-1 if none) and what went wrong. "
            'Return {"failures": []} if nothing is suspicious.'
        )
        reply = await self._ask(
            run,
            "error_identification",
            user,
            prompts.identification_schema(labels, len(request.trajectory), self.chars),
        )
        seen = {(f.label, f.step_index) for f in found}
        for item in reply.data["failures"]:
            key = (str(item["label"]), int(item["step_index"]))
            if key not in seen:
                seen.add(key)
                found.append(self.taxonomy.label(key[0], key[1], str(item["description"])))
        self._record(
            run,
            "error_identification",
            {"labels": list(labels), "facts": prompts.facts(request.trajectory, request.max_steps)},
            {"failures": [json_format.MessageToDict(f) for f in found], "judge_output": reply.data},
            reply,
        )
        return found

    # ----- decomposition -----
    def _sources(self, run: Run) -> list[str]:
        sources = ["trajectory"]
        if run.mode == pb.VERIFICATION_MODE_FULL:
            if run.request.evidence_collection:
                sources.append("retrieval")
            sources += [f"check:{i}" for i in range(len(run.request.checks))]
        return sources

    async def _decompose(
        self, run: Run, failures: Sequence[pb.FailureLabel]
    ) -> list[pb.SubQuestion]:
        request = run.request
        sources = self._sources(run)
        described = {
            "trajectory": "the agent's own steps (name the step indices)",
            "retrieval": f"a search in the document collection {request.evidence_collection!r}",
        } | {
            f"check:{i}": f"executable check {i} (runs the task's ground truth)"
            for i in range(len(request.checks))
        }
        suspicious = (
            "\n".join(f"- {f.label} at step {f.step_index}: {f.description}" for f in failures)
            or "- none"
        )
        user = (
            f"{prompts.task_block(request, self.settings.max_prompt_chars)}\n\n"
            f"Suspicious behaviours:\n{suspicious}\n\n"
            "Write at most 3 small yes/no questions whose answers decide whether the agent's "
            "answer is correct (a 'yes' must mean the answer holds up). For each, choose where "
            "its evidence comes from:\n" + "\n".join(f"- {s}: {described[s]}" for s in sources)
        )
        reply = await self._ask(
            run,
            "decomposition",
            user,
            prompts.decomposition_schema(sources, len(request.trajectory), self.chars),
        )
        questions = []
        for item in reply.data["sub_questions"]:
            source = str(item["source"])
            steps = sorted({int(i) for i in item["steps"] if int(i) >= 0})
            ref = pb.EvidenceSource()
            if source == "retrieval":
                ref.collection = request.evidence_collection
            elif source.startswith("check:"):
                ref.check = int(source.split(":")[1])
            else:
                ref.trajectory.step_indices.extend(steps)
                source = f"trajectory steps {steps}" if steps else "trajectory"
            if source == "retrieval":
                source = f"retrieval collection {request.evidence_collection}"
            questions.append(
                pb.SubQuestion(question=str(item["question"]), source=source, source_ref=ref)
            )
        collection = request.evidence_collection
        if "retrieval" in sources and not any(q.source_ref.collection for q in questions):
            # A named collection is always consulted: the caller named it to be searched.
            asked = pb.SubQuestion(
                question=f"Does the collection support the answer {clip(request.answer, 200)!r}?",
                source=f"retrieval collection {collection}",
                source_ref=pb.EvidenceSource(collection=collection),
            )
            questions = [*questions[:2], asked]
        self._record(
            run,
            "decomposition",
            {"sources": sources, "failures": len(failures)},
            {
                "sub_questions": [json_format.MessageToDict(q) for q in questions],
                "judge_output": reply.data,
            },
            reply,
        )
        return questions

    # ----- evidence -----
    async def _gather(
        self, run: Run, question: pb.SubQuestion, checks: Sequence[pb.CheckResult]
    ) -> tuple[str, list[dict[str, Any]]]:
        ref = question.source_ref
        kind = ref.WhichOneof("kind")
        if kind == "collection":
            target = self.settings.peers("retrieval").resolve(
                run.request.retrieval_peer, field="retrieval_peer"
            )
            hits = await search(
                self.channels, target, ref.collection, question.question, run.timeout()
            )
            text = "\n".join(f"[{h['id']}] {h['text']}" for h in hits)
            return text, hits
        if kind == "check":
            check = checks[ref.check] if ref.check < len(checks) else None
            if check is None:
                return "", []
            return f"{'PASS' if check.passed else 'FAIL'}: {check.detail}", []
        steps = list(ref.trajectory.step_indices)
        if not steps:  # the end of the trajectory holds the outcome
            steps = list(
                range(max(0, len(run.request.trajectory) - 3), len(run.request.trajectory))
            )
        return prompts.render_trajectory(
            run.request.trajectory, self.settings.max_prompt_chars // 2, steps
        ), []

    async def _evidence(
        self, run: Run, questions: list[pb.SubQuestion], checks: Sequence[pb.CheckResult]
    ) -> None:
        gathered = await asyncio.gather(*(self._gather(run, q, checks) for q in questions))
        for question, (text, _) in zip(questions, gathered, strict=True):
            question.evidence = clip(text, 1_200) if text.strip() not in ("", "(no steps)") else ""
        answerable = [q for q in questions if q.evidence]
        reply = None
        if answerable:
            listing = "\n\n".join(
                f"Question {i + 1}: {q.question}\nEvidence ({q.source}):\n{q.evidence}"
                for i, q in enumerate(answerable)
            )
            user = (
                f"Task:\n{clip(run.request.task, 2_000)}\n\nAgent's answer:\n"
                f"{clip(run.request.answer, 2_000)}\n\n{listing}\n\n"
                "Answer each question yes or no from its evidence alone, in order."
            )
            reply = await self._ask(run, "evidence", user, prompts.answers_schema(len(answerable)))
            for question, answer in zip(answerable, reply.data["answers"], strict=True):
                question.answer = (
                    pb.SUB_QUESTION_ANSWER_YES if answer == "yes" else pb.SUB_QUESTION_ANSWER_NO
                )
        self._record(
            run,
            "evidence",
            {
                "questions": [q.question for q in questions],
                "sources": [q.source for q in questions],
            },
            {
                "evidence": [q.evidence for q in questions],
                "hits": [hits for _, hits in gathered],
                "answers": [pb.SubQuestionAnswer.Name(q.answer) for q in questions],
            },
            reply,
        )

    # ----- judge -----
    async def _judge(self, run: Run, result: pb.Verification, labels: Sequence[str]) -> Reply:
        request = run.request
        rubric = request.rubric.text or (
            "Score 4: correct and fully supported; 3: correct with minor issues; "
            "2: likely wrong or unsupported; 1: wrong.\nFailure taxonomy to check against:\n"
            + self.taxonomy.rubric(labels)
        )
        parts = [prompts.task_block(request, self.settings.max_prompt_chars), f"Rubric:\n{rubric}"]
        if result.failures:
            parts.append(
                "Suspicious behaviours found:\n"
                + "\n".join(
                    f"- {f.label} at step {f.step_index}: {f.description}" for f in result.failures
                )
            )
        if result.sub_questions:
            parts.append(
                "Verification questions:\n"
                + "\n".join(
                    f"- {q.question} -> {ANSWER_WORDS[q.answer]}" for q in result.sub_questions
                )
            )
        if result.checks:
            parts.append(self._checks_summary(result.checks))
        parts.append("Score the agent's answer from 1 to 4 with a short rationale.")
        user = "\n\n".join(parts)
        reply = await self._ask(
            run, "judge", user, prompts.judge_schema(self.chars), distribution=True
        )
        self._record(
            run,
            "judge",
            {"prompt": clip(user, 4_000)},
            {"judge_output": reply.data, "score_probabilities": reply.score_probabilities},
            reply,
        )
        return reply

    # ----- feedback -----
    async def _feedback(self, run: Run, result: pb.Verification) -> pb.Feedback:
        if run.judge is None:
            feedback = self._programmatic_feedback(result)
            self._record(
                run, "feedback", {"checks": len(result.checks)}, json_format.MessageToDict(feedback)
            )
            return feedback
        problems = "\n".join(
            f"- {f.label} at step {f.step_index}: {f.description}" for f in result.failures
        )
        user = (
            f"{prompts.task_block(run.request, self.settings.max_prompt_chars)}\n\n"
            f"The answer was rejected (score {result.score}/4): {clip(result.rationale, 600)}\n"
            + (f"Problems found:\n{problems}\n" if problems else "")
            + "Write a short reflection on what went wrong and at most 3 concrete instructions "
            "for the agent's next attempt."
        )
        reply = await self._ask(run, "feedback", user, prompts.feedback_schema(self.chars))
        feedback = pb.Feedback(
            reflection=str(reply.data["reflection"]),
            instructions=[str(i) for i in reply.data["instructions"]][:3],
        )
        self._record(run, "feedback", {"score": result.score}, {"judge_output": reply.data}, reply)
        return feedback

    @staticmethod
    def _programmatic_feedback(result: pb.Verification) -> pb.Feedback:
        failed = [c for c in result.checks if not c.passed]
        instructions = []
        if any(c.truncated for c in failed) or any(f.label == STEP_LIMIT for f in result.failures):
            instructions.append("Reach the goal in fewer steps: avoid repeated or looping actions.")
        if any(f.label == FORMAT for f in result.failures):
            instructions.append("Write every action exactly in the environment's action format.")
        if any(not c.terminated and not c.truncated for c in failed):
            instructions.append(
                "Finish the episode with the task's final action once the goal is met."
            )
        if len(instructions) < 3:
            instructions.append("Re-check the result against the task before answering.")
        reflection = "; ".join(f"check {c.index} failed: {c.detail}" for c in failed)
        return pb.Feedback(reflection=clip(reflection, 1_200), instructions=instructions[:3])
