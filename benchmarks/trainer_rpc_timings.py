"""The trainer through its RPCs: SFT loss and step time, GRPO step time, publish time.

    .venv/bin/python benchmarks/trainer_rpc_timings.py [--model DIR] [--sft-steps 20]

Runs a real TrainerService and a real RolloutService (fp8-jet) in-process on free ports,
SFT on exported envfarm maze_2d demonstrations, then three GRPO steps on trajectories the
rollout server generated, then PublishWeights (stream and URI). Prints one line per figure.
"""

from __future__ import annotations

import argparse
import itertools
import statistics
import tempfile
import time
import uuid
from pathlib import Path

from gantry.core.client import sync_channel
from gantry.core.testing.threaded import serve_in_thread
from gantry.envfarm.export_sft import export
from gantry.models.tiny import tiny_model_dir
from gantry.proto.common.v1 import chat_pb2, precision_pb2, trajectory_pb2
from gantry.proto.rollout.v1 import rollout_pb2, rollout_pb2_grpc
from gantry.proto.trainer.v1 import trainer_pb2, trainer_pb2_grpc
from gantry.rollout.service import RolloutService
from gantry.rollout.settings import RolloutSettings
from gantry.trainer.service import TrainerService
from gantry.trainer.settings import TrainerSettings

TOKEN = "bench"


def wait(stub: trainer_pb2_grpc.TrainerServiceStub, run_id: str, until: int) -> trainer_pb2.Run:
    while True:
        run = stub.GetRun(trainer_pb2.GetRunRequest(run_id=run_id)).run
        if run.step >= until or run.state >= trainer_pb2.RUN_STATE_SUCCEEDED:
            return run
        time.sleep(0.02)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--model", default="", help="HF checkpoint dir (default: tiny Qwen3)")
    parser.add_argument("--sft-steps", type=int, default=20)
    parser.add_argument("--demos", type=int, default=16)
    args = parser.parse_args()
    model = args.model or str(tiny_model_dir("causal_lm"))
    with tempfile.TemporaryDirectory() as tmp:
        data = export("maze_2d", "easy", range(args.demos), Path(tmp) / "demos", mode="text")
        common = {"host": "127.0.0.1", "port": 0, "metrics_port": 0, "auth_token": TOKEN}
        rollout_settings = RolloutSettings(
            **common,  # type: ignore[arg-type]
            model_path=model,
            precision_recipe="fp8-jet",
            checkpoints_root=Path(tmp) / "trainer",  # URI publishing reads the checkpoints
        )
        with (
            serve_in_thread(RolloutService(rollout_settings)) as rollout_server,
            serve_in_thread(
                TrainerService(
                    TrainerSettings(
                        **common,  # type: ignore[arg-type]
                        data_dir=Path(tmp) / "trainer",
                        datasets_root=data.parent,
                        models_root=Path(model).parent,
                        rollout_target=f"127.0.0.1:{rollout_server.port}",
                    )
                )
            ) as trainer_server,
            sync_channel(f"127.0.0.1:{trainer_server.port}", token=TOKEN) as tch,
            sync_channel(f"127.0.0.1:{rollout_server.port}", token=TOKEN) as rch,
        ):
            trainer = trainer_pb2_grpc.TrainerServiceStub(tch)
            rollout = rollout_pb2_grpc.RolloutServiceStub(rch)
            target = f"127.0.0.1:{rollout_server.port}"
            fp8 = precision_pb2.Precision(mode=precision_pb2.PRECISION_MODE_FP8)
            config = trainer_pb2.RunConfig(
                base_model=model,
                sft=trainer_pb2.SftConfig(),
                batch_size=4,
                max_steps=args.sft_steps,
                seed=0,
                precision=fp8,
                rollout_target=target,
            )
            config.data.dataset_uri = str(data)
            config.optimizer.learning_rate = 3e-3
            op = trainer.StartRun(trainer_pb2.StartRunRequest(config=config))
            meta = trainer_pb2.StartRunMetadata()
            op.metadata.Unpack(meta)
            wait(trainer, meta.run_id, args.sft_steps)
            history = [
                r.metrics
                for r in trainer.StreamRunMetrics(
                    trainer_pb2.StreamRunMetricsRequest(run_id=meta.run_id)
                )
            ]
            times = [
                b.time.ToNanoseconds() - a.time.ToNanoseconds()
                for a, b in itertools.pairwise(history)
            ]
            print(
                f"SFT fp8-jet, batch 4 maze_2d demos: "
                f"loss {history[0].loss:.3f} -> {history[-1].loss:.3f} "
                f"in {len(history)} steps; median step {statistics.median(times) / 1e6:.0f} ms, "
                f"{statistics.median(m.tokens_per_second for m in history):.0f} tokens/s"
            )
            for transfer in (trainer_pb2.WEIGHT_TRANSFER_STREAM, trainer_pb2.WEIGHT_TRANSFER_URI):
                reply = trainer.PublishWeights(
                    trainer_pb2.PublishWeightsRequest(run_id=meta.run_id, transfer=transfer)
                )
                print(
                    f"PublishWeights {trainer_pb2.WeightTransfer.Name(transfer)}: "
                    f"{reply.duration.ToMilliseconds()} ms -> rollout v{reply.policy_version}"
                )
            sft_final = trainer.GetRun(trainer_pb2.GetRunRequest(run_id=meta.run_id)).run
            grpo = trainer_pb2.RunConfig(
                base_model=sft_final.latest_checkpoint.uri,  # what rollout serves now
                grpo=trainer_pb2.GrpoConfig(group_size=8),
                batch_size=16,
                max_steps=3,
                seed=0,
                precision=fp8,
            )
            grpo.data.submitted = True
            op = trainer.StartRun(trainer_pb2.StartRunRequest(config=grpo))
            op.metadata.Unpack(meta)
            for step in range(1, 4):
                request = rollout_pb2.GenerateRequest(
                    input=rollout_pb2.GenerationInput(
                        prompts=[
                            rollout_pb2.Prompt(
                                token_ids=chat_pb2.TokenSequence(token_ids=[5 + i, 9, 11, 40])
                            )
                            for i in range(2)
                        ]
                    )
                )
                request.input.sampling.n = 8
                request.input.sampling.max_tokens = 32
                generated = rollout.Generate(request)
                batch = []
                for result in generated.results:
                    group = uuid.uuid4().hex
                    for c in result.completions:
                        ids = list(c.tokens.token_ids)
                        batch.append(
                            trajectory_pb2.Trajectory(
                                id=uuid.uuid4().hex,
                                group_id=group,
                                policy_version=generated.policy_version,
                                final_reward=sum(t % 2 == 0 for t in ids) / max(len(ids), 1),
                                turns=[
                                    trajectory_pb2.Turn(
                                        prompt_token_ids=result.prompt_token_ids,
                                        completion=c.tokens,
                                    )
                                ],
                            )
                        )
                started = time.perf_counter()
                trainer.SubmitTrajectories(
                    iter(
                        [
                            trainer_pb2.SubmitTrajectoriesRequest(
                                run_id=meta.run_id, trajectories=batch
                            )
                        ]
                    )
                )
                run = wait(trainer, meta.run_id, step)
                elapsed = time.perf_counter() - started
                published = trainer.PublishWeights(
                    trainer_pb2.PublishWeightsRequest(run_id=meta.run_id, rollout_target=target)
                )
                m = run.latest_metrics
                print(
                    f"GRPO step {step} (16 trajectories x 32 tokens): "
                    f"submit->step {elapsed * 1000:.0f} ms, "
                    f"loss {m.loss:.4f}, logprob mismatch {m.extra['logprob_mismatch']:.2e}, "
                    f"clip {m.extra['clip_fraction']:.3f}; "
                    f"publish {published.duration.ToMilliseconds()} ms"
                )


if __name__ == "__main__":
    main()
