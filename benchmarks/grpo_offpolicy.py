"""GRPO with an off-policy behaviour policy: no correction vs TIS vs MIS (issue 23, part 2).

    .venv/bin/python benchmarks/grpo_offpolicy.py [--steps 40] [--seeds 3] [--lags 0,2]

The behaviour policy that samples each batch is the trainer's policy as Jet-RL's
fp8-naive rollout runs it (FP8 weights and activations in the projections, BF16 training
side), optionally ``lag`` optimiser steps old (asynchronous rollouts). The task is a
bandit over tokens the model can learn in a few dozen steps: a completion's reward is the
fraction of its tokens whose id is a multiple of 8 (chance: 1/8). Each setting trains the
same tiny Qwen3 from the same seed with the trainer's real loss (``grpo.ppo_clip_loss``)
and reports the reward of the last quarter of steps (mean ± std over seeds), the mean and
max behaviour weight w = pi_trainer / pi_rollout and the fraction of tokens TIS truncated
or MIS masked.
"""

from __future__ import annotations

import argparse
import collections
import copy
import statistics
import time
from typing import cast

import torch
from torch import nn

from gantry.kernels.recipes import RECIPES
from gantry.models.loading import load_causal_lm
from gantry.models.tiny import tiny_model_dir
from gantry.trainer import grpo

PROMPTS = ["Pick tokens:", "Observation: a maze. Action:", "def f(x):", "The answer is"]
MODES = ("none", "tis", "mis")


def sample(
    behaviour: nn.Module, prompt: list[int], group: int, tokens: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Sequences [group, len] and the behaviour's logprob of each sampled token [group, tokens]."""
    with torch.no_grad():
        out = behaviour.generate(  # type: ignore[operator]
            torch.tensor([prompt] * group),
            max_new_tokens=tokens,
            min_new_tokens=tokens,
            do_sample=True,
            temperature=1.0,
            top_k=0,
            top_p=1.0,
            output_logits=True,
            return_dict_in_generate=True,
        )
    new = out.sequences[:, -tokens:]
    logp = torch.log_softmax(torch.stack(out.logits, 1).float(), -1)
    return out.sequences, logp.gather(-1, new[..., None])[..., 0]


def train(
    base: nn.Module,
    prompts: list[list[int]],
    mode: str,
    lag: int,
    seed: int,
    args: argparse.Namespace,
) -> dict[str, float]:
    torch.manual_seed(seed)
    policy = copy.deepcopy(base)
    RECIPES["fp8-naive"].apply(policy, "trainer")  # BF16 training side
    optimizer = torch.optim.AdamW(policy.parameters(), lr=args.lr, weight_decay=0.0)
    history: collections.deque[dict[str, torch.Tensor]] = collections.deque(maxlen=lag + 1)
    rewards: list[float] = []
    weights: list[float] = []
    weight_max = corrected = tokens_seen = 0.0
    for _ in range(args.steps):
        history.append({k: v.detach().clone() for k, v in policy.state_dict().items()})
        behaviour = copy.deepcopy(base)
        behaviour.load_state_dict(history[0])  # `lag` updates old once the history is full
        RECIPES["fp8-naive"].apply(behaviour, "rollout")  # FP8 rollout side
        seqs, old, adv = [], [], []
        step_rewards: list[float] = []
        for prompt in prompts:
            s, lp = sample(behaviour, prompt, args.group, args.tokens)
            r = ((s[:, -args.tokens :] % 8) == 0).float().mean(-1).tolist()
            seqs.append(s)
            old.append(lp)
            adv.extend(grpo.group_advantages(r, ["g"] * len(r)))
            step_rewards.extend(r)
        rewards.append(statistics.fmean(step_rewards))
        optimizer.zero_grad()
        total = float(len(adv) * args.tokens)
        for s, lp, a in zip(
            seqs,
            old,
            [adv[i : i + args.group] for i in range(0, len(adv), args.group)],
            strict=True,
        ):
            logits = policy(s).logits[:, -args.tokens - 1 : -1]
            logp, _ = grpo.token_logprobs(logits, s[:, -args.tokens :])
            terms = grpo.ppo_clip_loss(
                logp,
                lp,
                torch.tensor(a),
                torch.ones_like(lp),
                clip_low=0.2,
                clip_high=0.28,
                total_tokens=total,
                correction=mode,
                importance_cap=args.cap,
            )
            terms.loss.backward()  # type: ignore[no-untyped-call]
            w = torch.exp(logp.detach() - lp)  # measured alike in every mode, for the table
            weights.append(float(w.mean()))
            weight_max = max(weight_max, float(w.max()))
            corrected += terms.corrected
            tokens_seen += terms.tokens
        optimizer.step()
    tail = rewards[-max(1, args.steps // 4) :]
    return {
        "first": rewards[0],
        "final": statistics.fmean(tail),
        "w_mean": statistics.fmean(weights),
        "w_max": weight_max,
        "corrected": corrected / max(tokens_seen, 1.0),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--model", default=None, help="checkpoint directory (default: tiny Qwen3)")
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--lags", default="0,2", help="behaviour policy age in updates")
    parser.add_argument("--group", type=int, default=8)
    parser.add_argument("--tokens", type=int, default=8)
    parser.add_argument("--lr", type=float, default=3e-3)
    parser.add_argument("--cap", type=float, default=grpo.DEFAULT_IMPORTANCE_CAP)
    args = parser.parse_args()
    path = args.model or str(tiny_model_dir("causal_lm"))
    bundle = load_causal_lm(path)
    base = cast(nn.Module, bundle.model).to(torch.bfloat16)
    prompts = [list(bundle.tokenizer.encode(p, add_special_tokens=False)) for p in PROMPTS]
    print(
        f"model {path}; {len(prompts)} prompts × group {args.group} × {args.tokens} tokens, "
        f"{args.steps} steps, {args.seeds} seeds, cap {args.cap}; chance reward 0.125"
    )
    header = f"{'lag':>3} {'mode':<5}{'first':>7}{'final':>15}{'vs none':>9}"
    print(f"{header}{'w mean':>8}{'w max':>8}{'cut':>7}")
    for lag in (int(x) for x in args.lags.split(",")):
        baseline = None
        for mode in MODES:
            started = time.perf_counter()
            runs = [train(base, prompts, mode, lag, seed, args) for seed in range(args.seeds)]
            final = [r["final"] for r in runs]
            mean = statistics.fmean(final)
            spread = statistics.stdev(final) if len(final) > 1 else 0.0
            baseline = mean if baseline is None else baseline
            print(
                f"{lag:>3} {mode:<5}{statistics.fmean(r['first'] for r in runs):>7.3f}"
                f"{mean:>9.3f}±{spread:<5.3f}{mean / baseline:>8.2f}x"
                f"{statistics.fmean(r['w_mean'] for r in runs):>8.3f}"
                f"{max(r['w_max'] for r in runs):>8.2f}"
                f"{statistics.fmean(r['corrected'] for r in runs):>7.3f}"
                f"   ({time.perf_counter() - started:.0f} s)"
            )


if __name__ == "__main__":
    main()
