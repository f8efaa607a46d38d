"""VerifyAndRefine: verify, hand the feedback to the agent, re-verify, keep the best round.

The agent is rollout `Generate` (a configured rollout peer, any model it serves) or an
operator-configured OpenAI-compatible endpoint. Answers flip both ways across retries,
so the highest-scoring round wins (ties go to the later round). The first round verifies
the caller's trajectory; later rounds verify the refined answer alone. Executable checks
run in every round: a replay check with `actions_from_answer` replays the actions each
round's answer lists, so ground truth follows the agent's retries.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any, Protocol

import grpc
import httpx

from gantry.core.client import aio_channel
from gantry.core.errors import DeadlineExceeded, FailedPrecondition, InvalidArgument, clip
from gantry.core.limits import check_bytes
from gantry.proto.common.v1 import chat_pb2, sampling_pb2
from gantry.proto.rollout.v1 import rollout_pb2, rollout_pb2_grpc
from gantry.proto.verifier.v1 import verifier_pb2 as pb
from gantry.verifier.judge import _peer_error, post_json
from gantry.verifier.pipeline import Pipeline
from gantry.verifier.validation import (
    check_sampling,
    check_text,
    check_trajectory,
    check_verify,
)

DEFAULT_ROUNDS = 4
DEFAULT_AGENT_TOKENS = 256
AGENT_SYSTEM = (
    "You are an agent retrying a task. A verifier rejected your previous answer and wrote "
    "feedback. Follow its instructions and reply with your new final answer only."
)
ROLES = {"system": chat_pb2.ROLE_SYSTEM, "user": chat_pb2.ROLE_USER}


class Agent(Protocol):
    async def answer(self, messages: list[tuple[str, str]], timeout_s: float) -> str: ...


@dataclass
class RolloutAgent:
    stub: rollout_pb2_grpc.RolloutServiceAsyncStub
    description: str
    model: str
    sampling: sampling_pb2.SamplingParams

    async def answer(self, messages: list[tuple[str, str]], timeout_s: float) -> str:
        conversation = chat_pb2.Conversation(
            messages=[
                chat_pb2.ChatMessage(role=ROLES[r], content=[chat_pb2.ContentPart(text=t)])
                for r, t in messages
            ]
        )
        request = rollout_pb2.GenerateRequest(
            input=rollout_pb2.GenerationInput(
                prompts=[rollout_pb2.Prompt(messages=conversation)],
                sampling=self.sampling,
                model=self.model,
            )
        )
        try:
            reply = await self.stub.Generate(request, timeout=timeout_s)
        except grpc.RpcError as error:
            raise _peer_error(error, self.description) from None
        return reply.results[0].completions[0].text


@dataclass
class OpenAIAgent:
    client: httpx.AsyncClient
    url: str
    model: str
    sampling: sampling_pb2.SamplingParams
    description: str
    api_key: str | None = None

    async def answer(self, messages: list[tuple[str, str]], timeout_s: float) -> str:
        body: dict[str, Any] = {
            "model": self.model,
            "messages": [{"role": r, "content": t} for r, t in messages],
            "max_tokens": self.sampling.max_tokens or DEFAULT_AGENT_TOKENS,
        }
        if self.sampling.HasField("temperature"):
            body["temperature"] = self.sampling.temperature
        if self.sampling.HasField("seed"):
            body["seed"] = self.sampling.seed
        data = await post_json(
            self.client, self.url, body, timeout_s, self.description, api_key=self.api_key
        )
        try:
            return str(data["choices"][0]["message"]["content"] or "")
        except (KeyError, IndexError, TypeError):
            raise FailedPrecondition(
                f"{self.description} answered without choices[0].message.content",
                reason="PEER_BAD_REPLY",
            ) from None


class Refiner:
    """Builds agents from the operator's configuration and runs the refine loop."""

    def __init__(self, pipeline: Pipeline) -> None:
        self.pipeline = pipeline
        self.settings = pipeline.settings
        self._http = httpx.AsyncClient()
        self._channels: dict[str, grpc.aio.Channel] = {}

    async def close(self) -> None:
        await self._http.aclose()
        for channel in self._channels.values():
            await channel.close()

    def check(self, request: pb.VerifyAndRefineRequest) -> None:
        s = self.settings
        check_text(request, s, "")
        check_trajectory(request.trajectory, s, "")
        if not 0 <= request.max_rounds <= s.max_rounds:
            raise InvalidArgument.for_field(
                "max_rounds", f"must be 0-{s.max_rounds} (0 = {DEFAULT_ROUNDS})"
            )
        agent = request.agent
        check_bytes(agent.model, field="agent.model", limit=256)
        check_bytes(agent.system_prompt, field="agent.system_prompt", limit=s.max_rubric_bytes)
        check_bytes(agent.endpoint, field="agent.endpoint", limit=256)
        check_sampling(agent.sampling, "agent.sampling")
        if agent.sampling.top_logprobs or agent.sampling.HasField("structured_output"):
            raise InvalidArgument.for_field(
                "agent.sampling", "structured_output and top_logprobs are not used for answers"
            )
        if agent.endpoint and agent.rollout_target:
            raise InvalidArgument.for_field(
                "agent.endpoint", "set endpoint or rollout_target, not both"
            )
        if agent.endpoint and agent.endpoint not in s.agents:
            raise InvalidArgument.for_field(
                "agent.endpoint",
                f"{clip(agent.endpoint, 64)!r} is not a configured agent endpoint "
                f"(configured: {', '.join(sorted(s.agents)) or 'none'})",
            )
        if not agent.endpoint:
            s.peers("rollout").resolve(agent.rollout_target, field="agent.rollout_target")

    def agent(self, spec: pb.RefineAgent) -> Agent:
        if spec.endpoint:
            endpoint = self.settings.agents[spec.endpoint]
            key = endpoint.api_key_file.read_text().strip() if endpoint.api_key_file else None
            return OpenAIAgent(
                self._http,
                endpoint.url.rstrip("/") + "/chat/completions",
                spec.model or endpoint.model,
                spec.sampling,
                f"agent endpoint {spec.endpoint!r}",
                key,
            )
        target = self.settings.peers("rollout").resolve(
            spec.rollout_target, field="agent.rollout_target"
        )
        if target not in self._channels:
            token = self.settings.peer_token("rollout")
            self._channels[target] = aio_channel(target, token=token, default_timeout_s=None)
        sampling = sampling_pb2.SamplingParams()
        sampling.CopyFrom(spec.sampling)
        sampling.max_tokens = sampling.max_tokens or DEFAULT_AGENT_TOKENS
        return RolloutAgent(
            rollout_pb2_grpc.RolloutServiceStub(self._channels[target]),
            f"rollout agent at {target}",
            spec.model,
            sampling,
        )

    def _verify_request(
        self, request: pb.VerifyAndRefineRequest, answer: str, first: bool
    ) -> pb.VerifyRequest:
        return pb.VerifyRequest(
            task=request.task,
            answer=answer,
            trajectory=request.trajectory if first else [],
            rubric=request.rubric,
            evidence_collection=request.evidence_collection,
            mode=request.mode,
            judge=request.judge,
            max_steps=request.max_steps if first else 0,
            retrieval_peer=request.retrieval_peer,
            checks=request.checks,
        )

    @staticmethod
    def _messages(
        request: pb.VerifyAndRefineRequest, answer: str, verification: pb.Verification
    ) -> list[tuple[str, str]]:
        instructions = "\n".join(f"- {i}" for i in verification.feedback.instructions)
        # Failed executable checks are ground truth: the agent reads them verbatim (in
        # PROGRAMMATIC mode they are the reflection already).
        failed = [c for c in verification.checks if not c.passed]
        checks = "".join(f"- check {c.index} failed: {c.detail}\n" for c in failed)
        if verification.mode == pb.VERIFICATION_MODE_PROGRAMMATIC:
            checks = ""
        user = (
            f"Task:\n{request.task}\n\nYour previous answer:\n{answer}\n\n"
            f"Verifier score: {verification.score}/4. {verification.rationale}\n"
            + (f"Executable checks:\n{checks}" if checks else "")
            + f"Reflection: {verification.feedback.reflection}\n"
            f"Instructions:\n{instructions or '- answer the task again, carefully'}\n\n"
            "Your new final answer:"
        )
        return [("system", request.agent.system_prompt or AGENT_SYSTEM), ("user", user)]

    async def run(
        self, request: pb.VerifyAndRefineRequest, timeout_s: float | None
    ) -> AsyncIterator[pb.VerifyAndRefineResponse]:
        """Yields one message per round; the last one has done, best_round, final_answer.

        `timeout_s` bounds the whole stream: each round gets what is left of it.
        """
        deadline = None if timeout_s is None else time.monotonic() + timeout_s

        def left() -> float | None:
            if deadline is None:
                return None
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise DeadlineExceeded("VerifyAndRefine ran out of its deadline")
            return remaining

        self.check(request)
        # Validate the shared parts once, as the first round's Verify would, before the
        # agent is built (an unknown judge must not cost an agent call).
        self.pipeline_check(request)
        agent = self.agent(request.agent)
        rounds = request.max_rounds or DEFAULT_ROUNDS
        answer, best_round, best_score, best_answer = request.answer, 0, -1, request.answer
        for number in range(1, rounds + 1):
            verification = await self.pipeline.verify(
                self._verify_request(request, answer, number == 1), timeout_s=left()
            )
            if verification.score >= best_score:  # ties go to the later round
                best_round, best_score, best_answer = number, verification.score, answer
            last = verification.verdict == pb.VERDICT_ACCEPT or number == rounds
            message = pb.VerifyAndRefineResponse(
                round=pb.RefinementRound(round=number, answer=answer, verification=verification)
            )
            if last:
                message.done = True
                message.best_round = best_round
                message.final_answer = best_answer
                yield message
                return
            refined = await agent.answer(
                self._messages(request, answer, verification),
                min(left() or self.settings.peer_timeout_s, self.settings.peer_timeout_s),
            )
            message.round.refined_answer = refined
            yield message
            answer = refined if refined.strip() else answer  # an empty retry keeps the last

    def pipeline_check(self, request: pb.VerifyAndRefineRequest) -> None:
        """The first round's Verify rules (sizes first), then what later rounds need."""
        check_verify(
            self._verify_request(request, request.answer, True),
            self.settings,
            self.pipeline.taxonomy,
        )
        for i, spec in enumerate(request.checks):
            replay = spec.replay
            if spec.HasField("replay") and not (replay.actions or replay.actions_from_answer):
                raise InvalidArgument.for_field(
                    f"checks[{i}].replay.actions_from_answer",
                    "must be set (or actions listed): rounds after the first verify the "
                    "refined answer, which has no trajectory to replay",
                )
