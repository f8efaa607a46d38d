"""Fitting a conversation into the context window.

The history window keeps the last k earlier turns (VisGym: truncated history helps).
When the prompt plus the completion budget still does not fit, TRUNCATE drops the oldest
turns; SUMMARIZE_AND_RESET (LongCat's context management) asks the model to summarise
the interaction so far and restarts the conversation from that summary.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from gantry.core.errors import InvalidArgument
from gantry.proto.rollout.v1 import rollout_pb2
from gantry.rollout.engine.types import Sample, SamplingParams
from gantry.rollout.generator import Generator
from gantry.rollout.prompts import apply_chat

Message = dict[str, str]
Run = Callable[..., Awaitable[Any]]


async def _inline(fn: Callable[..., Any], *args: Any) -> Any:
    return fn(*args)


SUMMARY_INSTRUCTION = (
    "Summarise the interaction so far in a few sentences: the goal, what was tried, what "
    "the environment answered, and the current state. Be concrete."
)
SUMMARY_MAX_TOKENS = 256


def _window(history: list[Message], window: int) -> list[Message]:
    """The current message plus at most `window` earlier (user, assistant) turns."""
    if window <= 0:
        return history
    return history[-(2 * window + 1) :]


async def fit_history(
    generator: Generator,
    task: str,
    history: list[Message],
    window: int,
    strategy: int,
    budget: int,
    *,
    run: Run = _inline,
    client: str = "",
) -> list[int]:
    """Token ids of [system task] + history that leave `budget` tokens for the reply.

    With SUMMARIZE_AND_RESET, `history` is replaced in place by the summary. `run`
    executes the (blocking) template rendering, e.g. on the service's executor.
    """

    async def render(messages: list[Message]) -> list[int]:
        ids: list[int] = await run(apply_chat, generator.tokenizer, messages)
        return ids

    limit = generator.context_length - budget
    system = [{"role": "system", "content": task}] if task else []
    shown = _window(history, window)
    ids = await render(system + shown)
    if len(ids) <= limit:
        return ids
    if strategy == rollout_pb2.CONTEXT_STRATEGY_SUMMARIZE_AND_RESET and len(history) > 1:
        summary = await summarise(generator, system + history[:-1], budget, run=run, client=client)
        history[:] = [
            {
                "role": "user",
                "content": f"Summary of the earlier interaction: {summary}\n\n"
                + history[-1]["content"],
            }
        ]
        shown = history
        ids = await render(system + shown)
    while len(ids) > limit and len(shown) > 1:
        shown = shown[2:]  # drop the oldest (user, assistant) turn
        ids = await render(system + shown)
    if len(ids) > limit:
        raise InvalidArgument.for_field(
            "spec.sampling.max_tokens",
            f"the current observation alone needs {len(ids)} tokens; with max_tokens "
            f"{budget} it exceeds the context window of {generator.context_length}",
        )
    return ids


async def summarise(
    generator: Generator,
    messages: list[Message],
    budget: int,
    *,
    run: Run = _inline,
    client: str = "",
) -> str:
    """One greedy pass asking the model to summarise `messages`."""
    request = [*messages, {"role": "user", "content": SUMMARY_INSTRUCTION}]
    ids: list[int] = await run(apply_chat, generator.tokenizer, request)
    # Keep the most recent part if even the summary request is too long.
    ids = ids[-(generator.context_length - budget - 1) :]
    sample = Sample(0)
    params = SamplingParams(max_tokens=min(budget, SUMMARY_MAX_TOKENS), temperature=0.0)
    async for delta in generator.generate(ids, params, client=client):
        sample.add(delta)
    return sample.text.strip()
