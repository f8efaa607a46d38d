from __future__ import annotations

from collections.abc import Iterator

import pytest

from gantry.core.testing.threaded import serve_in_thread
from gantry.envfarm.service import EnvFarmService
from gantry.envfarm.settings import EnvFarmSettings
from gantry.models.loading import CausalLM, load_causal_lm
from gantry.models.tiny import tiny_model_dir
from gantry.rollout.generator import TransformersGenerator
from gantry.rollout.service import RolloutService
from gantry.rollout.settings import RolloutSettings

from .helpers import common_settings


@pytest.fixture(scope="session")
def envfarm_target(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    envfarm = EnvFarmService(EnvFarmSettings(**common_settings(tmp_path_factory.mktemp("farm"))))
    with serve_in_thread(envfarm) as farm:
        yield f"127.0.0.1:{farm.port}"


@pytest.fixture(scope="session")
def stack(
    tmp_path_factory: pytest.TempPathFactory, envfarm_target: str
) -> Iterator[tuple[RolloutService, str]]:
    """rollout (with a tiny VLM) wired to a real envfarm; envfarm is also the named peer
    "farm", and checkpoints load from a root of the test's own."""
    rollout = RolloutService(
        RolloutSettings(
            **common_settings(tmp_path_factory.mktemp("rollout")),
            envfarm_target=envfarm_target,
            envfarm_peers={"farm": envfarm_target},
            checkpoints_root=tmp_path_factory.mktemp("checkpoints"),
            max_batch_size=16,
            vlm_model_path="tiny",
            torch_threads=1,
        )
    )
    with serve_in_thread(rollout) as running:
        yield rollout, f"127.0.0.1:{running.port}"


@pytest.fixture(scope="session")
def bundle() -> CausalLM:
    return load_causal_lm(tiny_model_dir("causal_lm"))


@pytest.fixture
def generator(bundle: CausalLM) -> Iterator[TransformersGenerator]:
    fresh = load_causal_lm(bundle.path)  # its own weights: tests may update them
    gen = TransformersGenerator(fresh, max_batch_size=8)
    yield gen
    gen.engine.stop()
