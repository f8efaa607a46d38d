"""Environment steps per second: in process vs one Step RPC per step vs StepBatch, per
observation encoding, plus the codecs' cost on real frames.

    .venv/bin/python benchmarks/envfarm_steps.py [--envs maze_2d maze_3d] [--steps 600]
        [--encodings png webp raw raw-reply] [--small] [--json out.json]

(a) the gymnasium env in this process (`env.step`, RGB observation rendered);
(b) a RemoteEnv: one Step RPC per step against an envfarm server process on loopback;
(c) a RemoteVectorEnv of 64 sessions: one StepBatch RPC steps all 64.
(b) and (c) run once per observation encoding: PNG (the default), WebP lossless, raw
uint8 pixels through a frame region (shared memory: the clients' default for a server on
this host) and raw pixels in the replies (`raw-reply`, `shared_memory=False`); unchanged
frames are left out (the clients' default). Actions come from the
solver's plans, so episodes end and reset as in real use. Ratios are to (a).
The codec table encodes and decodes 40 frames of a solver episode per env (best of 3).
"""

from __future__ import annotations

import argparse
import io
import itertools
import json
import os
import time
from pathlib import Path
from typing import Any

import numpy as np

from gantry.core.client import sync_channel
from gantry.core.testing.process import spawn_service
from gantry.envfarm.client import RemoteEnv, RemoteVectorEnv
from gantry.envfarm.encoding import PNG, RAW, WEBP_LOSSLESS, image
from gantry.envfarm.envs import env_ids, make, solver_for
from gantry.proto.envfarm.v1 import envfarm_pb2

TOKEN = "bench-token"
BATCH = 64
# name -> (encoding, frames through a frame region)
ENCODINGS: dict[str, tuple[envfarm_pb2.ObservationEncoding, bool]] = {
    "png": (PNG, False),
    "webp": (WEBP_LOSSLESS, False),
    "raw": (RAW, True),
    "raw-reply": (RAW, False),
}
# Issue 16's goals, as ratios to in-process steps/s.
GOALS = {("maze_2d", "batch"): 0.6, ("maze_3d", "batch"): 0.8, ("maze_2d", "step"): 0.35}


SERVER_PID: int | None = None  # the envfarm server's, once started


def _cpu_s() -> float:
    """CPU seconds of this process plus the server process: what the steps cost whatever
    else the machine runs (wall-clock rates on a loaded machine mostly measure the load)."""
    total = time.process_time()
    if SERVER_PID is not None:
        fields = Path(f"/proc/{SERVER_PID}/stat").read_text().rsplit(")", 1)[1].split()
        total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return total


def in_process(env_id: str, steps: int) -> tuple[float, float]:
    env = make(env_id, "easy")
    seed = 0
    env.reset(seed=seed)
    plan, t = solver_for(env_id).solve(env), 0
    start, cpu = time.perf_counter(), _cpu_s()
    for _ in range(steps):
        _, _, terminated, truncated, _ = env.step(plan[t])
        t += 1
        if terminated or truncated:
            seed += 1
            env.reset(seed=seed)
            plan, t = solver_for(env_id).solve(env), 0
    return steps / (time.perf_counter() - start), 1e3 * (_cpu_s() - cpu) / steps


def one_rpc_per_step(
    target: str, env_id: str, steps: int, encoding: envfarm_pb2.ObservationEncoding, shm: bool
) -> tuple[float, float]:
    with (
        sync_channel(target, token=TOKEN) as channel,
        RemoteEnv(channel, env_id, seed=0, observation_encoding=encoding, shared_memory=shm) as env,
    ):
        seed = 0
        env.reset(seed=seed)
        plan, t = env.solve(), 0
        start, cpu = time.perf_counter(), _cpu_s()
        for _ in range(steps):
            _, _, terminated, truncated, _ = env.step(plan[t])
            t += 1
            if terminated or truncated:
                seed += 1
                env.reset(seed=seed)
                plan, t = env.solve(), 0
        elapsed, used = time.perf_counter() - start, _cpu_s() - cpu
    return steps / elapsed, 1e3 * used / steps


def step_batch(
    target: str, env_id: str, steps: int, encoding: envfarm_pb2.ObservationEncoding, shm: bool
) -> tuple[float, float]:
    rounds = max(1, steps // BATCH)
    with (
        sync_channel(target, token=TOKEN) as channel,
        RemoteVectorEnv(
            channel, env_id, BATCH, observation_encoding=encoding, shared_memory=shm
        ) as vec,
    ):
        vec.reset(seeds=list(range(BATCH)))
        plans = [env.solve() for env in vec.envs]
        cursor = [0] * BATCH
        start, cpu = time.perf_counter(), _cpu_s()
        for _ in range(rounds):
            actions = [plans[i][cursor[i]] for i in range(BATCH)]
            _, _, terminated, truncated, _ = vec.step(actions)
            for i in range(BATCH):
                cursor[i] += 1
                if terminated[i] or truncated[i]:  # auto-reset happened: plan the new episode
                    plans[i], cursor[i] = vec.envs[i].solve(), 0
        elapsed, used = time.perf_counter() - start, _cpu_s() - cpu
        return rounds * BATCH / elapsed, 1e3 * used / (rounds * BATCH)


def _frames(env_id: str, count: int = 40) -> list[np.ndarray[Any, Any]]:
    env = make(env_id, "easy")
    seed = 0
    frames = [env.reset(seed=seed)[0]["image"]]
    plan, t = solver_for(env_id).solve(env), 0
    while len(frames) < count:
        obs, _, terminated, truncated, _ = env.step(plan[t])
        frames.append(obs["image"])
        t += 1
        if terminated or truncated:
            seed += 1
            frames.append(env.reset(seed=seed)[0]["image"])
            plan, t = solver_for(env_id).solve(env), 0
    return frames[:count]


def _jpeg(pixels: np.ndarray[Any, Any]) -> bytes:
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="JPEG", quality=95)
    return buffer.getvalue()


def codecs(env_id: str) -> list[dict[str, Any]]:
    """Bytes, encode and decode ms and the loss of each codec on one env's frames."""
    from PIL import Image

    frames = _frames(env_id)
    unchanged = np.mean([np.array_equal(a, b) for a, b in itertools.pairwise(frames)])
    candidates = {
        "png (level 1)": lambda p: image(p, PNG).data,
        "webp lossless (method 0)": lambda p: image(p, WEBP_LOSSLESS).data,
        "jpeg (quality 95)": _jpeg,
    }
    rows = []
    for name, encode in candidates.items():
        best_encode = best_decode = float("inf")
        for _ in range(3):
            start = time.perf_counter()
            blobs = [encode(p) for p in frames]
            middle = time.perf_counter()
            decoded = [np.asarray(Image.open(io.BytesIO(b)).convert("RGB")) for b in blobs]
            best_encode = min(best_encode, middle - start)
            best_decode = min(best_decode, time.perf_counter() - middle)
        errors = [
            np.abs(d.astype(np.int16) - p.astype(np.int16))
            for d, p in zip(decoded, frames, strict=True)
        ]
        mse = float(np.mean([(e.astype(np.float64) ** 2).mean() for e in errors]))
        rows.append(
            {
                "env": env_id,
                "codec": name,
                "kib": float(np.mean([len(b) for b in blobs])) / 1024,
                "encode_ms": 1e3 * best_encode / len(frames),
                "decode_ms": 1e3 * best_decode / len(frames),
                "max_error": int(max(e.max() for e in errors)),
                "psnr_db": float("inf") if mse == 0 else 10 * np.log10(255**2 / mse),
                "unchanged_share": float(unchanged),
            }
        )
    raw = frames[0].nbytes / 1024
    rows.append(
        {
            "env": env_id,
            "codec": "raw",
            "kib": raw,
            "encode_ms": 0.0,
            "decode_ms": 0.0,
            "max_error": 0,
            "psnr_db": float("inf"),
            "unchanged_share": float(unchanged),
        }
    )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument(
        "--envs", nargs="+", default=[e for e in ("maze_2d", "maze_3d") if e in env_ids()]
    )
    parser.add_argument("--steps", type=int, default=600)
    parser.add_argument("--encodings", nargs="+", choices=list(ENCODINGS), default=list(ENCODINGS))
    parser.add_argument("--small", action="store_true", help="100 steps (run_all.py)")
    parser.add_argument("--json", help="also write the rows here")
    args = parser.parse_args()
    steps = 100 if args.small else args.steps
    rows: list[dict[str, Any]] = []
    codec_rows = [row for env_id in args.envs for row in codecs(env_id)]
    with spawn_service(
        "gantry.envfarm", "envfarm", token=TOKEN, env={"GANTRY_ENVFARM_LOG_LEVEL": "WARNING"}
    ) as server:
        target = server.target
        global SERVER_PID
        SERVER_PID = server.process.pid
        for env_id in args.envs:
            for name in args.encodings:
                encoding, shm = ENCODINGS[name]
                # In-process again beside each encoding: the ratio sees the same load.
                a, a_cpu = in_process(env_id, steps)
                b, b_cpu = one_rpc_per_step(target, f"visgym/{env_id}", steps, encoding, shm)
                c, c_cpu = step_batch(target, f"visgym/{env_id}", steps * 4, encoding, shm)
                print(
                    f"{env_id} {name}: in-process {a:.0f}, Step RPC {b:.0f} ({b / a:.2f}x), "
                    f"StepBatch x64 {c:.0f} ({c / a:.2f}x), load {os.getloadavg()[0]:.1f}; "
                    f"CPU ms/step {a_cpu:.2f} / {b_cpu:.2f} / {c_cpu:.2f}",
                    flush=True,
                )
                for mode, value, used in (("step", b, b_cpu), ("batch", c, c_cpu)):
                    rows.append(
                        {
                            "env": env_id,
                            "mode": mode,
                            "encoding": name,
                            "steps_per_s": value,
                            "in_process": a,
                            "cpu_ms": used,
                            "in_process_cpu_ms": a_cpu,
                            "cpu_ratio": a_cpu / used,
                            "ratio": value / a,
                            "goal": GOALS.get((env_id, mode)),
                        }
                    )
    load = os.getloadavg()[0]
    print(
        f"envfarm steps/s on {os.cpu_count()} CPU cores (easy, image observations), load {load:.1f}"
    )
    print(
        f"{'env':<10}{'encoding':<11}{'(a) in-process':>16}{'(b) Step RPC':>14}"
        f"{'(c) StepBatch x64':>19}{'b/a':>7}{'c/a':>7}   CPU ms/step a / b / c   CPU a/b  a/c"
    )
    for env_id in args.envs:
        for name in args.encodings:
            one, batch = (
                next(r for r in rows if (r["env"], r["mode"], r["encoding"]) == (env_id, m, name))
                for m in ("step", "batch")
            )
            print(
                f"{env_id:<10}{name:<11}{one['in_process']:>16.0f}{one['steps_per_s']:>14.0f}"
                f"{batch['steps_per_s']:>19.0f}{one['ratio']:>7.2f}{batch['ratio']:>7.2f}   "
                f"{one['in_process_cpu_ms']:5.2f} / {one['cpu_ms']:5.2f} / {batch['cpu_ms']:5.2f}"
                f"   {one['cpu_ratio']:6.2f} {batch['cpu_ratio']:5.2f}"
            )
    print(
        f"\n{'env':<10}{'codec':<26}{'KiB':>8}{'encode ms':>11}{'decode ms':>11}"
        f"{'max err':>9}{'PSNR dB':>9}"
    )
    for r in codec_rows:
        print(
            f"{r['env']:<10}{r['codec']:<26}{r['kib']:>8.1f}{r['encode_ms']:>11.2f}{r['decode_ms']:>11.2f}{r['max_error']:>9}{r['psnr_db']:>9.1f}"
        )
    shares = ", ".join(
        f"{e} {next(r['unchanged_share'] for r in codec_rows if r['env'] == e):.0%}"
        for e in args.envs
    )
    print(f"unchanged frames in solver episodes: {shares}")
    if args.json:
        with open(args.json, "w") as out:
            json.dump({"load": load, "steps": rows, "codecs": codec_rows}, out, indent=1)


if __name__ == "__main__":
    main()
