"""Rollout/training logprob mismatch for each precision recipe (Jet-RL's claim, measured).

    .venv/bin/python benchmarks/fp8_mismatch.py [--model DIR] [--samples 4] [--tokens 48]

The rollout model samples ``--tokens`` tokens per sequence (temperature 1) from a few
prompts; the trainer model then scores the same sequences. For each recipe the two sides
run the forward the recipe names (``gantry.kernels.recipes``): bf16 = BF16 / BF16,
fp8-naive = FP8 / BF16, fp8-jet = FP8 / FP8 (same FP8 recipe). Reported per sampled token:
mean |Δ logprob| of the sampled token and the mean KL(rollout ‖ trainer) over the vocabulary,
in two settings:

* ``prefill``: both sides run one full-sequence forward over the same batch (the precision
  flow alone);
* ``decode``: rollout logprobs come from incremental decoding with the KV cache (what a
  rollout engine reports), the trainer's from one full-sequence forward (what training
  sees); this adds the kernel-shape differences of real serving.

The model runs in BF16 on this machine's CPU; FP8 layers use the torch reference kernels
(bit-identical to the Triton kernels' quantization; GEMM equal up to float32 summation
order).
"""

from __future__ import annotations

import argparse
import copy
import time
from typing import cast

import torch
from torch import nn

from gantry.kernels.recipes import RECIPES, PrecisionRecipe
from gantry.models.loading import load_causal_lm
from gantry.models.tiny import tiny_model_dir

PROMPTS = [
    "The agent looked at the maze and decided to",
    "def shortest_path(grid, start, goal):",
    "Observation: a red block is left of the goal. Action:",
]


def sample(
    model: nn.Module, prompt: list[int], samples: int, tokens: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Sequences [samples, len] and the rollout's per-step log-softmax [samples, tokens, V]."""
    with torch.no_grad():
        out = model.generate(  # type: ignore[operator]
            torch.tensor([prompt] * samples),
            max_new_tokens=tokens,
            min_new_tokens=tokens,
            do_sample=True,
            temperature=1.0,
            top_k=0,
            top_p=1.0,
            output_logits=True,
            return_dict_in_generate=True,
        )
    return out.sequences, torch.log_softmax(torch.stack(out.logits, 1).float(), -1)


def score(model: nn.Module, seqs: torch.Tensor, tokens: int) -> torch.Tensor:
    """Full-sequence forward: log-softmax at the positions that predicted the new tokens."""
    with torch.no_grad():
        logits = model(seqs).logits.float()
    return torch.log_softmax(logits[:, -tokens - 1 : -1], -1)


def compare(rollout: torch.Tensor, trainer: torch.Tensor, new: torch.Tensor) -> tuple[float, float]:
    lp_r = rollout.gather(-1, new[..., None])[..., 0]
    lp_t = trainer.gather(-1, new[..., None])[..., 0]
    kl = (rollout.exp() * (rollout - trainer)).sum(-1)
    return (lp_r - lp_t).abs().mean().item(), kl.mean().item()


def run(
    recipe: PrecisionRecipe, base: nn.Module, prompts: list[list[int]], args: argparse.Namespace
) -> dict[str, tuple[float, float]]:
    rollout, trainer = copy.deepcopy(base), copy.deepcopy(base)
    recipe.apply(rollout, "rollout")
    recipe.apply(trainer, "trainer")
    results: dict[str, list[tuple[float, float]]] = {"prefill": [], "decode": []}
    for i, prompt in enumerate(prompts):
        torch.manual_seed(args.seed + i)  # the same samples for every recipe
        seqs, decode_lp = sample(rollout, prompt, args.samples, args.tokens)
        new = seqs[:, -args.tokens :]
        train_lp = score(trainer, seqs, args.tokens)
        results["decode"].append(compare(decode_lp, train_lp, new))
        results["prefill"].append(compare(score(rollout, seqs, args.tokens), train_lp, new))
    return {
        k: (sum(a for a, _ in v) / len(v), sum(b for _, b in v) / len(v))
        for k, v in results.items()
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--model", default=None, help="checkpoint directory (default: tiny Qwen3)")
    parser.add_argument("--samples", type=int, default=4, help="sequences per prompt")
    parser.add_argument("--tokens", type=int, default=48, help="sampled tokens per sequence")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    path = args.model or str(tiny_model_dir("causal_lm"))
    bundle = load_causal_lm(path)
    base = cast(nn.Module, bundle.model).to(torch.bfloat16)
    prompts = [list(bundle.tokenizer.encode(p, add_special_tokens=False)) for p in PROMPTS]
    n = len(prompts) * args.samples * args.tokens
    print(f"model {path} (bf16, CPU), {n} sampled tokens per recipe")
    print(
        f"{'recipe':<11}{'rollout':>8}{'trainer':>8}  {'setting':<8}"
        f"{'mean |Δlogp|':>14}{'mean KL':>12}"
    )
    table: dict[str, dict[str, tuple[float, float]]] = {}
    for name, recipe in RECIPES.items():
        start = time.perf_counter()
        table[name] = run(recipe, base, prompts, args)
        for setting, (dlp, kl) in table[name].items():
            print(
                f"{name:<11}{recipe.rollout:>8}{recipe.trainer:>8}  {setting:<8}"
                f"{dlp:>14.3e}{kl:>12.3e}"
            )
        print(f"{'':<27}({time.perf_counter() - start:.1f} s)")
    base_dlp = table["bf16"]["decode"][0]
    for name in ("fp8-naive", "fp8-jet"):
        dlp = table[name]["decode"][0]
        ratio = f"{dlp / base_dlp:.1f}x" if base_dlp > 0 else "n/a"
        print(f"decode mismatch {name} / bf16: {ratio}; prefill: {table[name]['prefill'][0]:.3e}")


if __name__ == "__main__":
    main()
