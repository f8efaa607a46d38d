"""`gantry vla train` (behaviour cloning on Meta-World demos) and `gantry vla eval`."""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path
from typing import Annotated

import typer

app = typer.Typer(help="TwinBrainVLA: train on Meta-World demos, evaluate through the service.")
log = logging.getLogger("gantry.vla.cli")

TasksOption = Annotated[
    str, typer.Option(help="Comma-separated Meta-World tasks (default: all three)")
]


def _tasks(value: str) -> list[str]:
    from gantry.vla.sim_spec import TASKS

    names = [t.strip() for t in value.split(",") if t.strip()] or list(TASKS)
    unknown = [t for t in names if t not in TASKS]
    if unknown:
        raise typer.BadParameter(f"unknown task {unknown[0]!r}; known: {', '.join(TASKS)}")
    return names


@app.command("train")
def train_command(
    out: Annotated[Path, typer.Option(help="Checkpoint directory to write (must not exist)")],
    vlm: Annotated[
        str, typer.Option(help="Base VLM checkpoint directory; 'tiny' = a tiny random VLM")
    ] = "tiny",
    architecture: Annotated[str, typer.Option(help="twinbrain or single_stream")] = "twinbrain",
    tasks: TasksOption = "",
    demos_per_task: Annotated[int, typer.Option(help="Scripted episodes per task")] = 10,
    steps: Annotated[int, typer.Option(help="Optimiser steps")] = 500,
    batch_size: Annotated[int, typer.Option(help="Examples per step")] = 32,
    lr: Annotated[float, typer.Option(help="AdamW learning rate")] = 3e-4,
    chunk_size: Annotated[int, typer.Option(help="Actions per chunk (H)")] = 8,
    denoising_steps: Annotated[int, typer.Option(help="Default Euler steps")] = 4,
    cond_layer: Annotated[int, typer.Option(help="Right-stream layer (1..L; 0 = last)")] = 0,
    image_size: Annotated[int, typer.Option(help="Rendered camera size in pixels")] = 64,
    render: Annotated[str, typer.Option(help="auto, mujoco (EGL) or schematic")] = "auto",
    seed: Annotated[int, typer.Option(help="Seed of the weights and batches")] = 0,
    threads: Annotated[int, typer.Option(help="torch CPU threads (0 = torch's default)")] = 0,
    device: Annotated[str, typer.Option(help="auto, cpu, cuda")] = "auto",
) -> None:
    """Behaviour-clone a policy on scripted Meta-World demonstrations."""
    import tempfile

    import torch

    from gantry.vla.model.policy import PolicyConfig, VlaPolicy
    from gantry.vla.runner import pick_device
    from gantry.vla.train import behaviour_clone, collect_demos

    if architecture not in ("twinbrain", "single_stream"):
        raise typer.BadParameter("twinbrain or single_stream", param_hint="--architecture")
    if out.exists():
        raise typer.BadParameter(f"{out} exists", param_hint="--out")
    if threads:
        torch.set_num_threads(threads)
    names = _tasks(tasks)
    started = time.monotonic()
    demos = collect_demos(
        names,
        range(demos_per_task),
        chunk_size=chunk_size,
        image_size=image_size,
        render_backend=render,
    )
    collect_s = time.monotonic() - started
    typer.echo(
        f"demos: {demos.successes}/{demos.episodes} scripted episodes solved, "
        f"{len(demos)} examples in {collect_s:.0f} s"
    )
    config = PolicyConfig(
        architecture=architecture,  # type: ignore[arg-type]
        chunk_size=chunk_size,
        num_denoising_steps=denoising_steps,
        cond_layer=cond_layer,
    )
    torch.manual_seed(seed)
    with tempfile.TemporaryDirectory(prefix="gantry-vla-") as tmp:
        base = vlm
        if vlm == "tiny":
            from gantry.models.tiny.vlm import build_tiny_vlm

            base = str(
                build_tiny_vlm(
                    Path(tmp) / "vlm",
                    seed=seed,
                    image_size=image_size,
                    patch_size=max(1, image_size // 4),
                )
            )
            config.base_model_id = "gantry-tiny-vlm (random weights)"
        policy = VlaPolicy.from_vlm(base, config).to(pick_device(device))

    def progress(step: int, loss: float) -> None:
        if step % 50 == 0 or step == steps - 1:
            typer.echo(f"step {step:5d}  loss {loss:.4f}")

    report = behaviour_clone(
        policy, demos, steps=steps, batch_size=batch_size, lr=lr, seed=seed, on_step=progress
    )
    policy.config.info.update(
        policy_id=f"{architecture}-metaworld-{len(names)}tasks",
        train_steps=steps,
        train_seconds=round(report.seconds, 1),
        demo_examples=len(demos),
        demo_seeds=f"0..{demos_per_task - 1}",
    )
    policy.save(out)
    typer.echo(
        f"trained {architecture} for {steps} steps in {report.seconds:.0f} s "
        f"(loss {report.first_loss:.3f} -> {report.last_loss:.3f}); wrote {out}"
    )


@app.command("eval")
def eval_command(
    target: Annotated[str, typer.Option(help="host:port of a running vla service")],
    tasks: TasksOption = "",
    episodes: Annotated[int, typer.Option(help="Held-out episodes per task")] = 10,
    render: Annotated[str, typer.Option(help="auto, mujoco (EGL) or schematic")] = "auto",
    max_steps: Annotated[int, typer.Option(help="Step limit per episode")] = 150,
    token: Annotated[str, typer.Option(help="Bearer token, if the service wants one")] = "",
    json_out: Annotated[Path | None, typer.Option("--json", help="Also write JSON here")] = None,
) -> None:
    """Success rate on held-out seeds, through the service's StreamControl."""
    from gantry.core.stats import wilson_interval
    from gantry.vla.client import VlaClient
    from gantry.vla.evaluate import EVAL_SEED_OFFSET, evaluate_service, total

    names = _tasks(tasks)
    client = VlaClient(target, token=token or None)
    info = client.info()
    typer.echo(f"policy {info.policy_id} ({info.architecture}); seeds {EVAL_SEED_OFFSET}..")

    def show(task: str, seed: int, result: object) -> None:
        ok = getattr(result, "success", False)
        typer.echo(f"  {task} seed {seed}: {'success' if ok else 'fail'}")

    scores = evaluate_service(
        client, names, episodes, render_backend=render, max_steps=max_steps, on_episode=show
    )
    rows = []
    for score in [*scores, total(scores)]:
        low, high = wilson_interval(score.successes, score.episodes)
        rows.append(
            {
                "task": score.task,
                "episodes": score.episodes,
                "successes": score.successes,
                "rate": score.rate,
                "wilson95": [low, high],
                "late_chunks": score.late_chunks,
                "errors": score.errors,
            }
        )
        typer.echo(
            f"{score.task:26s} {score.successes:3d}/{score.episodes:<3d} "
            f"= {score.rate:.2f}  (95% CI {low:.2f}-{high:.2f})"
        )
    if json_out is not None:
        json_out.write_text(json.dumps({"policy": info.policy_id, "results": rows}, indent=2))
    client.close()


@app.command("rollout")
def rollout_command(
    out_dir: Annotated[Path, typer.Option(help="Where the PNG frames go")],
    target: Annotated[
        str, typer.Option(help="host:port of a running vla service ('' = the scripted policy)")
    ] = "",
    token: Annotated[str, typer.Option(help="Bearer token, if the service wants one")] = "",
    task: Annotated[str, typer.Option(help="Meta-World task")] = "drawer-close-v3",
    seed: Annotated[int, typer.Option(help="Episode seed")] = 1000,
    frames: Annotated[int, typer.Option(help="Frames to keep, evenly spaced")] = 4,
    size: Annotated[int, typer.Option(help="Frame size in pixels")] = 192,
    max_steps: Annotated[int, typer.Option(help="Step limit")] = 150,
) -> None:
    """Run one episode and save evenly spaced frames named after who acted."""
    import numpy as np
    from PIL import Image

    from gantry.vla.client import VlaClient
    from gantry.vla.sim import MetaWorldEnv, make_frames

    _tasks(task)
    out_dir.mkdir(parents=True, exist_ok=True)
    env = MetaWorldEnv(task, seed=seed, max_steps=max_steps, instruction_index=seed)
    camera = make_frames(env.sim.model, size)
    kept: list[np.ndarray] = []

    class Recording:
        """The env, plus a large frame of every state for the docs."""

        action_space = env.action_space
        instruction = env.instruction

        def __init__(self) -> None:
            self.max_steps = max_steps

        def reset(self) -> tuple[dict[str, np.ndarray], dict[str, object]]:
            result = env.reset()
            kept.append(camera(env.sim))
            return result

        def step(self, action: np.ndarray) -> tuple[object, float, bool, bool, dict[str, object]]:
            result = env.step(action)
            kept.append(camera(env.sim))
            return result

    recording = Recording()
    if target:
        client = VlaClient(target, token=token or None)
        result = client.control(recording)
        client.close()
        success, steps, actor = result.success, result.steps, "policy"
    else:
        recording.reset()
        success, steps = False, 0
        for steps in range(1, max_steps + 1):  # noqa: B007 (steps is reported)
            _, _, success, truncated, _ = recording.step(env.expert_action())
            if success or truncated:
                break
        actor = "scripted"
    env.close()
    picks = np.linspace(0, len(kept) - 1, num=min(frames, len(kept))).round().astype(int)
    for i, index in enumerate(picks):
        Image.fromarray(kept[index]).save(out_dir / f"{task}-{actor}-{i}.png")
    typer.echo(
        f"{task} seed {seed}: {actor} {'succeeded' if success else 'failed'} in {steps} steps; "
        f"frames at steps {', '.join(str(int(i)) for i in picks)} in {out_dir}"
    )
