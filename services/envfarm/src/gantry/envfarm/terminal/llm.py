"""Model-written tasks: ask a text endpoint for a task, repair it until it builds.

The endpoint is any text generator the operator configured: a RolloutService (Generate,
gRPC) or an OpenAI-compatible chat-completions URL. The model answers with one JSON
object (instruction, truth, setup, initial_test, completion_test, solution); the setup is
run in a sandbox and the initial-state test against it, and any failure (unparseable
answer, setup error, failing test) goes back to the model for a repaired version, up to
the build-iteration limit. A built task then goes through the same validation as
template tasks.
"""

from __future__ import annotations

import json
import re
import urllib.error
import urllib.request
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Protocol

import grpc

from gantry.core.client import aio_channel
from gantry.core.errors import GantryError
from gantry.envfarm.sandbox import SandboxBackend
from gantry.envfarm.terminal.episode import TerminalEpisode
from gantry.envfarm.terminal.task import TerminalTask
from gantry.proto.common.v1 import chat_pb2, sampling_pb2
from gantry.proto.rollout.v1 import rollout_pb2, rollout_pb2_grpc

MAX_ANSWER_CHARS = 200_000
HTTP_TIMEOUT_S = 120.0

SYSTEM = """You write shell tasks for training terminal agents. Answer with ONE JSON object
and nothing else, with these keys:
  "instruction": what the agent must do, in the current directory (the workspace);
  "truth": an object with the privileged facts the tests check (never shown to the agent);
  "setup": a bash script that builds the initial state in the current directory;
  "initial_test": a pytest file (plain test_* functions with assert) that passes right
     after the setup;
  "completion_test": a pytest file that passes only once the task is done;
  "solution": a list of shell commands that do the task.
Use only relative paths, standard Linux tools and Python's standard library; no network."""


class TextEndpoint(Protocol):
    async def complete(self, messages: list[dict[str, str]]) -> str: ...


class RolloutEndpoint:
    """RolloutService.Generate on a configured peer."""

    def __init__(
        self,
        target: str,
        *,
        token: str | None,
        model: str,
        sampling: sampling_pb2.SamplingParams,
    ) -> None:
        self.target, self.token, self.model, self.sampling = target, token, model, sampling

    async def complete(self, messages: list[dict[str, str]]) -> str:
        roles = {"system": chat_pb2.ROLE_SYSTEM, "user": chat_pb2.ROLE_USER}
        conversation = chat_pb2.Conversation(
            messages=[
                chat_pb2.ChatMessage(
                    role=roles.get(m["role"], chat_pb2.ROLE_ASSISTANT),  # type: ignore[arg-type]
                    content=[chat_pb2.ContentPart(text=m["content"])],
                )
                for m in messages
            ]
        )
        request = rollout_pb2.GenerateRequest(
            input=rollout_pb2.GenerationInput(
                prompts=[rollout_pb2.Prompt(messages=conversation)],
                sampling=self.sampling,
                model=self.model,
            )
        )
        async with aio_channel(self.target, token=self.token, default_timeout_s=300) as channel:
            response = await rollout_pb2_grpc.RolloutServiceStub(channel).Generate(request)
        return str(response.results[0].completions[0].text)


class OpenAIEndpoint:
    """POST <base>/chat/completions (an OpenAI-compatible server)."""

    def __init__(
        self,
        base_url: str,
        *,
        api_key: str | None,
        model: str,
        sampling: sampling_pb2.SamplingParams,
        run: Callable[..., Awaitable[Any]],
    ) -> None:
        self.url = base_url.rstrip("/") + "/chat/completions"
        self.api_key, self.model, self.sampling, self.run = api_key, model, sampling, run

    def _post(self, body: dict[str, Any]) -> str:
        headers = {"Content-Type": "application/json"}
        if self.api_key:
            headers["Authorization"] = f"Bearer {self.api_key}"
        request = urllib.request.Request(
            self.url, data=json.dumps(body).encode(), headers=headers, method="POST"
        )
        with urllib.request.urlopen(request, timeout=HTTP_TIMEOUT_S) as response:
            payload = json.loads(response.read(4 << 20))
        return str(payload["choices"][0]["message"]["content"])

    async def complete(self, messages: list[dict[str, str]]) -> str:
        body: dict[str, Any] = {"model": self.model or "default", "messages": messages}
        if self.sampling.HasField("temperature"):
            body["temperature"] = self.sampling.temperature
        if self.sampling.max_tokens:
            body["max_tokens"] = self.sampling.max_tokens
        result: str = await self.run(self._post, body)
        return result


def endpoint_errors() -> tuple[type[BaseException], ...]:
    return (grpc.RpcError, urllib.error.URLError, OSError, KeyError, IndexError, ValueError)


def parse_answer(text: str) -> dict[str, Any]:
    """The JSON object in a model's answer (fenced or bare); ValueError when none."""
    text = text[:MAX_ANSWER_CHARS]
    fenced = re.search(r"```(?:json)?\s*(\{.*\})\s*```", text, re.DOTALL)
    candidate = fenced.group(1) if fenced else text[text.find("{") : text.rfind("}") + 1]
    if not candidate:
        raise ValueError("the answer holds no JSON object")
    data = json.loads(candidate)
    if not isinstance(data, dict):
        raise ValueError("the answer is not a JSON object")
    return data


@dataclass
class Built:
    task: TerminalTask | None
    iterations: int
    last_error: str


def build_prompt(category: str, difficulty: str, index: int) -> str:
    return (
        f"Write task number {index}: category {category}, difficulty {difficulty}. "
        "Make the setup create everything the task needs."
    )


async def propose_and_build(
    endpoint: TextEndpoint,
    *,
    suite: str,
    task_id: str,
    category: str,
    difficulty: str,
    seed: int,
    max_iterations: int,
    backend: Callable[[], SandboxBackend],
    run: Callable[..., Awaitable[Any]],
    python: str = "python3",
) -> Built:
    """Ask, build, repair: a task whose setup builds and initial test passes, or None."""
    messages = [
        {"role": "system", "content": SYSTEM},
        {"role": "user", "content": build_prompt(category, difficulty, seed % 1000)},
    ]
    error = ""
    for iteration in range(1, max_iterations + 1):
        try:
            answer = await endpoint.complete(messages)
        except endpoint_errors() as exc:
            return Built(None, iteration, f"the generator failed: {exc!r}"[:500])
        messages.append({"role": "assistant", "content": answer})
        try:
            data = parse_answer(answer)
            data.update(
                id=task_id, suite=suite, category=category, difficulty=difficulty,
                seed=seed, source="model",
            )  # fmt: skip
            task = TerminalTask.from_json(data)
        except ValueError as exc:
            error = f"Your answer was not a valid task: {exc}"
        else:
            error = await run(_build_error, task, backend, python)
            if not error:
                return Built(task, iteration, "")
        messages.append({"role": "user", "content": error + "\nAnswer with the repaired JSON."})
    return Built(None, max_iterations, error)


def _build_error(task: TerminalTask, backend: Callable[[], SandboxBackend], python: str) -> str:
    """ "" when the setup builds and the initial-state test passes; else what went wrong."""
    episode = TerminalEpisode(task, backend, python=python)
    try:
        try:
            episode.reset(task.seed)
        except GantryError as exc:  # the setup failed: the model repairs it
            return f"The setup failed: {exc}"
        report = episode.run_test(task.initial_test)
        return "" if report.passed else f"The initial-state test failed:\n{report.output}"
    finally:
        episode.close()
