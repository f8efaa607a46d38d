"""vla latency on CPU: Act round trips and chunk arrival in StreamControl.

Starts a real vla server in-process (a trained checkpoint with --checkpoint, else a fresh
TwinBrain policy on the tiny random VLM: latency does not depend on the weights' values)
and measures through gRPC:

1. Act: p50/p99 of the client's round trip (64x64 raw frame, state, instruction) and the
   server's own split (preprocess, inference), for the default and a 16-step chunk's worth
   of denoising steps;
2. StreamControl: a synthetic robot stepping at the policy's control rate (80 Hz) runs
   episodes through `VlaClient.control`; per chunk, the time from sending the observation
   to receiving its chunk, and how often the robot had to wait on an empty queue.

    .venv/bin/python benchmarks/vla.py [--checkpoint DIR] [--acts 200] [--threads 1]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np

from gantry.core.codecs import tensor_from_numpy
from gantry.core.testing.threaded import serve_in_thread
from gantry.proto.vla.v1 import vla_pb2
from gantry.vla.client import VlaClient
from gantry.vla.service import VlaService
from gantry.vla.settings import VlaSettings

TOKEN = "vla-benchmark"


def pct(values: list[float], q: float) -> float:
    return float(np.percentile(np.asarray(values) * 1000.0, q))


class PacedRobot:
    """A gymnasium env that takes 1/hz seconds per step and succeeds after `length`."""

    def __init__(self, hz: float, length: int, size: int) -> None:
        self.action_space = gym.spaces.Box(-1.0, 1.0, (4,), dtype=np.float32)
        self.instruction = "reach the goal position"
        self.max_steps = length
        self.period = 1.0 / hz
        self.size = size
        self.t = 0
        self.rng = np.random.default_rng(0)

    def _obs(self) -> dict[str, Any]:
        return {
            "image": self.rng.integers(0, 256, (self.size, self.size, 3), dtype=np.uint8),
            "state": self.rng.normal(size=4).astype(np.float32),
        }

    def reset(self) -> tuple[dict[str, Any], dict[str, Any]]:
        self.t = 0
        self.next = time.perf_counter()
        return self._obs(), {}

    def step(self, action: Any) -> tuple[dict[str, Any], float, bool, bool, dict[str, Any]]:
        self.next += self.period
        time.sleep(max(0.0, self.next - time.perf_counter()))
        self.t += 1
        return self._obs(), 0.0, False, self.t >= self.max_steps, {"success": False}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--checkpoint", default="")
    parser.add_argument("--acts", type=int, default=200)
    parser.add_argument("--episodes", type=int, default=3)
    parser.add_argument("--episode-steps", type=int, default=160)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()

    settings = VlaSettings(
        host="127.0.0.1", port=0, metrics_port=0, log_json=False,
        checkpoint=args.checkpoint, torch_threads=args.threads, auth_token=TOKEN,
    )  # fmt: skip
    results: dict[str, Any] = {}
    with serve_in_thread(VlaService(settings)) as running:
        client = VlaClient(f"127.0.0.1:{running.port}", token=TOKEN)
        info = client.info()
        size = info.cameras[0].width
        rng = np.random.default_rng(0)
        print(
            f"policy {info.policy_id} ({info.architecture}), chunk {info.chunk_size}x"
            f"{info.action_dim}, {info.num_denoising_steps} denoising steps, {info.backend}, "
            f"{args.threads} torch thread(s)"
        )
        for steps in (0, 16):
            total, pre, inf = [], [], []
            for i in range(args.acts + 10):
                request = vla_pb2.ActRequest(
                    observation=vla_pb2.RobotObservation(
                        cameras=[
                            vla_pb2.CameraFrame(
                                camera=info.cameras[0].name,
                                raw=tensor_from_numpy(
                                    rng.integers(0, 256, (size, size, 3), dtype=np.uint8)
                                ),
                            )
                        ],
                        state=tensor_from_numpy(rng.normal(size=4).astype(np.float32)),
                        instruction="reach the goal position",
                    ),
                    num_denoising_steps=steps,
                    noise_seed=i,
                )
                start = time.perf_counter()
                reply = client.stub.Act(request, timeout=30)
                elapsed = time.perf_counter() - start
                if i >= 10:  # warm-up
                    total.append(elapsed)
                    pre.append(reply.timing.preprocess.ToNanoseconds() / 1e9)
                    inf.append(reply.timing.inference.ToNanoseconds() / 1e9)
            label = f"Act ({steps or info.num_denoising_steps} steps)"
            results[label] = {
                "p50_ms": pct(total, 50), "p99_ms": pct(total, 99),
                "preprocess_p50_ms": pct(pre, 50), "inference_p50_ms": pct(inf, 50),
                "inference_p99_ms": pct(inf, 99), "n": len(total),
            }  # fmt: skip
            r = results[label]
            print(
                f"{label:18s} round trip p50 {r['p50_ms']:6.1f} ms  p99 {r['p99_ms']:6.1f} ms"
                f"  (server: preprocess p50 {r['preprocess_p50_ms']:.1f} ms, inference p50 "
                f"{r['inference_p50_ms']:.1f} / p99 {r['inference_p99_ms']:.1f} ms; n={r['n']})"
            )
        latencies: list[float] = []
        chunks = waits = steps_run = late = 0
        session = client.session()
        for _ in range(args.episodes):
            robot = PacedRobot(info.control_hz, args.episode_steps, size)
            session.reset()
            result = session.run_episode(robot)
            latencies += result.chunk_latency_s
            chunks += result.chunks
            waits += result.waits
            late += result.late_chunks
            steps_run += result.steps
        session.close()
        results["StreamControl"] = {
            "chunk_arrival_p50_ms": pct(latencies, 50),
            "chunk_arrival_p99_ms": pct(latencies, 99),
            "chunks": chunks, "late_chunks": late, "steps": steps_run,
            "steps_waiting": waits, "control_hz": info.control_hz,
        }  # fmt: skip
        r = results["StreamControl"]
        print(
            f"StreamControl at {info.control_hz:.0f} Hz: chunk arrival p50 "
            f"{r['chunk_arrival_p50_ms']:.1f} ms, p99 {r['chunk_arrival_p99_ms']:.1f} ms over "
            f"{chunks} chunks ({late} late); {waits} of {steps_run} control steps waited "
            "on an empty queue"
        )
        client.close()
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
