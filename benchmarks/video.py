"""Video on CPU with the tiny Wan: memory consistency, token merging, SALAD timings.

    .venv/bin/python benchmarks/video.py [--train-steps 300] [--scenes 6] [--out DIR]

Everything runs the tiny random Wan (2 layers, dim 64, random VAE) on CPU, so the numbers
measure the mechanisms, not video quality.

1. **Memory consistency** (Memory-V2V) on synthetic multi-view scenes: spheres over a
   checkered floor, ray-cast from a camera orbiting the scene (known intrinsics and
   extrinsics). Turn 1 edits the video of orbit segment A; turn 2 edits segment B, whose
   first camera is A's last, so that frame is seen twice. The tiny transformer is first
   trained briefly (flow matching, all its weights) to denoise segment B with segment A's
   clean latents as context tokens. Consistency = cosine similarity, in latent space, of
   the shared view's latent frame across the two turns' results: without memory (turn 2
   sees only its own input) and with memory (turn 1's result retrieved by FOV overlap and
   given as context). Several scenes and seeds; the mean and spread are printed.
2. **Adaptive token merging**: the attention cost of the video's queries over memory
   tokens (analytic FLOPs) and the measured forward time, with all memory tokens against
   half of them merged.
3. **SALAD on CPU**: one transformer forward dense against SALAD at 90% sparsity. The CPU
   path is the torch reference (a masked dense softmax), so it is not faster here; the
   GPU check (benchmarks/video_gpu_check.py) measures the kernels.
With --out, a gallery of frames is written (docs/images/video_*.png come from it).
"""

from __future__ import annotations

import argparse
import math
import statistics
import threading
import time
from pathlib import Path

import numpy as np
import torch
from numpy.typing import NDArray

from gantry.models.tiny.wan import tiny_wan_dir
from gantry.video.engine import ContextTransformer, GenerationPlan, WanEngine
from gantry.video.memory import Camera, fov_overlap
from gantry.video.salad import AttentionSettings

SIZE = 32
FRAMES = 5  # 4k+1: two latent frames
FOCAL = 28.0
STEP_DEG = 8.0  # camera orbit per frame
INTRINSICS = torch.tensor([[FOCAL, 0, SIZE / 2], [0, FOCAL, SIZE / 2], [0, 0, 1]])


# ---- synthetic multi-view scenes ---------------------------------------------------------


def look_at(angle_deg: float, radius: float = 4.0, height: float = 1.2) -> torch.Tensor:
    """Camera-to-world (OpenCV axes: x right, y down, z forward) looking at the origin."""
    a = math.radians(angle_deg)
    eye = torch.tensor([radius * math.sin(a), -height, -radius * math.cos(a)])
    forward = -eye / eye.norm()
    right = torch.linalg.cross(torch.tensor([0.0, 1.0, 0.0]), forward)
    right = right / right.norm()
    down = torch.linalg.cross(forward, right)
    c2w = torch.eye(4)
    c2w[:3, 0], c2w[:3, 1], c2w[:3, 2], c2w[:3, 3] = right, down, forward, eye
    return c2w


def random_scene(
    rng: np.random.Generator,
) -> list[tuple[NDArray[np.float64], float, NDArray[np.float64]]]:
    """A few spheres: (centre, radius, colour)."""
    spheres = []
    for _ in range(rng.integers(2, 5)):
        r = float(rng.uniform(0.35, 0.7))
        centre = np.array([rng.uniform(-1.2, 1.2), -r, rng.uniform(-1.2, 1.2)])
        spheres.append((centre, r, rng.uniform(0.15, 1.0, 3)))
    return spheres


def render(
    scene: list[tuple[NDArray[np.float64], float, NDArray[np.float64]]], c2w: torch.Tensor
) -> NDArray[np.uint8]:
    """Ray-cast one frame: Lambert-shaded spheres over a checkered floor (y = 0)."""
    m = c2w.double().numpy()
    v, u = np.mgrid[0:SIZE, 0:SIZE] + 0.5
    dirs = (
        np.stack([(u - SIZE / 2) / FOCAL, (v - SIZE / 2) / FOCAL, np.ones_like(u)], -1)
        @ m[:3, :3].T
    )
    dirs /= np.linalg.norm(dirs, axis=-1, keepdims=True)
    origin = m[:3, 3]
    image = np.zeros((SIZE, SIZE, 3)) + np.array([0.55, 0.7, 0.9])  # sky
    depth = np.full((SIZE, SIZE), np.inf)
    # Floor: y = 0 (y points down, so the floor is below the spheres).
    t_floor = -origin[1] / np.where(np.abs(dirs[..., 1]) > 1e-9, dirs[..., 1], 1e-9)
    hit = t_floor > 0
    points = origin + dirs * t_floor[..., None]
    checks = (np.floor(points[..., 0] * 1.5) + np.floor(points[..., 2] * 1.5)) % 2
    floor = np.where(checks[..., None] > 0, [0.85, 0.85, 0.8], [0.3, 0.3, 0.35])
    image = np.where(hit[..., None], floor, image)
    depth = np.where(hit, t_floor, depth)
    light = np.array([0.4, -1.0, -0.3]) / np.linalg.norm([0.4, -1.0, -0.3])
    for centre, radius, colour in scene:
        oc = origin - centre
        b = (dirs * oc).sum(-1)
        disc = b * b - (oc @ oc - radius * radius)
        t = -b - np.sqrt(np.maximum(disc, 0))
        hit = (disc > 0) & (t > 0) & (t < depth)
        normal = (origin + dirs * t[..., None] - centre) / radius
        shade = 0.25 + 0.75 * np.clip((normal * -light).sum(-1), 0, 1)
        image = np.where(hit[..., None], colour * shade[..., None], image)
        depth = np.where(hit, t, depth)
    return (np.clip(image, 0, 1) * 255).astype(np.uint8)


def segment(
    scene: list[tuple[NDArray[np.float64], float, NDArray[np.float64]]], start_deg: float
) -> tuple[NDArray[np.uint8], Camera]:
    poses = [look_at(start_deg + STEP_DEG * i) for i in range(FRAMES)]
    frames = np.stack([render(scene, p) for p in poses])
    return frames, Camera(torch.stack(poses), INTRINSICS)


# ---- 1. memory consistency ------------------------------------------------------------------


def train(engine: WanEngine, steps: int, seed: int, scenes: int) -> list[float]:
    """Flow matching on (segment A as clean context, segment B noisy), all transformer weights.

    The latents of `scenes` random orbits are encoded once (the VAE is the costly part);
    each step draws one of them.
    """
    rng = np.random.default_rng(seed)
    pairs = []
    for _ in range(scenes):
        scene = random_scene(rng)
        start = float(rng.uniform(0, 360))
        a, _ = segment(scene, start)
        b, _ = segment(scene, start + STEP_DEG * (FRAMES - 1))
        pairs.append((engine.encode(a, SIZE, SIZE)[None], engine.encode(b, SIZE, SIZE)[None]))
    transformer = engine.pipe.transformer
    embeds = engine.pipe.encode_prompt(prompt="", do_classifier_free_guidance=False)[0].detach()
    optimizer = torch.optim.AdamW(transformer.parameters(), lr=2e-3)
    gen = torch.Generator().manual_seed(seed)
    losses = []
    transformer.train()
    for step in range(steps):
        ctx, x0 = pairs[step % len(pairs)]
        noise = torch.randn(x0.shape, generator=gen)
        sigma = float(torch.rand(1, generator=gen)) * 0.98 + 0.01
        model = ContextTransformer(transformer, ctx, engine.runtime)
        pred = model((1 - sigma) * x0 + sigma * noise, torch.tensor([sigma * 1000]), embeds)[0]
        loss = torch.nn.functional.mse_loss(pred, noise - x0)
        optimizer.zero_grad()
        loss.backward()  # type: ignore[no-untyped-call]
        optimizer.step()
        losses.append(loss.item())
    transformer.eval()
    return losses


def generate(
    engine: WanEngine,
    frames: NDArray[np.uint8],
    seed: int,
    context: torch.Tensor | None,
    strength: float = 0.8,
) -> tuple[NDArray[np.uint8], torch.Tensor]:
    plan = GenerationPlan(
        frames=frames,
        width=SIZE,
        height=SIZE,
        prompt="",
        negative_prompt="",
        steps=8,
        guidance_scale=1.0,
        strength=strength,
        seed=seed,
        context=context,
    )
    out = engine.generate(plan, lambda k, n: None, threading.Event())
    return out.frames, out.latents


def cosine(a: torch.Tensor, b: torch.Tensor) -> float:
    return float(torch.nn.functional.cosine_similarity(a.flatten()[None], b.flatten()[None]))


def consistency(engine: WanEngine, scenes: int, seeds: int, out: Path | None) -> None:
    rng = np.random.default_rng(10_000)  # test scenes: none seen in training
    strengths = (0.8, 1.0)
    # (turn 1's view, turn 2's view) latent pairs per strength and memory on/off.
    pairs: dict[tuple[float, bool], list[tuple[torch.Tensor, torch.Tensor]]] = {
        (s, m): [] for s in strengths for m in (False, True)
    }
    retrieved_right = 0
    for i in range(scenes):
        scene = random_scene(rng)
        start = float(rng.uniform(0, 360))
        a, cam_a = segment(scene, start)
        b, cam_b = segment(scene, start + STEP_DEG * (FRAMES - 1))
        # A distractor entry: the same orbit around a scene 30 units away.
        far = cam_a.extrinsics.clone()
        far[:, 0, 3] += 30.0
        cam_far = Camera(far, INTRINSICS)
        # Retrieval: turn 1's camera overlaps turn 2's; the distractor's does not.
        if fov_overlap(cam_b, cam_a) > fov_overlap(cam_b, cam_far):
            retrieved_right += 1
        for seed in range(seeds):
            turn1, lat1 = generate(engine, a, seed, None)
            for strength in strengths:
                plain, lat_plain = generate(engine, b, 100 + seed, None, strength)
                mem, lat_mem = generate(engine, b, 100 + seed, lat1, strength)
                # The shared view: A's last frame is B's first (latent frame -1 vs 0).
                pairs[strength, False].append((lat1[:, -1], lat_plain[:, 0]))
                pairs[strength, True].append((lat1[:, -1], lat_mem[:, 0]))
                if out is not None and i == 0 and seed == 0 and strength == 1.0:
                    save_gallery(out, a, b, turn1, plain, mem)
    print(f"\n1. memory consistency over {scenes} unseen scenes x {seeds} seeds")
    print(f"   FOV retrieval picked the overlapping turn in {retrieved_right}/{scenes} scenes")
    # Latents share a large common offset (the random VAE): cosine after removing the mean
    # latent of all the views compared, so the score reflects what differs between scenes.
    centre = torch.stack([x for group in pairs.values() for pair in group for x in pair]).mean(0)
    print("   cosine of the shared view's latents across the two turns (mean +- stdev),")
    print("   raw / centred on the mean view latent:")
    for (strength, memory), group in pairs.items():
        raw = [cosine(a, b) for a, b in group]
        centred = [cosine(a - centre, b - centre) for a, b in group]
        name = "with memory" if memory else "without memory"
        print(
            f"   turn 2 strength {strength:.1f}, {name:15s} "
            f"{statistics.mean(raw):.3f} +- {statistics.stdev(raw):.3f} / "
            f"{statistics.mean(centred):.3f} +- {statistics.stdev(centred):.3f}"
        )


def save_gallery(out: Path, *videos: NDArray[np.uint8]) -> None:
    from PIL import Image

    out.mkdir(parents=True, exist_ok=True)
    names = ["input_a", "input_b", "turn1", "turn2_no_memory", "turn2_memory"]
    for name, video in zip(names, videos, strict=True):
        strip = np.concatenate(list(video), axis=1)
        big = Image.fromarray(strip).resize(
            (strip.shape[1] * 4, strip.shape[0] * 4), Image.Resampling.NEAREST
        )
        big.save(out / f"video_{name}.png")


# ---- 2. adaptive token merging --------------------------------------------------------------


def merging(engine: WanEngine, memory_frames: int) -> None:
    transformer = engine.pipe.transformer
    embeds = engine.pipe.encode_prompt(prompt="", do_classifier_free_guidance=False)[0].detach()
    side = 64
    video = torch.randn(1, 4, 2, side // 8, side // 8)
    ctx = torch.randn(1, 4, memory_frames, side // 8, side // 8)
    per_frame = (side // 16) ** 2
    n, m = 2 * per_frame, memory_frames * per_frame
    keeps = (1.0, 0.5, 0.25)
    model = ContextTransformer(transformer, ctx, engine.runtime)
    t = torch.tensor([500.0])
    times: dict[float, list[float]] = {k: [] for k in keeps}
    with torch.no_grad():
        for rep in range(6):  # interleaved, so load changes hit every setting alike
            for keep in keeps:
                engine.runtime.settings = AttentionSettings(mode="dense", merge_keep=keep)
                start = time.perf_counter()
                model(video, t, embeds)
                if rep:  # the first round warms up
                    times[keep].append(time.perf_counter() - start)
    rows = []
    for keep in keeps:
        r = m if keep == 1.0 else math.ceil(keep * m)
        # Attention score+value FLOPs per layer and head dim: all tokens attend to all
        # (no merging), or memory and video queries over merged memory (+ the video).
        flops = (n + m) ** 2 if keep == 1.0 else m * r + n * (r + n)
        rows.append((keep, r, flops, statistics.median(times[keep])))
    engine.runtime.settings = AttentionSettings()
    base_flops, base_time = rows[0][2], rows[0][3]
    print(f"\n2. adaptive token merging: video {n} tokens, memory {m} tokens (median of 5)")
    for keep, r, flops, elapsed in rows:
        print(
            f"   keep {keep:4.2f} ({r:5d} memory keys): attention FLOPs "
            f"{flops / base_flops:6.1%}, forward {elapsed * 1000:7.1f} ms "
            f"({base_time / elapsed:4.2f}x)"
        )


# ---- 3. SALAD timings -----------------------------------------------------------------------


def salad_timing(engine: WanEngine) -> None:
    transformer = engine.pipe.transformer
    embeds = engine.pipe.encode_prompt(prompt="", do_classifier_free_guidance=False)[0].detach()
    lat = torch.randn(1, 4, 5, 128 // 8, 128 // 8)  # 5 latent frames of 8x8 tokens
    t = torch.tensor([500.0])
    print("\n3. one tiny-Wan forward on CPU, 320 tokens (the CPU sparse path is the reference)")
    for name, settings in (
        ("dense", AttentionSettings(mode="dense")),
        (
            "SALAD 90%",
            AttentionSettings(mode="salad", sparsity=0.9, block_size=16, window=(1, 4, 4)),
        ),
    ):
        engine.runtime.settings = settings
        with torch.no_grad():
            transformer(lat, t, embeds, return_dict=False)
            start = time.perf_counter()
            for _ in range(5):
                transformer(lat, t, embeds, return_dict=False)
        print(f"   {name:10s} {(time.perf_counter() - start) / 5 * 1000:7.1f} ms")
    engine.runtime.settings = AttentionSettings()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--train-steps", type=int, default=300)
    parser.add_argument("--train-scenes", type=int, default=48)
    parser.add_argument("--scenes", type=int, default=6)
    parser.add_argument("--seeds", type=int, default=2)
    parser.add_argument("--memory-frames", type=int, default=8)
    parser.add_argument("--out", type=Path, default=None, help="write gallery PNGs here")
    args = parser.parse_args()
    torch.manual_seed(0)
    engine = WanEngine(
        tiny_wan_dir(), model_id="tiny", tiny=True, device=torch.device("cpu"), dtype=torch.float32
    )
    engine.load()
    started = time.perf_counter()
    losses = train(engine, args.train_steps, seed=0, scenes=args.train_scenes)
    head, tail = losses[: len(losses) // 5], losses[-(len(losses) // 5) :]
    print(
        f"trained the tiny Wan {args.train_steps} steps on synthetic orbits in "
        f"{time.perf_counter() - started:.0f}s: loss {statistics.mean(head):.3f} -> "
        f"{statistics.mean(tail):.3f}"
    )
    started = time.perf_counter()
    consistency(engine, args.scenes, args.seeds, args.out)
    print(f"   ({time.perf_counter() - started:.0f}s)")
    merging(engine, args.memory_frames)
    salad_timing(engine)


if __name__ == "__main__":
    main()
