"""Choosing the next token, and the logprob reported for it.

Two reporting modes (`SamplingParams.logprobs_mode`):

- "raw" (default): log softmax of the model's raw logits (temperature 1, no top-k/p), i.e.
  log π(token | context) under the current policy: what GRPO/PPO ratios against the
  trainer's forward pass need, and what vLLM reports with `logprobs_mode="raw_logprobs"`.
  Temperature, top-k and top-p only shape the distribution the token is drawn from.
- "processed": the log-probability under the distribution the token was actually drawn
  from: logits / temperature, top-k cut, then top-p cut, renormalised over the kept tokens
  (vLLM's `"processed_logprobs"`). A sampled token is always kept, so it is finite. Greedy
  decoding (temperature 0) draws from a point mass: the argmax token's processed logprob
  is 0.

Top alternatives (`top_logprobs`) always come from the raw distribution.

Structured output (a grammar mask, see `grammar.py`) sets the forbidden tokens' logits to
-inf before temperature, top-k and top-p: the token is drawn among the allowed ones, and
"processed" logprobs are under that masked distribution. "raw" logprobs and the top
alternatives stay those of the unconstrained model.
"""

from __future__ import annotations

import torch

from gantry.rollout.engine.types import SamplingParams, TopLogprobs

# Temperatures below this sample greedily (as vLLM does): dividing by a tiny temperature
# would overflow the logits to inf and make the distribution NaN.
GREEDY_BELOW = 1e-5


def make_generator(seed: int | None, index: int) -> torch.Generator:
    generator = torch.Generator(device="cpu")
    if seed is None:
        generator.seed()
    else:
        # Each of the n samples gets its own stream, reproducible from (seed, index).
        generator.manual_seed((seed * 1_000_003 + index) % (2**63))
    return generator


def _scaled_and_kept(
    logits: torch.Tensor, params: SamplingParams
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """For one row [V]: logits / temperature with the top-k cut applied (-inf), the
    distribution before the top-p cut, and the mask of tokens that survive both cuts."""
    scaled = logits / params.temperature
    if params.top_k and params.top_k < scaled.numel():
        kth = torch.topk(scaled, params.top_k).values[-1]
        scaled = scaled.masked_fill(scaled < kth, float("-inf"))
    probs = torch.softmax(scaled, dim=-1)
    kept = torch.isfinite(scaled)
    if params.top_p < 1.0:
        sorted_probs, order = torch.sort(probs, descending=True)
        cumulative = torch.cumsum(sorted_probs, dim=-1)
        # Keep the smallest prefix whose mass reaches top_p (always at least one token).
        drop = cumulative - sorted_probs >= params.top_p
        kept = kept & torch.zeros_like(kept).scatter(0, order, ~drop)
    return scaled, probs, kept


def processed_probs(logits: torch.Tensor, params: SamplingParams) -> torch.Tensor:
    """The sampling distribution for one row of logits (float32, shape [V])."""
    _, probs, kept = _scaled_and_kept(logits, params)
    if params.top_p < 1.0:
        probs = probs.masked_fill(~kept, 0.0)
        probs = probs / probs.sum()
    return probs


def processed_logprobs(logits: torch.Tensor, params: SamplingParams) -> torch.Tensor:
    """Log of the sampling distribution for one row [V] (-inf outside the kept tokens),
    computed in log space so that unlikely kept tokens stay exact."""
    scaled, _, kept = _scaled_and_kept(logits, params)
    return torch.log_softmax(scaled.masked_fill(~kept, float("-inf")), dim=-1)


def sample(
    logits: torch.Tensor,
    params: list[SamplingParams],
    generators: list[torch.Generator],
    masked: torch.Tensor | None = None,
) -> tuple[list[int], list[float], list[TopLogprobs]]:
    """Next token, its logprob (in each row's `logprobs_mode`) and the rows' asked-for top
    alternatives, per row of `logits` [B, V]. `masked`: the same logits with each
    constrained row's forbidden tokens at -inf (structured output); tokens are drawn from
    it, raw logprobs still come from `logits`."""
    logits = logits.float()
    raw = torch.log_softmax(logits, dim=-1)
    shaped = logits if masked is None else masked.float()
    tokens: list[int] = []
    for row, (p, gen) in enumerate(zip(params, generators, strict=True)):
        if p.temperature < GREEDY_BELOW:
            token = int(torch.argmax(shaped[row]))
        else:
            probs = processed_probs(shaped[row], p)
            token = int(torch.multinomial(probs, 1, generator=gen))
        tokens.append(token)
    index = torch.tensor(tokens).unsqueeze(1)
    reported = raw.gather(1, index).squeeze(1).tolist()
    for row, (p, token) in enumerate(zip(params, tokens, strict=True)):
        if p.logprobs_mode == "processed":
            greedy = p.temperature < GREEDY_BELOW
            reported[row] = 0.0 if greedy else float(processed_logprobs(shaped[row], p)[token])
    return tokens, reported, top_alternatives(raw, params)


def top_alternatives(raw: torch.Tensor, params: list[SamplingParams]) -> list[TopLogprobs]:
    """Each row's `top_logprobs` most likely tokens under the raw distribution."""
    k = min(max(p.top_logprobs for p in params), raw.shape[-1])
    if k == 0:
        return [[] for _ in params]
    values, indices = raw.topk(k, dim=-1)
    rows = zip(indices.tolist(), values.tolist(), params, strict=True)
    return [
        list(zip(ids[: p.top_logprobs], lps[: p.top_logprobs], strict=True)) for ids, lps, p in rows
    ]
