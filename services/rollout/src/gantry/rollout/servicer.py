"""The RolloutService RPCs."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

import torch
from google.protobuf import duration_pb2, timestamp_pb2

from gantry.core.codecs import assemble_chunks, tensor_to_torch
from gantry.core.errors import DeadlineExceeded, FailedPrecondition, InvalidArgument
from gantry.core.precision import precision_message
from gantry.proto.common.v1 import chat_pb2, tensor_pb2
from gantry.proto.rollout.v1 import rollout_pb2, rollout_pb2_grpc
from gantry.rollout import prompts
from gantry.rollout.engine.engine import load_tensors
from gantry.rollout.engine.types import PromptTooLong, Sample, SamplingParams

if TYPE_CHECKING:
    from gantry.rollout.service import RolloutService

MAX_PROMPTS = 1024
DTYPES = {
    torch.float32: tensor_pb2.DTYPE_FLOAT32,
    torch.bfloat16: tensor_pb2.DTYPE_BFLOAT16,
    torch.float16: tensor_pb2.DTYPE_FLOAT16,
}


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

    def _inputs(
        self, request: rollout_pb2.GenerationInput, field: str
    ) -> tuple[list[list[int]], SamplingParams]:
        if not request.prompts:
            raise InvalidArgument.for_field(f"{field}.prompts", "must hold at least one prompt")
        if len(request.prompts) > MAX_PROMPTS:
            raise InvalidArgument.for_field(f"{field}.prompts", f"at most {MAX_PROMPTS} per call")
        params = prompts.sampling(request.sampling, f"{field}.sampling")
        kwargs = prompts.struct_kwargs(request.chat_template_kwargs)
        encoded = []
        limit = self.generator.context_length
        for i, prompt in enumerate(request.prompts):
            ids = prompts.encode(self.generator.tokenizer, prompt, f"{field}.prompts[{i}]", kwargs)
            if len(ids) >= limit:
                raise InvalidArgument.for_field(
                    f"{field}.prompts[{i}]",
                    f"the prompt has {len(ids)} tokens; the context window is {limit}",
                )
            encoded.append(ids)
        return encoded, params

    async def _run(self, ids: list[int], params: SamplingParams) -> list[Sample]:
        samples = [Sample(i) for i in range(params.n)]
        try:
            async for delta in self.generator.generate(ids, params):
                samples[delta.index].add(delta)
        except PromptTooLong as exc:
            raise InvalidArgument.for_field("input.prompts", str(exc)) from exc
        return samples

    async def Generate(
        self, request: rollout_pb2.GenerateRequest, context: Any
    ) -> rollout_pb2.GenerateResponse:
        encoded, params = self._inputs(request.input, "input")
        remaining = context.time_remaining()
        try:
            results = await asyncio.wait_for(
                asyncio.gather(*(self._run(ids, params) for ids in encoded)), remaining
            )
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
        encoded, params = self._inputs(request.input, "input")
        queue: asyncio.Queue[rollout_pb2.GenerateStreamResponse | None] = asyncio.Queue()

        async def pump(index: int, ids: list[int]) -> None:
            produced = 0
            async for delta in self.generator.generate(ids, params):
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
                await asyncio.gather(*(pump(i, ids) for i, ids in enumerate(encoded)))
            finally:
                await queue.put(None)

        # When the caller cancels, this generator is closed: cancelling the producers
        # closes each engine stream, which aborts its request and frees its slots.
        producer = asyncio.ensure_future(run_all())
        try:
            while (message := await queue.get()) is not None:
                yield message
            await producer  # surface producer errors
        finally:
            producer.cancel()
            with_suppressed = asyncio.gather(producer, return_exceptions=True)
            await with_suppressed

    async def UpdateWeights(
        self, request_iterator: AsyncIterator[rollout_pb2.UpdateWeightsRequest], context: Any
    ) -> rollout_pb2.UpdateWeightsResponse:
        start = time.perf_counter()
        header: rollout_pb2.WeightsHeader | None = None
        chunks: list[tensor_pb2.TensorChunk] = []
        received = 0
        async for message in request_iterator:
            if message.HasField("header"):
                if header is not None:
                    raise InvalidArgument.for_field("header", "send the header once, first")
                header = message.header
            elif message.HasField("chunk"):
                if header is None:
                    raise InvalidArgument.for_field("header", "must come before any chunk")
                chunks.append(message.chunk)
                received += len(message.chunk.data)
        if header is None:
            raise InvalidArgument.for_field("header", "is required")
        if header.checkpoint_uri and chunks:
            raise InvalidArgument.for_field(
                "checkpoint_uri", "send a checkpoint or chunks, not both"
            )
        if header.checkpoint_uri:
            path = header.checkpoint_uri.removeprefix("file://")
            try:
                tensors = await self.service.run_blocking(load_tensors, path)
            except (FileNotFoundError, OSError) as exc:
                raise InvalidArgument.for_field("checkpoint_uri", str(exc)) from exc
        else:
            named = list(assemble_chunks(chunks, field="chunk"))
            if not named:
                raise InvalidArgument.for_field("chunk", "no tensors were sent")
            tensors = {t.name: tensor_to_torch(t.tensor, field=f"chunk[{t.name}]") for t in named}
        if header.tensor_count and header.tensor_count != len(tensors):
            raise InvalidArgument.for_field(
                "tensor_count", f"announced {header.tensor_count}, received {len(tensors)}"
            )
        try:
            version = await self.generator.update_weights(
                tensors, self.service.settings.weight_update_mode
            )
        except (KeyError, ValueError) as exc:
            raise InvalidArgument.for_field("chunk", str(exc).strip("'\"")) from exc
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

    async def GetModelInfo(
        self, request: rollout_pb2.GetModelInfoRequest, context: Any
    ) -> rollout_pb2.GetModelInfoResponse:
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
        return await self.service.episodes.run(request.spec)

    async def StreamEpisodes(
        self, request: rollout_pb2.StreamEpisodesRequest, context: Any
    ) -> AsyncIterator[rollout_pb2.StreamEpisodesResponse]:
        async for message in self.service.episodes.stream(
            request.spec, max_staleness=request.max_staleness, continuous=request.continuous
        ):
            yield message

    async def HeavyThink(
        self, request: rollout_pb2.HeavyThinkRequest, context: Any
    ) -> rollout_pb2.HeavyThinkResponse:
        from gantry.rollout.thinking import heavy_think

        return await heavy_think(self.generator, request)

    async def Playtest(
        self, request: rollout_pb2.PlaytestRequest, context: Any
    ) -> rollout_pb2.PlaytestResponse:
        from gantry.rollout.playtest import playtest

        return await playtest(self.generator, request)
