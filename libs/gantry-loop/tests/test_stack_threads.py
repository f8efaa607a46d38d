"""The loop's local stack splits the cores between rollout and trainer."""

from __future__ import annotations

import os

import pytest

from gantry.loop.runner import shared_cpu_threads


def test_rollout_and_trainer_get_half_the_cores_each(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("GANTRY_ROLLOUT_TORCH_THREADS", raising=False)
    monkeypatch.delenv("GANTRY_TRAINER_TORCH_THREADS", raising=False)
    for cores, each in ((1, "1"), (2, "1"), (3, "1"), (16, "8")):
        monkeypatch.setattr(os, "sched_getaffinity", lambda _pid, n=cores: set(range(n)))
        assert shared_cpu_threads() == {
            "GANTRY_ROLLOUT_TORCH_THREADS": each,
            "GANTRY_TRAINER_TORCH_THREADS": each,
        }


def test_an_operator_setting_is_kept(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GANTRY_TRAINER_TORCH_THREADS", "6")
    monkeypatch.delenv("GANTRY_ROLLOUT_TORCH_THREADS", raising=False)
    assert set(shared_cpu_threads()) == {"GANTRY_ROLLOUT_TORCH_THREADS"}
