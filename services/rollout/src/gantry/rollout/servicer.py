"""The RolloutService RPCs: protobuf in and out around the shared generation path.

Generate and GenerateStream go through `generation.Generation` (limits, admission,
tokenization off the loop, generation), the same path the OpenAI HTTP front uses.
Requests carry the caller's client key (`x-client-id`, else its host) so the engine can
share the batch fairly. The servicer's collaborators are explicit and typed: the served
model, the generation path, the runtime (executor, drain signal) and the episode runner.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from typing import Any

import grpc
import torch
from google.protobuf import duration_pb2, timestamp_pb2

from gantry.core.errors import InvalidArgument
from gantry.core.limits import check_count, check_id, client_key
from gantry.core.precision import precision_message
from gantry.core.server import Runtime
from gantry.proto.common.v1 import chat_pb2, tensor_pb2
from gantry.proto.rollout.v1 import rollout_pb2, rollout_pb2_grpc
from gantry.rollout import prompts
from gantry.rollout.engine.types import Sample
from gantry.rollout.episodes import EpisodeRunner
from gantry.rollout.generation import Generation
from gantry.rollout.model import ServedModel
from gantry.rollout.weights import StreamedTensors

DTYPES = {
    torch.float32: tensor_pb2.DTYPE_FLOAT32,
    torch.bfloat16: tensor_pb2.DTYPE_BFLOAT16,
    torch.float16: tensor_pb2.DTYPE_FLOAT16,
}
CHUNK_OVERHEAD_BYTES = 256  # each chunk counts at least this much against the budget
Context = grpc.aio.ServicerContext[Any, Any]


def usage(prompt_tokens: int, completion_tokens: int) -> chat_pb2.Usage:
    return chat_pb2.Usage(
        prompt_tokens=prompt_tokens,
        completion_tokens=completion_tokens,
        total_tokens=prompt_tokens + completion_tokens,
    )


class RolloutServicer(rollout_pb2_grpc.RolloutServiceServicer):
    def __init__(
        self,
        model: ServedModel,
        generation: Generation,
        runtime: Runtime,
        episodes: EpisodeRunner,
    ) -> None:
        self.model = model
        self.generation = generation
        self.runtime = runtime
        self.episodes = episodes

    async def Generate(
        self, request: rollout_pb2.GenerateRequest, context: Context
    ) -> rollout_pb2.GenerateResponse:
        client = client_key(context)
        batch = await self.generation.prepare(request.input, "input", client)
        results = await self.generation.complete(batch, client, context.time_remaining())
        response = rollout_pb2.GenerateResponse(policy_version=self.model.generator.policy_version)
        total_prompt = total_completion = 0
        for i, (ids, samples) in enumerate(zip(batch.prompts, results, strict=True)):
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

    def _completion(self, sample: Sample) -> rollout_pb2.Completion:
        assert sample.finish_reason is not None
        tokens = chat_pb2.TokenSequence(token_ids=sample.token_ids, logprobs=sample.logprobs)
        decode = self.model.generator.tokenizer.decode
        for top in sample.top_logprobs:  # empty unless SamplingParams.top_logprobs > 0
            alternatives = tokens.top_logprobs.add().alternatives
            for token_id, logprob in top:
                alternatives.add(token_id=token_id, logprob=logprob, text=str(decode([token_id])))
        return rollout_pb2.Completion(
            index=sample.index,
            text=sample.text,
            tokens=tokens,
            finish_reason=prompts.FINISH[sample.finish_reason],
        )

    async def GenerateStream(
        self, request: rollout_pb2.GenerateStreamRequest, context: Context
    ) -> AsyncIterator[rollout_pb2.GenerateStreamResponse]:
        client = client_key(context)
        batch = await self.generation.prepare(request.input, "input", client)
        async for event in self.generation.stream(batch, client):
            delta = event.delta
            message = rollout_pb2.GenerateStreamResponse(
                prompt_index=event.prompt_index,
                sample_index=delta.index,
                text_delta=delta.text,
                tokens=chat_pb2.TokenSequence(token_ids=delta.token_ids, logprobs=delta.logprobs),
                policy_version=delta.policy_version,
            )
            if delta.finish_reason is not None:
                message.finish_reason = prompts.FINISH[delta.finish_reason]
                message.usage.CopyFrom(
                    usage(len(batch.prompts[event.prompt_index]), event.produced)
                )
            yield message

    async def UpdateWeights(
        self, request_iterator: AsyncIterator[rollout_pb2.UpdateWeightsRequest], context: Context
    ) -> rollout_pb2.UpdateWeightsResponse:
        start = time.perf_counter()
        header: rollout_pb2.WeightsHeader | None = None
        received = accounted = 0
        budget = self.model.max_weights_bytes
        streamed = StreamedTensors(budget, "chunk")  # filled in place as chunks arrive
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
                streamed.add(message.chunk)
            else:
                raise InvalidArgument.for_field("payload", "set header or chunk")
        if header is None:
            raise InvalidArgument.for_field("header", "is required")
        if header.checkpoint_uri:
            tensors = await self.runtime.run_blocking(
                self.model.read_checkpoint, header.checkpoint_uri
            )
        else:
            tensors = streamed.finish()
        if header.tensor_count and header.tensor_count != len(tensors):
            raise InvalidArgument.for_field(
                "header.tensor_count", f"announced {header.tensor_count}, received {len(tensors)}"
            )
        field = "header.checkpoint_uri" if header.checkpoint_uri else "chunk"
        version = await self.model.update_weights(
            tensors, run_id=header.run_id, field=field, version=header.version
        )
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

    async def GetModelInfo(
        self, request: rollout_pb2.GetModelInfoRequest, context: Context
    ) -> rollout_pb2.GetModelInfoResponse:
        check_id(request.model, field="model")
        generator = self.model.generator
        response = rollout_pb2.GetModelInfoResponse(
            model_name=self.model.name,
            model_path=generator.model_path,
            context_length=generator.context_length,
            precision=precision_message(self.model.settings.precision_recipe),
            policy_version=generator.policy_version,
            backend=generator.backend,
            dtype=DTYPES.get(generator.dtype, tensor_pb2.DTYPE_UNSPECIFIED),
            multimodal=False,
            run_id=self.model.run_id,
        )
        if self.model.weights_time is not None:
            stamp = timestamp_pb2.Timestamp()
            stamp.FromNanoseconds(int(self.model.weights_time * 1e9))
            response.weights_update_time.CopyFrom(stamp)
        return response

    async def RunEpisodes(
        self, request: rollout_pb2.RunEpisodesRequest, context: Context
    ) -> rollout_pb2.RunEpisodesResponse:
        return await self.episodes.run(request.spec, client=client_key(context))

    async def StreamEpisodes(
        self, request: rollout_pb2.StreamEpisodesRequest, context: Context
    ) -> AsyncIterator[rollout_pb2.StreamEpisodesResponse]:
        async for message in self.episodes.stream(
            request.spec,
            max_staleness=request.max_staleness,
            continuous=request.continuous,
            client=client_key(context),
        ):
            yield message

    async def HeavyThink(
        self, request: rollout_pb2.HeavyThinkRequest, context: Context
    ) -> rollout_pb2.HeavyThinkResponse:
        from gantry.rollout.thinking import heavy_think

        return await heavy_think(self.model, self.runtime, request, client=client_key(context))

    async def Playtest(
        self, request: rollout_pb2.PlaytestRequest, context: Context
    ) -> rollout_pb2.PlaytestResponse:
        from gantry.rollout.playtest import playtest

        return await playtest(self.model, self.runtime, request, client=client_key(context))
