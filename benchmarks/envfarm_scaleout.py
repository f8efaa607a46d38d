"""envfarm behind the routing channel: steps/s with 1 vs 2 replica processes, and what
routing costs per call.

    .venv/bin/python benchmarks/envfarm_scaleout.py [--steps 2000] [--batches 200]
        [--batch 32] [--threads 4] [--rounds 3] [--mode text|image] [--json out.json]

Scenarios, all against envfarm server processes on loopback (maze_2d, easy):
  direct    1 process, a plain channel (the baseline);
  routed-1  the same process behind `farm_channel` (gantry.envfarm.routing);
  routed-2  2 processes behind `farm_channel`, sessions spread over both.
Each runs: Step RPCs from one thread, Step RPCs from `--threads` threads (own sessions
each), and StepBatch over `--batch` sessions (fanned out per owner when routed).
The scenarios take turns for `--rounds` rounds (a load change hits each alike) and each
figure is the median over rounds. Routing overhead per call: Step latency through the
routing channel minus a plain channel's, calls alternating over the same process and
sessions; and the client-side routing decision alone, timed in process. On a machine
with few cores the two processes compete with the client and each other: routed-2 shows
overhead, not speedup.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from typing import Any

import grpc

from gantry.core.client import sync_channel
from gantry.core.routing import Owner, Replicas, route_kind
from gantry.core.testing.process import ServiceProcess, spawn_service
from gantry.envfarm.routing import farm_channel
from gantry.proto.common.v1 import episode_pb2
from gantry.proto.envfarm.v1 import envfarm_pb2, envfarm_pb2_grpc

ENV = "visgym/maze_2d"
ACTIONS = ("up", "right", "down", "left")


@contextmanager
def farm(count: int) -> Iterator[list[ServiceProcess]]:
    with ExitStack() as stack:
        yield [
            stack.enter_context(
                spawn_service(
                    "gantry.envfarm",
                    "envfarm",
                    token=None,
                    env={
                        "GANTRY_ENVFARM_REPLICA_NAME": f"bench-{i}",
                        "GANTRY_ENVFARM_TERMINAL_ENABLED": "false",
                        "GANTRY_ENVFARM_NOTEBOOK_ENABLED": "false",
                        "GANTRY_ENVFARM_LOG_LEVEL": "WARNING",
                    },
                )
            )
            for i in range(count)
        ]


def settings(mode: str) -> episode_pb2.EpisodeSettings:
    observation = (
        episode_pb2.OBSERVATION_MODE_TEXT if mode == "text" else episode_pb2.OBSERVATION_MODE_IMAGE
    )
    return episode_pb2.EpisodeSettings(observation_mode=observation, max_steps=1000)


def sessions(stub: Any, n: int, mode: str) -> list[str]:
    return [
        stub.CreateSession(
            envfarm_pb2.CreateSessionRequest(env_id=ENV, seed=i, settings=settings(mode))
        ).session.id
        for i in range(n)
    ]


def play_steps(stub: Any, ids: list[str], steps: int) -> list[float]:
    """Step round-robin over `ids`, resetting finished episodes; per-call latencies."""
    latencies = []
    for i in range(steps):
        session_id = ids[i % len(ids)]
        start = time.perf_counter()
        reply = stub.Step(envfarm_pb2.StepRequest(session_id=session_id, action=ACTIONS[i % 4]))
        latencies.append(time.perf_counter() - start)
        if reply.result.terminated or reply.result.truncated:
            stub.Reset(envfarm_pb2.ResetRequest(session_id=session_id))
    return latencies


def threaded_steps(stub: Any, ids: list[str], steps: int, threads: int) -> float:
    """Steps/s with `threads` threads, each stepping its own share of `ids`."""
    share = [ids[t::threads] for t in range(threads)]
    workers = [
        threading.Thread(target=play_steps, args=(stub, share[t], steps // threads))
        for t in range(threads)
    ]
    start = time.perf_counter()
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    return (steps // threads) * threads / (time.perf_counter() - start)


def batch_steps(stub: Any, ids: list[str], batches: int) -> float:
    start = time.perf_counter()
    for b in range(batches):
        reply = stub.StepBatch(
            envfarm_pb2.StepBatchRequest(
                items=[envfarm_pb2.StepBatchItem(session_id=s, action=ACTIONS[b % 4]) for s in ids]
            )
        )
        assert all(r.HasField("result") for r in reply.results)
    return batches * len(ids) / (time.perf_counter() - start)


def scenario(name: str, channel: grpc.Channel, args: argparse.Namespace) -> dict[str, float]:
    stub = envfarm_pb2_grpc.EnvFarmServiceStub(channel)
    ids = sessions(stub, max(args.batch, args.threads * 4), args.mode)
    play_steps(stub, ids, 100)  # warm up connections and code paths
    latencies = play_steps(stub, ids, args.steps)
    row = {
        "step_per_s": len(latencies) / sum(latencies),
        "step_mean_ms": 1000 * sum(latencies) / len(latencies),
        "step_p50_ms": 1000 * sorted(latencies)[len(latencies) // 2],
        "threaded_step_per_s": threaded_steps(stub, ids, args.steps, args.threads),
        "batch_step_per_s": batch_steps(stub, ids[: args.batch], args.batches),
    }
    for session_id in ids:
        stub.CloseSession(envfarm_pb2.CloseSessionRequest(session_id=session_id))
    print(
        f"{name:9s}  Step {row['step_per_s']:7.0f}/s (mean {row['step_mean_ms']:.2f} ms, "
        f"p50 {row['step_p50_ms']:.2f} ms)  {args.threads} threads "
        f"{row['threaded_step_per_s']:7.0f}/s  StepBatch x{args.batch} "
        f"{row['batch_step_per_s']:7.0f}/s",
        flush=True,
    )
    return row


def decision_cost(calls: int = 100_000) -> float:
    """Microseconds the client spends deciding where one Step goes (no network)."""
    replicas = Replicas("a=127.0.0.1:1,b=127.0.0.1:2")
    ids = [Owner.start(n).new_session_id() for n in ("a", "b")]
    requests = [envfarm_pb2.StepRequest(session_id=i, action="up") for i in ids]

    def route(request: Any) -> Any:
        return route_kind("/x/Step", request), replicas.address_of(request.session_id)

    start = time.perf_counter()
    for i in range(calls):
        route(requests[i & 1])
    return 1e6 * (time.perf_counter() - start) / calls


def paired_overhead(
    plain: grpc.Channel, routed: grpc.Channel, steps: int, mode: str
) -> dict[str, float]:
    """Step latency through the routing channel minus a plain channel's, to the same
    process and sessions, calls alternating so that load changes hit both alike."""
    direct_stub = envfarm_pb2_grpc.EnvFarmServiceStub(plain)
    routed_stub = envfarm_pb2_grpc.EnvFarmServiceStub(routed)
    ids = sessions(direct_stub, 8, mode)
    play_steps(routed_stub, ids, 50)
    a: list[float] = []
    b: list[float] = []
    for i in range(steps):
        for stub, into in (
            ((direct_stub, a), (routed_stub, b))
            if i % 2
            else (
                (routed_stub, b),
                (direct_stub, a),
            )
        ):
            into.extend(play_steps(stub, [ids[i % len(ids)]], 1))
    for session_id in ids:
        direct_stub.CloseSession(envfarm_pb2.CloseSessionRequest(session_id=session_id))
    a.sort()
    b.sort()
    return {
        "direct_p50_ms": 1000 * a[len(a) // 2],
        "routed_p50_ms": 1000 * b[len(b) // 2],
        "overhead_p50_ms": 1000 * (b[len(b) // 2] - a[len(a) // 2]),
        "overhead_mean_ms": 1000 * (sum(b) / len(b) - sum(a) / len(a)),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, default=2000)
    parser.add_argument("--batches", type=int, default=200)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--threads", type=int, default=4)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--mode", choices=("text", "image"), default="text")
    parser.add_argument("--json", default="")
    args = parser.parse_args()
    print(f"load before: {os.getloadavg()}, cores: {os.cpu_count()}, mode: {args.mode}")
    results: dict[str, Any] = {"load_before": os.getloadavg(), "cores": os.cpu_count()}
    rounds: dict[str, list[dict[str, float]]] = {"direct": [], "routed-1": [], "routed-2": []}
    with farm(2) as (first, second):
        targets: dict[str, Callable[[], grpc.Channel]] = {
            "direct": lambda: sync_channel(first.target),
            "routed-1": lambda: farm_channel(f"bench-0={first.target}"),
            "routed-2": lambda: farm_channel(f"bench-0={first.target},bench-1={second.target}"),
        }
        for _ in range(args.rounds):
            for name, make in targets.items():
                with make() as channel:
                    rounds[name].append(scenario(name, channel, args))
        with farm_channel(f"bench-0={first.target}") as routed, sync_channel(first.target) as plain:
            results["paired"] = paired_overhead(plain, routed, args.steps, args.mode)
    for name, rows in rounds.items():
        results[name] = {k: statistics.median(r[k] for r in rows) for k in rows[0]}
    direct, one, two = results["direct"], results["routed-1"], results["routed-2"]
    paired = results["paired"]
    results["decision_us"] = decision_cost()
    results["load_after"] = os.getloadavg()
    print(
        f"routing overhead per Step (alternating calls, same process and sessions): "
        f"p50 {paired['overhead_p50_ms']:+.3f} ms ({paired['direct_p50_ms']:.2f} -> "
        f"{paired['routed_p50_ms']:.2f} ms), mean {paired['overhead_mean_ms']:+.3f} ms; "
        f"the routing decision alone: {results['decision_us']:.1f} us"
    )
    print(f"medians over {args.rounds} rounds:")
    for name in rounds:
        row = results[name]
        print(
            f"  {name:9s} Step {row['step_per_s']:6.0f}/s  threaded "
            f"{row['threaded_step_per_s']:6.0f}/s  StepBatch {row['batch_step_per_s']:6.0f}/s"
        )
    for key in ("step_per_s", "threaded_step_per_s", "batch_step_per_s"):
        print(
            f"{key:20s} routed-1/direct {one[key] / direct[key]:.2f}x   "
            f"routed-2/routed-1 {two[key] / one[key]:.2f}x"
        )
    print(f"load after: {results['load_after']}")
    if args.json:
        with open(args.json, "w") as out:
            json.dump(results, out, indent=2)


if __name__ == "__main__":
    main()
