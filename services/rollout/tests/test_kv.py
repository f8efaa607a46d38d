"""The batch KV cache: preallocated buffers written in place give the very same logits as
transformers' concatenating DynamicCache, and grow rarely."""

from __future__ import annotations

import torch
from transformers import DynamicCache

from gantry.models.loading import CausalLM
from gantry.rollout.engine.kv import BatchKV, GrowingLayer, Slot, capacity_for, own_cache


def test_capacity_leaves_headroom_within_the_limit() -> None:
    assert capacity_for(10, 1000) == 74  # at least MIN_HEADROOM more
    assert capacity_for(400, 1000) == 600  # half again
    assert capacity_for(900, 1000) == 1000  # never past the context length
    assert capacity_for(1200, 1000) == 1200  # unless the content already is


@torch.inference_mode()
def test_decoding_in_place_matches_a_concatenating_cache_bit_for_bit(bundle: CausalLM) -> None:
    model = bundle.model.train(False)
    prompts = [[3, 4, 5, 6, 7, 8, 9], [11, 12, 13]]  # different lengths: left padding
    steps = 90  # past the first capacity (7 + 64): the buffers grow once
    owns = []
    for prompt in prompts:
        prefill = DynamicCache()
        model(input_ids=torch.tensor([prompt]), cache=prefill, use_cache=True)
        owns.append(own_cache(prefill))
    # The reference: the same left-padded rows in a DynamicCache, as the engine kept them
    # before (each step concatenates one position).
    reference = DynamicCache()
    for index in range(len(owns[0])):
        keys = torch.cat([_left_pad(own[index][0], 7) for own in owns])
        values = torch.cat([_left_pad(own[index][1], 7) for own in owns])
        reference.update(keys, values, index)
    batch = BatchKV(limit=512)
    batch.rebuild([Slot(len(p), own=own) for p, own in zip(prompts, owns, strict=True)])
    assert batch.mask is not None
    padded_mask = batch.mask.clone()
    assert padded_mask.tolist() == [[1] * 7, [0] * 4 + [1] * 3]
    assert batch.cache is not None
    layer = batch.cache.layers[0]
    assert isinstance(layer, GrowingLayer)
    capacities = {layer.capacity}
    tokens = torch.tensor([[21], [22]])
    for step in range(steps):
        position = torch.tensor([[len(p) + step] for p in prompts])
        mask = batch.extend_mask()
        ours = model(
            input_ids=tokens, attention_mask=mask, position_ids=position, cache=batch.cache
        ).logits
        padded_mask = torch.cat([padded_mask, torch.ones(2, 1, dtype=torch.long)], 1)
        theirs = model(
            input_ids=tokens, attention_mask=padded_mask, position_ids=position, cache=reference
        ).logits
        assert torch.equal(ours, theirs), f"step {step}"
        assert torch.equal(mask, padded_mask)
        capacities.add(layer.capacity)
        tokens = ours[:, -1].argmax(-1, keepdim=True)
    assert sorted(capacities) == [7 + 64, capacity_for(7 + 64 + 1, 512)]  # grew once
    assert layer.get_seq_length() == 7 + steps
    assert torch.equal(layer.keys, reference.layers[0].keys)  # type: ignore[union-attr,arg-type]


def _left_pad(tensor: torch.Tensor, length: int) -> torch.Tensor:
    pad = tensor.new_zeros(*tensor.shape[:2], length - tensor.shape[2], tensor.shape[3])
    return torch.cat([pad, tensor], dim=2)
