from __future__ import annotations

from pathlib import Path

import pytest

from gantry.envfarm.export_sft import export
from gantry.models.tiny import tiny_model_dir

DEMO_ENV = "maze_2d"
DEMO_SEEDS = range(0, 4)


@pytest.fixture(scope="session")
def tiny_path() -> str:
    return str(tiny_model_dir("causal_lm"))


@pytest.fixture(scope="session")
def demos(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Real envfarm solver demonstrations (text observations, feedback), as exported."""
    out = tmp_path_factory.mktemp("demos")
    return export(DEMO_ENV, "easy", DEMO_SEEDS, out, mode="text", feedback=True)
