"""Shared fixtures: tiny checkpoints built once per session, and a network guard.

Everything in gantry.models must work offline; the guard makes any attempt to open a
non-loopback connection fail loudly instead of silently reaching the Hub.
"""

from __future__ import annotations

import socket
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from gantry.models.tiny import build_tiny_causal_lm, build_tiny_encoder, build_tiny_vlm

_LOOPBACK = {"127.0.0.1", "::1", "localhost"}


@contextmanager
def no_network() -> Iterator[None]:
    real_connect = socket.socket.connect

    def guarded(self: socket.socket, address: Any) -> None:
        if self.family in (socket.AF_INET, socket.AF_INET6) and address[0] not in _LOOPBACK:
            raise AssertionError(f"gantry.models tried to reach the network: {address!r}")
        real_connect(self, address)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(socket.socket, "connect", guarded)
        mp.setenv("HF_HUB_OFFLINE", "1")
        mp.setenv("TRANSFORMERS_OFFLINE", "1")
        yield


@pytest.fixture(autouse=True)
def _offline() -> Iterator[None]:
    with no_network():
        yield


@pytest.fixture(scope="session")
def causal_lm_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    with no_network():
        return build_tiny_causal_lm(tmp_path_factory.mktemp("tiny") / "causal_lm")


@pytest.fixture(scope="session")
def vlm_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    with no_network():
        return build_tiny_vlm(tmp_path_factory.mktemp("tiny") / "vlm")


@pytest.fixture(scope="session")
def encoder_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    with no_network():
        return build_tiny_encoder(tmp_path_factory.mktemp("tiny") / "encoder")
