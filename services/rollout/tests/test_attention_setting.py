"""The transformers engine's attention setting (eager makes decode match the trainer's
full-sequence forward bit for bit on CPU: services/trainer/tests/test_master_weights.py)."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from gantry.rollout import service
from gantry.rollout.settings import RolloutSettings


def test_attention_setting_reaches_the_served_model() -> None:
    with pytest.raises(ValidationError, match="attn_implementation"):
        RolloutSettings(auth_disabled=True, attn_implementation="flash")  # type: ignore[arg-type]
    settings = RolloutSettings(auth_disabled=True, attn_implementation="eager", max_batch_size=2)
    generator = service.load_generator(settings)
    try:
        config = generator.engine.model.config  # type: ignore[attr-defined]
        assert config._attn_implementation == "eager"
    finally:
        generator.engine.stop()  # type: ignore[attr-defined]
