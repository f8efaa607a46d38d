"""GRPO math against values computed by hand."""

from __future__ import annotations

import math
from dataclasses import replace
from typing import cast

import pytest
import torch

from gantry.proto.common.v1 import chat_pb2, trajectory_pb2
from gantry.trainer import grpo


def test_group_advantages_normalise_within_each_group() -> None:
    rewards = [1.0, 0.0, 1.0, 0.0, 5.0, 5.0, 2.0]
    groups = ["a", "a", "a", "a", "b", "b", "c"]
    adv = grpo.group_advantages(rewards, groups)
    # group a: mean 0.5, population std 0.5 -> +-1 (up to eps)
    assert adv[:4] == pytest.approx([1.0, -1.0, 1.0, -1.0], abs=1e-5)
    assert adv[4:] == [0.0, 0.0, 0.0]  # equal rewards and a group of one carry no signal
    centred = grpo.group_advantages(rewards, groups, scale=False)
    assert centred[:4] == [0.5, -0.5, 0.5, -0.5]


def test_equal_rewards_give_exactly_zero_advantage() -> None:
    """0.1 three times has a float mean of 0.10000000000000002: no residue may survive."""
    adv = grpo.group_advantages([0.1, 0.1, 0.1, 0.7, 0.7], ["g", "g", "g", "h", "h"])
    assert adv == [0.0] * 5
    assert grpo.group_advantages([0.1] * 3, ["g"] * 3, scale=False) == [0.0] * 3


def test_with_signal_keeps_turns_that_move_the_policy() -> None:
    turns = _turns([(4, 3), (6, 2), (3, 1), (5, 5)])
    items = [replace(t, advantage=a) for t, a in zip(turns, [0.0, 1.5, 0.0, -0.5], strict=True)]
    assert grpo.with_signal(items, kl_coef=0.0) == [items[1], items[3]]
    assert grpo.with_signal(items, kl_coef=0.01) == items  # the KL term has a gradient
    none = [replace(t, advantage=0.0) for t in turns]
    assert grpo.with_signal(none, kl_coef=0.0) == [none[2]]  # the shortest, for a zero step
    assert grpo.with_signal([], kl_coef=0.0) == []


def test_group_advantages_with_uneven_rewards() -> None:
    adv = grpo.group_advantages([3.0, 0.0, 0.0], ["g", "g", "g"])
    mean, std = 1.0, math.sqrt((4 + 1 + 1) / 3)
    assert adv == pytest.approx([(3 - mean) / std, -mean / std, -mean / std], rel=1e-5)


def test_ppo_clip_loss_hand_computed() -> None:
    # Two sequences, three positions; position 0 is prompt (masked out).
    old = torch.tensor([[0.0, -1.0, -1.0], [0.0, -2.0, -2.0]])
    new = torch.tensor(
        [
            [0.0, -1.0 + math.log(1.5), -1.0 + math.log(0.9)],
            [0.0, -2.0 + math.log(0.5), -2.0 + math.log(1.1)],
        ]
    )
    mask = torch.tensor([[0.0, 1.0, 1.0], [0.0, 1.0, 1.0]])
    adv = torch.tensor([2.0, -1.0])
    terms = grpo.ppo_clip_loss(new, old, adv, mask, clip_low=0.2, clip_high=0.28, total_tokens=4)
    # seq 0 (A=2):  r=1.5 -> min(3.0, 1.28*2=2.56)=2.56 ; r=0.9 -> min(1.8, 1.8)=1.8
    # seq 1 (A=-1): r=0.5 -> min(-0.5, 0.8*-1=-0.8)=-0.8 ; r=1.1 -> min(-1.1, -1.1)=-1.1
    expected = -(2.56 + 1.8 - 0.8 - 1.1) / 4
    assert float(terms.loss) == pytest.approx(expected, rel=1e-6)
    assert terms.tokens == 4
    assert terms.clipped == 2  # r=1.5 with A>0 above 1.28; r=0.5 with A<0 below 0.8
    assert terms.mismatch_sum == pytest.approx(
        abs(math.log(1.5)) + abs(math.log(0.9)) + abs(math.log(0.5)) + abs(math.log(1.1)),
        rel=1e-6,
    )


def test_kl_penalty_is_the_k3_estimator() -> None:
    logp = torch.tensor([[math.log(0.5)]])
    ref = torch.tensor([[math.log(0.25)]])
    mask = torch.ones(1, 1)
    terms = grpo.ppo_clip_loss(
        logp,
        logp.clone(),
        torch.tensor([0.0]),
        mask,
        clip_low=0.2,
        clip_high=0.2,
        total_tokens=1,
        ref_logprobs=ref,
        kl_coef=0.1,
    )
    d = math.log(0.25) - math.log(0.5)
    k3 = math.exp(d) - d - 1  # 0.5 + ln 2 - 1
    assert terms.kl_sum == pytest.approx(k3, rel=1e-6)
    assert float(terms.loss) == pytest.approx(0.1 * k3, rel=1e-6)  # A=0: only the KL term


def _corrected(correction: str, cap: float) -> tuple[grpo.LossTerms, torch.Tensor]:
    """One sequence, four completion tokens whose rollout probability was 1/4, 1, 2, 4 times
    the trainer's (w = 4, 1, 0.5, 0.25), advantage 1; returns the terms and d loss / d logp."""
    trainer = torch.tensor([[math.log(0.2), math.log(0.5), math.log(0.3), math.log(0.1)]])
    rollout = trainer + torch.log(torch.tensor([[0.25, 1.0, 2.0, 4.0]]))
    logp = trainer.clone().requires_grad_(True)
    terms = grpo.ppo_clip_loss(
        logp,
        rollout,
        torch.tensor([1.0]),
        torch.ones(1, 4),
        clip_low=0.2,
        clip_high=0.2,
        total_tokens=4,
        correction=correction,
        importance_cap=cap,
    )
    terms.loss.backward()  # type: ignore[no-untyped-call]
    assert logp.grad is not None
    return terms, logp.grad[0]


def test_tis_weights_each_token_by_the_truncated_behaviour_ratio() -> None:
    terms, grad = _corrected("tis", cap=2.0)
    # Decoupled objective: r = pi/pi_proximal = 1, so the gradient is -min(w, C)·A / tokens.
    assert grad.tolist() == pytest.approx([-2.0 / 4, -1.0 / 4, -0.5 / 4, -0.25 / 4], rel=1e-6)
    assert float(terms.loss.detach()) == pytest.approx(-(2.0 + 1.0 + 0.5 + 0.25) / 4, rel=1e-6)
    assert terms.weight_sum == pytest.approx(4.0 + 1.0 + 0.5 + 0.25, rel=1e-6)
    assert terms.weight_max == pytest.approx(4.0, rel=1e-6)
    assert terms.corrected == 1  # only w = 4 exceeded C
    assert terms.clipped == 0  # the ratio to the proximal policy is 1 in a one-update step


def test_mis_drops_tokens_whose_behaviour_ratio_exceeds_the_cap() -> None:
    terms, grad = _corrected("mis", cap=2.0)
    assert grad.tolist() == pytest.approx([0.0, -1.0 / 4, -0.5 / 4, -0.25 / 4], rel=1e-6)
    assert terms.corrected == 1
    _, loose = _corrected("mis", cap=5.0)
    assert loose[0] == pytest.approx(-4.0 / 4, rel=1e-6)  # under a higher cap it stays


def test_without_correction_the_ratio_is_taken_against_rollout() -> None:
    terms, grad = _corrected("none", cap=2.0)
    # r = pi/pi_rollout = w; PPO-clip at 1.2 stops the gradient of w = 4 (A > 0) and keeps
    # r·A for the others: d(r)/d(logp) = r.
    assert grad.tolist() == pytest.approx([0.0, -1.0 / 4, -0.5 / 4, -0.25 / 4], rel=1e-6)
    assert terms.weight_sum == 0 and terms.corrected == 0
    with pytest.raises(ValueError, match="correction"):
        _corrected("is", cap=2.0)


def test_correction_names_cover_the_enum() -> None:
    from gantry.proto.trainer.v1 import trainer_pb2

    assert [grpo.correction_name(v) for v in trainer_pb2.OffPolicyCorrection.values()] == [
        "none",
        "none",
        "tis",
        "mis",
    ]


def _trajectory(
    tid: str, group: str, reward: float, prompt: list[int], completion: list[int]
) -> trajectory_pb2.Trajectory:
    return trajectory_pb2.Trajectory(
        id=tid,
        group_id=group,
        final_reward=reward,
        turns=[
            trajectory_pb2.Turn(
                index=0,
                prompt_token_ids=prompt,
                completion=chat_pb2.TokenSequence(
                    token_ids=completion, logprobs=[-0.5] * len(completion)
                ),
            )
        ],
    )


def test_sequences_mask_only_completion_tokens() -> None:
    trajs = [
        _trajectory("t1", "g", 1.0, [5, 6, 7], [8, 9]),
        _trajectory("t2", "g", 0.0, [5, 6], [10, 11, 12]),
    ]
    items = grpo.sequences(trajs)
    batch = grpo.collate(items, pad_id=0)
    assert batch.input_ids.tolist() == [[5, 6, 7, 8, 9], [5, 6, 10, 11, 12]]
    # position i predicts token i+1: completion of t1 starts at token 3 -> positions 2, 3
    assert batch.loss_mask.tolist() == [[0, 0, 1, 1], [0, 1, 1, 1]]
    assert batch.targets[0, 2:].tolist() == [8, 9]
    assert batch.old_logprobs[1].tolist() == [0.0, -0.5, -0.5, -0.5]
    assert batch.advantages.tolist() == pytest.approx([1.0, -1.0], abs=1e-5)


def test_invalid_trajectories_name_the_problem() -> None:
    good = _trajectory("t", "g", 1.0, [1, 2], [3])
    assert grpo.invalid_reason(good) is None
    missing = _trajectory("t", "g", 1.0, [1, 2], [3, 4])
    del missing.turns[0].completion.logprobs[:]
    assert "missing logprobs" in (grpo.invalid_reason(missing) or "")
    no_prompt = _trajectory("t", "g", 1.0, [], [3])
    assert "prompt_token_ids" in (grpo.invalid_reason(no_prompt) or "")
    assert grpo.invalid_reason(trajectory_pb2.Trajectory(id="x")) == "no turns"


def test_turns_without_tokens_or_too_long_are_skipped() -> None:
    mixed = _trajectory("t", "g", 1.0, [1, 2], [3, 4])
    mixed.turns.add(index=1, prompt_token_ids=[1, 2, 3, 4, 5])  # nothing generated
    mixed.turns.add(
        index=2,
        prompt_token_ids=list(range(1, 30)),
        completion=chat_pb2.TokenSequence(token_ids=[7], logprobs=[-1.0]),
    )
    assert grpo.invalid_reason(mixed) is None
    assert [len(s.input_ids) for s in grpo.sequences([mixed])] == [4, 30]
    assert [len(s.input_ids) for s in grpo.sequences([mixed], max_len=10)] == [4]
    empty = trajectory_pb2.Trajectory(id="e", turns=[trajectory_pb2.Turn(prompt_token_ids=[1])])
    assert grpo.invalid_reason(empty) == "no turn has completion tokens"


def _turns(lengths: list[tuple[int, int]], seed: int = 0) -> list[grpo.TurnSequence]:
    rng = torch.Generator().manual_seed(seed)
    out = []
    for i, (prompt, completion) in enumerate(lengths):
        ids = torch.randint(3, 200, (prompt + completion,), generator=rng).tolist()
        out.append(
            grpo.TurnSequence(
                input_ids=ids,
                prompt_len=prompt,
                old_logprobs=(-torch.rand(completion, generator=rng) * 3).tolist(),
                advantage=float(i % 3) - 1.0,
                trajectory_id=f"t{i}",
            )
        )
    return out


def test_token_budget_packs_by_length_and_keeps_every_sequence_once() -> None:
    items = _turns([(5, 3), (40, 20), (6, 2), (30, 25), (4, 4), (50, 40), (7, 1), (3, 3)])
    fixed = grpo.micro_batches(items, 4)
    assert [len(p) for p in fixed] == [4, 4] and fixed[0][0] is items[0]  # arrival order
    packed = grpo.micro_batches(items, 4, token_budget=120)
    assert sorted(id(s) for p in packed for s in p) == sorted(id(s) for s in items)
    for p in packed:  # within budget, or a sequence alone
        longest = max(len(s.input_ids) for s in p)
        assert len(p) * longest <= 120 or len(p) == 1

    def padded(passes: list[list[grpo.TurnSequence]]) -> int:
        return sum(len(p) * max(len(s.input_ids) for s in p) for p in passes)

    assert padded(packed) < padded(fixed)
    huge = grpo.micro_batches(items, 4, token_budget=10)  # every sequence is over budget...
    assert sum(len(p) for p in huge) == len(items)  # ...and still trained, alone or packed


def test_token_budget_batching_gives_the_same_gradient() -> None:
    from gantry.models.loading import load_causal_lm
    from gantry.models.tiny import tiny_model_dir

    model = cast(torch.nn.Module, load_causal_lm(str(tiny_model_dir("causal_lm"))).model)
    model = model.to(torch.float32)
    items = _turns([(5, 3), (40, 20), (6, 2), (30, 25), (4, 4), (50, 40)], seed=1)
    total = float(sum(s.completion_len for s in items))

    def gradient(passes: list[list[grpo.TurnSequence]]) -> torch.Tensor:
        model.zero_grad()
        for chunk in passes:
            batch = grpo.collate(chunk, pad_id=0)
            logits = model(input_ids=batch.input_ids, attention_mask=batch.attention_mask).logits
            logp, _ = grpo.token_logprobs(logits[:, :-1], batch.targets)
            terms = grpo.ppo_clip_loss(
                logp,
                batch.old_logprobs,
                batch.advantages,
                batch.loss_mask,
                clip_low=0.2,
                clip_high=0.28,
                total_tokens=total,
                correction="tis",
            )
            terms.loss.backward()  # type: ignore[no-untyped-call]
        return torch.cat([p.grad.flatten() for p in model.parameters() if p.grad is not None])

    fixed = gradient(grpo.micro_batches(items, 2))
    packed = gradient(grpo.micro_batches(items, 2, token_budget=96))
    assert fixed.abs().max() > 0
    torch.testing.assert_close(packed, fixed, rtol=1e-4, atol=1e-6)


class _NoLogitsToKeep(torch.nn.Module):
    """A policy whose forward has no `logits_to_keep` (computes every position)."""

    def __init__(self, inner: torch.nn.Module) -> None:
        super().__init__()
        self.inner = inner

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> object:
        return self.inner(input_ids=input_ids, attention_mask=attention_mask)


def test_policy_logprobs_match_full_logits_and_compute_only_completion_rows() -> None:
    from gantry.models.loading import load_causal_lm
    from gantry.models.tiny import tiny_model_dir

    model = cast(torch.nn.Module, load_causal_lm(str(tiny_model_dir("causal_lm"))).model)
    model = model.to(torch.float32)
    items = _turns([(30, 4), (7, 9), (45, 2), (12, 12)], seed=3)
    batch = grpo.collate(items, pad_id=0)
    mask = batch.loss_mask
    completion = sum(s.completion_len for s in items)

    def loss_and_grad(logp: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        terms = grpo.ppo_clip_loss(
            logp,
            batch.old_logprobs,
            batch.advantages,
            mask,
            clip_low=0.2,
            clip_high=0.28,
            total_tokens=float(completion),
        )
        model.zero_grad()
        terms.loss.backward()  # type: ignore[no-untyped-call]
        grads = [p.grad.flatten() for p in model.parameters() if p.grad is not None]
        return terms.loss.detach(), torch.cat(grads)

    full_logits = model(**batch.inputs()).logits
    reference, ref_entropy = grpo.token_logprobs(full_logits[:, :-1], batch.targets)
    ref_loss, ref_grad = loss_and_grad(reference * mask)

    shapes: list[tuple[int, ...]] = []
    head = cast(torch.nn.Module, model.get_output_embeddings())  # type: ignore[operator]
    hook = head.register_forward_hook(lambda _m, _i, out: shapes.append(tuple(out.shape)))
    try:
        logp, entropy = grpo.policy_logprobs(model, batch)
    finally:
        hook.remove()
    vocab = full_logits.shape[-1]
    assert shapes == [(completion, vocab)], "the output layer ran on more than the completions"
    torch.testing.assert_close(logp, reference * mask, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(entropy, ref_entropy * mask, rtol=1e-5, atol=1e-5)
    loss, grad = loss_and_grad(logp)
    torch.testing.assert_close(loss, ref_loss)
    assert ref_grad.abs().max() > 0
    torch.testing.assert_close(grad, ref_grad, rtol=1e-4, atol=1e-6)

    plain, _ = grpo.policy_logprobs(_NoLogitsToKeep(model), batch)  # the fallback path
    torch.testing.assert_close(plain, reference * mask, rtol=1e-5, atol=1e-5)
