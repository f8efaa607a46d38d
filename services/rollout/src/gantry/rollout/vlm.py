"""Image + text generation on a Hugging Face vision-language model (reference backend).

Used for episodes whose observations are images. Requests run one at a time on one
worker thread (`model.generate`); continuous batching of image prompts is not built yet.
Logprobs follow the text engine's rule: log softmax of the raw logits of each sampled
token. Weight updates (UpdateWeights naming this model's parameters) run on the same
thread, between two requests: a request never sees half an update.
"""

from __future__ import annotations

import asyncio
import logging
import re
import threading
from collections.abc import Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np
import torch
from numpy.typing import NDArray
from PIL import Image as PILImage

from gantry.models.loading import VisionLanguageModel
from gantry.rollout.engine.sampling import GREEDY_BELOW, processed_logprobs
from gantry.rollout.engine.types import FinishReason, PromptTooLong, Sample, SamplingParams

log = logging.getLogger("gantry.rollout.vlm")
ChatMessage = dict[
    str, Any
]  # {"role": ..., "content": [{"type": "image"} | {"type": "text", ...}]}


class VlmGenerator:
    backend = "transformers-vlm"

    def __init__(self, bundle: VisionLanguageModel) -> None:
        self.model = bundle.model.train(False)
        self.processor = bundle.processor
        self.tokenizer = bundle.tokenizer
        self.model_path = str(bundle.path)
        self.context_length = bundle.context_length
        self.policy_version = 0  # 0 = base weights; UpdateWeights raises it
        # Largest update worth receiving, as for the text engine: float32 + 25 %.
        params = sum(t.numel() for t in self.model.state_dict().values())
        self.max_weights_bytes = params * 4 * 5 // 4 + 2**20
        self._renames = checkpoint_renames(self.model)
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="rollout-vlm")
        self._seed_lock = threading.Lock()

    async def chat(
        self, messages: list[ChatMessage], images: list[NDArray[np.uint8]], params: SamplingParams
    ) -> tuple[list[int], Sample]:
        """Generate one sample for a chat whose image parts are filled from `images`, in order."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, self._chat, messages, images, params)

    def _chat(
        self, messages: list[ChatMessage], images: list[NDArray[np.uint8]], params: SamplingParams
    ) -> tuple[list[int], Sample]:
        text = self.processor.apply_chat_template(
            messages, add_generation_prompt=True, tokenize=False
        )
        pictures = [PILImage.fromarray(image) for image in images] or None
        inputs = self.processor(text=[text], images=pictures, return_tensors="pt")
        prompt_ids: list[int] = inputs["input_ids"][0].tolist()
        if len(prompt_ids) + 1 >= self.context_length:
            raise PromptTooLong(len(prompt_ids), self.context_length)
        budget = min(params.max_tokens, self.context_length - len(prompt_ids) - 1)
        sampling: dict[str, Any] = (
            {"do_sample": False}
            if params.temperature == 0
            else {
                "do_sample": True,
                "temperature": params.temperature,
                "top_p": params.top_p,
                "top_k": params.top_k or None,
            }
        )
        with self._seed_lock, torch.inference_mode():
            if params.seed is not None:
                torch.manual_seed(params.seed)
            out = self.model.generate(
                **inputs,
                max_new_tokens=budget,
                output_logits=True,
                return_dict_in_generate=True,
                **sampling,
            )
        new = out.sequences[0, len(prompt_ids) :]
        logits = torch.stack(out.logits, dim=1)[0].float()
        sample = Sample(
            0,
            token_ids=new.tolist(),
            logprobs=_logprobs(logits, new, params),
            policy_version=self.policy_version,
        )
        decoded = str(self.tokenizer.decode(sample.token_ids, skip_special_tokens=True))
        cut = min((decoded.find(s) for s in params.stop if s in decoded), default=-1)
        sample.text = decoded[:cut] if cut >= 0 else decoded
        eos = self.tokenizer.eos_token_id
        ended = cut >= 0 or (bool(sample.token_ids) and sample.token_ids[-1] == eos)
        sample.finish_reason = FinishReason.STOP if ended else FinishReason.LENGTH
        return prompt_ids, sample

    def owns(self, names: Iterable[str]) -> bool:
        """Whether every name is a parameter of this model (an update meant for it)."""
        known = self.model.state_dict()
        listed = set(names)
        return all(
            self._module_name(n, known) in known
            or (n.endswith("_scale") and n[:-6] in listed)  # an FP8 weight's block scales
            for n in listed
        )

    def _module_name(self, name: str, known: Mapping[str, Any]) -> str:
        """The parameter a checkpoint name stands for: save_pretrained writes some models
        (LLaVA among them) under older names than their modules use."""
        if name in known:
            return name
        for pattern, target in self._renames:
            name = pattern.sub(target, name, count=1)
        return name

    async def update_weights(self, tensors: Mapping[str, torch.Tensor], version: int = 0) -> int:
        """Copy the tensors in between two requests; the new version is
        max(current + 1, `version`), as for the text engine."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, self._update, tensors, version)

    def _update(self, tensors: Mapping[str, torch.Tensor], version: int) -> int:
        from gantry.rollout.engine.engine import dequantize_fp8

        state = self.model.state_dict()  # shares storage with the parameters (tied ones too)
        update = {self._module_name(n, state): t for n, t in dequantize_fp8(tensors).items()}
        for name, tensor in update.items():  # all checked before any is copied
            target = state.get(name)
            if target is None:
                raise KeyError(f"{name!r} is not a parameter of the served VLM")
            if tuple(tensor.shape) != tuple(target.shape):
                raise ValueError(
                    f"{name!r} has shape {tuple(tensor.shape)}, the VLM's is {tuple(target.shape)}"
                )
            if not tensor.is_floating_point() or not bool(torch.isfinite(tensor).all()):
                raise ValueError(f"{name!r} must hold finite floating-point values")
        if not update:
            raise ValueError("no tensors in the update")
        with torch.no_grad():
            for name, tensor in update.items():
                state[name].copy_(tensor.to(dtype=state[name].dtype, device=state[name].device))
        self.policy_version = max(self.policy_version + 1, version)
        return self.policy_version

    async def close(self) -> None:
        self._executor.shutdown(wait=True, cancel_futures=True)


def checkpoint_renames(model: Any) -> list[tuple[re.Pattern[str], str]]:
    """transformers' renames from checkpoint names to module names, in the order it
    applies them when loading (empty when this transformers does not expose them)."""
    try:
        from transformers.conversion_mapping import get_model_conversion_mapping

        transforms = get_model_conversion_mapping(model)
    except Exception:  # an API of transformers 5; without it names must match exactly
        log.warning("no checkpoint renames for %s: updates must use module names", type(model))
        return []
    renames = []
    for transform in transforms:
        if type(transform).__name__ in ("WeightRenaming", "PrefixChange"):
            target = transform.target_patterns[0]
            renames += [(re.compile(source), target) for source in transform.source_patterns]
    return renames


def _logprobs(logits: torch.Tensor, tokens: torch.Tensor, params: SamplingParams) -> list[float]:
    """The sampled tokens' logprobs from generate's raw logits, in `params.logprobs_mode`
    (the same rule as the text engine's, see gantry.rollout.engine.sampling)."""
    if params.logprobs_mode == "raw":
        raw = torch.log_softmax(logits, -1).gather(1, tokens.unsqueeze(1)).squeeze(1)
        return [float(v) for v in raw.tolist()]
    if params.temperature < GREEDY_BELOW:
        return [0.0] * len(tokens)
    return [
        float(processed_logprobs(row, params)[t])
        for row, t in zip(logits, tokens.tolist(), strict=True)
    ]
