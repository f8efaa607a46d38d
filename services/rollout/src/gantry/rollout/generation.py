"""The one generation path behind every front (gRPC Generate/GenerateStream, OpenAI HTTP).

A request goes through the same steps whichever protocol carried it: sizes and counts
first (`limits.py`), then admission (the generator's queue bound, per client:
RESOURCE_EXHAUSTED with a retry delay), then prompt rendering and tokenization on the
service's executor (never on the event loop, never on the engine's thread), then
generation. Fronts translate their wire format to a `GenerationInput` and the results
(`Sample`s or `StreamEvent`s) back; they never reach into the generator themselves.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

from gantry.core.errors import DeadlineExceeded, InvalidArgument
from gantry.core.server import Runtime
from gantry.proto.rollout.v1 import rollout_pb2
from gantry.rollout import prompts
from gantry.rollout.calls import cancel_all, drained, gather_all
from gantry.rollout.engine.types import Delta, PromptTooLong, Sample, SamplingParams
from gantry.rollout.model import ServedModel


@dataclass(frozen=True)
class Batch:
    """A checked, admitted and tokenized request: one token list per prompt."""

    prompts: list[list[int]]
    params: SamplingParams
    field: str  # how the front names the request's input, for errors found later


@dataclass(frozen=True)
class StreamEvent:
    """One delta of one prompt's samples; `produced` counts that prompt's tokens so far."""

    prompt_index: int
    delta: Delta
    produced: int


class Generation:
    def __init__(self, model: ServedModel, runtime: Runtime, drain_retry_after_s: float) -> None:
        self.model = model
        self.runtime = runtime
        self.drain_retry_after_s = drain_retry_after_s

    async def prepare(self, request: rollout_pb2.GenerationInput, field: str, client: str) -> Batch:
        """Check, admit and tokenize a request; errors name fields under `field`."""
        generator = self.model.generator
        sequences = self.model.limits.generation_input(request, field)
        params = prompts.sampling(request.sampling, f"{field}.sampling")
        kwargs = prompts.template_kwargs(
            generator.tokenizer, request.chat_template_kwargs, f"{field}.chat_template_kwargs"
        )
        generator.check_capacity(client, sequences)  # before any tokenization
        if params.structured_output is not None:  # compiled off the loop, then cached
            await self.runtime.run_blocking(
                prompts.compile_format, generator.grammars, params, f"{field}.sampling"
            )
        encoded = []
        for i, prompt in enumerate(request.prompts):
            # One executor job per prompt: a request with many prompts never holds a
            # worker for long, so other callers' tokenization interleaves with it.
            ids = await self.runtime.run_blocking(
                self._encode, prompt, f"{field}.prompts[{i}]", kwargs
            )
            encoded.append(ids)
        return Batch(encoded, params, field)

    def _encode(self, prompt: rollout_pb2.Prompt, field: str, kwargs: dict[str, Any]) -> list[int]:
        """Tokenize one prompt (blocking), refusing it when it cannot fit the context."""
        generator = self.model.generator
        ids = prompts.encode(generator.tokenizer, prompt, field, kwargs)
        limit = generator.context_length
        if len(ids) >= limit:
            raise InvalidArgument.for_field(
                field, f"the prompt has {len(ids)} tokens; the context window is {limit}"
            )
        return ids

    async def _run(self, ids: list[int], batch: Batch, client: str) -> list[Sample]:
        samples = [Sample(i) for i in range(batch.params.n)]
        try:
            async for delta in self.model.generator.generate(ids, batch.params, client=client):
                samples[delta.index].add(delta)
        except PromptTooLong as exc:
            raise InvalidArgument.for_field(f"{batch.field}.prompts", str(exc)) from exc
        return samples

    async def complete(
        self, batch: Batch, client: str, timeout_s: float | None = None
    ) -> list[list[Sample]]:
        """Every prompt's samples, in order; all or nothing (a failure cancels the rest)."""
        try:
            async with asyncio.timeout(timeout_s):
                return await gather_all(self._run(ids, batch, client) for ids in batch.prompts)
        except TimeoutError as exc:  # generation is aborted by the cancelled tasks
            raise DeadlineExceeded("the deadline expired before generation finished") from exc

    async def stream(self, batch: Batch, client: str) -> AsyncIterator[StreamEvent]:
        """Deltas of all prompts as they come.

        When the caller stops listening, closing this iterator cancels the producers,
        which aborts each engine request and frees its slots. On drain (SIGTERM) it stops
        generating, delivers what was produced and raises UNAVAILABLE + RetryInfo instead
        of being cut at the grace period.
        """
        queue: asyncio.Queue[StreamEvent | None] = asyncio.Queue()

        async def pump(index: int, ids: list[int]) -> None:
            produced = 0
            async for delta in self.model.generator.generate(ids, batch.params, client=client):
                produced += len(delta.token_ids)
                await queue.put(StreamEvent(index, delta, produced))

        async def run_all() -> None:
            try:
                await gather_all(pump(i, ids) for i, ids in enumerate(batch.prompts))
            finally:
                await queue.put(None)

        producer = asyncio.ensure_future(run_all())
        draining = asyncio.ensure_future(self.runtime.draining.wait())
        try:
            while not draining.done():
                getter = asyncio.ensure_future(queue.get())
                await asyncio.wait({getter, draining}, return_when=asyncio.FIRST_COMPLETED)
                if not getter.done():
                    getter.cancel()
                    break
                if (event := getter.result()) is None:
                    await producer  # surface producer errors
                    return
                yield event
            # Draining: stop generating, deliver what was produced, then UNAVAILABLE.
            finished = producer.done() and not producer.cancelled()
            if finished:
                producer.result()  # a failure is reported as itself
            await cancel_all([producer])
            while not queue.empty():
                if (event := queue.get_nowait()) is not None:
                    yield event
            if not finished:
                raise drained(
                    self.drain_retry_after_s,
                    "generation stopped; the tokens produced so far were delivered.",
                )
        finally:
            await cancel_all([producer, draining])
