"""A continuous-batching generation engine on a Hugging Face causal LM (CPU reference).

One thread owns the model. Each iteration (a "step") it applies aborts and weight
updates, prefills prompts, chooses which sequences form the batch, then runs one decode
step for every sequence in the batch at once. Each sequence keeps its own KV cache rows
(see `kv.py`: buffers written in place, so a step copies no cache). Results leave
through per-request sinks called on this thread.

Fairness between clients (the `client` key of each request):
- the batch's `max_batch_size` slots are divided max-min fairly among the clients with
  sequences ready to decode; a client over its share has its latest sequences taken out
  of the batch (their caches are kept, so they resume exactly where they stopped) when
  another client's sequences are ready;
- prefill work per step is bounded (`max_prefill_tokens` prompt tokens, also divided
  fairly); a long prompt is prefilled in chunks over several steps; a client is prefilled
  only while it has fewer ready sequences than its share of the batch;
- admission control: `submit` refuses (`Overloaded`) a request that would leave more
  than `max_queued` sequences (or `max_queued_per_client` for its client) waiting
  beyond the batch.
So a huge request from one client delays another client's small one by a few steps,
never by the huge request's whole run.

Prefix caching (`prefix.py`): a finished sequence's keys and values are kept (within a
byte budget) and a new prompt's prefill starts after its longest common prefix with one
of them, so an episode's next turn prefills only what the last turn did not hold.

Structured output: a constrained sample carries its own grammar matcher (`grammar.py`);
before each sampling (the first token after prefill included) its forbidden tokens are
masked, and the sampled token advances the matcher. Constrained and free sequences share
a batch; a sample whose format is complete ends with STOP at its end-of-sequence token.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter, deque
from collections.abc import Callable, Mapping
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Literal

import torch
import xgrammar as xgr
from transformers import DynamicCache, PreTrainedModel, PreTrainedTokenizerBase

from gantry.rollout.engine.fairness import fair_shares
from gantry.rollout.engine.grammar import Grammars, mask_logits
from gantry.rollout.engine.kv import BatchKV, Slot, own_cache
from gantry.rollout.engine.prefix import PrefixCache
from gantry.rollout.engine.sampling import make_generator, sample
from gantry.rollout.engine.types import (
    Delta,
    FinishReason,
    Overloaded,
    PromptTooLong,
    SamplingParams,
    TopLogprobs,
)

log = logging.getLogger("gantry.rollout.engine")

Sink = Callable[[Delta], None]
UpdateMode = Literal["drain", "rerun"]


@dataclass
class _Request:
    request_id: str
    prompt_ids: list[int]
    params: SamplingParams
    sink: Sink
    client: str = ""


@dataclass
class _Prefill:
    """A request whose prompt is entering the cache, possibly over several steps."""

    request: _Request
    cache: DynamicCache = field(default_factory=DynamicCache)
    done: int = 0  # prompt tokens already in the cache
    last_logits: torch.Tensor | None = None  # of the last prompt position, once done

    @property
    def remaining(self) -> int:
        return len(self.request.prompt_ids) - self.done


@dataclass
class _Sequence:
    request: _Request
    index: int
    generator: torch.Generator
    slot: Slot
    next_token: int  # sampled, not yet in the cache
    output_ids: list[int] = field(default_factory=list)
    text_sent: int = 0  # characters of the decoded output already emitted
    finished: bool = False
    matcher: xgr.GrammarMatcher | None = None  # structured output: what may come next

    @property
    def client(self) -> str:
        return self.request.client


@dataclass
class _WeightUpdate:
    tensors: dict[str, torch.Tensor]
    mode: UpdateMode
    done: Future[int]
    version: int = 0  # the publisher's version: serve max(current + 1, version)


class Engine:
    def __init__(
        self,
        model: PreTrainedModel,
        tokenizer: PreTrainedTokenizerBase,
        *,
        context_length: int,
        max_batch_size: int = 32,
        eos_token_ids: tuple[int, ...] = (),
        max_prefill_tokens: int = 2048,
        max_queued: int = 2048,
        max_queued_per_client: int = 1024,
        retry_after_s: float = 2.0,
        prefix_cache_bytes: int = 0,
    ) -> None:
        self.model = model.train(False)  # eval mode: no dropout
        # The model's device (cpu or cuda): inputs go there, logits come back to the CPU,
        # where sampling runs with its seeded CPU generators (same draws on every device).
        self.device = next(model.parameters()).device
        self.tokenizer = tokenizer
        self.context_length = context_length
        self.max_batch_size = max_batch_size
        self.eos_token_ids = set(eos_token_ids)
        # Structured output masks cover the logits' width, which may exceed len(tokenizer).
        width = int(model.config.get_text_config().vocab_size or len(tokenizer))
        self.grammars = Grammars(tokenizer, width, tuple(sorted(self.eos_token_ids)))
        self.max_prefill_tokens = max(1, max_prefill_tokens)
        self.max_queued = max_queued
        self.max_queued_per_client = max_queued_per_client
        self.retry_after_s = retry_after_s
        self.policy_version = 0
        # Shared with other threads (under _wake): arrivals, aborts, updates, counts.
        self._waiting: dict[str, deque[_Request]] = {}
        self._aborted: set[str] = set()
        self._update: _WeightUpdate | None = None
        self._active: Counter[str] = Counter()  # unfinished sequences per client
        # Owned by the engine thread.
        self._prefilling: dict[str, _Prefill] = {}
        self._parked: dict[str, deque[_Sequence]] = {}
        self._running: list[_Sequence] = []
        self._clients: dict[str, None] = {}  # first-come order of clients with work
        self._batch = BatchKV(context_length)
        self._batch_dirty = True
        self.prefix_cache = PrefixCache(prefix_cache_bytes)
        self._wake = threading.Condition()
        self._stopping = False
        self._thread = threading.Thread(target=self._loop, name="rollout-engine", daemon=True)
        self.steps = 0
        self.preemptions = 0

    # ----- API (any thread) -----
    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        with self._wake:
            self._stopping = True
            self._wake.notify()
        self._thread.join(timeout=30)

    def check_capacity(self, client: str, sequences: int) -> None:
        """Raise `Overloaded` if `sequences` more for `client` would exceed the queue bounds."""
        with self._wake:
            self._check_capacity(client, sequences)

    def _check_capacity(self, client: str, sequences: int) -> None:
        total = sum(self._active.values())
        if total + sequences > self.max_batch_size + self.max_queued:
            raise Overloaded(
                f"the server is at capacity ({total} sequences in flight, at most "
                f"{self.max_queued} may wait beyond the batch of {self.max_batch_size})",
                self.retry_after_s,
            )
        mine = self._active[client]
        if mine + sequences > self.max_batch_size + self.max_queued_per_client:
            raise Overloaded(
                f"this client has {mine} sequences in flight; at most "
                f"{self.max_queued_per_client} may wait beyond the batch",
                self.retry_after_s,
            )

    def submit(
        self,
        request_id: str,
        prompt_ids: list[int],
        params: SamplingParams,
        sink: Sink,
        client: str = "",
    ) -> None:
        if not prompt_ids:
            raise ValueError("the prompt is empty")
        if len(prompt_ids) >= self.context_length:
            raise PromptTooLong(len(prompt_ids), self.context_length)
        if params.structured_output is not None:
            # Fronts compile on their executor first, so this is a cache hit; a caller
            # that did not gets the compile here (and StructuredOutputError if it is bad).
            self.grammars.compile(params.structured_output)
        with self._wake:
            self._check_capacity(client, params.n)
            self._active[client] += params.n
            queue = self._waiting.setdefault(client, deque())
            queue.append(_Request(request_id, list(prompt_ids), params, sink, client))
            self._wake.notify()

    def abort(self, request_id: str) -> None:
        """Stop a request now: its slots are freed before the next decode step."""
        with self._wake:
            self._aborted.add(request_id)
            self._wake.notify()

    def load(
        self, tensors: Mapping[str, torch.Tensor], mode: UpdateMode = "drain", version: int = 0
    ) -> Future[int]:
        """Swap in new weights between decode steps; the future gives the new version,
        max(current + 1, `version`) (replicas handed the same version agree on it).

        "drain": stop admitting, let sequences in flight finish on the old weights, swap.
        "rerun": end sequences in flight with RESTARTED (callers resubmit), swap at once.
        """
        checked = self._validate(dequantize_fp8(tensors))
        done: Future[int] = Future()
        with self._wake:
            if self._update is not None:
                raise RuntimeError("a weight update is already in progress")
            self._update = _WeightUpdate(checked, mode, done, version)
            self._wake.notify()
        return done

    @property
    def in_flight(self) -> int:
        """Sequences submitted and not yet finished."""
        with self._wake:
            return sum(self._active.values())

    @property
    def running(self) -> int:
        """Sequences in the decode batch (read unlocked: a gauge's momentary view)."""
        return len(self._running)

    @property
    def queued(self) -> int:
        """Sequences submitted but outside the decode batch: waiting, prefilling, parked."""
        return max(0, self.in_flight - self.running)

    # ----- the engine thread -----
    def _deliver(self, request: _Request, delta: Delta) -> None:
        if delta.finish_reason is not None:
            with self._wake:
                self._active[request.client] -= 1
                if self._active[request.client] <= 0:
                    del self._active[request.client]
        request.sink(delta)

    def _end_request(self, request: _Request, reason: FinishReason) -> None:
        """Finish every sample of a request that has no sequences yet."""
        for i in range(request.params.n):
            delta = Delta(request.request_id, i, [], [], "", reason, self.policy_version)
            self._deliver(request, delta)

    def _admitted(self) -> bool:
        return bool(self._running or self._parked or self._prefilling)

    def _loop(self) -> None:
        with torch.inference_mode():
            while True:
                with self._wake:
                    while not (
                        self._stopping
                        or self._waiting
                        or self._admitted()
                        or self._update
                        or self._aborted
                    ):
                        self._wake.wait()
                    if self._stopping:
                        break
                    aborted, self._aborted = self._aborted, set()
                    update = self._update
                try:
                    self._step(aborted, update)
                except Exception:  # never leave callers hanging on a crashed step
                    log.exception("engine step failed; failing the admitted requests")
                    self._end_admitted(FinishReason.CANCELLED)
        self._end_admitted(FinishReason.CANCELLED)
        with self._wake:
            waiting, self._waiting = self._waiting, {}
        for queue in waiting.values():
            for request in queue:
                self._end_request(request, FinishReason.CANCELLED)

    def _end_admitted(self, reason: FinishReason) -> None:
        """End every sequence past the waiting queue (running, parked, prefilling)."""
        for seq in list(self._running):
            self._finish(seq, reason)
        for queue in self._parked.values():
            for seq in queue:
                self._finish(seq, reason)
        for prefill in self._prefilling.values():
            self._end_request(prefill.request, reason)
        self._running, self._parked, self._prefilling = [], {}, {}
        self._batch.clear()
        self._batch_dirty = True

    def _step(self, aborted: set[str], update: _WeightUpdate | None) -> None:
        if aborted:
            self._abort(aborted)
        if update is not None:
            if update.mode == "rerun":
                self._end_admitted(FinishReason.RESTARTED)
            if not self._admitted():
                self._apply(update)
                update = None
        self._prefill_step(start_new=update is None)
        self._compose()
        if self._running:
            self._decode()
        self._forget_idle_clients()

    def _abort(self, ids: set[str]) -> None:
        for seq in [s for s in self._running if s.request.request_id in ids]:
            self._finish(seq, FinishReason.CANCELLED)
        for queue in self._parked.values():
            for seq in [s for s in queue if s.request.request_id in ids]:
                queue.remove(seq)
                self._finish(seq, FinishReason.CANCELLED)
        for client, prefill in list(self._prefilling.items()):
            if prefill.request.request_id in ids:
                del self._prefilling[client]
                self._end_request(prefill.request, FinishReason.CANCELLED)
        dropped: list[_Request] = []
        with self._wake:
            for client, waiting in list(self._waiting.items()):
                kept = deque(r for r in waiting if r.request_id not in ids)
                dropped += [r for r in waiting if r.request_id in ids]
                if kept:
                    self._waiting[client] = kept
                else:
                    del self._waiting[client]
        for request in dropped:
            self._end_request(request, FinishReason.CANCELLED)

    def _forget_idle_clients(self) -> None:
        with self._wake:
            busy = set(self._waiting)
        busy |= {s.client for s in self._running} | set(self._prefilling)
        busy |= {c for c, q in self._parked.items() if q}
        self._parked = {c: q for c, q in self._parked.items() if q}
        self._clients = {c: None for c in self._clients if c in busy}

    def _ready(self) -> Counter[str]:
        """Sequences per client that could decode now (in the batch or parked)."""
        ready: Counter[str] = Counter(s.client for s in self._running)
        for client, queue in self._parked.items():
            ready[client] += len(queue)
        return ready

    def _prefill_step(self, *, start_new: bool) -> None:
        """Prefill up to `max_prefill_tokens` prompt tokens, divided fairly among clients.

        A started prefill always continues; a new one starts only for a client with fewer
        ready sequences than its fair share of the batch (so a huge request is prefilled
        as its sequences get slots, not all at once).
        """
        with self._wake:
            waiting = {c: list(q) for c, q in self._waiting.items() if q} if start_new else {}
        for client in [*self._prefilling, *waiting]:
            self._clients.setdefault(client, None)
        ready = self._ready()
        demand = {
            c: ready[c]
            + (self._prefilling[c].request.params.n if c in self._prefilling else 0)
            + sum(r.params.n for r in waiting.get(c, ()))
            for c in self._clients
        }
        slots = fair_shares(self.max_batch_size, demand)
        tokens: dict[str, int] = {}
        for client in self._clients:
            started = self._prefilling.get(client)
            wanted = started.remaining if started is not None else 0
            if client in waiting and ready[client] < slots[client]:
                wanted += sum(len(r.prompt_ids) for r in waiting[client])
            if wanted:
                tokens[client] = min(wanted, self.max_prefill_tokens)
        for client, budget in fair_shares(self.max_prefill_tokens, tokens).items():
            while budget > 0:
                prefill = self._prefilling.get(client)
                if prefill is None:
                    if not start_new or ready[client] >= slots[client]:
                        break
                    prefill = self._start_prefill(client)
                    if prefill is None:
                        break
                take = min(budget, prefill.remaining)
                self._prefill_chunk(prefill, take)
                budget -= take
                if prefill.remaining == 0:
                    ready[client] += self._complete_prefill(prefill)

    def _start_prefill(self, client: str) -> _Prefill | None:
        with self._wake:
            queue = self._waiting.get(client)
            if not queue:
                return None
            request = queue.popleft()
            if not queue:
                del self._waiting[client]
        prefill = _Prefill(request)
        reused, kv = self.prefix_cache.lookup(request.prompt_ids)
        for layer, (keys, values) in enumerate(kv):
            prefill.cache.update(keys, values, layer)  # copies: the entry stays as it is
        prefill.done = reused
        self._prefilling[client] = prefill
        return prefill

    def _prefill_chunk(self, prefill: _Prefill, take: int) -> None:
        chunk = prefill.request.prompt_ids[prefill.done : prefill.done + take]
        ids = torch.tensor([chunk], device=self.device)
        out = self.model(input_ids=ids, cache=prefill.cache, use_cache=True)
        prefill.done += take
        if prefill.remaining == 0:
            prefill.last_logits = out.logits[:, -1, :].cpu()

    def _complete_prefill(self, prefill: _Prefill) -> int:
        """Sample the first token of each of the request's n samples; park them all."""
        request = prefill.request
        logits = prefill.last_logits
        assert logits is not None
        kv = own_cache(prefill.cache)
        n = request.params.n
        generators = [make_generator(request.params.seed, i) for i in range(n)]
        spec = request.params.structured_output
        matchers = [self.grammars.matcher(spec) if spec else None for _ in range(n)]
        logits = logits.expand(n, -1)
        masked = mask_logits(logits, matchers, self.grammars.allocate(n)) if spec else None
        tokens, logprobs, tops = sample(logits, [request.params] * n, generators, masked)
        # From here on the request is its sequences (a failure above leaves it prefilling,
        # so the failure path still ends all of its samples).
        del self._prefilling[request.client]
        seqs = [
            _Sequence(
                request, i, generators[i], Slot(len(request.prompt_ids), own=kv), tokens[i],
                matcher=matchers[i],
            )
            for i in range(n)
        ]  # fmt: skip
        parked = self._parked.setdefault(request.client, deque())
        kept = 0
        for i, seq in enumerate(seqs):
            if not self._emit(seq, tokens[i], logprobs[i], tops[i]):
                parked.append(seq)
                kept += 1
        return kept

    def _compose(self) -> None:
        """Make the batch each client's fair share of the ready sequences."""
        ready = self._ready()
        shares = fair_shares(self.max_batch_size, {c: ready[c] for c in self._clients})
        running = Counter(s.client for s in self._running)
        for seq in reversed(list(self._running)):  # the latest to join leave first
            if running[seq.client] > shares.get(seq.client, 0):
                running[seq.client] -= 1
                self._batch.detach(seq.slot)
                self._running.remove(seq)
                self._parked.setdefault(seq.client, deque()).appendleft(seq)
                self._batch_dirty = True
                self.preemptions += 1
        for client in self._clients:
            queue = self._parked.get(client)
            while queue and running[client] < shares.get(client, 0):
                self._running.append(queue.popleft())
                running[client] += 1
                self._batch_dirty = True
        if not self._running:
            self._batch.clear()

    def _apply(self, update: _WeightUpdate) -> None:
        # state_dict() tensors share storage with the parameters (tied ones included).
        state = self.model.state_dict()
        for name, tensor in update.tensors.items():
            target = state[name]
            target.copy_(tensor.to(dtype=target.dtype, device=target.device))
        self.prefix_cache.clear()  # its keys and values came from the old weights
        self.policy_version = max(self.policy_version + 1, update.version)
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
            if tensor.is_floating_point() and not bool(torch.isfinite(tensor).all()):
                raise ValueError(f"{name!r} holds NaN or infinite values")
            checked[name] = tensor
        if not checked:
            raise ValueError("no tensors in the update")
        return checked

    def _decode(self) -> None:
        if self._batch_dirty:
            self._batch.rebuild([s.slot for s in self._running])
            self._batch_dirty = False
        mask = self._batch.extend_mask()
        ids = torch.tensor([[s.next_token] for s in self._running], device=self.device)
        positions = torch.tensor([[s.slot.length] for s in self._running], device=self.device)
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
        logits = out.logits[:, -1, :].cpu()
        matchers = [s.matcher for s in self._running]
        constrained = any(m is not None for m in matchers)
        masked = (
            mask_logits(logits, matchers, self.grammars.allocate(len(matchers)))
            if constrained
            else None
        )
        tokens, logprobs, tops = sample(
            logits,
            [s.request.params for s in self._running],
            [s.generator for s in self._running],
            masked,
        )
        running = list(self._running)
        for seq, token, logprob, top in zip(running, tokens, logprobs, tops, strict=True):
            seq.next_token = token
            self._emit(seq, token, logprob, top)  # a finished sequence leaves the batch

    def _emit(self, seq: _Sequence, token: int, logprob: float, top: TopLogprobs) -> bool:
        """Record a sampled token and send the delta; True when the sequence is done
        (then it has been taken out of the batch)."""
        seq.output_ids.append(token)
        params = seq.request.params
        # The mask only offered tokens the matcher accepts; were one refused, the sample
        # ends rather than leave its format.
        complete = seq.matcher is not None and (
            not seq.matcher.accept_token(token) or seq.matcher.is_terminated()
        )
        text = str(self.tokenizer.decode(seq.output_ids, skip_special_tokens=True))
        finish: FinishReason | None = None
        stop_at = _find_stop(text, params.stop, seq.text_sent)
        if stop_at is not None:
            text, finish = text[:stop_at], FinishReason.STOP
        elif (token in self.eos_token_ids and not params.ignore_eos) or complete:
            finish = FinishReason.STOP
        elif len(seq.output_ids) >= params.max_tokens or seq.slot.length + 1 >= self.context_length:
            finish = FinishReason.LENGTH
        # Hold back a trailing partial UTF-8 character until the next token completes it.
        ready = text if finish is not None or not text.endswith("\ufffd") else text.rstrip("\ufffd")
        new_text, seq.text_sent = ready[seq.text_sent :], max(seq.text_sent, len(ready))
        if finish is not None:
            seq.finished = True
            self._remember(seq)
            self._remove(seq)
        delta = Delta(
            seq.request.request_id,
            seq.index,
            [token],
            [logprob],
            new_text,
            finish,
            self.policy_version,
            [top] if params.top_logprobs else [],
        )
        self._deliver(seq.request, delta)
        return finish is not None

    def _remember(self, seq: _Sequence) -> None:
        """Offer a finished sequence's cache to the prefix cache (its prompt and the
        output tokens the cache holds: the last sampled token never entered it)."""
        if not self.prefix_cache.enabled:
            return
        slot, prompt = seq.slot, seq.request.prompt_ids
        ids = prompt + seq.output_ids[: slot.length - len(prompt)]
        kv = slot.own if slot.own is not None else self._batch.copy_of(slot)
        self.prefix_cache.store(ids, kv)

    def _finish(self, seq: _Sequence, reason: FinishReason) -> None:
        if seq.finished:
            return
        seq.finished = True
        self._remove(seq)
        delta = Delta(seq.request.request_id, seq.index, [], [], "", reason, self.policy_version)
        self._deliver(seq.request, delta)

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


def wait_idle(engine: Engine, timeout_s: float = 10.0) -> None:
    deadline = time.monotonic() + timeout_s
    while engine.in_flight and time.monotonic() < deadline:
        time.sleep(0.01)
