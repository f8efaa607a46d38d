"""GPU check for SALAD on Wan2.1-1.3B shapes (random weights at full size), under 8 minutes.

    .venv/bin/python benchmarks/video_gpu_check.py [--frames 81 --height 480 --width 832]

On a machine without CUDA it prints that nothing was measured and exits 0.

1. Correctness on the device: the Triton block-sparse attention (forward and backward) and
   the linear-attention kernel against their torch references on a small random problem.
2. Attention kernel time at 90% sparsity against dense SDPA (PyTorch picks
   FlashAttention/cuDNN for bf16) on the full sequence: 81 frames at 480x832 are 21 latent
   frames of 30x52 tokens = 32,760 tokens, 12 heads of 128. Goal: >= 4x dense.
3. One denoising step end to end: the WanTransformer3DModel forward with the 1.3B config
   (30 layers, dim 1536), dense against SALAD at 90% sparsity (block selection, sparse and
   linear branches, gate), twice per step as classifier-free guidance does. Goal: >= 1.5x.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable

import torch

from gantry.kernels.linear_attention import linear_attention, linear_attention_ref
from gantry.kernels.sparse_attention import (
    block_sparse_attention,
    block_sparse_attention_ref,
    select_blocks,
    window_block_mask,
)

WAN_1_3B = {
    "patch_size": (1, 2, 2),
    "num_attention_heads": 12,
    "attention_head_dim": 128,
    "in_channels": 16,
    "out_channels": 16,
    "text_dim": 4096,
    "freq_dim": 256,
    "ffn_dim": 8960,
    "num_layers": 30,
    "rope_max_seq_len": 1024,
}


def cuda_ms(fn: Callable[[], object], warmup: int = 3, reps: int = 10) -> float:
    for _ in range(warmup):
        fn()
    torch.cuda.synchronize()
    times = []
    for _ in range(reps):
        start = torch.cuda.Event(enable_timing=True)  # type: ignore[no-untyped-call]
        end = torch.cuda.Event(enable_timing=True)  # type: ignore[no-untyped-call]
        start.record()
        fn()
        end.record()
        torch.cuda.synchronize()
        times.append(start.elapsed_time(end))
    return float(statistics.median(times))


def check_kernels() -> list[str]:
    failures = []
    gen = torch.Generator(device="cuda").manual_seed(0)
    q, k, v = (
        torch.randn(1, 2, 300, 128, device="cuda", generator=gen, requires_grad=True)
        for _ in range(3)
    )
    mask = select_blocks(q.detach(), k.detach(), block_size=64, sparsity=0.5)
    out = block_sparse_attention(q, k, v, mask, 64, backend="triton")
    ref = block_sparse_attention_ref(q, k, v, mask, 64)
    grad = torch.randn_like(out)
    got = torch.autograd.grad(out, (q, k, v), grad)
    want = torch.autograd.grad(ref, (q, k, v), grad)
    # fp32 inputs go through TF32 tensor cores: a loose bound.
    for name, a, b in [("forward", out, ref), *zip(("dq", "dk", "dv"), got, want, strict=True)]:
        err = float((a - b).norm() / b.norm())
        if err > 2e-2:
            failures.append(f"block-sparse {name}: relative error {err:.2e}")
    lin = linear_attention(q, k, v, backend="triton")
    err = float((lin - linear_attention_ref(q, k, v)).norm() / lin.norm())
    if err > 2e-2:
        failures.append(f"linear attention: relative error {err:.2e}")
    return failures


def attention_table(tokens: int, grid: tuple[int, int, int], sparsity: float) -> float:
    shape = (1, 12, tokens, 128)
    q, k, v = (torch.randn(shape, device="cuda", dtype=torch.bfloat16) for _ in range(3))
    window = window_block_mask(grid, 64, (3, 8, 8)).cuda()
    mask = select_blocks(q, k, block_size=64, sparsity=sparsity, window=window)
    dense = cuda_ms(lambda: torch.nn.functional.scaled_dot_product_attention(q, k, v))
    select = cuda_ms(lambda: select_blocks(q, k, block_size=64, sparsity=sparsity, window=window))
    sparse = cuda_ms(lambda: block_sparse_attention(q, k, v, mask, 64))
    linear = cuda_ms(lambda: linear_attention(q, k, v))
    kept = float(mask.float().mean())
    print(f"\nattention, {tokens} tokens x 12 heads x 128, bf16 (kept {kept:.1%} of blocks)")
    print(f"  dense SDPA            {dense:9.2f} ms")
    print(f"  block selection       {select:9.2f} ms")
    print(f"  block-sparse (Triton) {sparse:9.2f} ms   {dense / sparse:5.2f}x dense")
    print(f"  linear (Triton)       {linear:9.2f} ms")
    total = select + sparse + linear
    print(f"  SALAD attention total {total:9.2f} ms   {dense / total:5.2f}x dense (goal >= 4x)")
    return dense / sparse


def step_table(frames: int, height: int, width: int, sparsity: float) -> float:
    from diffusers import WanTransformer3DModel

    from gantry.video.salad import AttentionRuntime, AttentionSettings, install_salad

    model = WanTransformer3DModel(**WAN_1_3B).to("cuda", torch.bfloat16).eval()
    runtime = AttentionRuntime()
    install_salad(model, runtime)
    lat = torch.randn(
        1, 16, (frames - 1) // 4 + 1, height // 8, width // 8, device="cuda", dtype=torch.bfloat16
    )
    text = torch.randn(1, 512, 4096, device="cuda", dtype=torch.bfloat16)
    t = torch.tensor([500.0], device="cuda")

    @torch.no_grad()
    def step() -> None:
        for _ in range(2):  # classifier-free guidance: two transformer passes per step
            model(lat, t, text, return_dict=False)

    runtime.settings = AttentionSettings(mode="dense")
    dense = cuda_ms(step, warmup=1, reps=3)
    runtime.settings = AttentionSettings(mode="salad", sparsity=sparsity, block_size=64)
    salad = cuda_ms(step, warmup=1, reps=3)
    print(f"\none denoising step (2 passes), Wan2.1-1.3B shapes, {tuple(lat.shape)} latents")
    print(f"  dense   {dense:9.1f} ms")
    print(f"  SALAD   {salad:9.1f} ms   {dense / salad:5.2f}x (goal >= 1.5x)")
    return dense / salad


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--frames", type=int, default=81)
    parser.add_argument("--height", type=int, default=480)
    parser.add_argument("--width", type=int, default=832)
    parser.add_argument("--sparsity", type=float, default=0.9)
    args = parser.parse_args()
    if not torch.cuda.is_available():
        print("no CUDA device: nothing measured (run this on a GPU machine)")
        return 0
    started = time.perf_counter()
    print(f"device: {torch.cuda.get_device_name()}")
    failures = check_kernels()
    for failure in failures:
        print(f"FAILED {failure}")
    if failures:
        return 1
    print("kernels match their references on the device")
    grid = ((args.frames - 1) // 4 + 1, args.height // 16, args.width // 16)
    attention_table(grid[0] * grid[1] * grid[2], grid, args.sparsity)
    step_table(args.frames, args.height, args.width, args.sparsity)
    print(f"\ntotal {time.perf_counter() - started:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
