"""A continuous-batching generation engine on a Hugging Face causal LM (CPU reference).

One thread owns the model. Each iteration it applies aborts and weight updates, admits
waiting requests (prefill: the whole prompt in one forward pass, which also yields the
first token), then runs one decode step for every sequence in flight at once. Requests
join and leave the batch between decode steps; each sequence keeps its own KV cache
rows (see `kv.py`). Results leave through per-request sinks called on this thread.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any, Literal

import torch
from transformers import DynamicCache, PreTrainedModel, PreTrainedTokenizerBase

from gantry.rollout.engine.kv import BatchKV, Slot, own_cache
from gantry.rollout.engine.sampling import make_generator, sample
from gantry.rollout.engine.types import Delta, FinishReason, PromptTooLong, SamplingParams

log = logging.getLogger("gantry.rollout.engine")

Sink = Callable[[Delta], None]
UpdateMode = Literal["drain", "rerun"]


@dataclass
class _Request:
    request_id: str
    prompt_ids: list[int]
    params: SamplingParams
    sink: Sink


@dataclass
class _Sequence:
    request: _Request
    index: int
    generator: torch.Generator
    slot: Slot
    next_token: int  # sampled, not yet in the cache
    output_ids: list[int] = field(default_factory=list)
    text_sent: int = 0  # characters of the decoded output already emitted


@dataclass
class _WeightUpdate:
    tensors: dict[str, torch.Tensor]
    mode: UpdateMode
    done: Future[int]


class Engine:
    def __init__(
        self,
        model: PreTrainedModel,
        tokenizer: PreTrainedTokenizerBase,
        *,
        context_length: int,
        max_batch_size: int = 32,
        eos_token_ids: tuple[int, ...] = (),
    ) -> None:
        self.model = model.train(False)  # eval mode: no dropout
        self.tokenizer = tokenizer
        self.context_length = context_length
        self.max_batch_size = max_batch_size
        self.eos_token_ids = set(eos_token_ids)
        self.policy_version = 0
        self._waiting: deque[_Request] = deque()
        self._aborted: set[str] = set()
        self._update: _WeightUpdate | None = None
        self._running: list[_Sequence] = []
        self._batch = BatchKV()
        self._batch_dirty = True
        self._wake = threading.Condition()
        self._stopping = False
        self._thread = threading.Thread(target=self._loop, name="rollout-engine", daemon=True)
        self.steps = 0

    # ----- API (any thread) -----
    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        with self._wake:
            self._stopping = True
            self._wake.notify()
        self._thread.join(timeout=30)

    def submit(
        self, request_id: str, prompt_ids: list[int], params: SamplingParams, sink: Sink
    ) -> None:
        if not prompt_ids:
            raise ValueError("the prompt is empty")
        if len(prompt_ids) >= self.context_length:
            raise PromptTooLong(len(prompt_ids), self.context_length)
        with self._wake:
            self._waiting.append(_Request(request_id, list(prompt_ids), params, sink))
            self._wake.notify()

    def abort(self, request_id: str) -> None:
        """Stop a request now: its slots are freed before the next decode step."""
        with self._wake:
            self._aborted.add(request_id)
            self._wake.notify()

    def load(self, tensors: Mapping[str, torch.Tensor], mode: UpdateMode = "drain") -> Future[int]:
        """Swap in new weights between decode steps; the future gives the new version.

        "drain": stop admitting, let sequences in flight finish on the old weights, swap.
        "rerun": end sequences in flight with RESTARTED (callers resubmit), swap at once.
        """
        checked = self._validate(dequantize_fp8(tensors))
        done: Future[int] = Future()
        with self._wake:
            if self._update is not None:
                raise RuntimeError("a weight update is already in progress")
            self._update = _WeightUpdate(checked, mode, done)
            self._wake.notify()
        return done

    @property
    def in_flight(self) -> int:
        return len(self._running) + len(self._waiting)

    # ----- the engine thread -----
    def _loop(self) -> None:
        with torch.inference_mode():
            while True:
                with self._wake:
                    while not (
                        self._stopping
                        or self._waiting
                        or self._running
                        or self._update
                        or self._aborted
                    ):
                        self._wake.wait()
                    if self._stopping:
                        break
                    aborted, self._aborted = self._aborted, set()
                    update = self._update
                    admit: list[_Request] = []
                    if update is None:
                        while (
                            self._waiting and len(self._running) + len(admit) < self.max_batch_size
                        ):
                            admit.append(self._waiting.popleft())
                try:
                    self._step(aborted, update, admit)
                except Exception:  # never leave callers hanging on a crashed step
                    log.exception("engine step failed; failing the batch")
                    for seq in self._running:
                        self._finish(seq, FinishReason.CANCELLED)
                    for request in admit:
                        request.sink(
                            Delta(request.request_id, 0, [], [], "", FinishReason.CANCELLED)
                        )
                    self._running, self._batch_dirty = [], True
        for seq in self._running:
            self._finish(seq, FinishReason.CANCELLED)
        with self._wake:
            for request in self._waiting:
                request.sink(Delta(request.request_id, 0, [], [], "", FinishReason.CANCELLED))

    def _step(self, aborted: set[str], update: _WeightUpdate | None, admit: list[_Request]) -> None:
        if aborted:
            self._drop(lambda s: s.request.request_id in aborted, FinishReason.CANCELLED)
            with self._wake:
                kept = [r for r in self._waiting if r.request_id not in aborted]
                for r in self._waiting:
                    if r.request_id in aborted:
                        r.sink(Delta(r.request_id, 0, [], [], "", FinishReason.CANCELLED))
                self._waiting = deque(kept)
        if update is not None:
            if update.mode == "rerun":
                self._drop(lambda s: True, FinishReason.RESTARTED)
            if not self._running:
                self._apply(update)
        for request in admit:
            self._prefill(request)
        if self._running:
            self._decode()

    def _drop(self, which: Callable[[_Sequence], bool], reason: FinishReason) -> None:
        for seq in [s for s in self._running if which(s)]:
            self._finish(seq, reason)

    def _apply(self, update: _WeightUpdate) -> None:
        # state_dict() tensors share storage with the parameters (tied ones included).
        state = self.model.state_dict()
        for name, tensor in update.tensors.items():
            target = state[name]
            target.copy_(tensor.to(dtype=target.dtype, device=target.device))
        self.policy_version += 1
        with self._wake:
            self._update = None
        log.info("weights updated to policy version %d", self.policy_version)
        update.done.set_result(self.policy_version)

    def _validate(self, tensors: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        known = self.model.state_dict()
        checked: dict[str, torch.Tensor] = {}
        for name, tensor in tensors.items():
            target = known.get(name)
            if target is None:
                raise KeyError(f"{name!r} is not a parameter of the served model")
            if tuple(tensor.shape) != tuple(target.shape):
                raise ValueError(
                    f"{name!r} has shape {tuple(tensor.shape)}, "
                    f"the model's is {tuple(target.shape)}"
                )
            if not (tensor.is_floating_point() or tensor.dtype == target.dtype):
                raise ValueError(f"{name!r} has dtype {tensor.dtype}, expected floating point")
            checked[name] = tensor
        if not checked:
            raise ValueError("no tensors in the update")
        return checked

    def _prefill(self, request: _Request) -> None:
        ids = torch.tensor([request.prompt_ids])
        cache = DynamicCache()
        out = self.model(input_ids=ids, cache=cache, use_cache=True)
        logits = out.logits[:, -1, :]
        kv = own_cache(cache)
        n = request.params.n
        generators = [make_generator(request.params.seed, i) for i in range(n)]
        tokens, logprobs = sample(logits.expand(n, -1), [request.params] * n, generators)
        seqs = [
            _Sequence(request, i, generators[i], Slot(len(request.prompt_ids), own=kv), tokens[i])
            for i in range(n)
        ]
        # All n sequences are running before the first token is emitted, so a caller that
        # reacts to it sees the whole request in flight.
        self._running.extend(seqs)
        for i, seq in enumerate(seqs):
            self._emit(seq, tokens[i], logprobs[i])
        self._batch_dirty = True

    def _decode(self) -> None:
        if self._batch_dirty:
            self._batch.rebuild([s.slot for s in self._running])
            self._batch_dirty = False
        mask = self._batch.extend_mask()
        ids = torch.tensor([[s.next_token] for s in self._running])
        positions = torch.tensor([[s.slot.length] for s in self._running])
        out = self.model(
            input_ids=ids,
            attention_mask=mask,
            position_ids=positions,
            cache=self._batch.cache,
            use_cache=True,
        )
        self.steps += 1
        for seq in self._running:
            seq.slot.length += 1
        tokens, logprobs = sample(
            out.logits[:, -1, :],
            [s.request.params for s in self._running],
            [s.generator for s in self._running],
        )
        for seq, token, logprob in zip(list(self._running), tokens, logprobs, strict=True):
            seq.next_token = token
            self._emit(seq, token, logprob)

    def _emit(self, seq: _Sequence, token: int, logprob: float) -> None:
        """Record a sampled token, send the delta, and finish the sequence if it is done."""
        if seq not in self._running:
            return
        seq.output_ids.append(token)
        params = seq.request.params
        text = str(self.tokenizer.decode(seq.output_ids, skip_special_tokens=True))
        finish: FinishReason | None = None
        stop_at = _find_stop(text, params.stop, seq.text_sent)
        if stop_at is not None:
            text, finish = text[:stop_at], FinishReason.STOP
        elif token in self.eos_token_ids and not params.ignore_eos:
            finish = FinishReason.STOP
        elif len(seq.output_ids) >= params.max_tokens or seq.slot.length + 1 >= self.context_length:
            finish = FinishReason.LENGTH
        # Hold back a trailing partial UTF-8 character until the next token completes it.
        ready = text if finish is not None or not text.endswith("\ufffd") else text.rstrip("\ufffd")
        new_text, seq.text_sent = ready[seq.text_sent :], max(seq.text_sent, len(ready))
        seq.request.sink(
            Delta(
                seq.request.request_id,
                seq.index,
                [token],
                [logprob],
                new_text,
                finish,
                self.policy_version,
            )
        )
        if finish is not None:
            self._remove(seq)

    def _finish(self, seq: _Sequence, reason: FinishReason) -> None:
        seq.request.sink(
            Delta(seq.request.request_id, seq.index, [], [], "", reason, self.policy_version)
        )
        self._remove(seq)

    def _remove(self, seq: _Sequence) -> None:
        if seq in self._running:
            self._running.remove(seq)
            self._batch_dirty = True
            if not self._running:
                self._batch.clear()


def _find_stop(text: str, stops: tuple[str, ...], sent: int) -> int | None:
    """Earliest position of a stop string that ends in the not-yet-checked text."""
    best: int | None = None
    for stop in stops:
        at = text.find(stop, max(0, sent - len(stop) + 1))
        if at != -1 and (best is None or at < best):
            best = at
    return best


FP8_SCALE_SUFFIX = "_scale"
_FP8_DTYPES = (torch.float8_e4m3fn, torch.float8_e5m2)


def dequantize_fp8(tensors: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """FP8 weights sent with their per-128x128-block float32 scales ("<param>_scale", as
    the trainer publishes fp8-jet weights) -> float32 values codes x scale; the served
    model keeps its own dtype, and an FP8 rollout re-quantizes them to the same codes."""
    from gantry.kernels.fp8_quant import Quantized, dequantize

    out: dict[str, torch.Tensor] = {}
    for name, tensor in tensors.items():
        if name.endswith(FP8_SCALE_SUFFIX) and name[: -len(FP8_SCALE_SUFFIX)] in tensors:
            continue  # consumed with its weight below
        if tensor.dtype in _FP8_DTYPES:
            scale = tensors.get(name + FP8_SCALE_SUFFIX)
            if scale is None:
                raise ValueError(f"{name!r} is FP8 but {name + FP8_SCALE_SUFFIX!r} is missing")
            if tensor.dim() != 2:
                raise ValueError(f"{name!r}: FP8 weights must be 2-D")
            rows, cols = tensor.shape
            grid = (-(-rows // 128), -(-cols // 128))
            if tuple(scale.shape) != grid:
                raise ValueError(
                    f"{name + FP8_SCALE_SUFFIX!r} has shape {tuple(scale.shape)}, expected {grid}"
                )
            tensor = dequantize(Quantized(tensor, scale.to(torch.float32), 128))
        out[name] = tensor
    return out


def load_tensors(path: str) -> dict[str, torch.Tensor]:
    """All tensors of a safetensors checkpoint directory (single file or sharded)."""
    from pathlib import Path

    from safetensors.torch import load_file

    root = Path(path)
    files = sorted(root.glob("*.safetensors")) if root.is_dir() else [root]
    if not files or not all(f.exists() for f in files):
        raise FileNotFoundError(f"no safetensors weights at {path}")
    tensors: dict[str, Any] = {}
    for file in files:
        tensors.update(load_file(str(file)))
    return tensors


def wait_idle(engine: Engine, timeout_s: float = 10.0) -> None:
    deadline = time.monotonic() + timeout_s
    while engine.in_flight and time.monotonic() < deadline:
        time.sleep(0.01)
