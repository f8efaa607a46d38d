"""Multi-process SFT (FSDP2 over gloo, issue 15): tokens/s, step time, loss agreement, RSS.

    .venv/bin/python benchmarks/trainer_scaling.py [--worlds 1 2 4] [--models tiny smollm2]
    .venv/bin/python benchmarks/trainer_scaling.py --quick    # world sizes 1 and 2, 3 steps

For each world size the same SFT run (same maze_2d demonstrations, same global batch, same
seed) runs in a fresh driver process: rank 0 is the driver (as the trainer service is),
ranks 1..N-1 are `python -m gantry.trainer.rank` processes it starts (`RankGroup`). Every
process uses one math thread (OMP_NUM_THREADS=1). Prints, per world size, the median step
time and tokens/s with the ratio to world size 1 of the same run, the largest relative
difference of the first 3 steps' losses and gradient norms from world size 1, the start-up
time (group + Trainer) and each rank's peak RSS (VmHWM).

On a CPU with fewer cores than ranks no speedup is expected: the figures show what the
process group, FSDP2's collectives and the batch split cost, and that the ranks compute
what one process does.

It also prints what FSDP2 moves per step, COMPUTED from the parameter count (not measured):
per rank, a ring all-gather of the float32 parameters before each forward, again before
each backward for the blocks (the root module, embeddings + final norm + head, stays
gathered between forward and backward), and a reduce-scatter of the float32 gradients after
each backward; the trainer runs one forward/backward per micro-batch and FSDP2 syncs each
one, so a step moves that many times. The same with a BF16 gather and an FP8 gather (block
Linear weights as E4M3 bytes plus one float32 scale per 128x128 block, other parameters
BF16), gradients staying float32.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

HERE = Path(__file__).resolve()
FP8_BLOCK = 128


# ----- bytes FSDP2 moves (computed) -----
@dataclass(frozen=True)
class ParamCounts:
    total: int  # unique parameters
    blocks: int  # inside the transformer blocks (re-gathered for backward)
    block_linear: int  # weights of the blocks' nn.Linear layers (FP8-gatherable)
    fp8_scales: int  # float32 scales of those weights, one per 128x128 block


def count_params(model: nn.Module) -> ParamCounts:
    from gantry.trainer.sharding import blocks

    total = sum(p.numel() for p in model.parameters())
    in_blocks = linear = scales = 0
    for block in blocks(model):
        in_blocks += sum(p.numel() for p in block.parameters())
        for m in block.modules():
            if isinstance(m, nn.Linear):
                rows, cols = m.weight.shape
                linear += rows * cols
                scales += math.ceil(rows / FP8_BLOCK) * math.ceil(cols / FP8_BLOCK)
    return ParamCounts(total, in_blocks, linear, scales)


def counts_of(model_dir: str) -> ParamCounts:
    """Parameter counts of a checkpoint's architecture (built on the meta device)."""
    from transformers import AutoConfig, AutoModelForCausalLM

    config = AutoConfig.from_pretrained(model_dir)
    with torch.device("meta"):
        model = AutoModelForCausalLM.from_config(config)  # type: ignore[no-untyped-call]
    return count_params(model)


def gather_bytes(c: ParamCounts, dtype: str) -> tuple[float, float]:
    """Bytes of one full gather of (all parameters, block parameters) in `dtype`."""
    if dtype == "fp32":
        return 4.0 * c.total, 4.0 * c.blocks
    if dtype == "bf16":
        return 2.0 * c.total, 2.0 * c.blocks
    fp8_blocks = c.block_linear + 4.0 * c.fp8_scales + 2.0 * (c.blocks - c.block_linear)
    return fp8_blocks + 2.0 * (c.total - c.blocks), fp8_blocks


def step_bytes(c: ParamCounts, world: int, passes: int, dtype: str) -> dict[str, float]:
    """Per rank, per step: bytes each rank receives in ring collectives (computed)."""
    share = (world - 1) / world
    everything, in_blocks = gather_bytes(c, dtype)
    forward = share * everything * passes
    backward = share * in_blocks * passes
    reduce = share * 4.0 * c.total * passes
    return {"all_gather": forward + backward, "reduce_scatter": reduce}


def bytes_table(c: ParamCounts, worlds: list[int], batch: int, micro: int) -> list[str]:
    lines = [
        f"FSDP2 traffic per step per rank, COMPUTED from {c.total:,} parameters "
        f"({c.blocks:,} in blocks, {c.block_linear:,} block Linear weights): "
        f"global batch {batch}, micro-batch {micro}",
        f"{'world':>5} {'passes':>6} {'AG fp32 MB':>11} {'AG bf16 MB':>11} {'AG fp8 MB':>10} "
        f"{'RS fp32 MB':>11} {'fp8/fp32':>9}",
    ]
    for w in worlds:
        passes = math.ceil(math.ceil(batch / w) / micro)
        b = {d: step_bytes(c, w, passes, d) for d in ("fp32", "bf16", "fp8")}
        ratio = b["fp8"]["all_gather"] / b["fp32"]["all_gather"] if w > 1 else float("nan")
        lines.append(
            f"{w:>5} {passes:>6} {b['fp32']['all_gather'] / 1e6:>11.2f} "
            f"{b['bf16']['all_gather'] / 1e6:>11.2f} {b['fp8']['all_gather'] / 1e6:>10.2f} "
            f"{b['fp32']['reduce_scatter'] / 1e6:>11.2f} {ratio:>9.3f}"
        )
    return lines


# ----- one world size, in its own process -----
def peak_rss_mb(pid: int) -> float:
    """VmHWM of a live process (Linux)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def rank_logs(demos: str, world: int) -> Path:
    """Where ranks 1..N-1 of a world size write their output (next to the demonstrations)."""
    return Path(demos).parent / f"ranks-{world}"


def one_world(args: argparse.Namespace) -> dict[str, Any]:
    from gantry.proto.trainer.v1 import trainer_pb2
    from gantry.trainer.ranks import RankGroup
    from gantry.trainer.training import Trainer

    torch.set_num_threads(args.threads)
    world = args.one
    config = trainer_pb2.RunConfig(
        base_model=args.model_dir,
        sft=trainer_pb2.SftConfig(),
        max_steps=args.steps,
        seed=0,
        batch_size=args.batch,
        micro_batch_size=args.micro,
        world_size=world,
        max_seq_len=args.max_seq_len,
    )
    config.data.dataset_uri = args.demos
    config.optimizer.learning_rate = 3e-3
    config.extra.update({"precision_recipe": args.recipe})
    started = time.perf_counter()
    group = None
    if world > 1:
        logs = rank_logs(args.demos, world)
        group = RankGroup(world, torch.device("cpu"), timeout_s=300, log_dir=logs)
        group.start()
    clean = False
    try:
        trainer = Trainer(config, 0, "cpu", group=group)
        setup_s = time.perf_counter() - started
        losses, norms, seconds, tokens = [], [], [], []
        for _ in range(args.steps):
            t0 = time.perf_counter()
            m = trainer.sft_step()
            seconds.append(time.perf_counter() - t0)
            losses.append(m.loss)
            norms.append(m.grad_norm)
            tokens.append(m.tokens_per_second * m.extra["step_seconds"])
        rss = [resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024]
        if group is not None:
            rss += [peak_rss_mb(group.processes[r].pid) for r in range(1, world)]
        clean = True
    finally:
        if group is not None:
            group.close(clean=clean)
    return {
        "world": world,
        "recipe": trainer.recipe,
        "setup_s": setup_s,
        "losses": losses,
        "grad_norms": norms,
        "step_s": seconds,
        "tokens": tokens,
        "peak_rss_mb": rss,
    }


def run_world(
    world: int, args: argparse.Namespace, model_dir: str, demos: Path, threads: int = 1
) -> dict[str, Any]:
    env = dict(os.environ, OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads))
    command = [sys.executable, str(HERE), "--one", str(world), "--model-dir", model_dir]
    command += ["--demos", str(demos), "--steps", str(args.steps), "--batch", str(args.batch)]
    command += ["--micro", str(args.micro), "--recipe", args.recipe, "--threads", str(threads)]
    command += ["--max-seq-len", str(args.max_seq_len)]
    done = subprocess.run(
        command, env=env, capture_output=True, text=True, timeout=args.timeout_s, check=False
    )
    if done.returncode != 0:
        ranks = "".join(
            f"\n--- {log.name}:\n{log.read_text()[-1500:]}"
            for log in sorted(rank_logs(str(demos), world).glob("*.log"))
        )
        raise SystemExit(f"world size {world} failed:\n{done.stderr[-3000:]}{ranks}")
    line = [x for x in done.stdout.splitlines() if x.startswith("RESULT ")][-1]
    result: dict[str, Any] = json.loads(line.removeprefix("RESULT "))
    result["threads"] = threads
    return result


AGREE_STEPS = 3  # loss agreement over the first steps (AdamW's sign-like first updates
# turn float-sum-order differences into growing weight differences later)


def relative_gap(a: list[float], b: list[float]) -> float:
    pairs = list(zip(a, b, strict=True))[:AGREE_STEPS]
    return max(abs(x - y) / max(abs(y), 1e-12) for x, y in pairs)


def summary(results: list[dict[str, Any]], warmup: int) -> list[str]:
    base = results[0]
    base_tps = sum(base["tokens"][warmup:]) / sum(base["step_s"][warmup:])
    lines = [
        f"{'world':>9} {'step s':>7} {'tok/s':>8} {'vs 1':>6} {'start s':>8} "
        f"{'loss Δrel':>10} {'gnorm Δrel':>10}  peak RSS MB per rank",
    ]
    for r in results:
        tps = sum(r["tokens"][warmup:]) / sum(r["step_s"][warmup:])
        lines.append(
            f"{r['world']:>2} ({r['threads']} thr) "
            f"{statistics.median(r['step_s'][warmup:]):>7.3f} {tps:>8.0f} "
            f"{tps / base_tps:>5.2f}x {r['setup_s']:>8.2f} "
            f"{relative_gap(r['losses'], base['losses']):>10.1e} "
            f"{relative_gap(r['grad_norms'], base['grad_norms']):>10.1e}  "
            + " ".join(f"{x:.0f}" for x in r["peak_rss_mb"])
        )
    return lines


def run_model(name: str, model_dir: str, args: argparse.Namespace, demos: Path) -> dict[str, Any]:
    results = [run_world(w, args, model_dir, demos) for w in args.worlds]
    cores = os.cpu_count() or 1
    if args.threaded_baseline and cores > 1:  # one process using every core, for contrast
        results.append(run_world(1, args, model_dir, demos, threads=cores))
    print(
        f"\n== {name}: SFT, recipe {results[0]['recipe']}, global batch {args.batch}, "
        f"micro-batch {args.micro}, {args.steps} steps (first {args.warmup} not timed), "
        f"{os.cpu_count()} CPU cores, load {os.getloadavg()[0]:.2f}",
        flush=True,
    )
    print("\n".join(summary(results, args.warmup)))
    print("losses: " + "; ".join(f"{r['world']}: {r['losses'][:3]}" for r in results))
    counts = counts_of(model_dir)
    print("\n".join(bytes_table(counts, args.worlds, args.batch, args.micro)), flush=True)
    return {"model": name, "results": results, "params": counts.__dict__}


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--worlds", type=int, nargs="+", default=[1, 2, 4])
    parser.add_argument("--steps", type=int, default=6)
    parser.add_argument("--warmup", type=int, default=1, help="first steps left out of times")
    parser.add_argument("--batch", type=int, default=8, help="global batch (examples)")
    parser.add_argument("--micro", type=int, default=2, help="micro-batch per rank")
    parser.add_argument("--recipe", default="bf16")
    parser.add_argument("--max-seq-len", type=int, default=0, help="0: the trainer's default")
    parser.add_argument(
        "--threaded-baseline", action="store_true", help="also world 1 with a thread per core"
    )
    parser.add_argument("--demos-seeds", type=int, default=8)
    parser.add_argument(
        "--models",
        nargs="+",
        choices=["tiny", "smollm2"],
        default=["tiny"],
        help="smollm2: SmolLM2-135M (cached), global batch 4, micro-batch 1",
    )
    parser.add_argument("--smollm2-steps", type=int, default=3)
    parser.add_argument("--smollm2-seq-len", type=int, default=512)
    parser.add_argument("--quick", action="store_true", help="world sizes 1 and 2, 3 steps")
    parser.add_argument("--timeout-s", type=float, default=900.0, help="per world size")
    parser.add_argument("--json", type=Path, help="write the results here")
    parser.add_argument("--one", type=int, help=argparse.SUPPRESS)  # a driver process
    parser.add_argument("--model-dir", help=argparse.SUPPRESS)
    parser.add_argument("--demos", help=argparse.SUPPRESS)
    parser.add_argument("--threads", type=int, default=1, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        print("RESULT " + json.dumps(one_world(args)), flush=True)
        return
    if args.quick:
        args.worlds, args.steps, args.demos_seeds = [1, 2], 3, 4
    if args.worlds[0] != 1:
        args.worlds = [1, *args.worlds]
    from gantry.envfarm.export_sft import export
    from gantry.models.tiny import tiny_model_dir

    print(f"uptime: {os.getloadavg()}", flush=True)
    out: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory() as tmp:
        demos = export("maze_2d", "easy", range(args.demos_seeds), Path(tmp), mode="text",
                       feedback=True)  # fmt: skip
        if "tiny" in args.models:
            out.append(run_model("tiny Qwen3", str(tiny_model_dir("causal_lm")), args, demos))
        if "smollm2" in args.models:
            from gantry.models.names import SMOLLM2, resolve_model_path

            args.steps, args.batch, args.micro = args.smollm2_steps, 4, 1
            args.max_seq_len = args.smollm2_seq_len
            smol = f"SmolLM2-135M (sequences cut to {args.max_seq_len} tokens)"
            out.append(run_model(smol, resolve_model_path(SMOLLM2), args, demos))
    if args.json:
        args.json.write_text(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
