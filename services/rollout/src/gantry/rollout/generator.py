"""The `Generator` interface every backend implements, and the transformers one.

A generator streams `Delta`s for one prompt (n samples), frees the request's batch slots
as soon as the caller stops listening, swaps weights between decode steps and reports
the policy version. The service and the episode runner only ever see this interface.

Backends count the prompt tokens they admit and the tokens they deliver in
`GenerationMetrics`, labelled by the front that asked (`FRONT`).
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncGenerator, Mapping
from contextvars import ContextVar
from typing import Protocol

import torch
from transformers import PreTrainedTokenizerBase

from gantry.core.errors import ResourceExhausted
from gantry.core.metrics import CollectorRegistry, Counter, Gauge
from gantry.models.loading import CausalLM
from gantry.rollout.engine.engine import Engine, UpdateMode
from gantry.rollout.engine.grammar import Grammars
from gantry.rollout.engine.types import Delta, Overloaded, Sample, SamplingParams

FRONTS = ("grpc", "openai", "oip")
# The front serving the current request: gRPC unless the OpenAI HTTP front or the Open
# Inference Protocol adapter says otherwise. Tasks started for the request inherit it.
FRONT: ContextVar[str] = ContextVar("gantry_rollout_front", default="grpc")


class GenerationMetrics:
    """Tokens in and out by front, and the engine's queue, on the service's registry."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.registry = registry
        self.prompt_tokens = Counter(
            "gantry_rollout_prompt_tokens",
            "Prompt tokens admitted for generation (once per prompt, whatever n), by front",
            ["front"],
            registry=registry,
        )
        self.generated_tokens = Counter(
            "gantry_rollout_generated_tokens",
            "Tokens generated and delivered, over every sample, by front",
            ["front"],
            registry=registry,
        )
        for front in FRONTS:  # every series exists from the start: rate() sees its zero
            self.prompt_tokens.labels(front)
            self.generated_tokens.labels(front)

    def prompt(self, tokens: int) -> None:
        self.prompt_tokens.labels(FRONT.get()).inc(tokens)

    def generated(self, tokens: int) -> None:
        if tokens:
            self.generated_tokens.labels(FRONT.get()).inc(tokens)

    def watch(self, engine: Engine) -> None:
        """Export the engine's scheduler, read at each scrape (vLLM's is not visible)."""
        queued = Gauge(
            "gantry_rollout_queued_sequences",
            "Sequences admitted but not in the decode batch (waiting, prefilling, parked)",
            registry=self.registry,
        )
        running = Gauge(
            "gantry_rollout_running_sequences",
            "Sequences in the engine's decode batch",
            registry=self.registry,
        )
        queued.set_function(lambda: engine.queued)
        running.set_function(lambda: engine.running)
        reused = Gauge(
            "gantry_rollout_prefix_cache_reused_tokens",
            "Prompt tokens not prefilled because the prefix cache held them (since start)",
            registry=self.registry,
        )
        held = Gauge(
            "gantry_rollout_prefix_cache_bytes",
            "Bytes of keys and values the prefix cache holds",
            registry=self.registry,
        )
        reused.set_function(lambda: engine.prefix_cache.reused_tokens)
        held.set_function(lambda: engine.prefix_cache.nbytes)


class Generator(Protocol):
    backend: str
    model_path: str
    context_length: int
    tokenizer: PreTrainedTokenizerBase
    dtype: torch.dtype
    # Largest weight update worth receiving (the default of `max_weights_bytes`).
    max_weights_bytes: int

    @property
    def grammars(self) -> Grammars:
        """Structured-output formats compiled for this tokenizer (checked before generation)."""
        ...

    @property
    def policy_version(self) -> int: ...

    def generate(
        self,
        prompt_ids: list[int],
        params: SamplingParams,
        request_id: str | None = None,
        client: str = "",
    ) -> AsyncGenerator[Delta, None]: ...

    def check_capacity(self, client: str, sequences: int) -> None:
        """Raise ResourceExhausted (with a retry delay) when the queue cannot take more."""
        ...

    async def update_weights(
        self, tensors: Mapping[str, torch.Tensor], mode: UpdateMode, version: int = 0
    ) -> int:
        """Swap the weights in; the new version is max(current + 1, `version`)."""
        ...

    async def close(self) -> None: ...


async def complete(
    generator: Generator, prompt_ids: list[int], params: SamplingParams, client: str = ""
) -> list[Sample]:
    """Run one prompt to completion; samples in index order."""
    samples = [Sample(i) for i in range(params.n)]
    async for delta in generator.generate(prompt_ids, params, client=client):
        samples[delta.index].add(delta)
    return samples


def overloaded(exc: Overloaded) -> ResourceExhausted:
    return ResourceExhausted(str(exc), retry_after_s=exc.retry_after_s, reason="OVERLOADED")


class TransformersGenerator:
    """The CPU/reference backend: `Engine` on its own thread, bridged to asyncio."""

    backend = "transformers"

    def __init__(
        self,
        bundle: CausalLM,
        *,
        max_batch_size: int,
        max_prefill_tokens: int = 2048,
        max_queued: int = 2048,
        max_queued_per_client: int = 1024,
        retry_after_s: float = 2.0,
        metrics: GenerationMetrics | None = None,
        prefix_cache_bytes: int = 0,
    ) -> None:
        self.model_path = str(bundle.path)
        self.context_length = bundle.context_length
        self.tokenizer = bundle.tokenizer
        self.dtype = bundle.dtype
        eos = bundle.model.generation_config.eos_token_id
        eos_ids = tuple(eos) if isinstance(eos, list) else ((eos,) if eos is not None else ())
        if self.tokenizer.eos_token_id is not None:
            eos_ids = (*eos_ids, int(self.tokenizer.eos_token_id))
        self.engine = Engine(
            bundle.model,
            bundle.tokenizer,
            context_length=bundle.context_length,
            max_batch_size=max_batch_size,
            eos_token_ids=eos_ids,
            max_prefill_tokens=max_prefill_tokens,
            max_queued=max_queued,
            max_queued_per_client=max_queued_per_client,
            retry_after_s=retry_after_s,
            prefix_cache_bytes=prefix_cache_bytes,
        )
        self.grammars = self.engine.grammars
        # Largest weight update worth receiving: every parameter as float32, plus FP8
        # scales and framing.
        self.max_weights_bytes = (
            sum(p.numel() for p in bundle.model.state_dict().values()) * 4 * 5 // 4 + 2**20
        )
        self.metrics = metrics
        if metrics is not None:
            metrics.watch(self.engine)
        self.engine.start()

    @property
    def policy_version(self) -> int:
        return self.engine.policy_version

    def check_capacity(self, client: str, sequences: int) -> None:
        try:
            self.engine.check_capacity(client, sequences)
        except Overloaded as exc:
            raise overloaded(exc) from None

    async def generate(
        self,
        prompt_ids: list[int],
        params: SamplingParams,
        request_id: str | None = None,
        client: str = "",
    ) -> AsyncGenerator[Delta, None]:
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[Delta] = asyncio.Queue()
        request_id = request_id or uuid.uuid4().hex

        def sink(delta: Delta) -> None:  # called on the engine thread
            with contextlib.suppress(RuntimeError):  # the loop is gone: nobody listens
                loop.call_soon_threadsafe(queue.put_nowait, delta)

        try:
            self.engine.submit(request_id, prompt_ids, params, sink, client)
        except Overloaded as exc:
            raise overloaded(exc) from None
        if self.metrics is not None:
            self.metrics.prompt(len(prompt_ids))
        remaining = params.n
        try:
            while remaining:
                delta = await queue.get()
                if delta.finish_reason is not None:
                    remaining -= 1
                if self.metrics is not None:
                    self.metrics.generated(len(delta.token_ids))
                yield delta
        finally:
            if remaining:  # cancelled or abandoned: free the batch slots now
                self.engine.abort(request_id)

    async def update_weights(
        self, tensors: Mapping[str, torch.Tensor], mode: UpdateMode, version: int = 0
    ) -> int:
        # Validation reads every tensor (shapes, NaN/inf): keep it off the event loop.
        done = await asyncio.to_thread(self.engine.load, tensors, mode, version)
        return await asyncio.wrap_future(done)

    async def close(self) -> None:
        await asyncio.get_running_loop().run_in_executor(None, self.engine.stop)
