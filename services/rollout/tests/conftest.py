from __future__ import annotations

from collections.abc import Iterator

import pytest

from gantry.models.loading import CausalLM, load_causal_lm
from gantry.models.tiny import tiny_model_dir
from gantry.rollout.generator import TransformersGenerator


@pytest.fixture(scope="session")
def bundle() -> CausalLM:
    return load_causal_lm(tiny_model_dir("causal_lm"))


@pytest.fixture
def generator(bundle: CausalLM) -> Iterator[TransformersGenerator]:
    fresh = load_causal_lm(bundle.path)  # its own weights: tests may update them
    gen = TransformersGenerator(fresh, max_batch_size=8)
    yield gen
    gen.engine.stop()
