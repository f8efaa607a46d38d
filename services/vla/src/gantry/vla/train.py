"""Demonstrations from Meta-World's scripted policies and behaviour cloning of the policy.

Each demonstration step becomes one example: the camera image, the state, the episode's
instruction and the chunk of the next H expert actions (the last action repeated past
the episode's end). Cloning trains the flow-matching expert and the right stream (the
left stream stays frozen; the single-stream baseline trains its only stream).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from numpy.typing import NDArray

from gantry.vla.model.policy import VlaPolicy
from gantry.vla.sim import MetaWorldEnv
from gantry.vla.sim_spec import TASKS

log = logging.getLogger("gantry.vla.train")


@dataclass
class Demos:
    images: NDArray[np.uint8]  # [N, cameras, S, S, 3]
    states: NDArray[np.float32]  # [N, state_dim]
    instructions: list[str]
    chunks: NDArray[np.float32]  # [N, H, action_dim]
    episodes: int = 0
    successes: int = 0
    tasks: list[str] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.instructions)


def action_chunks(actions: NDArray[np.float32], horizon: int) -> NDArray[np.float32]:
    """[T, D] actions -> [T, H, D]: at step t, actions t..t+H-1 (the last one repeated)."""
    steps = len(actions)
    index = np.minimum(np.arange(steps)[:, None] + np.arange(horizon)[None, :], steps - 1)
    chunks: NDArray[np.float32] = actions[index]
    return chunks


def collect_demos(
    tasks: Sequence[str],
    seeds: Sequence[int],
    *,
    chunk_size: int,
    image_size: int,
    render_backend: str = "auto",
    max_steps: int = 150,
) -> Demos:
    """Run the scripted policy on every (task, seed); keep the successful episodes."""
    images: list[NDArray[np.uint8]] = []
    states: list[NDArray[np.float32]] = []
    texts: list[str] = []
    chunks: list[NDArray[np.float32]] = []
    episodes = successes = 0
    for task in tasks:
        for seed in seeds:
            env = MetaWorldEnv(
                task,
                seed=seed,
                image_size=image_size,
                max_steps=max_steps,
                render_backend=render_backend,
                instruction_index=seed,
            )
            obs, _ = env.reset()
            ep_images, ep_states, ep_actions = [], [], []
            success = False
            for _ in range(max_steps):
                action = env.expert_action()
                ep_images.append(obs["image"])
                ep_states.append(obs["state"])
                ep_actions.append(action)
                obs, _, success, truncated, _ = env.step(action)
                if success or truncated:
                    break
            env.close()
            episodes += 1
            if not success:
                continue
            successes += 1
            images.extend(img[None] for img in ep_images)
            states.extend(ep_states)
            texts.extend([env.instruction] * len(ep_states))
            chunks.extend(action_chunks(np.stack(ep_actions), chunk_size))
    return Demos(
        images=np.stack(images),
        states=np.stack(states).astype(np.float32),
        instructions=texts,
        chunks=np.stack(chunks).astype(np.float32),
        episodes=episodes,
        successes=successes,
        tasks=list(tasks),
    )


def fit_state_normaliser(policy: VlaPolicy, demos: Demos) -> None:
    policy.config.state_mean = demos.states.mean(axis=0).tolist()
    policy.config.state_std = (demos.states.std(axis=0) + 1e-3).tolist()


def describe_tasks(policy: VlaPolicy, tasks: Sequence[str]) -> None:
    policy.config.info["tasks"] = {task: TASKS[task] for task in tasks}


@dataclass
class TrainReport:
    steps: int
    seconds: float
    first_loss: float
    last_loss: float


def behaviour_clone(
    policy: VlaPolicy,
    demos: Demos,
    *,
    steps: int,
    batch_size: int = 32,
    lr: float = 3e-4,
    seed: int = 0,
    on_step: Callable[[int, float], Any] | None = None,
) -> TrainReport:
    """AdamW on the flow-matching loss over random demo batches."""
    fit_state_normaliser(policy, demos)
    describe_tasks(policy, demos.tasks)
    policy.train()
    params = policy.trainable_parameters()
    optimizer = torch.optim.AdamW(params, lr=lr, weight_decay=1e-4)
    rng = np.random.default_rng(seed)
    gen = torch.Generator(device=policy.device).manual_seed(seed)
    start = time.monotonic()
    losses: list[float] = []
    for step in range(steps):
        index = rng.integers(0, len(demos), size=min(batch_size, len(demos)))
        prefix, state = policy.prepare(
            demos.images[index], [demos.instructions[i] for i in index], demos.states[index]
        )
        actions = torch.from_numpy(demos.chunks[index]).to(policy.device, policy.dtype)
        loss = policy.loss(prefix, state, actions, generator=gen)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()  # type: ignore[no-untyped-call]
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        optimizer.step()
        losses.append(loss.item())
        if on_step is not None:
            on_step(step, losses[-1])
    policy.eval()
    window = max(1, min(20, steps // 5))
    return TrainReport(
        steps=steps,
        seconds=time.monotonic() - start,
        first_loss=float(np.mean(losses[:window])) if losses else float("nan"),
        last_loss=float(np.mean(losses[-window:])) if losses else float("nan"),
    )
