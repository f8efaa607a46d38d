"""FSDP2's cost on one GPU (issue 15): a ~1B Qwen3, world size 1, FSDP2 vs plain training.

    .venv/bin/python benchmarks/trainer_scaling_gpu.py           # one CUDA GPU, <= 8 min
    .venv/bin/python benchmarks/trainer_scaling_gpu.py --small   # CPU (gloo), tiny, < 60 s

Several ranks on one GPU measure nothing useful, so this measures what sharding costs a
rank: the same SFT steps (`Trainer.sft_step`, bf16 and fp8-jet recipes, float32 masters)
on a plain model and on the same model under `fully_shard` in a one-rank process group
(NCCL; gloo with --small). FSDP2 still all-gathers each block into its own buffers before
the forward and backward and reduce-scatters the gradients, so the step time and
`torch.cuda.max_memory_allocated` show its fixed overhead. Prints median step time,
tokens/s and peak memory with the ratio to plain training in the same run, then the bytes
an all-gather of the parameters would move per step in FP32 (what the trainer gathers),
BF16 and FP8 (E4M3 + one float32 scale per 128x128 block) at world sizes 2..8: COMPUTED
from the parameter count, not measured (`trainer_scaling.py` explains the count).

The model: Qwen3 layout (hidden 2048, 20 layers, GQA 16/8 heads of 128, SwiGLU 6144),
random weights, no hub; it uses the tiny model's tokenizer, so the vocabulary is small and
nearly all ~1.0B parameters are in the blocks (a real 1B Qwen3 adds ~0.3B of embeddings).
"""

from __future__ import annotations

import argparse
import gc
import importlib
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
from transformers import Qwen3Config, Qwen3ForCausalLM

from gantry.core.ports import free_port
from gantry.models.loading import load_causal_lm
from gantry.models.tiny import tiny_model_dir
from gantry.proto.trainer.v1 import trainer_pb2
from gantry.trainer import sharding
from gantry.trainer.model import OptimizerSpec, build_optimizer
from gantry.trainer.training import Trainer

sys.path.insert(0, str(Path(__file__).resolve().parent))  # benchmarks/ is no package
scaling = importlib.import_module("trainer_scaling")  # parameter counts, gather bytes
fp8_steps = importlib.import_module("trainer_fp8_steps")  # synthetic SFT data

BUDGET_S = 7.5 * 60  # the GPU run's limit; later configurations are skipped past it


def qwen3_config(small: bool, vocab: int, pad: int | None, eos: int | None) -> Qwen3Config:
    hidden, layers, mlp, heads, kv, head_dim = (
        (128, 2, 256, 2, 1, 64) if small else (2048, 20, 6144, 16, 8, 128)
    )
    return Qwen3Config(
        vocab_size=vocab,
        hidden_size=hidden,
        intermediate_size=mlp,
        num_hidden_layers=layers,
        num_attention_heads=heads,
        num_key_value_heads=kv,
        head_dim=head_dim,
        max_position_embeddings=8192,
        tie_word_embeddings=True,
        pad_token_id=pad,
        eos_token_id=eos,
    )


def build_model(root: Path, small: bool, device: torch.device) -> tuple[Path, Qwen3ForCausalLM]:
    tokenizer = load_causal_lm(tiny_model_dir("causal_lm")).tokenizer
    config = qwen3_config(small, len(tokenizer), tokenizer.pad_token_id, tokenizer.eos_token_id)
    torch.manual_seed(0)
    with device:  # random init on the GPU: seconds instead of a minute on the CPU
        model = Qwen3ForCausalLM(config)
    model.save_pretrained(root)
    tokenizer.save_pretrained(root)
    with torch.device("meta"):
        shape = Qwen3ForCausalLM(config)
    del model
    return root, shape


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def measure(
    model_dir: Path, data: Path, recipe: str, fsdp: bool, args: argparse.Namespace
) -> dict[str, Any]:
    config = trainer_pb2.RunConfig(
        base_model=str(model_dir),
        sft=trainer_pb2.SftConfig(),
        batch_size=args.batch,
        micro_batch_size=args.micro,
        max_steps=args.steps,
        max_seq_len=4096,
    )
    config.data.dataset_uri = str(data)
    config.optimizer.learning_rate = 1e-4
    config.extra.update({"precision_recipe": recipe})
    trainer = Trainer(config, seed=0, device=args.device)
    device = trainer.device
    if fsdp:  # the trainer shards only when world size > 1: do what it does, on one rank
        sharding.shard(trainer.model)
        spec = OptimizerSpec.from_proto(config.optimizer)
        trainer.optimizer, trainer.scheduler = build_optimizer(
            trainer.model, spec, trainer.total_steps
        )
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
    losses, seconds, tokens = [], [], []
    for _ in range(args.steps):
        sync(device)
        started = time.perf_counter()
        m = trainer.sft_step()
        sync(device)
        seconds.append(time.perf_counter() - started)
        losses.append(m.loss)
        tokens.append(m.tokens_per_second * m.extra["step_seconds"])
    peak = torch.cuda.max_memory_allocated() / 2**30 if device.type == "cuda" else float("nan")
    del trainer
    gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()
    timed = slice(1, None)  # the first step compiles kernels and allocates
    return {
        "recipe": recipe,
        "mode": "FSDP2, 1 rank" if fsdp else "plain",
        "step_s": statistics.median(seconds[timed]),
        "tokens_per_s": sum(tokens[timed]) / sum(seconds[timed]),
        "peak_gib": peak,
        "losses": losses,
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--small", action="store_true", help="tiny model on the CPU (smoke run)")
    parser.add_argument("--steps", type=int, default=6)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--micro", type=int, default=2, help="micro-batch (FSDP2 syncs each)")
    parser.add_argument("--words", type=int, default=200, help="observation words per example")
    args = parser.parse_args()
    if not args.small and not torch.cuda.is_available():
        print("no CUDA GPU here: run with --small for the CPU smoke run")
        return
    if args.small:
        args.steps, args.batch, args.micro, args.words = 3, 4, 2, 20
    args.device = "cpu" if args.small else "cuda"
    device = torch.device(args.device)
    if device.type == "cuda":
        torch.cuda.set_device(0)
    began = time.perf_counter()
    dist.init_process_group(
        "gloo" if args.small else "nccl",
        init_method=f"tcp://127.0.0.1:{free_port()}",
        rank=0,
        world_size=1,
    )
    results = []
    try:
        with tempfile.TemporaryDirectory() as tmp:
            model_dir, shape = build_model(Path(tmp) / "model", args.small, device)
            data = fp8_steps.synthetic_sft(Path(tmp) / "sft.jsonl", 64, args.words)
            counts = scaling.count_params(shape)
            print(f"Qwen3, {counts.total / 1e6:,.1f} M parameters, built in "
                  f"{time.perf_counter() - began:.0f} s", flush=True)  # fmt: skip
            for recipe in ("bf16", "fp8-jet"):
                for fsdp in (False, True):
                    if time.perf_counter() - began > BUDGET_S:
                        print(f"skipped {recipe} fsdp={fsdp}: past the time budget")
                        continue
                    r = measure(model_dir, data, recipe, fsdp, args)
                    results.append(r)
                    print(
                        f"  {recipe:8} {r['mode']:14} step {r['step_s'] * 1000:8.1f} ms  "
                        f"{r['tokens_per_s']:9.0f} tok/s  peak {r['peak_gib']:6.2f} GiB  "
                        f"loss {r['losses'][0]:.3f} -> {r['losses'][-1]:.3f}",
                        flush=True,
                    )
    finally:
        dist.destroy_process_group()
    name = torch.cuda.get_device_name() if device.type == "cuda" else "CPU"
    print(f"\n== {name}, global batch {args.batch}, micro-batch {args.micro}, "
          f"{args.steps} steps (first not timed)")  # fmt: skip
    print(f"{'recipe':8} {'mode':14} {'step ms':>9} {'tok/s':>9} {'vs plain':>9} {'peak GiB':>9}")
    for r in results:
        plain = next(p for p in results if p["recipe"] == r["recipe"] and p["mode"] == "plain")
        print(
            f"{r['recipe']:8} {r['mode']:14} {r['step_s'] * 1000:>9.1f} "
            f"{r['tokens_per_s']:>9.0f} {r['tokens_per_s'] / plain['tokens_per_s']:>8.2f}x "
            f"{r['peak_gib']:>9.2f}"
        )
    print()
    print("\n".join(scaling.bytes_table(counts, [1, 2, 4, 8], args.batch, args.micro)))
    print(f"total {time.perf_counter() - began:.0f} s")


if __name__ == "__main__":
    main()
