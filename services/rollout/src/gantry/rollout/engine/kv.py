"""The running batch's KV cache: one left-padded cache for all sequences in flight.

Between decode steps the batch is reused as is (the model appends one position per
step). When sequences join or leave, the cache is rebuilt: each survivor's own keys and
values are cut out of the old batch (dropping its left padding) and re-padded with the
newcomers' caches to the new longest length. A sequence taken out of the batch (preempted
for fairness) keeps a copy of its own rows and rejoins later without recomputation.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, cast

import torch
from transformers import DynamicCache

LayerKV = list[tuple[torch.Tensor, torch.Tensor]]  # per layer: keys, values [1, H, L, D]


@dataclass
class Slot:
    """Where one sequence's cache lives: its own tensors, or a row of the batch."""

    length: int  # tokens with keys/values in the cache
    own: LayerKV | None = None  # set until the sequence joins a batch
    row: int = -1
    pad: int = 0


class BatchKV:
    def __init__(self) -> None:
        self.cache: DynamicCache | None = None
        self.mask: torch.Tensor | None = None  # [B, L]: 1 = real token, 0 = padding

    def rebuild(self, slots: list[Slot]) -> None:
        """Make `slots` (in order) the batch; rows and pads are updated in place."""
        layers: list[LayerKV] = [self._extract(slot) for slot in slots]
        longest = max(slot.length for slot in slots)
        cache = DynamicCache()
        num_layers = len(layers[0])
        for layer in range(num_layers):
            keys = [_left_pad(kv[layer][0], longest) for kv in layers]
            values = [_left_pad(kv[layer][1], longest) for kv in layers]
            cache.update(torch.cat(keys), torch.cat(values), layer)
        device = layers[0][0][0].device  # the cache lives where the model runs
        mask = torch.zeros(len(slots), longest, dtype=torch.long, device=device)
        for row, slot in enumerate(slots):
            slot.row, slot.pad, slot.own = row, longest - slot.length, None
            mask[row, slot.pad :] = 1
        self.cache, self.mask = cache, mask

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

    def detach(self, slot: Slot) -> None:
        """Copy a batch row's keys and values out (the sequence leaves the batch, keeping
        its cache exactly, so it can rejoin later without recomputation)."""
        slot.own = [(k.clone(), v.clone()) for k, v in self._extract(slot)]
        slot.row, slot.pad = -1, 0

    def extend_mask(self) -> torch.Tensor:
        """The attention mask for the next decode step (one more real position per row)."""
        assert self.mask is not None
        ones = torch.ones(self.mask.shape[0], 1, dtype=torch.long, device=self.mask.device)
        self.mask = torch.cat([self.mask, ones], 1)
        return self.mask

    def clear(self) -> None:
        self.cache, self.mask = None, None


def _left_pad(tensor: torch.Tensor, length: int) -> torch.Tensor:
    missing = length - tensor.shape[2]
    if missing == 0:
        return tensor
    pad = tensor.new_zeros(tensor.shape[0], tensor.shape[1], missing, tensor.shape[3])
    return torch.cat([pad, tensor], dim=2)


def own_cache(cache: DynamicCache) -> LayerKV:
    """A prefill cache (batch of one) as plain per-layer tensors."""
    return [(layer.keys, layer.values) for layer in cast(Any, cache).layers]
