"""GPU check for vla: p99 Act latency of a ~0.5B-class VLM at full size (random weights).

    .venv/bin/python benchmarks/vla_gpu.py             # needs CUDA; about 3-5 minutes
    .venv/bin/python benchmarks/vla_gpu.py --small     # the same path on CPU, tiny sizes

The TwinBrain policy is built in memory, bf16, on one GPU: two copies of a LLaVA-style VLM
with a SigLIP-base-sized vision tower (768 wide, 12 layers, 224 px, 16 px patches: 196
image tokens) and a Qwen3-0.6B-sized text model (1024 wide, 28 layers, 16 query / 8 KV
heads of 128, 3072 MLP, 151,936-token vocabulary): ~0.6B parameters per stream (the
streams run up to the conditioning layer, 28 by default), plus a flow-matching DiT (512
wide, 6 blocks) producing a 16 x 7 action chunk in 10 Euler steps. Weights are random:
latency does not depend on their values.

Measured, after warm-up:
1. the policy alone (prepare + act, CUDA-synchronised): p50/p99 ms;
2. `Act` through a real vla gRPC server on localhost (224 x 224 raw frame): p50/p99 ms of
   the client's round trip, and the server's inference split.
Goal: p99 Act <= 50 ms for the 16-step chunk. Exit status 1 when the goal is missed, 0
when met or when no CUDA device is present (nothing is measured then).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from transformers import LlavaConfig, LlavaForConditionalGeneration, Qwen3Config, SiglipVisionConfig

from gantry.core.codecs import tensor_from_numpy
from gantry.core.testing.threaded import serve_in_thread
from gantry.models.tiny.tokenizer import IMAGE_PAD, token_id, train_bpe_tokenizer
from gantry.proto.vla.v1 import vla_pb2
from gantry.vla.client import VlaClient
from gantry.vla.model.policy import PolicyConfig, VlaPolicy
from gantry.vla.runner import PolicyRunner
from gantry.vla.service import VlaService
from gantry.vla.settings import VlaSettings

GOAL_MS = 50.0
TOKEN = "vla-gpu-check"


def vlm_config(small: bool) -> LlavaConfig:
    tokenizer = train_bpe_tokenizer()
    if small:
        vision = SiglipVisionConfig(
            hidden_size=32, intermediate_size=64, num_hidden_layers=1, num_attention_heads=2,
            image_size=32, patch_size=8,
        )  # fmt: skip
        text = Qwen3Config(
            vocab_size=len(tokenizer), hidden_size=64, intermediate_size=128,
            num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2, head_dim=16,
        )  # fmt: skip
    else:
        vision = SiglipVisionConfig(
            hidden_size=768, intermediate_size=3072, num_hidden_layers=12,
            num_attention_heads=12, image_size=224, patch_size=16,
        )  # fmt: skip
        text = Qwen3Config(
            vocab_size=151_936, hidden_size=1024, intermediate_size=3072,
            num_hidden_layers=28, num_attention_heads=16, num_key_value_heads=8, head_dim=128,
            max_position_embeddings=40_960, tie_word_embeddings=True,
        )  # fmt: skip
    sizes: Any = (vision.image_size, vision.patch_size)
    image_tokens = (sizes[0] // sizes[1]) ** 2
    return LlavaConfig(
        vision_config=vision,
        text_config=text,
        image_token_index=token_id(tokenizer, IMAGE_PAD),
        vision_feature_select_strategy="full",
        vision_feature_layer=-1,
        image_seq_length=image_tokens,
    )


def build_policy(small: bool, device: str, dtype: torch.dtype, cond_layer: int) -> VlaPolicy:
    config: Any = vlm_config(small)
    tokenizer = train_bpe_tokenizer()
    with torch.device(device):
        vlm: Any = LlavaForConditionalGeneration(config)
        vlm = vlm.to(dtype)
    policy_config = PolicyConfig(
        architecture="twinbrain",
        state_dim=4,
        action_dim=7,
        chunk_size=16,
        num_denoising_steps=10,
        cond_layer=cond_layer,
        expert_width=64 if small else 512,
        expert_depth=2 if small else 6,
        expert_heads=4 if small else 8,
        image_size=config.vision_config.image_size,
        base_model_id="random LLaVA(SigLIP-base, Qwen3-0.6B-sized)",
    )
    policy = VlaPolicy(policy_config, vlm, tokenizer)
    return policy.to(device=device, dtype=dtype).eval()


def pct(values: list[float], q: float) -> float:
    return float(np.percentile(np.asarray(values) * 1000.0, q))


def policy_latency(policy: VlaPolicy, reps: int, size: int) -> list[float]:
    rng = np.random.default_rng(0)
    times = []
    for i in range(reps + 10):
        images = rng.integers(0, 256, (1, 1, size, size, 3), dtype=np.uint8)
        if policy.device.type == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        prefix, state = policy.prepare(images, ["pick up the red block"], rng.normal(size=(1, 4)))
        chunk = policy.act(prefix, state, seeds=[i])
        chunk.float().cpu()
        if i >= 10:
            times.append(time.perf_counter() - start)
    return times


def act_latency(policy: VlaPolicy, reps: int, size: int) -> tuple[list[float], list[float]]:
    class Prebuilt(VlaService):
        async def start(self) -> None:
            self.runner = PolicyRunner(policy, self.settings)

    settings = VlaSettings(
        host="127.0.0.1", port=0, metrics_port=0, log_json=False, auth_token=TOKEN,
        max_image_pixels=size * size,
    )  # fmt: skip
    rng = np.random.default_rng(1)
    total, inference = [], []
    with serve_in_thread(Prebuilt(settings)) as running:
        client = VlaClient(f"127.0.0.1:{running.port}", token=TOKEN)
        for i in range(reps + 10):
            request = vla_pb2.ActRequest(
                observation=vla_pb2.RobotObservation(
                    cameras=[
                        vla_pb2.CameraFrame(
                            camera="corner",
                            raw=tensor_from_numpy(
                                rng.integers(0, 256, (size, size, 3), dtype=np.uint8)
                            ),
                        )
                    ],
                    state=tensor_from_numpy(rng.normal(size=4).astype(np.float32)),
                    instruction="pick up the red block",
                ),
                noise_seed=i,
            )
            start = time.perf_counter()
            reply = client.stub.Act(request, timeout=60)
            if i >= 10:
                total.append(time.perf_counter() - start)
                inference.append(reply.timing.inference.ToNanoseconds() / 1e9)
        client.close()
    return total, inference


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--small", action="store_true", help="tiny sizes (CPU smoke run)")
    parser.add_argument("--reps", type=int, default=200)
    parser.add_argument("--cond-layer", type=int, default=0, help="0 = the last layer")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    if not args.small and not torch.cuda.is_available():
        print("no CUDA device: nothing measured (run with --small for the CPU smoke path)")
        return 0
    device = "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cpu":
        torch.set_num_threads(1)  # the smoke path: no thread contention on a shared CPU
    dtype = torch.bfloat16 if device == "cuda" else torch.float32
    started = time.perf_counter()
    policy = build_policy(args.small, device, dtype, args.cond_layer)
    streams = policy.streams
    per_stream = sum(p.numel() for p in streams.right.parameters())
    expert = sum(p.numel() for p in policy.expert.parameters())
    size = policy.config.image_size
    print(
        f"built in {time.perf_counter() - started:.0f} s on {device} ({dtype}): "
        f"{per_stream / 1e6:.0f}M parameters per stream (x2), expert {expert / 1e6:.1f}M, "
        f"conditioning layer {policy.config.cond_layer}, chunk 16 x 7, 10 Euler steps"
    )
    results: dict[str, Any] = {
        "device": torch.cuda.get_device_name() if device == "cuda" else "cpu"
    }
    with torch.inference_mode():
        alone = policy_latency(policy, args.reps, size)
    results["policy"] = {"p50_ms": pct(alone, 50), "p99_ms": pct(alone, 99), "n": len(alone)}
    print(f"policy alone: p50 {pct(alone, 50):.1f} ms, p99 {pct(alone, 99):.1f} ms")
    total, inference = act_latency(policy, args.reps, size)
    results["act"] = {
        "p50_ms": pct(total, 50), "p99_ms": pct(total, 99),
        "inference_p50_ms": pct(inference, 50), "inference_p99_ms": pct(inference, 99),
        "n": len(total), "goal_ms": GOAL_MS,
    }  # fmt: skip
    met = pct(total, 99) <= GOAL_MS
    print(
        f"Act over gRPC: p50 {pct(total, 50):.1f} ms, p99 {pct(total, 99):.1f} ms (server "
        f"inference p99 {pct(inference, 99):.1f} ms); goal p99 <= {GOAL_MS:.0f} ms: "
        f"{'met' if met else 'MISSED'}"
    )
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    return 0 if met or args.small else 1


if __name__ == "__main__":
    sys.exit(main())
