"""GRPO: trajectories -> per-turn training sequences, group advantages, PPO-clip loss.

Each turn of a trajectory becomes one sequence: the exact prompt ids rollout fed the
policy plus the generated completion ids. Only completion tokens carry loss (the prompt,
which holds the task and earlier observations, is context). Every turn of a trajectory
shares the trajectory's advantage: its final reward normalised within its group
(trajectories with the same group_id, i.e. the same seed/prompt).

The loss is token-level (each completion token of the batch weighs the same, DAPO's
choice) PPO-clip on the importance ratio between the current policy and the sampling
policy whose logprobs rollout recorded, with an optional k3 KL penalty to a frozen
reference model (Schulman's unbiased, always-positive estimator).

Off-policy corrections (TIS, MIS) switch to AReaL's decoupled objective: the PPO ratio is
taken against the proximal policy (the trainer's weights at the start of the step) and each
token is weighted by the behaviour importance weight w = pi_proximal / pi_rollout, truncated
at C (TIS) or dropped above C (MIS). w absorbs both engine mismatch (another kernel, FP8
rollout) and staleness (an older policy version sampled the token).
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch

from gantry.proto.common.v1 import trajectory_pb2
from gantry.proto.trainer.v1 import trainer_pb2
from gantry.trainer.model import scored_logits
from gantry.trainer.vision import ImageSlots

DEFAULT_CLIP = 0.2  # PPO's range; DAPO's "clip-higher" raises only clip_high, to 0.28
DEFAULT_IMPORTANCE_CAP = 2.0  # the truncation level of Yao et al.'s TIS experiments
CORRECTIONS = ("none", "tis", "mis")
STD_EPS = 1e-6


@dataclass(frozen=True)
class TurnSequence:
    """One turn as a training sequence, in shifted space (position i predicts ids[i+1])."""

    input_ids: list[int]
    prompt_len: int
    old_logprobs: list[float]  # sampling logprob of each completion token
    advantage: float
    trajectory_id: str
    images: tuple[Any, ...] = ()  # the turn's observation images (VLM policies), in order

    @property
    def completion_len(self) -> int:
        return len(self.input_ids) - self.prompt_len


def _outside(ids: Sequence[int], vocab_size: int | None) -> bool:
    return any(i < 0 or (vocab_size is not None and i >= vocab_size) for i in ids)


def invalid_reason(
    trajectory: trajectory_pb2.Trajectory, vocab_size: int | None = None
) -> str | None:
    """Why a submitted trajectory cannot be trained on, or None. Token ids must lie in
    [0, vocab_size) (only the sign is checked while the vocabulary is unknown)."""
    if not trajectory.turns:
        return "no turns"
    if not any(turn.completion.token_ids for turn in trajectory.turns):
        return "no turn has completion tokens"
    for turn in trajectory.turns:
        completion = turn.completion
        if not completion.token_ids:
            continue  # nothing to learn from this turn; it is skipped
        if not turn.prompt_token_ids:
            return f"turn {turn.index}: missing prompt_token_ids"
        if _outside(turn.prompt_token_ids, vocab_size) or _outside(
            completion.token_ids, vocab_size
        ):
            return f"turn {turn.index}: a token id is outside the model's vocabulary"
        if len(completion.logprobs) != len(completion.token_ids):
            return (
                f"turn {turn.index}: missing logprobs ({len(completion.logprobs)} for "
                f"{len(completion.token_ids)} completion tokens)"
            )
        if not all(math.isfinite(lp) and lp <= 0 for lp in completion.logprobs):
            return f"turn {turn.index}: logprobs must be finite and <= 0"
    if not math.isfinite(trajectory.final_reward):
        return "final_reward is not finite"
    return None


def group_advantages(
    rewards: Sequence[float], group_ids: Sequence[str], *, scale: bool = True
) -> list[float]:
    """(r - mean of its group) [/ (population std of its group + eps)].

    A group of one, or a group whose rewards are all equal, gets advantage 0.
    """
    groups: dict[str, list[float]] = defaultdict(list)
    for reward, group in zip(rewards, group_ids, strict=True):
        groups[group].append(reward)
    stats = {}
    for group, values in groups.items():
        if min(values) == max(values):  # centred exactly 0, not the mean's rounding residue
            stats[group] = (values[0], 0.0)
            continue
        mean = sum(values) / len(values)
        std = math.sqrt(sum((v - mean) ** 2 for v in values) / len(values))
        stats[group] = (mean, std)
    advantages = []
    for reward, group in zip(rewards, group_ids, strict=True):
        mean, std = stats[group]
        centred = reward - mean
        advantages.append(centred / (std + STD_EPS) if scale else centred)
    return advantages


def with_signal(items: Sequence[TurnSequence], kl_coef: float) -> list[TurnSequence]:
    """The turn sequences a step must run forward and backward.

    A zero advantage (its group's rewards were all equal) makes a token's clipped term and
    its gradient exactly 0, so without a KL term such turns change nothing but cost a full
    pass; at low success rates they are most of a batch. The loss stays divided by every
    completion token of the batch, so the update is the one over all turns. When no turn
    has signal, the shortest is kept: the step then applies zero gradients, as before."""
    if kl_coef > 0 or not items:
        return list(items)
    kept = [s for s in items if s.advantage != 0.0]
    return kept or [min(items, key=lambda s: len(s.input_ids))]


def sequences(
    trajectories: Sequence[trajectory_pb2.Trajectory],
    *,
    scale_advantages: bool = True,
    max_len: int = 0,
    vocab_size: int | None = None,
    slots: ImageSlots | None = None,
) -> list[TurnSequence]:
    """One sequence per turn with completion tokens; turns longer than `max_len` (when
    set) are left out rather than cut, since a cut prompt is not what the policy saw, and
    so are turns with token ids outside the vocabulary (when given). With `slots` (a
    vision-language policy) each sequence carries its turn's images; a turn whose images
    cannot be rebuilt is left out too."""
    advantages = group_advantages(
        [t.final_reward for t in trajectories],
        [t.group_id or t.id for t in trajectories],
        scale=scale_advantages,
    )
    out = []
    for trajectory, advantage in zip(trajectories, advantages, strict=True):
        for turn in trajectory.turns:
            prompt = list(turn.prompt_token_ids)
            length = len(prompt) + len(turn.completion.token_ids)
            if not turn.completion.token_ids or (max_len and length > max_len):
                continue
            if _outside(prompt, vocab_size) or _outside(turn.completion.token_ids, vocab_size):
                continue
            images = slots.images_of(prompt, turn) if slots is not None else []
            if images is None:
                continue
            out.append(
                TurnSequence(
                    input_ids=prompt + list(turn.completion.token_ids),
                    prompt_len=len(prompt),
                    old_logprobs=list(turn.completion.logprobs),
                    advantage=advantage,
                    trajectory_id=trajectory.id,
                    images=tuple(images),
                )
            )
    return out


def micro_batches(
    items: Sequence[TurnSequence], size: int, token_budget: int = 0
) -> list[list[TurnSequence]]:
    """Split a step's sequences into forward/backward passes.

    Without a budget: `size` sequences at a time, in order. With one: longest first, each
    pass takes sequences while (rows × its longest) stays within `token_budget`, so
    sequences of similar length share a pass and padding stays small.
    """
    if token_budget <= 0:
        return [list(items[i : i + size]) for i in range(0, len(items), max(size, 1))]
    ordered = sorted(items, key=lambda s: len(s.input_ids), reverse=True)
    passes: list[list[TurnSequence]] = []
    for item in ordered:
        current = passes[-1] if passes else None
        # Descending order: the pass's first sequence is its longest.
        if current and (len(current) + 1) * len(current[0].input_ids) <= token_budget:
            current.append(item)
        else:
            passes.append([item])
    return passes


@dataclass
class Batch:
    """Right-padded tensors for a micro-batch; targets are shifted by one."""

    input_ids: torch.Tensor  # [B, L]
    attention_mask: torch.Tensor  # [B, L]
    targets: torch.Tensor  # [B, L-1] = input_ids[:, 1:]
    loss_mask: torch.Tensor  # [B, L-1] float, 1 on completion tokens
    old_logprobs: torch.Tensor  # [B, L-1] float, 0 off the mask
    advantages: torch.Tensor  # [B] float
    # The rows' images in order (VLM policies), empty otherwise.
    pixel_values: torch.Tensor = field(default_factory=lambda: torch.empty(0))

    def to(self, device: torch.device) -> Batch:
        return Batch(*(getattr(self, f).to(device) for f in self.__dataclass_fields__))

    def inputs(self) -> dict[str, torch.Tensor]:
        """The forward's keyword arguments."""
        out = {"input_ids": self.input_ids, "attention_mask": self.attention_mask}
        if self.pixel_values.numel():
            out["pixel_values"] = self.pixel_values
        return out


def collate(
    items: Sequence[TurnSequence],
    pad_id: int,
    pixels: Callable[[list[Any]], torch.Tensor] | None = None,
) -> Batch:
    width = max(len(s.input_ids) for s in items)
    b = len(items)
    ids = torch.full((b, width), pad_id, dtype=torch.long)
    attention = torch.zeros((b, width), dtype=torch.long)
    mask = torch.zeros((b, width - 1))
    old = torch.zeros((b, width - 1))
    for row, s in enumerate(items):
        n = len(s.input_ids)
        ids[row, :n] = torch.tensor(s.input_ids)
        attention[row, :n] = 1
        # Completion token j (absolute position prompt_len + j) is predicted at prompt_len+j-1.
        start = s.prompt_len - 1
        mask[row, start : start + s.completion_len] = 1.0
        old[row, start : start + s.completion_len] = torch.tensor(s.old_logprobs)
    advantages = torch.tensor([s.advantage for s in items], dtype=torch.float32)
    images = [image for s in items for image in s.images]
    values = pixels(images) if images and pixels is not None else torch.empty(0)
    return Batch(ids, attention, ids[:, 1:], mask, old, advantages, values)


def correction_name(value: int) -> str:
    """The loss's name for a `GrpoConfig.off_policy_correction` value (unset = none)."""
    names: dict[int, str] = {
        trainer_pb2.OFF_POLICY_CORRECTION_UNSPECIFIED: "none",
        trainer_pb2.OFF_POLICY_CORRECTION_NONE: "none",
        trainer_pb2.OFF_POLICY_CORRECTION_TIS: "tis",
        trainer_pb2.OFF_POLICY_CORRECTION_MIS: "mis",
    }
    if value not in names:
        raise ValueError(f"unknown off_policy_correction {value}")
    return names[value]


def token_logprobs(
    logits: torch.Tensor, targets: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Logprob of each target under `logits` [..., V] and the per-position entropy."""
    logp = torch.log_softmax(logits.float(), dim=-1)
    picked = logp.gather(-1, targets.unsqueeze(-1)).squeeze(-1)
    with torch.no_grad():
        entropy = -(logp.exp() * logp).sum(-1)
    return picked, entropy


def policy_logprobs(model: Any, batch: Batch) -> tuple[torch.Tensor, torch.Tensor]:
    """The policy's logprob and entropy at each completion token, [B, L-1] (0 elsewhere).

    Logits are computed for the completion tokens only (`scored_logits`), so the memory
    of a step grows with its completion tokens, not with prompt length × vocabulary.
    """
    scored = batch.loss_mask > 0
    picked, entropy = token_logprobs(
        scored_logits(model, batch.inputs(), scored), batch.targets[scored]
    )
    return spread(picked, scored), spread(entropy, scored)


def spread(values: torch.Tensor, where: torch.Tensor) -> torch.Tensor:
    """`values` [N] back to the positions of `where`'s N Trues (row-major), zero elsewhere."""
    return torch.zeros(where.shape, dtype=values.dtype, device=values.device).masked_scatter(
        where, values
    )


@dataclass
class LossTerms:
    loss: torch.Tensor  # this micro-batch's share of the batch loss (sum / batch tokens)
    tokens: float
    clipped: float  # tokens where the clip was active
    kl_sum: float
    entropy_sum: float
    mismatch_sum: float  # sum |rollout logprob - trainer logprob|
    ratio_sum: float
    weight_sum: float = 0.0  # behaviour importance weights w (TIS/MIS), before correction
    weight_max: float = 0.0
    corrected: float = 0.0  # tokens truncated (TIS) or masked out (MIS)


def ppo_clip_loss(
    logprobs: torch.Tensor,
    old_logprobs: torch.Tensor,
    advantages: torch.Tensor,
    mask: torch.Tensor,
    *,
    clip_low: float,
    clip_high: float,
    total_tokens: float,
    ref_logprobs: torch.Tensor | None = None,
    kl_coef: float = 0.0,
    entropy: torch.Tensor | None = None,
    correction: str = "none",
    importance_cap: float = DEFAULT_IMPORTANCE_CAP,
    proximal_logprobs: torch.Tensor | None = None,
) -> LossTerms:
    """Token-level PPO-clip: -w·min(r·A, clip(r, 1-clip_low, 1+clip_high)·A) (+ kl_coef·k3).

    Tensors are [B, T]; `advantages` is [B]; the sum over masked tokens is divided by
    `total_tokens` (the whole optimiser batch's completion tokens) so micro-batches add up
    to the batch mean. `old_logprobs` are rollout's (the behaviour policy). With
    correction "none", r = pi/pi_rollout and w = 1; with "tis"/"mis", r = pi/pi_proximal
    and w = pi_proximal/pi_rollout, truncated at or masked above `importance_cap`. The
    proximal logprobs default to the detached current ones: exact when the step makes one
    optimiser update, as the trainer does.
    """
    if correction not in CORRECTIONS:
        raise ValueError(f"correction must be one of {CORRECTIONS}, not {correction!r}")
    adv = advantages.unsqueeze(-1)
    weight: torch.Tensor | None = None
    weight_sum = weight_max = corrected = 0.0
    if correction == "none":
        anchor = old_logprobs
    else:
        anchor = (proximal_logprobs if proximal_logprobs is not None else logprobs).detach()
        raw = torch.exp((anchor - old_logprobs) * mask)
        over = (raw > importance_cap) & (mask > 0)
        if correction == "tis":
            weight = torch.clamp(raw, max=importance_cap)
        else:
            weight = torch.where(over, torch.zeros_like(raw), raw)
        weight_sum = float((raw * mask).sum())
        weight_max = float((raw * mask).max()) if raw.numel() else 0.0
        corrected = float(over.sum())
    log_ratio = (logprobs - anchor) * mask
    ratio = torch.exp(log_ratio)
    unclipped = ratio * adv
    clipped = torch.clamp(ratio, 1.0 - clip_low, 1.0 + clip_high) * adv
    per_token = -torch.minimum(unclipped, clipped)
    if weight is not None:
        per_token = weight * per_token
    kl_sum = 0.0
    if ref_logprobs is not None and kl_coef > 0:
        delta = (ref_logprobs - logprobs) * mask
        k3 = torch.exp(delta) - delta - 1.0
        per_token = per_token + kl_coef * k3
        kl_sum = float((k3 * mask).sum())
    loss = (per_token * mask).sum() / max(total_tokens, 1.0)
    with torch.no_grad():
        active = ((ratio < 1.0 - clip_low) & (adv < 0)) | ((ratio > 1.0 + clip_high) & (adv > 0))
        return LossTerms(
            loss=loss,
            tokens=float(mask.sum()),
            clipped=float((active.float() * mask).sum()),
            kl_sum=kl_sum,
            entropy_sum=float((entropy * mask).sum()) if entropy is not None else 0.0,
            mismatch_sum=float(((logprobs - old_logprobs).abs() * mask).sum()),
            ratio_sum=float((ratio * mask).sum()),
            weight_sum=weight_sum,
            weight_max=weight_max,
            corrected=corrected,
        )
