"""Video commands: `gantry video tune ...` (found through the `gantry.commands` entry point)."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Annotated

import typer

app = typer.Typer(help="Video tools: SALAD tuning.", no_args_is_help=True)


@app.callback()
def main() -> None:
    """Video tools."""


@app.command("tune")
def tune_command(
    video: Annotated[list[Path], typer.Option("--video", help="Training video (repeat)")],
    out: Annotated[Path, typer.Option(help="Folder for salad.safetensors")],
    model: Annotated[str, typer.Option(help="Wan2.1 diffusers folder; empty = tiny")] = "",
    steps: Annotated[int, typer.Option(min=1)] = 200,
    learning_rate: Annotated[float, typer.Option(min=0.0)] = 1e-3,
    sparsity: Annotated[float, typer.Option(min=0.0, max=0.99)] = 0.9,
    block_size: Annotated[int, typer.Option(min=16)] = 64,
    frames: Annotated[int, typer.Option(help="Frames per clip (4k+1)")] = 17,
    width: Annotated[int, typer.Option(help="Multiple of 16")] = 256,
    height: Annotated[int, typer.Option(help="Multiple of 16")] = 256,
    device: Annotated[str, typer.Option(help="auto, cpu, cuda:N")] = "auto",
) -> None:
    """Train only SALAD's new projections and gates on videos given by path."""
    import torch

    from gantry.video.engine import WanEngine, pick_device
    from gantry.video.service import TINY_MODEL_ID
    from gantry.video.tune import TuneConfig, tune_salad

    logging.basicConfig(level=logging.INFO, format="%(message)s")
    for path in video:
        if not path.is_file():
            raise typer.BadParameter(f"{path}: no such file", param_hint="--video")
    if (frames - 1) % 4 or width % 16 or height % 16:
        raise typer.BadParameter("frames must be 4k+1, width and height multiples of 16")
    if model:
        model_dir, model_id, tiny = Path(model), Path(model).name, False
    else:
        from gantry.models.tiny.wan import tiny_wan_dir

        model_dir, model_id, tiny = tiny_wan_dir(), TINY_MODEL_ID, True
    dev = pick_device(device)
    # Tuning in float32: the few trained parameters need the precision.
    engine = WanEngine(model_dir, model_id=model_id, tiny=tiny, device=dev, dtype=torch.float32)
    engine.load()
    config = TuneConfig(
        steps=steps,
        learning_rate=learning_rate,
        sparsity=sparsity,
        block_size=block_size,
        frames=frames,
        width=width,
        height=height,
    )
    report = tune_salad(engine, video, out, config)
    typer.echo(
        f"tuned {report.trainable} parameters ({100 * report.fraction:.1f}% of "
        f"{report.total}) in {report.seconds:.1f}s: loss {report.loss_before:.4f} -> "
        f"{report.loss_after:.4f}; weights in {report.weights}"
    )
