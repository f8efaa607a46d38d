from __future__ import annotations

from pathlib import Path

import pytest

from gantry.envfarm.export_sft import export
from gantry.models.tiny import tiny_model_dir

from .helpers import short_dataset

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


@pytest.fixture(scope="session")
def chats(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Short chats (~60 tokens each): for tests about runs, checkpoints and processes, where
    the demonstrations' 1-2k-token sequences would only make each step slower."""
    return short_dataset(tmp_path_factory.mktemp("chats"))
