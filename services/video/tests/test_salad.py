"""SALAD on the tiny Wan: exact dense equivalence, what the gate and sparsity change, tuning."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from diffusers import WanTransformer3DModel
from typer.testing import CliRunner

from gantry.models.tiny.wan import tiny_wan_dir
from gantry.video.cli import app
from gantry.video.engine import WanEngine
from gantry.video.media import encode_mp4
from gantry.video.salad import (
    AttentionRuntime,
    AttentionSettings,
    SaladProcessor,
    install_salad,
    load_salad,
    salad_parameters,
    save_salad,
)
from gantry.video.tune import TuneConfig, tune_salad

from .conftest import scene


@pytest.fixture(scope="module")
def model() -> Any:
    return WanTransformer3DModel.from_pretrained(
        str(tiny_wan_dir()), subfolder="transformer"
    ).eval()


def inputs(frames: int = 3) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    return (
        torch.randn(1, 4, frames, 8, 8, generator=g),
        torch.tensor([700.0]),
        torch.randn(1, 16, 32, generator=g),
    )


def run(model: Any, x: torch.Tensor, t: torch.Tensor, e: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        out: torch.Tensor = model(x, t, e, return_dict=False)[0]
    return out


def test_zero_sparsity_and_zero_gate_is_exactly_dense(model: Any) -> None:
    x, t, e = inputs()
    dense = run(model, x, t, e)
    runtime = AttentionRuntime()
    processors = install_salad(model, runtime)
    assert len(processors) == len(model.blocks)
    assert all(isinstance(b.attn1.processor, SaladProcessor) for b in model.blocks)
    assert runtime.grid == (1, 1, 1)
    for mode in ("dense", "sparse", "salad"):
        runtime.settings = AttentionSettings(mode=mode, sparsity=0.0)  # type: ignore[arg-type]
        assert torch.equal(run(model, x, t, e), dense), mode
    assert runtime.grid == (3, 4, 4)  # the hook saw the latent grid (patch 1x2x2)
    # The new parameters are a small fraction of the model (SALAD: ~5%).
    extra = sum(p.numel() for p in salad_parameters(model).values())
    assert 0 < extra < 0.1 * sum(p.numel() for p in model.parameters())

    # An open gate changes the output; sparsity changes it too.
    runtime.settings = AttentionSettings(mode="salad", sparsity=0.0)
    with torch.no_grad():
        model.blocks[0].attn1.processor.gate.bias.fill_(0.5)
    gated = run(model, x, t, e)
    assert not torch.allclose(gated, dense)
    with torch.no_grad():
        model.blocks[0].attn1.processor.gate.bias.zero_()
    runtime.settings = AttentionSettings(
        mode="sparse", sparsity=0.75, block_size=16, window=(1, 2, 2)
    )
    sparse = run(model, x, t, e)
    assert not torch.allclose(sparse, dense)
    assert (sparse - dense).abs().max() < 10 * dense.abs().max()


def test_weights_round_trip(model: Any, tmp_path: Path) -> None:
    if not isinstance(model.blocks[0].attn1.processor, SaladProcessor):
        install_salad(model, AttentionRuntime())
    with torch.no_grad():
        for param in salad_parameters(model).values():
            param.add_(0.01)
    save_salad(model, tmp_path / "s.safetensors")
    want = {k: v.clone() for k, v in salad_parameters(model).items()}
    with torch.no_grad():
        for param in salad_parameters(model).values():
            param.zero_()
    load_salad(model, tmp_path / "s.safetensors")
    for name, param in salad_parameters(model).items():
        assert torch.equal(param, want[name])


@pytest.mark.slow
def test_tuning_trains_only_salad_and_lowers_the_loss(tmp_path: Path) -> None:
    engine = WanEngine(
        tiny_wan_dir(), model_id="tiny", tiny=True, device=torch.device("cpu"), dtype=torch.float32
    )
    engine.load()
    frozen = {
        k: v.clone()
        for k, v in engine.pipe.transformer.state_dict().items()
        if ".processor." not in k
    }
    clips = []
    for i in range(2):
        path = tmp_path / f"red_square_{i}.mp4"
        encode_mp4(scene(5, 32, shift=4 * i), 8.0, path)
        clips.append(path)
    config = TuneConfig(
        steps=30,
        learning_rate=2e-2,
        sparsity=0.5,
        block_size=16,
        window=(1, 2, 2),
        frames=5,
        width=32,
        height=32,
    )
    report = tune_salad(engine, clips, tmp_path / "out", config)
    assert report.loss_after < report.loss_before
    assert report.trainable < 0.1 * report.total and report.weights.is_file()
    after = engine.pipe.transformer.state_dict()
    assert all(torch.equal(after[k], v) for k, v in frozen.items())  # Wan stayed frozen


def test_tune_command_refuses_bad_sizes(tmp_path: Path) -> None:
    video = tmp_path / "v.mp4"
    encode_mp4(np.zeros((5, 32, 32, 3), np.uint8), 8.0, video)
    args = ["tune", "--video", str(video), "--out", str(tmp_path), "--frames", "8"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code != 0 and "4k+1" in result.output
