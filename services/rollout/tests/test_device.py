"""The transformers engine's device setting: cpu by default, cuda on request, checked at start."""

from __future__ import annotations

import pytest
import torch
from pydantic import ValidationError

from gantry.rollout import service
from gantry.rollout.settings import RolloutSettings


def settings(**fields: object) -> RolloutSettings:
    return RolloutSettings(auth_disabled=True, **fields)  # type: ignore[arg-type]


def test_device_defaults_to_cpu_and_accepts_only_cpu_or_cuda() -> None:
    assert settings().device == "cpu"
    assert settings(device="cuda").device == "cuda"
    assert settings(device="cuda:1").device == "cuda:1"
    for bad in ("gpu", "cuda:", "cuda:x", "mps", "cpu;rm", ""):
        with pytest.raises(ValidationError, match="device"):
            settings(device=bad)


def test_engine_device_refuses_a_gpu_the_host_lacks(monkeypatch: pytest.MonkeyPatch) -> None:
    assert service.engine_device("cpu") == torch.device("cpu")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(ValueError, match=r"sees no CUDA device.*GANTRY_ROLLOUT_DEVICE=cpu"):
        service.engine_device("cuda")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    assert service.engine_device("cuda:0") == torch.device("cuda", 0)
    with pytest.raises(ValueError, match="has 1 CUDA device"):
        service.engine_device("cuda:3")


def test_a_missing_gpu_fails_before_the_model_loads(monkeypatch: pytest.MonkeyPatch) -> None:
    import gantry.models.loading as loading

    def never(*args: object, **kwargs: object) -> None:
        raise AssertionError("the model was loaded before the device was checked")

    monkeypatch.setattr(loading, "load_causal_lm", never)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(ValueError, match="rollout device='cuda'"):
        service.load_generator(settings(device="cuda"))


def test_cpu_engine_reports_its_device() -> None:
    generator = service.load_generator(settings(max_batch_size=2))
    try:
        assert generator.engine.device == torch.device("cpu")  # type: ignore[attr-defined]
    finally:
        generator.engine.stop()  # type: ignore[attr-defined]
