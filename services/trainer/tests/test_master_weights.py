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
from gantry.trainer import checkpoints, grpo
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


def test_trainable_layers_train_only_the_last_layers_and_resume(
    tiny_path: str, dataset: Path, tmp_path: Path
) -> None:
    """extra.trainable_layers: N: SFT steps change the last N decoder layers and the final
    norm, nothing else; AdamW holds those alone; a checkpoint resumes them exactly."""
    config = sft_config(tiny_path, dataset, steps=4, batch_size=2, micro_batch_size=2)
    config.optimizer.learning_rate = 1e-2
    config.extra.update({"trainable_layers": 1})
    trainer = Trainer(config, 0)
    depth = int(trainer.model.config.num_hidden_layers)
    last = f"model.layers.{depth - 1}."
    before = {k: p.detach().clone() for k, p in trainer.model.named_parameters()}
    trained = {k for k, p in trainer.model.named_parameters() if p.requires_grad}
    assert trained and all(k.startswith(last) or k == "model.norm.weight" for k in trained)
    assert "model.norm.weight" in trained and any(k.startswith(last) for k in trained)
    optimised = {id(p) for group in trainer.optimizer.param_groups for p in group["params"]}
    assert optimised == {id(p) for p in trainer.model.parameters() if p.requires_grad}
    trainer.sft_step()
    trainer.sft_step()
    for name, p in trainer.model.named_parameters():
        if name in trained:
            assert not torch.equal(p, before[name]), f"{name} did not train"
        else:
            assert torch.equal(p, before[name]), f"{name} is frozen but changed"
    saved = _checkpoint(trainer, tmp_path)
    resumed = Trainer(config, 0)
    resumed.restore(saved)
    assert [k for k, p in resumed.model.named_parameters() if p.requires_grad] == sorted(
        trained, key=list(before).index
    )
    a, b = trainer.sft_step(), resumed.sft_step()
    assert a.loss == pytest.approx(b.loss, rel=1e-6)
    pairs = zip(trainer.model.named_parameters(), resumed.model.parameters(), strict=True)
    for (name, p), q in pairs:
        torch.testing.assert_close(p, q, msg=name)


def test_trainable_layers_beyond_the_model_name_its_depth(tiny_path: str) -> None:
    config = trainer_pb2.RunConfig(base_model=tiny_path, grpo=trainer_pb2.GrpoConfig())
    config.data.submitted = True
    config.extra.update({"trainable_layers": 99})
    with pytest.raises(ValueError, match="trainable_layers 99: the model has 2 decoder layers"):
        Trainer(config, 0)


@pytest.mark.parametrize("uniform_groups", [("0",), ("0", "1")])
def test_turns_without_advantage_are_not_run_and_the_update_is_the_same(
    tiny_path: str, monkeypatch: pytest.MonkeyPatch, uniform_groups: tuple[str, ...]
) -> None:
    """A group whose rewards are all equal has advantage 0: its turns never reach the
    model (no KL term), yet the loss and the gradient are those of the step that runs
    every turn. With no signal at all one turn runs, for the same zero gradient. (The
    gradient, not the updated weights: AdamW's first step turns a 1e-12 rounding
    difference in an otherwise-zero gradient into a full learning-rate step.)"""
    from gantry.trainer import training
    from gantry.trainer.model import clip_and_step as real_step

    gradients: list[list[torch.Tensor]] = []

    def recording_step(model: torch.nn.Module, *args: object) -> tuple[float, float]:
        gradients.append(
            [torch.zeros_like(p) if p.grad is None else p.grad.clone() for p in model.parameters()]
        )
        return real_step(model, *args)  # type: ignore[arg-type]

    monkeypatch.setattr(training, "clip_and_step", recording_step)
    batch = _sampled(tiny_path, "bf16", seed=0)  # groups "0" and "1", two samples each
    for trajectory in batch:
        if trajectory.group_id in uniform_groups:
            trajectory.final_reward = 0.1  # 0.1 x 2 / 2 is not 0.1: exact zero regardless
    outcomes = []
    for skip in (True, False):
        if not skip:
            monkeypatch.setattr(grpo, "with_signal", lambda items, kl_coef: list(items))
        config = trainer_pb2.RunConfig(base_model=tiny_path, grpo=trainer_pb2.GrpoConfig())
        config.data.submitted = True
        config.optimizer.learning_rate = 1e-3
        trainer = Trainer(config, 0)
        rows: list[int] = []
        trainer.model.register_forward_hook(
            lambda _m, _a, kwargs, _o, seen=rows: seen.append(kwargs["input_ids"].shape[0]),
            with_kwargs=True,
        )
        metrics = trainer.grpo_step(batch)
        outcomes.append((sum(rows), metrics))
    (run_rows, skipped), (all_rows, full) = outcomes
    assert all_rows == 4
    assert run_rows == (2 if len(uniform_groups) == 1 else 1)
    assert skipped.extra["zero_advantage_turns"] == 4 - run_rows
    assert full.extra["zero_advantage_turns"] == 0
    assert skipped.extra["completion_tokens"] == full.extra["completion_tokens"] == 40
    assert skipped.loss == pytest.approx(full.loss, rel=1e-3, abs=1e-7)
    if len(uniform_groups) == 1:
        assert skipped.loss != 0.0
    # BF16 autocast: batches of 2 and 4 rows round differently (~1e-4 of the norm, up to
    # ~1 % of a tensor's); a wrong denominator or a dropped turn with signal is off by 2x.
    assert skipped.grad_norm == pytest.approx(full.grad_norm, rel=1e-3)
    for a, b in zip(*gradients, strict=True):
        assert float((a - b).norm()) <= 0.02 * float(b.norm()) + 1e-9
