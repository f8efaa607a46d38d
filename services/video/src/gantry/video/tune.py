"""SALAD tuning: train only the new projections and gates, the Wan weights frozen.

The objective is Wan's own flow-matching loss on the given videos: for clean latents x0,
noise e and a level s in (0, 1), the transformer (with SALAD at the chosen sparsity) sees
x_s = (1 - s) x0 + s e and must predict the velocity e - x0. Only the parameters of the
`SaladProcessor`s (linear-branch projection and gate per layer) receive gradients, so the
linear branch learns to give back what the sparse branch drops.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path

import torch

from gantry.video.engine import WanEngine
from gantry.video.media import DecodeLimits, decode_file
from gantry.video.salad import SALAD_FILE, AttentionSettings, salad_parameters, save_salad

log = logging.getLogger("gantry.video.tune")


@dataclass(frozen=True)
class TuneConfig:
    steps: int = 200
    learning_rate: float = 1e-3
    sparsity: float = 0.9
    block_size: int = 64
    window: tuple[int, int, int] = (3, 8, 8)
    frames: int = 17
    width: int = 256
    height: int = 256
    seed: int = 0


@dataclass(frozen=True)
class TuneReport:
    trainable: int
    total: int
    loss_before: float  # on a fixed set of noise draws, before and after tuning
    loss_after: float
    seconds: float
    weights: Path

    @property
    def fraction(self) -> float:
        return self.trainable / self.total


def load_clips(
    engine: WanEngine, videos: list[Path], config: TuneConfig
) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """(latents [C, F, h, w], prompt embedding) per video; the file stem is the caption."""
    limits = DecodeLimits(max_frames=10_000, max_width=8192, max_height=8192)
    clips = []
    for path in videos:
        probe = decode_file(path, limits, str(path))
        frames = probe.frames[: config.frames]
        if len(frames) < config.frames:
            raise ValueError(f"{path}: {len(frames)} frames, fewer than --frames {config.frames}")
        latents = engine.encode(frames, config.width, config.height)
        embeds, _ = engine.pipe.encode_prompt(
            prompt=path.stem.replace("_", " "),
            do_classifier_free_guidance=False,
            device=engine.device,
        )
        clips.append((latents, embeds.detach()))
    return clips


def _flow_loss(
    engine: WanEngine,
    latents: torch.Tensor,
    embeds: torch.Tensor,
    sigma: float,
    generator: torch.Generator,
) -> torch.Tensor:
    transformer = engine.pipe.transformer
    x0 = latents[None].to(engine.device, engine.dtype)
    noise = torch.randn(x0.shape, generator=generator).to(x0)
    noisy = (1 - sigma) * x0 + sigma * noise
    timestep = torch.tensor([sigma * 1000.0], device=engine.device)
    pred = transformer(noisy, timestep, embeds.to(engine.dtype), return_dict=False)[0]
    return torch.nn.functional.mse_loss(pred.float(), (noise - x0).float())


@torch.no_grad()
def evaluate(
    engine: WanEngine, clips: list[tuple[torch.Tensor, torch.Tensor]], draws: int = 4
) -> float:
    """Mean loss over fixed noise levels and draws (the same before and after tuning)."""
    generator = torch.Generator().manual_seed(1234)
    total = 0.0
    for latents, embeds in clips:
        for i in range(draws):
            sigma = (i + 0.5) / draws
            total += float(_flow_loss(engine, latents, embeds, sigma, generator))
    return total / (len(clips) * draws)


def tune_salad(
    engine: WanEngine, videos: list[Path], out_dir: Path, config: TuneConfig
) -> TuneReport:
    """Train the SALAD parameters of a loaded engine on `videos`; write them to `out_dir`."""
    if not videos:
        raise ValueError("no videos to tune on")
    transformer = engine.pipe.transformer
    clips = load_clips(engine, videos, config)
    trainable = [
        p for name, p in salad_parameters(transformer).items() if "merge_weight" not in name
    ]
    for param in transformer.parameters():
        param.requires_grad_(False)
    for param in trainable:
        param.requires_grad_(True)
    engine.runtime.settings = AttentionSettings(
        mode="salad",
        sparsity=config.sparsity,
        window=config.window,
        block_size=config.block_size,
    )
    loss_before = evaluate(engine, clips)
    optimizer = torch.optim.AdamW(trainable, lr=config.learning_rate, weight_decay=0.0)
    generator = torch.Generator().manual_seed(config.seed)
    losses: list[float] = []
    started = time.perf_counter()
    transformer.train()
    try:
        for step in range(config.steps):
            latents, embeds = clips[step % len(clips)]
            sigma = torch.rand(1, generator=generator).item() * 0.98 + 0.01
            loss = _flow_loss(engine, latents, embeds, sigma, generator)
            optimizer.zero_grad()
            loss.backward()  # type: ignore[no-untyped-call]
            optimizer.step()
            losses.append(loss.item())
            if step % 20 == 0:
                log.info("tune step %d loss %.4f", step, losses[-1])
        transformer.eval()
        loss_after = evaluate(engine, clips)
    finally:
        transformer.eval()
        for param in trainable:
            param.requires_grad_(False)
        engine.runtime.settings = AttentionSettings()
    out_dir.mkdir(parents=True, exist_ok=True)
    weights = out_dir / SALAD_FILE
    save_salad(transformer, weights)
    return TuneReport(
        trainable=sum(p.numel() for p in trainable),
        total=sum(p.numel() for p in transformer.parameters()),
        loss_before=loss_before,
        loss_after=loss_after,
        seconds=time.perf_counter() - started,
        weights=weights,
    )
