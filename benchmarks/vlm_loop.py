"""Multi-turn VLM training through the services (issue 23, part 5): a short GRPO run of the
tiny random VLM on a VisGym task with image observations.

    .venv/bin/python benchmarks/vlm_loop.py [--steps 12] [--eval-episodes 48] [--out DIR]

envfarm, rollout (text policy "tiny" plus the tiny VLM) and the trainer run as processes.
The trainer's GRPO run pulls image episodes from rollout (EpisodeSource with
OBSERVATION_MODE_IMAGE), trains the VLM on the observation images and the token ids
rollout recorded, and publishes its weights to rollout after every step, where they reach
the VLM. Printed: each step's sampled-episode reward and success, held-out success (95 %
Wilson interval) before and after with the VLM policy version that played it; written:
`<out>/vlm_loop.json` and `<out>/vlm_curve.png`.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from contextlib import ExitStack
from pathlib import Path
from typing import Any

from gantry.core.client import sync_channel
from gantry.core.stats import wilson_interval
from gantry.core.testing.process import spawn_service
from gantry.models.tiny import tiny_model_dir
from gantry.models.tiny.cache import cache_root
from gantry.proto.common.v1 import episode_pb2, sampling_pb2
from gantry.proto.rollout.v1 import rollout_pb2, rollout_pb2_grpc
from gantry.proto.trainer.v1 import trainer_pb2, trainer_pb2_grpc

TOKEN = "vlm-loop"
ENV = "visgym/maze_2d"
HELD_OUT = 100_000  # evaluation seeds start here, training seeds below


def settings() -> episode_pb2.EpisodeSettings:
    return episode_pb2.EpisodeSettings(
        observation_mode=episode_pb2.OBSERVATION_MODE_IMAGE, text_feedback=True
    )


def evaluate(stub: Any, args: argparse.Namespace) -> dict[str, Any]:
    spec = rollout_pb2.EpisodeSpec(
        env_id=ENV,
        seeds=range(HELD_OUT, HELD_OUT + args.eval_episodes),
        settings=settings(),
        sampling=sampling_pb2.SamplingParams(max_tokens=args.max_tokens, temperature=1.0, seed=0),
        max_turns=args.max_turns,
        concurrency=8,
    )
    reply = stub.RunEpisodes(rollout_pb2.RunEpisodesRequest(spec=spec), timeout=1800)
    done = list(reply.trajectories)
    wins = sum(t.final_reward >= 1.0 for t in done)
    versions = sorted({turn.policy_version for t in done for turn in t.turns})
    return {
        "episodes": len(done),
        "errors": len(reply.errors),
        "success": wins / max(len(done), 1),
        "interval": wilson_interval(wins, len(done)),
        "mean_reward": sum(t.final_reward for t in done) / max(len(done), 1),
        "vlm_versions": versions,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, default=12)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--group", type=int, default=4)
    parser.add_argument("--max-turns", type=int, default=3)
    parser.add_argument("--max-tokens", type=int, default=16)
    parser.add_argument("--eval-episodes", type=int, default=48)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--out", default="reports/vlm-loop")
    args = parser.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    print(f"load {os.getloadavg()[0]:.1f}", flush=True)
    vlm = str(tiny_model_dir("vlm"))
    common = {"TORCH_THREADS": "1", "LOG_JSON": "false"}
    with ExitStack() as stack:

        def spawn(service: str, **env: str) -> str:
            prefix = f"GANTRY_{service.upper()}_"
            full = {prefix + k: v for k, v in {**common, **env}.items()}
            process = stack.enter_context(
                spawn_service(
                    f"gantry.{service}", service, token=TOKEN, env=full, startup_timeout_s=300
                )
            )
            return process.target

        envfarm = spawn("envfarm")
        rollout = spawn("rollout", MODEL_PATH="tiny", VLM_MODEL_PATH=vlm, ENVFARM_TARGET=envfarm)
        trainer = spawn("trainer", ROLLOUT_TARGET=rollout, MODELS_ROOT=str(cache_root()))
        rollout_stub = rollout_pb2_grpc.RolloutServiceStub(
            stack.enter_context(sync_channel(rollout, token=TOKEN))
        )
        trainer_stub = trainer_pb2_grpc.TrainerServiceStub(
            stack.enter_context(sync_channel(trainer, token=TOKEN))
        )
        before = evaluate(rollout_stub, args)
        print("before", json.dumps(before), flush=True)
        config = trainer_pb2.RunConfig(
            base_model=vlm, max_steps=args.steps, batch_size=args.batch, publish_interval=1
        )
        config.optimizer.learning_rate = args.lr
        source = config.data.episodes
        source.env_id, source.max_turns = ENV, args.max_turns
        source.settings.CopyFrom(settings())
        source.seeds.extend(range(0, 256))
        config.grpo.group_size = args.group
        config.grpo.sampling.max_tokens = args.max_tokens
        config.grpo.sampling.temperature = 1.0
        op = trainer_stub.StartRun(trainer_pb2.StartRunRequest(config=config))
        meta = trainer_pb2.StartRunMetadata()
        op.metadata.Unpack(meta)
        steps = []
        request = trainer_pb2.StreamRunMetricsRequest(run_id=meta.run_id, follow=True)
        for message in trainer_stub.StreamRunMetrics(request, timeout=3600):
            m = message.metrics
            row = {
                "step": int(m.step),
                "reward_mean": m.reward_mean,
                "success": float(m.extra["success_rate"]) if "success_rate" in m.extra else None,
                "loss": m.loss,
                "entropy": m.entropy,
                "seconds": time.perf_counter() - started,
                "extra": {k: float(v) for k, v in m.extra.items()},
            }
            steps.append(row)
            print("step", json.dumps(row), flush=True)
        run = trainer_stub.GetRun(trainer_pb2.GetRunRequest(run_id=meta.run_id)).run
        state = trainer_pb2.RunState.Name(run.state)
        print("run", state, run.error.message, flush=True)
        after = evaluate(rollout_stub, args)
        print("after", json.dumps(after), flush=True)
    result = {
        "before": before,
        "after": after,
        "steps": steps,
        "run_state": state,
        "replicas": [
            {"target": r.target, "policy_version": r.policy_version} for r in run.replicas
        ],
        "wall_s": time.perf_counter() - started,
        "load_end": os.getloadavg()[0],
        "args": vars(args),
    }
    (out / "vlm_loop.json").write_text(json.dumps(result, indent=2))
    plot(result, out / "vlm_curve.png")
    print(f"wall {result['wall_s']:.0f} s; load {result['load_end']:.1f}")


def plot(result: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    steps = result["steps"]
    fig, ax = plt.subplots(figsize=(6, 3.5))
    ax.plot([s["step"] for s in steps], [s["reward_mean"] for s in steps], "o-", label="reward")
    for name, x in (("before", 0), ("after", steps[-1]["step"] if steps else 1)):
        e = result[name]
        low, high = e["interval"]
        ax.errorbar(
            [x], [e["success"]], yerr=[[e["success"] - low], [high - e["success"]]], fmt="s",
            label=f"held-out success ({name})",
        )  # fmt: skip
    ax.set_xlabel("GRPO step")
    ax.set_title("tiny random VLM, maze_2d, image observations")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)


if __name__ == "__main__":
    main()
