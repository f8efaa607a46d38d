"""Shared fixtures: one tiny random VLM per session (seconds to build)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from gantry.models.tiny.vlm import build_tiny_vlm


@pytest.fixture(scope="session", autouse=True)
def _one_thread() -> None:
    # The suite runs two files at once on two cores; more threads only contend.
    torch.set_num_threads(1)


@pytest.fixture(scope="session")
def tiny_vlm(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_vlm(tmp_path_factory.mktemp("vlm") / "vlm", image_size=64, patch_size=16)
