"""The RolloutService RPCs.

Every RPC checks its request's sizes and counts first (`limits.py`), then asks the
generator whether its queue can take the request (RESOURCE_EXHAUSTED with RetryInfo if
not), and only then renders and tokenizes prompts, on the service's executor (never on
the event loop, never on the engine's thread). Requests carry the caller's client key
(`x-client-id`, else its host) so the engine can share the batch fairly.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

import torch
from google.protobuf import duration_pb2, timestamp_pb2

from gantry.core.codecs import assemble_chunks, tensor_to_torch
from gantry.core.errors import DeadlineExceeded, FailedPrecondition, InvalidArgument
from gantry.core.limits import check_count, check_id, client_key
from gantry.core.precision import precision_message
from gantry.proto.common.v1 import chat_pb2, tensor_pb2
from gantry.proto.rollout.v1 import rollout_pb2, rollout_pb2_grpc
from gantry.rollout import prompts
from gantry.rollout.calls import cancel_all, drained, gather_all
from gantry.rollout.checkpoints import load_checkpoint
from gantry.rollout.engine.types import PromptTooLong, Sample, SamplingParams
from gantry.rollout.limits import RequestLimits

if TYPE_CHECKING:
    from gantry.rollout.service import RolloutService

DTYPES = {
    torch.float32: tensor_pb2.DTYPE_FLOAT32,
    torch.bfloat16: tensor_pb2.DTYPE_BFLOAT16,
    torch.float16: tensor_pb2.DTYPE_FLOAT16,
}
CHUNK_OVERHEAD_BYTES = 256  # each chunk counts at least this much against the budget


def usage(prompt_tokens: int, completion_tokens: int) -> chat_pb2.Usage:
    return chat_pb2.Usage(
        prompt_tokens=prompt_tokens,
        completion_tokens=completion_tokens,
        total_tokens=prompt_tokens + completion_tokens,
    )


class RolloutServicer(rollout_pb2_grpc.RolloutServiceServicer):
    def __init__(self, service: RolloutService) -> None:
        self.service = service

    @property
    def generator(self) -> Any:
        return self.service.generator

    @property
    def limits(self) -> RequestLimits:
        return self.service.limits

    async def _inputs(
        self, request: rollout_pb2.GenerationInput, field: str, client: str
    ) -> tuple[list[list[int]], SamplingParams]:
        """Checked, admitted and tokenized prompts, and the engine's sampling parameters."""
        sequences = self.limits.generation_input(request, field)
        params = prompts.sampling(request.sampling, f"{field}.sampling")
        kwargs = prompts.template_kwargs(
            self.generator.tokenizer, request.chat_template_kwargs, f"{field}.chat_template_kwargs"
        )
        self.generator.check_capacity(client, sequences)  # before any tokenization
        encoded = []
        for i, prompt in enumerate(request.prompts):
            # One executor job per prompt: a request with many prompts never holds a
            # worker for long, so other callers' tokenization interleaves with it.
            ids = await self.service.run_blocking(
                self._encode, prompt, f"{field}.prompts[{i}]", kwargs
            )
            encoded.append(ids)
        return encoded, params

    def _encode(self, prompt: rollout_pb2.Prompt, field: str, kwargs: dict[str, Any]) -> list[int]:
        """Tokenize one prompt (blocking), refusing it when it cannot fit the context."""
        ids = prompts.encode(self.generator.tokenizer, prompt, field, kwargs)
        limit = self.generator.context_length
        if len(ids) >= limit:
            raise InvalidArgument.for_field(
                field, f"the prompt has {len(ids)} tokens; the context window is {limit}"
            )
        return ids

    async def _run(self, ids: list[int], params: SamplingParams, client: str) -> list[Sample]:
        samples = [Sample(i) for i in range(params.n)]
        try:
            async for delta in self.generator.generate(ids, params, client=client):
                samples[delta.index].add(delta)
        except PromptTooLong as exc:
            raise InvalidArgument.for_field("input.prompts", str(exc)) from exc
        return samples

    async def Generate(
        self, request: rollout_pb2.GenerateRequest, context: Any
    ) -> rollout_pb2.GenerateResponse:
        client = client_key(context)
        encoded, params = await self._inputs(request.input, "input", client)
        try:
            async with asyncio.timeout(context.time_remaining()):
                results = await gather_all(self._run(ids, params, client) for ids in encoded)
        except TimeoutError as exc:  # generation is aborted by the cancelled tasks
            raise DeadlineExceeded("the deadline expired before generation finished") from exc
        response = rollout_pb2.GenerateResponse(policy_version=self.generator.policy_version)
        total_prompt = total_completion = 0
        for i, (ids, samples) in enumerate(zip(encoded, results, strict=True)):
            completion_tokens = sum(len(s.token_ids) for s in samples)
            total_prompt, total_completion = (
                total_prompt + len(ids),
                total_completion + completion_tokens,
            )
            response.results.append(
                rollout_pb2.PromptResult(
                    prompt_index=i,
                    prompt_token_ids=ids,
                    completions=[self._completion(s) for s in samples],
                    usage=usage(len(ids), completion_tokens),
                )
            )
            response.policy_version = max(
                response.policy_version, *(s.policy_version for s in samples)
            )
        response.usage.CopyFrom(usage(total_prompt, total_completion))
        return response

    @staticmethod
    def _completion(sample: Sample) -> rollout_pb2.Completion:
        assert sample.finish_reason is not None
        return rollout_pb2.Completion(
            index=sample.index,
            text=sample.text,
            tokens=chat_pb2.TokenSequence(token_ids=sample.token_ids, logprobs=sample.logprobs),
            finish_reason=prompts.FINISH[sample.finish_reason],
        )

    async def GenerateStream(
        self, request: rollout_pb2.GenerateStreamRequest, context: Any
    ) -> AsyncIterator[rollout_pb2.GenerateStreamResponse]:
        client = client_key(context)
        encoded, params = await self._inputs(request.input, "input", client)
        queue: asyncio.Queue[rollout_pb2.GenerateStreamResponse | None] = asyncio.Queue()

        async def pump(index: int, ids: list[int]) -> None:
            produced = 0
            async for delta in self.generator.generate(ids, params, client=client):
                produced += len(delta.token_ids)
                message = rollout_pb2.GenerateStreamResponse(
                    prompt_index=index,
                    sample_index=delta.index,
                    text_delta=delta.text,
                    tokens=chat_pb2.TokenSequence(
                        token_ids=delta.token_ids, logprobs=delta.logprobs
                    ),
                    policy_version=delta.policy_version,
                )
                if delta.finish_reason is not None:
                    message.finish_reason = prompts.FINISH[delta.finish_reason]
                    message.usage.CopyFrom(usage(len(ids), produced))
                await queue.put(message)

        async def run_all() -> None:
            try:
                await gather_all(pump(i, ids) for i, ids in enumerate(encoded))
            finally:
                await queue.put(None)

        # When the caller cancels, this generator is closed: cancelling the producers
        # closes each engine stream, which aborts its request and frees its slots. On
        # SIGTERM the stream stops generating, delivers what was produced, and ends with
        # UNAVAILABLE + RetryInfo instead of being cut at the grace period.
        producer = asyncio.ensure_future(run_all())
        draining = asyncio.ensure_future(self.service.draining.wait())
        try:
            while not draining.done():
                getter = asyncio.ensure_future(queue.get())
                await asyncio.wait({getter, draining}, return_when=asyncio.FIRST_COMPLETED)
                if not getter.done():
                    getter.cancel()
                    break
                if (message := getter.result()) is None:
                    await producer  # surface producer errors
                    return
                yield message
            # Draining: stop generating, deliver what was produced, then UNAVAILABLE.
            finished = producer.done() and not producer.cancelled()
            if finished:
                producer.result()  # a failure is reported as itself
            await cancel_all([producer])
            while not queue.empty():
                if (message := queue.get_nowait()) is not None:
                    yield message
            if not finished:
                raise drained(
                    self.service.settings.drain_retry_after_s,
                    "generation stopped; the tokens produced so far were delivered.",
                )
        finally:
            await cancel_all([producer, draining])

    async def UpdateWeights(
        self, request_iterator: AsyncIterator[rollout_pb2.UpdateWeightsRequest], context: Any
    ) -> rollout_pb2.UpdateWeightsResponse:
        start = time.perf_counter()
        header: rollout_pb2.WeightsHeader | None = None
        chunks: list[tensor_pb2.TensorChunk] = []
        received = accounted = 0
        budget = self.service.max_weights_bytes
        async for message in request_iterator:
            if message.HasField("header"):
                if header is not None:
                    raise InvalidArgument.for_field("header", "send the header once, first")
                header = message.header
                self._check_header(header, budget)
            elif message.HasField("chunk"):
                if header is None:
                    raise InvalidArgument.for_field("header", "must come before any chunk")
                if header.checkpoint_uri:
                    raise InvalidArgument.for_field(
                        "header.checkpoint_uri", "send a checkpoint or chunks, not both"
                    )
                check_id(message.chunk.name, field="chunk.name")
                received += len(message.chunk.data)
                accounted += len(message.chunk.data) + CHUNK_OVERHEAD_BYTES
                if accounted > budget:
                    raise InvalidArgument.for_field(
                        "chunk", f"the update exceeds {budget} bytes, more than the served "
                        "model's parameters can hold",
                    )  # fmt: skip
                chunks.append(message.chunk)
            else:
                raise InvalidArgument.for_field("payload", "set header or chunk")
        if header is None:
            raise InvalidArgument.for_field("header", "is required")
        if header.checkpoint_uri:
            tensors = await self.service.run_blocking(
                lambda: load_checkpoint(
                    self.service.checkpoints, header.checkpoint_uri, max_bytes=budget
                )
            )
        else:
            tensors = await self.service.run_blocking(self._assemble, chunks)
        if header.tensor_count and header.tensor_count != len(tensors):
            raise InvalidArgument.for_field(
                "header.tensor_count", f"announced {header.tensor_count}, received {len(tensors)}"
            )
        field = "header.checkpoint_uri" if header.checkpoint_uri else "chunk"
        try:
            version = await self.generator.update_weights(
                tensors, self.service.settings.weight_update_mode
            )
        except (KeyError, ValueError) as exc:
            raise InvalidArgument.for_field(field, str(exc).strip("'\"")) from exc
        except RuntimeError as exc:
            raise FailedPrecondition(str(exc)) from exc
        self.service.weights_updated(header.run_id)
        elapsed = duration_pb2.Duration()
        elapsed.FromNanoseconds(int((time.perf_counter() - start) * 1e9))
        return rollout_pb2.UpdateWeightsResponse(
            policy_version=version,
            tensors_loaded=len(tensors),
            bytes_received=received,
            load_time=elapsed,
        )

    @staticmethod
    def _check_header(header: rollout_pb2.WeightsHeader, budget: int) -> None:
        check_id(header.run_id, field="header.run_id")
        for name in ("version", "tensor_count", "total_bytes"):
            if getattr(header, name) < 0:
                raise InvalidArgument.for_field(f"header.{name}", "must be >= 0")
        check_count(header.total_bytes, field="header.total_bytes", limit=budget)
        check_count(header.tensor_count, field="header.tensor_count", limit=budget // 4 + 1)

    @staticmethod
    def _assemble(chunks: list[tensor_pb2.TensorChunk]) -> dict[str, torch.Tensor]:
        named = list(assemble_chunks(chunks, field="chunk"))
        if not named:
            raise InvalidArgument.for_field("chunk", "no tensors were sent")
        return {t.name: tensor_to_torch(t.tensor, field=f"chunk[{t.name}]") for t in named}

    async def GetModelInfo(
        self, request: rollout_pb2.GetModelInfoRequest, context: Any
    ) -> rollout_pb2.GetModelInfoResponse:
        check_id(request.model, field="model")
        generator = self.generator
        response = rollout_pb2.GetModelInfoResponse(
            model_name=self.service.model_name,
            model_path=generator.model_path,
            context_length=generator.context_length,
            precision=precision_message(self.service.settings.precision_recipe),
            policy_version=generator.policy_version,
            backend=generator.backend,
            dtype=DTYPES.get(generator.dtype, tensor_pb2.DTYPE_UNSPECIFIED),
            multimodal=False,
            run_id=self.service.run_id,
        )
        if self.service.weights_time is not None:
            stamp = timestamp_pb2.Timestamp()
            stamp.FromNanoseconds(int(self.service.weights_time * 1e9))
            response.weights_update_time.CopyFrom(stamp)
        return response

    async def RunEpisodes(
        self, request: rollout_pb2.RunEpisodesRequest, context: Any
    ) -> rollout_pb2.RunEpisodesResponse:
        return await self.service.episodes.run(request.spec, client=client_key(context))

    async def StreamEpisodes(
        self, request: rollout_pb2.StreamEpisodesRequest, context: Any
    ) -> AsyncIterator[rollout_pb2.StreamEpisodesResponse]:
        async for message in self.service.episodes.stream(
            request.spec,
            max_staleness=request.max_staleness,
            continuous=request.continuous,
            client=client_key(context),
        ):
            yield message

    async def HeavyThink(
        self, request: rollout_pb2.HeavyThinkRequest, context: Any
    ) -> rollout_pb2.HeavyThinkResponse:
        from gantry.rollout.thinking import heavy_think

        return await heavy_think(self.service, request, client=client_key(context))

    async def Playtest(
        self, request: rollout_pb2.PlaytestRequest, context: Any
    ) -> rollout_pb2.PlaytestResponse:
        from gantry.rollout.playtest import playtest

        return await playtest(self.service, request, client=client_key(context))
