"""Rollout/training logprob mismatch for each precision recipe (Jet-RL's claim, measured).

    .venv/bin/python benchmarks/fp8_mismatch.py --small                 # CPU, tiny Qwen3
    .venv/bin/python benchmarks/fp8_mismatch.py --device cuda           # ~0.5B random Qwen3
    .venv/bin/python benchmarks/fp8_mismatch.py --device cuda --model DIR   # a real checkpoint

Both sides are built the way the services build them. The **rollout** is gantry-rollout's
transformers engine (continuous batching, KV cache, seeded sampling; ``device`` setting) on
BF16 weights with the recipe's rollout role; it samples ``--tokens`` tokens per sequence at
temperature 1 and reports each token's logprob. The **trainer** is
``gantry.trainer.model.load_policy`` with the recipe's trainer role and ``--train-dtype``:
``bfloat16`` (the trainer's default: BF16 weights, float32 masters in the optimiser) or
``float32`` (float32 weights; BF16 autocast for bf16 / fp8-naive, FP8 projections in a
float32 model for fp8-jet), ``both`` runs each; it scores all sequences in one
right-padded batch with autograd on, as a GRPO step does. ``--attn`` sets both sides'
attention implementation (default: the model's, SDPA). Per sampled token:

* ``mean |Δlogp|`` and ``max |Δlogp|`` between rollout and trainer logprobs;
* ``KL``: the k3 estimate of KL(rollout ‖ trainer) from the sampled tokens,
  ``E[exp(Δ) − 1 − Δ]`` with ``Δ = logp_trainer − logp_rollout``;
* ``prefill KL``: the exact KL over the vocabulary between the rollout model's and the
  trainer's full-sequence forwards of the same padded batch (the precision flow alone,
  no KV cache);
* decode tokens/s of the engine (sampled tokens / wall time, prefill included).

Jet-RL's expectation: fp8-jet within ~2x of bf16, fp8-naive far above both.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import torch
from torch import nn

from gantry.kernels.recipes import RECIPES, PrecisionRecipe
from gantry.models.loading import CausalLM, load_causal_lm
from gantry.models.tiny import tiny_model_dir

PROMPTS = [
    "The agent looked at the maze and decided to",
    "def shortest_path(grid, start, goal):",
    "Observation: a red block is left of the goal. Action:",
]


def qwen3_05b(root: Path) -> Path:
    """A random Qwen3 of ~0.5B parameters (Qwen3-0.6B's shape, the tiny tokenizer's vocab),
    saved in BF16 like a published checkpoint."""
    from transformers import Qwen3Config, Qwen3ForCausalLM

    tokenizer = load_causal_lm(tiny_model_dir("causal_lm")).tokenizer
    config = Qwen3Config(
        vocab_size=len(tokenizer),
        hidden_size=1024,
        intermediate_size=3584,
        num_hidden_layers=28,
        num_attention_heads=16,
        num_key_value_heads=8,
        head_dim=128,
        max_position_embeddings=4096,
        tie_word_embeddings=True,
        pad_token_id=tokenizer.pad_token_id,
        eos_token_id=tokenizer.eos_token_id,
    )
    torch.manual_seed(0)
    model = Qwen3ForCausalLM(config)
    model.to(torch.bfloat16)  # type: ignore[arg-type]
    model.save_pretrained(root)
    tokenizer.save_pretrained(root)
    return root


def rollout_side(
    path: str, recipe: PrecisionRecipe, device: torch.device, attn: str | None = None
) -> CausalLM:
    bundle = load_causal_lm(path, dtype="bfloat16")
    bundle.model.to(device)  # type: ignore[arg-type]
    if attn:
        bundle.model.set_attn_implementation(attn)  # type: ignore[operator]
    recipe.apply(bundle.model, "rollout")
    return dataclasses.replace(bundle, device=device)


def trainer_side(
    path: str, recipe: PrecisionRecipe, device: torch.device, train_dtype: str, attn: str | None
) -> nn.Module:
    """The policy exactly as the trainer service loads it."""
    from gantry.trainer.model import load_policy

    model: nn.Module = load_policy(path, recipe.name, device, train_dtype)[0].model
    if attn:
        model.set_attn_implementation(attn)  # type: ignore[operator]
    return model  # train mode, as in a step (the model has no dropout); autograd on below


def engine_samples(
    bundle: CausalLM, prompts: list[list[int]], samples: int, tokens: int, seed: int
) -> tuple[list[tuple[list[int], list[int], list[float]]], float]:
    """(prompt, sampled ids, rollout logprobs) per sequence, and the engine's wall seconds."""
    from gantry.rollout.engine.types import SamplingParams
    from gantry.rollout.generator import TransformersGenerator, complete

    generator = TransformersGenerator(bundle, max_batch_size=len(prompts) * samples)

    async def run() -> list[Any]:
        return await asyncio.gather(
            *(
                complete(
                    generator,
                    prompt,
                    SamplingParams(
                        max_tokens=tokens, temperature=1.0, seed=seed + i, n=samples,
                        ignore_eos=True,
                    ),
                )
                for i, prompt in enumerate(prompts)
            )
        )  # fmt: skip

    try:
        start = time.perf_counter()
        results = asyncio.run(run())
        seconds = time.perf_counter() - start
    finally:
        generator.engine.stop()
    out = [
        (prompt, list(s.token_ids), list(s.logprobs))
        for prompt, group in zip(prompts, results, strict=True)
        for s in group
    ]
    return out, seconds


def padded_logprobs(
    model: nn.Module, seqs: list[tuple[list[int], list[int], list[float]]], pad: int, grad: bool
) -> tuple[torch.Tensor, torch.Tensor]:
    """Right-padded batch forward: log-softmax [B, T, V] at the sampled positions, and the
    sampled ids [B, T]."""
    device = next(model.parameters()).device
    full = [p + t for p, t, _ in seqs]
    width = max(map(len, full))
    ids = torch.full((len(full), width), pad, dtype=torch.long)
    mask = torch.zeros_like(ids)
    for i, row in enumerate(full):
        ids[i, : len(row)] = torch.tensor(row)
        mask[i, : len(row)] = 1
    with torch.set_grad_enabled(grad):
        logits = model(input_ids=ids.to(device), attention_mask=mask.to(device)).logits
    logp = torch.log_softmax(logits.detach().float(), -1).cpu()
    rows = []
    for i, (prompt, new, _) in enumerate(seqs):
        rows.append(logp[i, len(prompt) - 1 : len(prompt) - 1 + len(new)])
    targets = torch.tensor([new for _, new, _ in seqs])
    return torch.stack(rows), targets


def run(
    recipe: PrecisionRecipe,
    path: str,
    prompts: list[list[int]],
    args: argparse.Namespace,
    train_dtype: str,
) -> dict[str, float]:
    device = torch.device(args.device)
    rollout = rollout_side(path, recipe, device, args.attn)
    seqs, seconds = engine_samples(rollout, prompts, args.samples, args.tokens, args.seed)
    pad = int(rollout.tokenizer.pad_token_id or 0)
    trainer = trainer_side(path, recipe, device, train_dtype, args.attn)
    train_lp, targets = padded_logprobs(trainer, seqs, pad, grad=True)
    lp_t = train_lp.gather(-1, targets[..., None])[..., 0]
    lp_r = torch.tensor([lps for _, _, lps in seqs])
    delta = (lp_t - lp_r).double()
    roll_lp, _ = padded_logprobs(rollout.model, seqs, pad, grad=False)  # type: ignore[arg-type]
    prefill_kl = (roll_lp.exp() * (roll_lp - train_lp)).sum(-1).mean().item()
    del trainer, rollout
    if device.type == "cuda":
        torch.cuda.empty_cache()
    return {
        "mean_abs": delta.abs().mean().item(),
        "max_abs": delta.abs().max().item(),
        "kl_k3": (delta.exp() - 1 - delta).mean().item(),
        "prefill_kl": prefill_kl,
        "tokens_per_s": delta.numel() / seconds,
    }


def study(args: argparse.Namespace) -> dict[str, dict[str, dict[str, float]]]:
    """Run every recipe for each trainer dtype; print and return the tables."""
    with tempfile.TemporaryDirectory() as tmp:
        if args.model:
            path, what = args.model, args.model
        elif args.small:
            path, what = str(tiny_model_dir("causal_lm")), "tiny Qwen3"
        else:
            path, what = str(qwen3_05b(Path(tmp))), "random Qwen3 ~0.5B"
        tokenizer = load_causal_lm(path).tokenizer if args.model else None
        tok = tokenizer or load_causal_lm(tiny_model_dir("causal_lm")).tokenizer
        prompts = [list(tok.encode(p, add_special_tokens=False)) for p in PROMPTS]
        n = len(prompts) * args.samples * args.tokens
        print(f"\nJet-RL mismatch study: {what} on {args.device}, {n} sampled tokens per recipe")
        print("rollout: gantry-rollout engine (KV cache, batched decode), BF16 weights;")
        print("trainer: load_policy + recipe trainer role, right-padded batch, autograd on;")
        print(f"attention: {args.attn or 'the model default'} on both sides")
        # Warm-up (kernel compilation, allocator, engine thread) outside every timing.
        engine_samples(rollout_side(path, RECIPES["fp8-jet"], torch.device(args.device)),
                       prompts[:1], 1, 2, args.seed)  # fmt: skip
        dtypes = ("float32", "bfloat16") if args.train_dtype == "both" else (args.train_dtype,)
        tables = {dtype: table(path, prompts, args, dtype) for dtype in dtypes}
    return tables


def table(
    path: str, prompts: list[list[int]], args: argparse.Namespace, train_dtype: str
) -> dict[str, dict[str, float]]:
    """One row per recipe with the trainer in `train_dtype`, and the ratios to bf16."""
    print(f"\ntrainer weights: {train_dtype}")
    head = ("recipe", "mean|Δlogp|", "max|Δlogp|", "KL (k3)", "prefill KL", "decode tok/s")
    print(f"{head[0]:<11}" + "".join(f"{h:>14}" for h in head[1:]))
    rows: dict[str, dict[str, float]] = {}
    for name, recipe in RECIPES.items():
        r = run(recipe, path, prompts, args, train_dtype)
        rows[name] = r
        print(
            f"{name:<11}{r['mean_abs']:>14.3e}{r['max_abs']:>14.3e}{r['kl_k3']:>14.3e}"
            f"{r['prefill_kl']:>14.3e}{r['tokens_per_s']:>14.1f}",
            flush=True,
        )
    for name in ("fp8-naive", "fp8-jet"):
        print(f"mismatch {name} / bf16: {ratio(rows[name]['mean_abs'], rows['bf16']['mean_abs'])}")
    speed = rows["fp8-jet"]["tokens_per_s"] / rows["bf16"]["tokens_per_s"]
    print(f"decode tokens/s fp8-jet / bf16: {speed:.2f}x")
    return rows


def ratio(a: float, b: float) -> str:
    """a / b as "1.5x"; "both 0" when neither side has any mismatch."""
    if b > 0:
        return f"{a / b:.1f}x"
    return "both 0" if a == 0 else "inf (bf16 is 0)"


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--device", default="cpu", help="cpu or cuda (the rollout engine's device)")
    p.add_argument("--model", default=None, help="checkpoint directory (default: random 0.5B)")
    p.add_argument("--small", action="store_true", help="the tiny Qwen3 (CPU-sized check)")
    p.add_argument("--samples", type=int, default=4, help="sequences per prompt")
    p.add_argument("--tokens", type=int, default=64, help="sampled tokens per sequence")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--train-dtype",
        default="bfloat16",
        choices=("bfloat16", "float32", "both"),
        help="the trainer's weights (default: the service default, bfloat16)",
    )
    p.add_argument("--attn", default=None, help="attention implementation, e.g. sdpa or eager")
    return p


def main() -> int:
    args = parser().parse_args()
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        print(f"fp8_mismatch: --device {args.device} but no CUDA device; nothing was measured")
        return 0
    if args.device == "cpu" and not (args.small or args.model):
        print("fp8_mismatch: the 0.5B model is for a GPU; on CPU use --small (or --model DIR)")
        return 2
    study(args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
