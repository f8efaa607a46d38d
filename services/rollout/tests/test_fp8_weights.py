"""Loading FP8 weights with per-block scales ("<param>_scale"), as the trainer publishes them."""

from __future__ import annotations

import pytest
import torch

from gantry.kernels.fp8_quant import quantize_weight
from gantry.rollout.generator import TransformersGenerator

PROJ = "model.layers.0.self_attn.q_proj.weight"


async def test_fp8_codes_with_scales_load_as_their_dequantized_values(
    generator: TransformersGenerator,
) -> None:
    state = generator.engine.model.state_dict()
    fresh = torch.randn_like(state[PROJ]) * 0.05
    q = quantize_weight(fresh)
    assert q.data.dtype == torch.float8_e4m3fn
    version = await generator.update_weights({PROJ: q.data, PROJ + "_scale": q.scale}, "drain")
    assert version == 1
    loaded = generator.engine.model.state_dict()[PROJ]
    expected = q.dequantize(loaded.dtype)
    assert torch.equal(loaded, expected)  # codes x block scale, not the raw codes
    assert (loaded - fresh).abs().max() < 0.1 * fresh.abs().max()  # within FP8 error


async def test_fp8_weights_without_or_with_a_wrong_scale_are_refused(
    generator: TransformersGenerator,
) -> None:
    state = generator.engine.model.state_dict()
    q = quantize_weight(state[PROJ])
    with pytest.raises(ValueError, match="_scale"):
        await generator.update_weights({PROJ: q.data}, "drain")
    with pytest.raises(ValueError, match="_scale"):
        await generator.update_weights({PROJ: q.data, PROJ + "_scale": torch.ones(2, 2)}, "drain")
    assert generator.policy_version == 0
