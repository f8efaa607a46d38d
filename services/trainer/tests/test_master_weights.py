"""BF16 working weights with float32 masters (gantry.trainer.master): the trainer computes
with the tensors it publishes, small updates survive, and resume is exact."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
import torch

from gantry.kernels.recipes import get_recipe
from gantry.models.loading import load_causal_lm
from gantry.proto.common.v1 import chat_pb2, trajectory_pb2
from gantry.proto.trainer.v1 import trainer_pb2
from gantry.trainer import checkpoints
from gantry.trainer.master import MasterAdamW
from gantry.trainer.model import load_policy
from gantry.trainer.publish import WireWeights
from gantry.trainer.training import Trainer

from .helpers import sft_config, short_dataset


def _trainer(tiny_path: str, dataset: Path, recipe: str = "bf16") -> Trainer:
    config = sft_config(tiny_path, dataset, steps=6, batch_size=2, micro_batch_size=2)
    config.extra.update({"precision_recipe": recipe, "train_dtype": "bfloat16"})
    return Trainer(config, 0)


def _checkpoint(trainer: Trainer, root: Path) -> Path:
    step = trainer.position.step
    meta = trainer_pb2.Checkpoint(id=checkpoints.checkpoint_id(step), step=step)
    return Path(checkpoints.save(root, meta, trainer.write_checkpoint).uri)


def _batch() -> dict[str, torch.Tensor]:
    """Two right-padded rows of different lengths, as a GRPO micro-batch holds them."""
    gen = torch.Generator().manual_seed(3)
    ids = torch.randint(3, 1000, (2, 24), generator=gen)
    mask = torch.ones_like(ids)
    ids[1, 15:], mask[1, 15:] = 0, 0
    return {"input_ids": ids, "attention_mask": mask}


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return short_dataset(tmp_path_factory.mktemp("chats"), count=8)


def test_master_adamw_is_adamw_over_float32_weights() -> None:
    """The master update is AdamW's arithmetic, bit for bit."""
    torch.manual_seed(0)
    w = [torch.nn.Parameter(torch.randn(8, 5)), torch.nn.Parameter(torch.randn(5))]
    ref = [torch.nn.Parameter(p.detach().clone()) for p in w]
    ours = MasterAdamW(w, lr=1e-2, weight_decay=0.1)
    theirs = torch.optim.AdamW(ref, lr=1e-2, weight_decay=0.1, foreach=False)
    for _ in range(3):
        grads = [torch.randn_like(p) for p in w]
        for p, q, g in zip(w, ref, grads, strict=True):
            p.grad, q.grad = g.clone(), g.clone()
        ours.step()
        theirs.step()
    for p, q in zip(w, ref, strict=True):
        assert torch.equal(p, q)


def test_small_updates_accumulate_in_the_master_not_lost_to_bf16_rounding() -> None:
    """lr 1e-4 on weights near 1: each step is ~1/80 of a BF16 ulp. Plain AdamW on BF16
    weights rounds every step away; the master keeps them and the BF16 weight moves."""
    start = torch.full((64,), 1.0, dtype=torch.bfloat16)
    naive = torch.nn.Parameter(start.clone())
    working = torch.nn.Parameter(start.clone())
    plain = torch.optim.AdamW([naive], lr=1e-4, weight_decay=0.0)
    ours = MasterAdamW([working], lr=1e-4, weight_decay=0.0)
    for _ in range(100):
        for p, opt in ((naive, plain), (working, ours)):
            p.grad = torch.ones_like(p)
            opt.step()
    assert torch.equal(naive, start)  # every update was rounded away
    master = ours.state[working]["master"]
    assert master.dtype == torch.float32
    assert master.mean().item() == pytest.approx(1 - 100 * 1e-4, rel=1e-4)
    assert torch.equal(working, master.to(torch.bfloat16)) and not torch.equal(working, start)


def test_backward_passes_sum_into_a_float32_gradient() -> None:
    """Micro-batches accumulate in float32: 1 + 2^-9 is not a BF16 number."""
    w = torch.nn.Parameter(torch.ones(4, dtype=torch.bfloat16))
    opt = MasterAdamW([w], lr=0.0)
    for scale in (1.0, 2.0**-9):
        (w * scale).sum().backward()  # type: ignore[no-untyped-call]
    assert w.grad is None
    (master,) = opt.masters()
    assert master.grad is not None and torch.equal(master.grad, torch.full((4,), 1 + 2.0**-9))


@pytest.mark.parametrize("recipe", ["bf16", "fp8-jet"])
def test_trainer_forward_equals_the_rollout_forward_on_the_published_weights(
    tmp_path: Path, tiny_path: str, dataset: Path, recipe: str
) -> None:
    trainer = _trainer(tiny_path, dataset, recipe)
    assert isinstance(trainer.optimizer, MasterAdamW)
    assert {p.dtype for p in trainer.model.parameters()} == {torch.bfloat16}
    trainer.sft_step()
    saved = _checkpoint(trainer, tmp_path)
    params = dict(trainer.model.named_parameters())
    if recipe == "bf16":  # the stream carries the very tensors the trainer computes with
        wire = dict(WireWeights(saved, recipe))
        assert set(wire) <= set(params) and "model.norm.weight" in wire
        for name, tensor in wire.items():
            assert tensor.dtype == torch.bfloat16 and torch.equal(tensor, params[name]), name
    # Rollout loads the published checkpoint in BF16 with the recipe's rollout role.
    rollout = load_causal_lm(str(saved), dtype="bfloat16").model
    get_recipe(recipe).apply(rollout, "rollout")
    batch = _batch()
    logits = trainer.model(**batch).logits  # train mode, autograd on: as in a step
    with torch.no_grad():
        served = rollout(**batch).logits  # type: ignore[operator]
    mine, theirs = (torch.log_softmax(x.detach().float(), -1) for x in (logits, served))
    keep = batch["attention_mask"].bool()
    assert torch.equal(mine[keep], theirs[keep])
    # A run continuing from the BF16 export keeps BF16 weights by default (train_dtype auto).
    assert next(load_policy(str(saved), recipe)[0].model.parameters()).dtype == torch.bfloat16


def test_resume_restores_the_float32_masters_exactly(
    tmp_path: Path, tiny_path: str, dataset: Path
) -> None:
    trainer = _trainer(tiny_path, dataset)
    for _ in range(2):
        trainer.sft_step()
    saved = _checkpoint(trainer, tmp_path)
    expected = [trainer.sft_step() for _ in range(2)]
    masters = {n: trainer.optimizer.state[p]["master"] for n, p in trainer.model.named_parameters()}
    resumed = _trainer(tiny_path, dataset)
    resumed.restore(saved)
    state = resumed.optimizer.state
    assert all(s["master"].dtype == torch.float32 for s in state.values())
    # The masters are not the BF16 weights: they hold what rounding dropped.
    assert any(not torch.equal(state[p]["master"], p.float()) for p in resumed.model.parameters())
    after = [resumed.sft_step() for _ in range(2)]
    for got, want in zip(after, expected, strict=True):
        assert (got.loss, got.grad_norm) == (want.loss, want.grad_norm)
    for name, p in resumed.model.named_parameters():
        assert torch.equal(resumed.optimizer.state[p]["master"], masters[name]), name


def test_a_float32_checkpoint_trains_float32_weights_with_bf16_autocast(
    tiny_path: str, dataset: Path
) -> None:
    """train_dtype auto (the default) follows the checkpoint, as rollout's dtype=auto."""
    from gantry.kernels.recipes import bf16_compute

    config = sft_config(tiny_path, dataset, steps=1, batch_size=2, micro_batch_size=2)
    trainer = Trainer(config, 0)
    assert type(trainer.optimizer) is torch.optim.AdamW
    assert {p.dtype for p in trainer.model.parameters()} == {torch.float32}
    assert bf16_compute(trainer.model)
    assert trainer.sft_step().loss > 0


def _sampled(path: str, recipe: str, seed: int) -> list[trajectory_pb2.Trajectory]:
    """Trajectories from rollout's engine (KV cache, batched left-padded decode) serving
    `path` in BF16, eager attention, the recipe's rollout role: two prompts x 2 samples."""
    from gantry.rollout.engine.types import Sample, SamplingParams
    from gantry.rollout.generator import TransformersGenerator, complete

    bundle = load_causal_lm(path, dtype="bfloat16")
    bundle.model.set_attn_implementation("eager")  # type: ignore[operator]
    get_recipe(recipe).apply(bundle.model, "rollout")
    generator = TransformersGenerator(bundle, max_batch_size=4)
    prompts = [[5, 17, 230, 41, 9], [7, 300, 12, 18, 99, 410, 3, 56, 77]]

    async def run() -> list[list[Sample]]:
        return await asyncio.gather(
            *(
                complete(generator, prompt, SamplingParams(
                    max_tokens=10, temperature=1.0, seed=seed + i, n=2, ignore_eos=True))
                for i, prompt in enumerate(prompts)
            )
        )  # fmt: skip

    try:
        groups = asyncio.run(run())
    finally:
        generator.engine.stop()
    return [
        trajectory_pb2.Trajectory(
            id=f"{g}-{k}",
            group_id=str(g),
            final_reward=float(k),
            turns=[
                trajectory_pb2.Turn(
                    prompt_token_ids=prompts[g],
                    completion=chat_pb2.TokenSequence(
                        token_ids=list(sample.token_ids), logprobs=list(sample.logprobs)
                    ),
                )
            ],
        )
        for g, group in enumerate(groups)
        for k, sample in enumerate(group)
    ]


@pytest.mark.parametrize("recipe", ["bf16", "fp8-jet"])
def test_grpo_on_engine_samples_has_no_logprob_mismatch_with_eager_attention(
    tmp_path: Path, tiny_path: str, recipe: str
) -> None:
    """BF16 working weights + eager attention on both sides: the GRPO step's logprobs of
    the engine's sampled tokens equal rollout's bit for bit, before and after a publish."""
    config = trainer_pb2.RunConfig(base_model=tiny_path, grpo=trainer_pb2.GrpoConfig())
    config.data.submitted = True
    config.optimizer.learning_rate = 1e-3
    config.extra.update(
        {"precision_recipe": recipe, "attn_implementation": "eager", "train_dtype": "bfloat16"}
    )
    trainer = Trainer(config, 0)
    first = trainer.grpo_step(_sampled(tiny_path, recipe, seed=0))
    assert first.extra["logprob_mismatch"] == 0.0
    saved = _checkpoint(trainer, tmp_path)  # what a publish sends
    second = trainer.grpo_step(_sampled(str(saved), recipe, seed=1))
    assert second.extra["logprob_mismatch"] == 0.0
    assert second.extra["completion_tokens"] == 40


def test_gradient_checkpointing_trains_the_same_step(tiny_path: str) -> None:
    """extra.gradient_checkpointing recomputes activations in the backward pass: the
    step's loss and the updated weights are those of the step without it."""
    steps = []
    for checkpointing in (False, True):
        config = trainer_pb2.RunConfig(base_model=tiny_path, grpo=trainer_pb2.GrpoConfig())
        config.data.submitted = True
        config.optimizer.learning_rate = 1e-3
        config.extra.update({"gradient_checkpointing": checkpointing})
        trainer = Trainer(config, 0)
        layers = [m for m in trainer.model.modules() if hasattr(m, "gradient_checkpointing")]
        assert layers and all(bool(m.gradient_checkpointing) == checkpointing for m in layers)
        metrics = trainer.grpo_step(_sampled(tiny_path, "bf16", seed=0))
        steps.append((metrics, [p.detach().clone() for p in trainer.model.parameters()]))
    (plain, plain_weights), (recomputed, recomputed_weights) = steps
    assert plain.loss != 0.0
    assert recomputed.loss == pytest.approx(plain.loss, rel=1e-5, abs=1e-7)
    for a, b in zip(plain_weights, recomputed_weights, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)
