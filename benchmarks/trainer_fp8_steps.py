"""The training core in bf16 vs fp8-jet: SFT and GRPO step times on one device (a GPU).

    .venv/bin/python benchmarks/trainer_fp8_steps.py [--hidden 2048 --layers 8 --words 400]

(benchmarks/gpu_checks.py checks and times the FP8 kernels themselves; this script times
whole trainer steps built on them.)

Builds a random Qwen3 of the given size with the tiny tokenizer, then for each recipe runs
`Trainer.sft_step` on synthetic chat data (loss must fall) and `Trainer.grpo_step` on
sampled completions whose logprobs come from the same recipe's rollout forward (the
logprob mismatch shows whether the unified flow holds on the device). Prints step times,
tokens/s and peak memory. Runs on CPU too (small sizes) to check the script itself.

``--train-dtype`` picks the trainer's weights: ``bfloat16`` (the service default: BF16
weights, float32 masters in the optimiser, so both recipes compute in BF16 outside the
FP8 projections), ``float32`` (float32 weights; ``bf16`` autocasts, fp8-jet runs float32
outside its FP8 projections: the comparison before BF16 working weights), or ``both``.
The GRPO completions come from the same model switched to its rollout role, so the
reported logprob mismatch is the trainer's padded forward against token-by-token
full-recompute sampling in the model's own dtype.
"""

from __future__ import annotations

import argparse
import json
import random
import tempfile
import time
from pathlib import Path

import torch
from transformers import Qwen3Config, Qwen3ForCausalLM

from gantry.kernels.recipes import get_recipe
from gantry.models.loading import load_causal_lm
from gantry.models.tiny import tiny_model_dir
from gantry.proto.common.v1 import chat_pb2, trajectory_pb2
from gantry.proto.trainer.v1 import trainer_pb2
from gantry.trainer.training import Trainer


def build_model(root: Path, hidden: int, layers: int) -> Path:
    tokenizer = load_causal_lm(tiny_model_dir("causal_lm")).tokenizer
    config = Qwen3Config(
        vocab_size=len(tokenizer),
        hidden_size=hidden,
        intermediate_size=4 * hidden,
        num_hidden_layers=layers,
        num_attention_heads=hidden // 128,
        num_key_value_heads=max(1, hidden // 512),
        head_dim=128,
        max_position_embeddings=8192,
        tie_word_embeddings=True,
        pad_token_id=tokenizer.pad_token_id,
        eos_token_id=tokenizer.eos_token_id,
    )
    torch.manual_seed(0)
    Qwen3ForCausalLM(config).save_pretrained(root)
    tokenizer.save_pretrained(root)
    return root


def synthetic_sft(path: Path, n: int, words: int) -> Path:
    rng = random.Random(0)
    vocab = ["up", "down", "left", "right", "wall", "goal", "agent", "free", "move", "stop"]
    with path.open("w") as fh:
        for _ in range(n):
            obs = " ".join(rng.choice(vocab) for _ in range(words))
            messages = [
                {"role": "system", "content": "Reach the goal."},
                {"role": "user", "content": obs},
                {"role": "assistant", "content": f"('move', '{rng.choice(vocab[:4])}')"},
            ]
            fh.write(json.dumps({"messages": messages}) + "\n")
    return path


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--hidden", type=int, default=2048)
    parser.add_argument("--layers", type=int, default=8)
    parser.add_argument("--words", type=int, default=400, help="observation words per example")
    parser.add_argument("--steps", type=int, default=8)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--device", default="auto")
    parser.add_argument(
        "--train-dtype", default="bfloat16", choices=("bfloat16", "float32", "both")
    )
    args = parser.parse_args()
    dtypes = ("bfloat16", "float32") if args.train_dtype == "both" else (args.train_dtype,)
    with tempfile.TemporaryDirectory() as tmp:
        model = build_model(Path(tmp) / "model", args.hidden, args.layers)
        data = synthetic_sft(Path(tmp) / "sft.jsonl", 64, args.words)
        for dtype, recipe in [(d, r) for d in dtypes for r in ("bf16", "fp8-jet")]:
            config = trainer_pb2.RunConfig(
                base_model=str(model),
                sft=trainer_pb2.SftConfig(),
                batch_size=args.batch,
                max_steps=args.steps,
                max_seq_len=4096,
            )
            config.data.dataset_uri = str(data)
            config.optimizer.learning_rate = 1e-4
            config.extra.update({"precision_recipe": recipe, "train_dtype": dtype})
            trainer = Trainer(config, seed=0, device=args.device)
            device = trainer.device
            if device.type == "cuda":
                torch.cuda.reset_peak_memory_stats()
            losses, times = [], []
            for _ in range(args.steps):
                sync(device)
                started = time.perf_counter()
                metrics = trainer.sft_step()
                sync(device)
                times.append(time.perf_counter() - started)
                losses.append(metrics.loss)
            tokens = sum(len(e.input_ids) for e in trainer.examples[: args.batch])
            steady = sorted(times[1:])[len(times[1:]) // 2]
            peak = torch.cuda.max_memory_allocated() / 2**30 if device.type == "cuda" else 0.0
            print(
                f"[{device.type}] SFT {recipe} ({dtype} weights): "
                f"{len(trainer.fp8_layers)} FP8 layers, loss "
                f"{losses[0]:.3f} -> {losses[-1]:.3f}, median step {steady * 1000:.0f} ms "
                f"(~{tokens / steady:.0f} tokens/s), first step {times[0] * 1000:.0f} ms, "
                f"peak {peak:.1f} GiB",
                flush=True,
            )
            assert losses[-1] < losses[0], losses
            # GRPO: completions sampled from the same recipe's rollout forward.
            rollout = trainer.model
            get_recipe(recipe).apply(rollout, "rollout")
            prompt = trainer.examples[0].input_ids[:256]
            trajectories = []
            with torch.no_grad():
                for i in range(args.batch):
                    gen = torch.Generator(device=device).manual_seed(i)
                    ids = torch.tensor([prompt], device=device)
                    picked: list[int] = []
                    lps: list[float] = []
                    for _ in range(32):
                        logits = rollout(input_ids=ids).logits[0, -1].float()
                        logp = torch.log_softmax(logits, -1)
                        token = int(torch.multinomial(logp.exp(), 1, generator=gen))
                        picked.append(token)
                        lps.append(float(logp[token]))
                        ids = torch.cat([ids, torch.tensor([[token]], device=device)], 1)
                    trajectories.append(
                        trajectory_pb2.Trajectory(
                            id=str(i),
                            group_id=str(i // 4),
                            final_reward=float(sum(t % 2 == 0 for t in picked)) / 32,
                            turns=[
                                trajectory_pb2.Turn(
                                    prompt_token_ids=prompt,
                                    completion=chat_pb2.TokenSequence(
                                        token_ids=picked, logprobs=lps
                                    ),
                                )
                            ],
                        )
                    )
            get_recipe(recipe).apply(trainer.model, "trainer")
            trainer.config.grpo.SetInParent()
            sync(device)
            started = time.perf_counter()
            metrics = trainer.grpo_step(trajectories)
            sync(device)
            print(
                f"[{device.type}] GRPO {recipe} ({dtype} weights): step "
                f"{(time.perf_counter() - started) * 1000:.0f} ms, logprob mismatch "
                f"{metrics.extra['logprob_mismatch']:.2e}, "
                f"clip fraction {metrics.extra['clip_fraction']:.3f}",
                flush=True,
            )
            del trainer, rollout
            if device.type == "cuda":
                torch.cuda.empty_cache()


if __name__ == "__main__":
    main()
