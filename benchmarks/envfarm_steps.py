"""Environment steps per second: in process vs one Step RPC per step vs StepBatch.

    .venv/bin/python benchmarks/envfarm_steps.py [--envs maze_2d maze_3d] [--steps 600]

(a) the gymnasium env in this process (`env.step`, RGB observation rendered);
(b) a RemoteEnv: one Step RPC per step against an envfarm server process on loopback
    (observation PNG-encoded, sent, decoded);
(c) a RemoteVectorEnv of 64 sessions: one StepBatch RPC steps all 64.
Actions come from the solver's plans, so episodes end and reset as in real use.
Ratios are to (a).
"""

from __future__ import annotations

import argparse
import os
import time

from gantry.core.client import sync_channel
from gantry.core.testing.process import spawn_service
from gantry.envfarm.client import RemoteEnv, RemoteVectorEnv
from gantry.envfarm.envs import env_ids, make, solver_for

TOKEN = "bench-token"
BATCH = 64


def in_process(env_id: str, steps: int) -> float:
    env = make(env_id, "easy")
    seed = 0
    env.reset(seed=seed)
    plan, t = solver_for(env_id).solve(env), 0
    start = time.perf_counter()
    for _ in range(steps):
        _, _, terminated, truncated, _ = env.step(plan[t])
        t += 1
        if terminated or truncated:
            seed += 1
            env.reset(seed=seed)
            plan, t = solver_for(env_id).solve(env), 0
    return steps / (time.perf_counter() - start)


def one_rpc_per_step(target: str, env_id: str, steps: int) -> float:
    with sync_channel(target, token=TOKEN) as channel, RemoteEnv(channel, env_id, seed=0) as env:
        seed = 0
        env.reset(seed=seed)
        plan, t = env.solve(), 0
        start = time.perf_counter()
        for _ in range(steps):
            _, _, terminated, truncated, _ = env.step(plan[t])
            t += 1
            if terminated or truncated:
                seed += 1
                env.reset(seed=seed)
                plan, t = env.solve(), 0
        elapsed = time.perf_counter() - start
    return steps / elapsed


def step_batch(target: str, env_id: str, steps: int) -> float:
    rounds = max(1, steps // BATCH)
    with (
        sync_channel(target, token=TOKEN) as channel,
        RemoteVectorEnv(channel, env_id, BATCH) as vec,
    ):
        vec.reset(seeds=list(range(BATCH)))
        plans = [env.solve() for env in vec.envs]
        cursor = [0] * BATCH
        start = time.perf_counter()
        for _ in range(rounds):
            actions = [plans[i][cursor[i]] for i in range(BATCH)]
            _, _, terminated, truncated, _ = vec.step(actions)
            for i in range(BATCH):
                cursor[i] += 1
                if terminated[i] or truncated[i]:  # auto-reset happened: plan the new episode
                    plans[i], cursor[i] = vec.envs[i].solve(), 0
        return rounds * BATCH / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument(
        "--envs", nargs="+", default=[e for e in ("maze_2d", "maze_3d") if e in env_ids()]
    )
    parser.add_argument("--steps", type=int, default=600)
    args = parser.parse_args()
    rows = []
    with spawn_service(
        "gantry.envfarm", "envfarm", token=TOKEN, env={"GANTRY_ENVFARM_LOG_LEVEL": "WARNING"}
    ) as server:
        target = server.target
        for env_id in args.envs:
            a = in_process(env_id, args.steps)
            b = one_rpc_per_step(target, f"visgym/{env_id}", args.steps)
            c = step_batch(target, f"visgym/{env_id}", args.steps * 4)
            rows.append((env_id, a, b, c))
    print(f"envfarm steps/s on {os.cpu_count()} CPU cores (easy, image observations)")
    header = f"{'env':<14}{'(a) in-process':>16}{'(b) Step RPC':>16}{'(c) StepBatch x64':>20}"
    print(header + f"{'b/a':>8}{'c/a':>8}")
    for env_id, a, b, c in rows:
        print(f"{env_id:<14}{a:>16.0f}{b:>16.0f}{c:>20.0f}{b / a:>8.2f}{c / a:>8.2f}")


if __name__ == "__main__":
    main()
