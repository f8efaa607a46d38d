"""The GPU backend: vLLM's async engine behind the same `Generator` interface.

Semantics match the transformers engine: one `Delta` per new token per sample, and the
logprob of each sampled token (`logprobs=0`) in the server's logprobs mode. vLLM fixes the
mode per engine (`logprobs_mode`, a model-config option, not a per-request one), so the
server reports one mode, chosen at start (`vllm_logprobs_mode`): "raw" runs vLLM with
`"raw_logprobs"` (temperature/top-k/top-p shape sampling, not the reported logprob),
"processed" with `"processed_logprobs"` (after temperature, top-k and top-p, renormalised);
a request asking for the other mode is FAILED_PRECONDITION. vLLM reports a greedy token's
processed logprob without the point mass, so greedy samples report 0 here, as in the
transformers engine. Structured output goes to vLLM's own XGrammar backend
(`StructuredOutputsParams`); the format is compiled here too, once per format, so that a bad
one is INVALID_ARGUMENT naming the field before vLLM sees it. Weight updates load the
tensors into every worker's model between steps (`collective_rpc`), after pausing new
requests ("drain") or aborting the running ones ("rerun"). vllm is imported lazily: it is
an optional dependency (`gantry-rollout[vllm]`) present only on GPU images.
"""

from __future__ import annotations

import asyncio
import functools
import uuid
from collections.abc import AsyncGenerator, Mapping
from typing import TYPE_CHECKING, Any

import torch

from gantry.core.errors import FailedPrecondition, ResourceExhausted
from gantry.rollout.engine.engine import UpdateMode
from gantry.rollout.engine.grammar import Grammars
from gantry.rollout.engine.sampling import GREEDY_BELOW
from gantry.rollout.engine.types import (
    Delta,
    FinishReason,
    LogprobsMode,
    SamplingParams,
    StructuredOutput,
)
from gantry.rollout.settings import RolloutSettings

if TYPE_CHECKING:
    from gantry.rollout.generator import GenerationMetrics

_FINISH = {
    "stop": FinishReason.STOP,
    "length": FinishReason.LENGTH,
    "abort": FinishReason.CANCELLED,
}
# Gantry's logprobs mode -> vLLM's engine option.
VLLM_LOGPROBS_MODES: dict[LogprobsMode, str] = {
    "raw": "raw_logprobs",
    "processed": "processed_logprobs",
}


def to_vllm_params(params: SamplingParams, vllm_sampling_params: Any) -> Any:
    """Gantry's sampling parameters as vllm.SamplingParams (one request per sample)."""
    extra: dict[str, Any] = {}
    if params.structured_output is not None:
        extra["structured_outputs"] = to_vllm_structured(params.structured_output)
    return vllm_sampling_params(
        n=1,  # each sample is its own request so deltas carry their index
        max_tokens=params.max_tokens,
        temperature=params.temperature,
        top_p=params.top_p,
        top_k=params.top_k if params.top_k > 0 else -1,
        seed=params.seed,
        stop=list(params.stop) or None,
        ignore_eos=params.ignore_eos,
        logprobs=params.top_logprobs,  # the sampled token's, plus any asked-for alternatives
        output_kind=_delta_kind(),
        **extra,
    )


def structured_kwargs(spec: StructuredOutput) -> dict[str, Any]:
    """The StructuredOutputsParams fields for a format (vLLM names JSON Schema `json`)."""
    if spec.json_schema is not None:
        return {"json": spec.json_schema}
    if spec.regex is not None:
        return {"regex": spec.regex}
    if spec.choice is not None:
        return {"choice": list(spec.choice)}
    return {"grammar": spec.grammar}


def to_vllm_structured(spec: StructuredOutput) -> Any:
    try:
        from vllm.sampling_params import StructuredOutputsParams
    except ImportError:  # unit tests without vllm: the fields, for inspection
        return structured_kwargs(spec)
    return StructuredOutputsParams(**structured_kwargs(spec))


def _delta_kind() -> Any:
    try:
        from vllm.sampling_params import RequestOutputKind
    except ImportError:  # unit tests without vllm
        return None
    return RequestOutputKind.DELTA


def sample_seed(params: SamplingParams, index: int) -> int | None:
    return None if params.seed is None else (params.seed * 1_000_003 + index) % (2**63)


def _most_likely(entry: dict[int, Any], k: int) -> list[tuple[int, float]]:
    ranked = sorted(entry.items(), key=lambda item: -float(item[1].logprob))
    return [(int(token), float(lp.logprob)) for token, lp in ranked[:k]]


def delta_from_output(
    request_id: str, index: int, output: Any, version: int, top: int = 0, point_mass: bool = False
) -> Delta:
    """One vLLM delta output (RequestOutputKind.DELTA) as a Gantry Delta; `top` is the
    number of alternatives asked for (vLLM returns them with the sampled token);
    `point_mass`: a greedy sample in processed mode, whose tokens have logprob 0."""
    completion = output.outputs[0]
    token_ids = list(completion.token_ids)
    entries = list(completion.logprobs or [])
    logprobs = [
        0.0 if point_mass else float(entry[token].logprob)
        for token, entry in zip(token_ids, entries, strict=False)
    ]
    tops = [_most_likely(entry, top) for entry in entries] if top else []
    finish = _FINISH.get(completion.finish_reason) if output.finished else None
    return Delta(request_id, index, token_ids, logprobs, completion.text, finish, version, tops)


# vLLM shards weights across workers we cannot size from here: a generous default bound.
VLLM_MAX_WEIGHTS_BYTES = 256 * 2**30


class VllmGenerator:
    backend = "vllm"
    max_weights_bytes = VLLM_MAX_WEIGHTS_BYTES

    def __init__(
        self,
        engine: Any,
        tokenizer: Any,
        *,
        model_path: str,
        context_length: int,
        dtype: torch.dtype,
        max_in_flight: int | None = None,
        retry_after_s: float = 2.0,
        logprobs_mode: LogprobsMode = "raw",
        metrics: GenerationMetrics | None = None,
        vocab_size: int | None = None,
    ) -> None:
        self.engine = engine
        self.vocab_size = vocab_size  # the logits' width; len(tokenizer) when unknown
        self.metrics = metrics  # tokens only: vLLM's queue and batch are its own
        self.logprobs_mode = logprobs_mode  # the engine's, fixed at start
        # Admission control: vLLM schedules fairly enough within its batch, but its queue
        # is unbounded, so sequences beyond this are refused with RESOURCE_EXHAUSTED.
        self.max_in_flight = max_in_flight
        self.retry_after_s = retry_after_s
        self.tokenizer = tokenizer
        self.model_path = model_path
        self.context_length = context_length
        self.dtype = dtype
        self._version = 0
        self._gate = asyncio.Event()
        self._gate.set()
        self._running: set[str] = set()
        self._idle = asyncio.Event()
        self._idle.set()

    @classmethod
    def from_settings(
        cls, settings: RolloutSettings, metrics: GenerationMetrics | None = None
    ) -> VllmGenerator:
        from vllm import AsyncEngineArgs
        from vllm.v1.engine.async_llm import AsyncLLM

        args = AsyncEngineArgs(
            model=settings.model_path,
            dtype=settings.dtype,
            gpu_memory_utilization=settings.vllm_gpu_memory_utilization,
            max_num_seqs=settings.max_batch_size,
            logprobs_mode=VLLM_LOGPROBS_MODES[settings.vllm_logprobs_mode],
            worker_extension_cls="gantry.rollout.vllm_worker.WeightLoader",
        )
        engine = AsyncLLM.from_engine_args(args)
        config = engine.model_config
        return cls(
            engine,
            engine.tokenizer,
            model_path=settings.model_path,
            context_length=int(config.max_model_len),
            dtype=config.dtype,
            max_in_flight=settings.max_batch_size + settings.max_queued_sequences,
            retry_after_s=settings.overload_retry_after_s,
            logprobs_mode=settings.vllm_logprobs_mode,
            metrics=metrics,
            vocab_size=int(config.get_vocab_size()),
        )

    @functools.cached_property
    def grammars(self) -> Grammars:
        """Formats compiled to check them before vLLM compiles its own (built on first use)."""
        eos = getattr(self.tokenizer, "eos_token_id", None)
        return Grammars(
            self.tokenizer,
            self.vocab_size or len(self.tokenizer),
            (int(eos),) if eos is not None else (),
        )

    @property
    def policy_version(self) -> int:
        return self._version

    def check_capacity(self, client: str, sequences: int) -> None:
        if self.max_in_flight is not None and len(self._running) + sequences > self.max_in_flight:
            raise ResourceExhausted(
                f"the server is at capacity ({len(self._running)} sequences in flight)",
                retry_after_s=self.retry_after_s,
                reason="OVERLOADED",
            )

    async def generate(
        self,
        prompt_ids: list[int],
        params: SamplingParams,
        request_id: str | None = None,
        client: str = "",
    ) -> AsyncGenerator[Delta, None]:
        """`client` is accepted for the interface; vLLM's own scheduler orders requests."""
        from vllm import SamplingParams as VllmSamplingParams
        from vllm.inputs import TokensPrompt

        if params.logprobs_mode != self.logprobs_mode:
            raise FailedPrecondition(
                f"logprobs_mode: this vLLM server reports {self.logprobs_mode} logprobs "
                f"(vLLM fixes the mode per engine; start a server with "
                f"GANTRY_ROLLOUT_VLLM_LOGPROBS_MODE={params.logprobs_mode})",
                reason="LOGPROBS_MODE_UNAVAILABLE",
            )
        self.check_capacity(client, params.n)
        await self._gate.wait()  # a draining weight update holds new requests
        base = request_id or uuid.uuid4().hex
        queue: asyncio.Queue[Delta | BaseException] = asyncio.Queue()
        point_mass = params.logprobs_mode == "processed" and params.temperature < GREEDY_BELOW

        async def one(index: int) -> None:
            rid = f"{base}-{index}"
            self._running.add(rid)
            self._idle.clear()
            sample_params = to_vllm_params(params, VllmSamplingParams)
            sample_params.seed = sample_seed(params, index)
            try:
                async for output in self.engine.generate(
                    TokensPrompt(prompt_token_ids=prompt_ids), sample_params, rid
                ):
                    delta = delta_from_output(
                        base, index, output, self._version, params.top_logprobs, point_mass
                    )
                    await queue.put(delta)
            except BaseException as exc:  # hand errors to the consumer
                await queue.put(exc)
            finally:
                self._running.discard(rid)
                if not self._running:
                    self._idle.set()

        tasks = [asyncio.ensure_future(one(i)) for i in range(params.n)]
        if self.metrics is not None:
            self.metrics.prompt(len(prompt_ids))
        remaining = params.n
        try:
            while remaining:
                item = await queue.get()
                if isinstance(item, BaseException):
                    raise item
                if item.finish_reason is not None:
                    remaining -= 1
                if self.metrics is not None:
                    self.metrics.generated(len(item.token_ids))
                yield item
        finally:
            for task in tasks:
                task.cancel()
            if remaining:
                await self.engine.abort([f"{base}-{i}" for i in range(params.n)])

    async def update_weights(
        self, tensors: Mapping[str, torch.Tensor], mode: UpdateMode, version: int = 0
    ) -> int:
        self._gate.clear()
        try:
            if mode == "rerun":
                await self.engine.abort(list(self._running))
            await self._idle.wait()  # drain: in-flight requests finish on the old weights
            items = [(name, tensor) for name, tensor in tensors.items()]
            await self.engine.collective_rpc("load_weights_from_tensors", args=(items,))
            await self.engine.reset_prefix_cache()  # cached KV belongs to the old weights
            self._version = max(self._version + 1, version)
            return self._version
        finally:
            self._gate.set()

    async def close(self) -> None:
        self.engine.shutdown()
