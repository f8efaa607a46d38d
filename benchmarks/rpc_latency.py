"""Unary round-trip latency on loopback: the Gantry runtime vs a bare grpc.aio server.

Both servers answer the same Echo RPC, each in its own process on 127.0.0.1; the
client (also the same for both: a plain grpc.aio channel plus the token header) runs in
this process. The Gantry
server runs the full runtime (auth, request ids, metrics, JSON logs, error mapping);
the baseline is grpc.aio with no interceptor. Prints median/p99 and the ratio.

    .venv/bin/python benchmarks/rpc_latency.py [--calls 2000]
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import multiprocessing as mp
import statistics
import time
from typing import Any

import grpc
from google.protobuf import wrappers_pb2

from gantry.core.server import start_server
from gantry.core.testing.probe import PROBE_SERVICE, ProbeService, ProbeSettings, probe_method

TOKEN = "bench-token"


def _serve(kind: str, ports: mp.Queue[int], stop: Any) -> None:
    async def run() -> None:
        logging.disable(logging.INFO)  # measure the runtime, not stderr throughput
        if kind == "gantry":
            settings = ProbeSettings(host="127.0.0.1", port=0, metrics_port=0, auth_token=TOKEN)
            running = await start_server(ProbeService(settings))
            ports.put(running.port)
            await asyncio.get_running_loop().run_in_executor(None, stop.wait)
            await running.stop(grace_s=0)
            return

        async def echo(request: wrappers_pb2.StringValue, context: Any) -> wrappers_pb2.StringValue:
            return wrappers_pb2.StringValue(value=request.value)

        server = grpc.aio.server()
        handler = grpc.unary_unary_rpc_method_handler(
            echo,
            request_deserializer=wrappers_pb2.StringValue.FromString,
            response_serializer=wrappers_pb2.StringValue.SerializeToString,
        )
        server.add_generic_rpc_handlers(
            (grpc.method_handlers_generic_handler(PROBE_SERVICE, {"Echo": handler}),)
        )
        ports.put(server.add_insecure_port("127.0.0.1:0"))
        await server.start()
        await asyncio.get_running_loop().run_in_executor(None, stop.wait)
        await server.stop(0)

    asyncio.run(run())


async def _measure(
    channel: grpc.aio.Channel, calls: int, metadata: tuple[tuple[str, str], ...]
) -> list[float]:
    echo = probe_method(channel, "Echo")
    request = wrappers_pb2.StringValue(value="ping")
    for _ in range(200):  # warm up the connection and both event loops
        await echo(request, metadata=metadata)
    samples = []
    for _ in range(calls):
        start = time.perf_counter()
        await echo(request, metadata=metadata)
        samples.append((time.perf_counter() - start) * 1e3)
    return samples


def _summary(samples: list[float]) -> tuple[float, float]:
    ordered = sorted(samples)
    return statistics.median(ordered), ordered[int(0.99 * (len(ordered) - 1))]


async def _bench(kind: str, calls: int) -> tuple[float, float]:
    ctx = mp.get_context("spawn")
    ports: mp.Queue[int] = ctx.Queue()
    stop = ctx.Event()
    proc = ctx.Process(target=_serve, args=(kind, ports, stop))
    proc.start()
    try:
        port = ports.get(timeout=60)
        metadata = (("authorization", f"Bearer {TOKEN}"),)
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as ch:
            return _summary(await _measure(ch, calls, metadata))
    finally:
        stop.set()
        proc.join(timeout=30)


async def main(calls: int) -> None:
    baseline = await _bench("bare", calls)
    runtime = await _bench("gantry", calls)
    print(f"unary Echo round trip on loopback, {calls} sequential calls")
    print(f"{'server':<34}{'median ms':>10}{'p99 ms':>10}")
    print(f"{'grpc.aio, no interceptor':<34}{baseline[0]:>10.3f}{baseline[1]:>10.3f}")
    print(f"{'gantry runtime (auth+metrics+logs)':<34}{runtime[0]:>10.3f}{runtime[1]:>10.3f}")
    median_ratio, p99_ratio = runtime[0] / baseline[0], runtime[1] / baseline[1]
    print(f"ratio gantry/bare: median {median_ratio:.2f}x, p99 {p99_ratio:.2f}x")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--calls", type=int, default=2000)
    asyncio.run(main(parser.parse_args().calls))
