"""Prefix caching: a finished sequence's keys and values, reused by later prompts.

A multi-turn episode's next prompt repeats the previous one (system prompt, task, the
turns so far) and adds the new observation; the samples of a GRPO group share their
prompt. The engine keeps the KV of recently finished sequences (prompt + output, as the
cache held them) and starts a new prompt's prefill after its longest common prefix with
any of them. Causal attention makes that exact: the keys and values of position i depend
only on tokens 0..i, so a shared prefix has the same cache whatever followed it. Only
the last prompt position is always recomputed (its logits give the first sample).

Entries are whole per-layer tensors of one sequence, evicted least-recently-used past a
byte budget. A weight update clears the cache: its KV belongs to the old weights.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass

from gantry.rollout.engine.kv import LayerKV

MIN_REUSE = 16  # shorter matches are not worth a lookup's copy


@dataclass
class _Entry:
    ids: list[int]
    kv: LayerKV  # per layer: keys, values [1, H, len(ids), D]
    nbytes: int


def common_prefix(a: list[int], b: list[int]) -> int:
    n = min(len(a), len(b))
    i = 0
    while i < n and a[i] == b[i]:
        i += 1
    return i


class PrefixCache:
    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max(0, max_bytes)
        self._entries: OrderedDict[int, _Entry] = OrderedDict()
        self._next = 0
        self.nbytes = 0
        self.hits = 0
        self.reused_tokens = 0

    @property
    def enabled(self) -> bool:
        return self.max_bytes > 0

    def __len__(self) -> int:
        return len(self._entries)

    def store(self, ids: list[int], kv: LayerKV) -> None:
        """Keep `kv` (tensors this cache may hold: copies, not views of a live batch)
        for the tokens `ids`."""
        nbytes = sum(k.nbytes + v.nbytes for k, v in kv)
        if not self.enabled or nbytes > self.max_bytes or len(ids) < MIN_REUSE:
            return
        for key, entry in list(self._entries.items()):
            if common_prefix(entry.ids, ids) == len(entry.ids):
                self._drop(key)  # the new entry covers it
        self._entries[self._next] = _Entry(list(ids), kv, nbytes)
        self._next += 1
        self.nbytes += nbytes
        while self.nbytes > self.max_bytes:
            self._drop(next(iter(self._entries)))

    def lookup(self, prompt: list[int]) -> tuple[int, LayerKV]:
        """(n, kv) for the longest cached prefix of `prompt`, at most len(prompt) - 1
        tokens (the last prompt position is always computed); (0, []) for none."""
        best_key, best = -1, 0
        for key, entry in self._entries.items():
            n = common_prefix(entry.ids, prompt)
            if n > best:
                best_key, best = key, n
        best = min(best, len(prompt) - 1)
        if best < MIN_REUSE:
            return 0, []
        self._entries.move_to_end(best_key)
        self.hits += 1
        self.reused_tokens += best
        kv = self._entries[best_key].kv
        return best, [(k[:, :, :best], v[:, :, :best]) for k, v in kv]

    def clear(self) -> None:
        self._entries.clear()
        self.nbytes = 0

    def _drop(self, key: int) -> None:
        self.nbytes -= self._entries.pop(key).nbytes
