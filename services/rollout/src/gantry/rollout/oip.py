"""Rollout's text generation over KServe's Open Inference Protocol (gantry.core.inference).

One OIP model, named like the served model (`model_name`, else `model_path`, as
GetModelInfo reports it): input `text_input` (BYTES [-1], one UTF-8 prompt per element,
used as plain text), output `text_output` (BYTES [-1], one completion per prompt) and,
when asked for, `prompt_tokens` / `completion_tokens` (INT32 [-1]) and `finish_reason`
(BYTES [-1]: stop, length, cancelled). Parameters: `max_tokens`, `temperature`,
`top_p`, `top_k`, `seed`. Like the OpenAI front, this only translates: the request
becomes the `GenerationInput` a gRPC caller would send and goes through the one shared
path (limits, fair per-client admission, tokenization off the loop, generation).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from gantry.core.errors import InvalidArgument
from gantry.core.inference import InferCall, InferenceModel, ParameterSpec, TensorSpec
from gantry.proto.rollout.v1 import rollout_pb2
from gantry.rollout.engine.types import FinishReason
from gantry.rollout.generator import FRONT

if TYPE_CHECKING:
    from gantry.rollout.service import RolloutService

FLOAT32_MAX = float(np.finfo(np.float32).max)
FINISH = {
    FinishReason.STOP: "stop",
    FinishReason.LENGTH: "length",
    FinishReason.CANCELLED: "cancelled",
    FinishReason.RESTARTED: "cancelled",
}


def _prompts(values: Any) -> list[str]:
    texts = []
    for index, value in enumerate(values.reshape(-1)):
        try:
            texts.append(bytes(value).decode("utf-8"))
        except UnicodeDecodeError:
            raise InvalidArgument.for_field(
                f"inputs[text_input][{index}]", "is not valid UTF-8"
            ) from None
    if not texts:
        raise InvalidArgument.for_field(
            "inputs[text_input].shape", "at least one prompt is required"
        )
    return texts


class TextGenerationModel(InferenceModel):
    """The rollout service's generator as an OIP model."""

    def __init__(self, service: RolloutService) -> None:
        super().__init__(service.model.name, platform="gantry-rollout")
        self.service = service

    def ready(self) -> bool:
        return self.service.model.loaded is not None

    @property
    def inputs(self) -> Sequence[TensorSpec]:
        settings = self.service.settings
        return [
            TensorSpec(
                "text_input",
                "BYTES",
                (-1,),
                max_elements=settings.max_prompts_per_request,
                max_element_bytes=self.service.model.limits.prompt_bytes,
                max_bytes=settings.max_request_bytes,
            )
        ]

    @property
    def outputs(self) -> Sequence[TensorSpec]:
        return [
            TensorSpec("text_output", "BYTES", (-1,)),
            TensorSpec("prompt_tokens", "INT32", (-1,), optional=True),
            TensorSpec("completion_tokens", "INT32", (-1,), optional=True),
            TensorSpec("finish_reason", "BYTES", (-1,), optional=True),
        ]

    @property
    def parameters(self) -> Mapping[str, ParameterSpec]:
        return {
            "max_tokens": ParameterSpec(int, "tokens to generate per prompt"),
            "temperature": ParameterSpec(float, "sampling temperature (0 = greedy)"),
            "top_p": ParameterSpec(float, "nucleus sampling mass in (0, 1]"),
            "top_k": ParameterSpec(int, "sample among the k likeliest tokens (0 = all)"),
            "seed": ParameterSpec(int, "sampling seed, for reproducible samples"),
        }

    def _input(self, call: InferCall) -> rollout_pb2.GenerationInput:
        """The GenerationInput a gRPC caller would send; parameter ranges named here."""
        request = rollout_pb2.GenerationInput()
        sampling, params = request.sampling, call.parameters
        if "max_tokens" in params:
            limit = self.service.model.limits.max_tokens
            value = int(params["max_tokens"])
            if not 1 <= value <= limit:
                raise InvalidArgument.for_field(
                    "parameters.max_tokens", f"must be between 1 and {limit} (got {value})"
                )
            sampling.max_tokens = value
        if "temperature" in params:
            value_f = float(params["temperature"])
            if not 0 <= value_f <= FLOAT32_MAX:
                raise InvalidArgument.for_field("parameters.temperature", "must be >= 0")
            sampling.temperature = value_f
        if "top_p" in params:
            value_f = float(params["top_p"])
            if not (math.isfinite(value_f) and 0 < value_f <= 1):
                raise InvalidArgument.for_field("parameters.top_p", "must be in (0, 1]")
            sampling.top_p = value_f
        if "top_k" in params:
            value = int(params["top_k"])
            if not 0 <= value < 2**31:
                raise InvalidArgument.for_field("parameters.top_k", "must be >= 0")
            sampling.top_k = value
        if "seed" in params:
            value = int(params["seed"])
            if value < 0:
                raise InvalidArgument.for_field("parameters.seed", "must be >= 0")
            sampling.seed = value
        for text in _prompts(call.inputs["text_input"]):
            request.prompts.append(rollout_pb2.Prompt(text=text))
        return request

    async def infer(self, call: InferCall) -> Mapping[str, Any]:
        FRONT.set("oip")  # this call's own context: counted as the OIP front's tokens
        generation = self.service.generation
        batch = await generation.prepare(self._input(call), "text_input", call.client)
        results = await generation.complete(batch, call.client, call.timeout_s)
        samples = [prompt_samples[0] for prompt_samples in results]
        return {
            "text_output": [s.text for s in samples],
            "prompt_tokens": [len(ids) for ids in batch.prompts],
            "completion_tokens": [len(s.token_ids) for s in samples],
            "finish_reason": [
                FINISH.get(s.finish_reason, "stop") if s.finish_reason else "" for s in samples
            ],
        }
