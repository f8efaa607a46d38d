"""The running batch's KV cache: one left-padded cache for all sequences in flight.

Each layer's keys and values live in preallocated [B, H, capacity, D] buffers: a decode
step writes its one new position in place and attention sees only the filled prefix (a
view), so a step costs no copy of the cache. Buffers grow by half when full (a copy once
per ~L/2 steps, never past the context length), so decoding L tokens copies O(L) instead
of the O(L^2) a concatenating cache copies.

When sequences join or leave, the cache is rebuilt: each survivor's own keys and values
are cut out of the old batch (dropping its left padding) and re-padded with the
newcomers' caches to the new longest length. A sequence taken out of the batch (preempted
for fairness) keeps a copy of its own rows and rejoins later without recomputation.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, cast

import torch
from transformers import DynamicCache
from transformers.cache_utils import Cache, CacheLayerMixin

LayerKV = list[tuple[torch.Tensor, torch.Tensor]]  # per layer: keys, values [1, H, L, D]

MIN_HEADROOM = 64  # positions reserved beyond the filled prefix on (re)allocation


@dataclass
class Slot:
    """Where one sequence's cache lives: its own tensors, or a row of the batch."""

    length: int  # tokens with keys/values in the cache
    own: LayerKV | None = None  # set until the sequence joins a batch
    row: int = -1
    pad: int = 0


def capacity_for(needed: int, limit: int) -> int:
    """Positions to allocate for `needed`: half again as many (at least MIN_HEADROOM
    more), never past `limit` (the context length) unless `needed` itself is."""
    return max(needed, min(limit, needed + max(MIN_HEADROOM, needed // 2)))


class GrowingLayer(CacheLayerMixin):  # type: ignore[no-untyped-call]
    """One layer's cache in buffers written in place; `keys`/`values` are the filled
    prefix (views of the buffers), as a DynamicLayer's would be."""

    is_sliding = False

    def __init__(self, keys: torch.Tensor, values: torch.Tensor, length: int, limit: int):
        """`keys`/`values` [B, H, capacity, D]: buffers whose first `length` positions
        are filled; `limit`: the most positions they ever need (the context length)."""
        super().__init__()  # type: ignore[no-untyped-call]
        self._keys, self._values, self.limit = keys, values, limit
        self.device = keys.device
        self.is_initialized = True
        self._fill(length)

    @classmethod
    def left_padded(
        cls, rows: list[tuple[torch.Tensor, torch.Tensor]], length: int, limit: int
    ) -> GrowingLayer:
        """A batch of `rows` ([1, H, L_i, D] each), each left-padded with zeros to `length`."""
        buffers = []
        for part in (0, 1):
            first = rows[0][part]
            shape = (len(rows), first.shape[1], capacity_for(length, limit), first.shape[3])
            buffer = first.new_empty(shape)
            for row, kv in enumerate(rows):
                pad = length - kv[part].shape[2]
                # Padding is masked out but must be finite: 0 x NaN would poison attention.
                buffer[row, :, :pad].zero_()
                buffer[row, :, pad:length].copy_(kv[part][0])
            buffers.append(buffer)
        return cls(buffers[0], buffers[1], length, limit)

    def _fill(self, length: int) -> None:
        self.length = length
        self.keys = self._keys[:, :, :length]
        self.values = self._values[:, :, :length]

    def lazy_initialization(self, key_states: torch.Tensor, value_states: torch.Tensor) -> None:
        raise RuntimeError("a GrowingLayer is created with its content")

    def update(
        self, key_states: torch.Tensor, value_states: torch.Tensor, *args: Any, **kwargs: Any
    ) -> tuple[torch.Tensor, torch.Tensor]:
        start, end = self.length, self.length + key_states.shape[2]
        if end > self.capacity:
            capacity = capacity_for(end, self.limit)
            self._keys = _regrow(self._keys, start, capacity)
            self._values = _regrow(self._values, start, capacity)
        self._keys[:, :, start:end].copy_(key_states)
        self._values[:, :, start:end].copy_(value_states)
        self._fill(end)
        return self._keys[:, :, :end], self._values[:, :, :end]

    def get_mask_sizes(self, query_length: int) -> tuple[int, int]:
        return self.length + query_length, 0

    def get_seq_length(self) -> int:
        return self.length

    def get_max_length(self) -> int:
        return -1  # grows on demand

    @property
    def capacity(self) -> int:
        return int(self._keys.shape[2])


def _regrow(buffer: torch.Tensor, filled: int, capacity: int) -> torch.Tensor:
    grown = buffer.new_empty(*buffer.shape[:2], capacity, buffer.shape[3])
    grown[:, :, :filled].copy_(buffer[:, :, :filled])
    return grown


class BatchKV:
    def __init__(self, limit: int = 1 << 30) -> None:
        """`limit`: the most positions a row can reach (the context length)."""
        self.limit = limit
        self.cache: Cache | None = None
        self._mask: torch.Tensor | None = None  # [B, capacity]: 1 = real token, 0 = padding
        self.length = 0  # positions in the cache (padding included)

    @property
    def mask(self) -> torch.Tensor | None:
        return None if self._mask is None else self._mask[:, : self.length]

    def rebuild(self, slots: list[Slot]) -> None:
        """Make `slots` (in order) the batch; rows and pads are updated in place."""
        layers: list[LayerKV] = [self._extract(slot) for slot in slots]
        longest = max(slot.length for slot in slots)
        grown = [
            GrowingLayer.left_padded([kv[layer] for kv in layers], longest, self.limit)
            for layer in range(len(layers[0]))
        ]
        device = layers[0][0][0].device  # the cache lives where the model runs
        mask = torch.ones(
            len(slots), capacity_for(longest, self.limit), dtype=torch.long, device=device
        )
        for row, slot in enumerate(slots):
            slot.row, slot.pad, slot.own = row, longest - slot.length, None
            mask[row, : slot.pad] = 0
        self.cache = Cache(layers=cast(Any, grown))
        self._mask, self.length = mask, longest

    def _extract(self, slot: Slot) -> LayerKV:
        if slot.own is not None:
            return slot.own
        assert self.cache is not None
        return [
            (
                layer.keys[slot.row : slot.row + 1, :, slot.pad :],
                layer.values[slot.row : slot.row + 1, :, slot.pad :],
            )
            for layer in cast(Any, self.cache).layers
        ]

    def copy_of(self, slot: Slot) -> LayerKV:
        """A copy of a batch row's keys and values (the batch's buffers are reused)."""
        return [(k.clone(), v.clone()) for k, v in self._extract(slot)]

    def detach(self, slot: Slot) -> None:
        """Copy a batch row's keys and values out (the sequence leaves the batch, keeping
        its cache exactly, so it can rejoin later without recomputation)."""
        slot.own = self.copy_of(slot)
        slot.row, slot.pad = -1, 0

    def extend_mask(self) -> torch.Tensor:
        """The attention mask for the next decode step (one more real position per row)."""
        assert self._mask is not None
        self.length += 1
        if self.length > self._mask.shape[1]:  # the new columns are real tokens: ones
            grown = self._mask.new_ones(self._mask.shape[0], capacity_for(self.length, self.limit))
            grown[:, : self._mask.shape[1]] = self._mask
            self._mask = grown
        return self._mask[:, : self.length]

    def clear(self) -> None:
        self.cache, self._mask, self.length = None, None, 0


def own_cache(cache: DynamicCache) -> LayerKV:
    """A prefill cache (batch of one) as plain per-layer tensors."""
    return [(layer.keys, layer.values) for layer in cast(Any, cache).layers]
