"""Every RPC of every service, fuzzed from its descriptor: never INTERNAL or UNKNOWN.

For each method, hypothesis draws hostile requests (see gantry.core.testing.fuzz) and
sends them with a valid token to the real service process. Any status is acceptable
except INTERNAL, UNKNOWN and DATA_LOSS (those mean the server failed on input it should
have refused). After each method's run the process must still be alive and SERVING.

`GANTRY_FUZZ_EXAMPLES` sets the examples per RPC (40 in `make test`, 200 in `make fuzz`);
the suite is derandomized so CI is repeatable; `GANTRY_FUZZ_RANDOM=1` explores new seeds.
"""

from __future__ import annotations

import importlib
import os
from collections import Counter
from collections.abc import Callable, Iterator
from typing import Any

import grpc
import pytest
from google.protobuf import descriptor, message
from google.protobuf.message_factory import GetMessageClass
from grpc_health.v1 import health_pb2, health_pb2_grpc
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gantry.core.client import sync_channel
from gantry.core.testing.fuzz import message_strategy

EXAMPLES = int(os.environ.get("GANTRY_FUZZ_EXAMPLES", "40"))
CALL_TIMEOUT_S = 5.0
MAX_STREAM_ITEMS = 20
FAILURES = {grpc.StatusCode.INTERNAL, grpc.StatusCode.UNKNOWN, grpc.StatusCode.DATA_LOSS}

SERVICES: dict[str, tuple[str, str]] = {
    "envfarm": ("gantry.proto.envfarm.v1.envfarm_pb2", "EnvFarmService"),
    "rollout": ("gantry.proto.rollout.v1.rollout_pb2", "RolloutService"),
    "trainer": ("gantry.proto.trainer.v1.trainer_pb2", "TrainerService"),
    "pruner": ("gantry.proto.pruner.v1.pruner_pb2", "PrunerService"),
    "retrieval": ("gantry.proto.retrieval.v1.retrieval_pb2", "RetrievalService"),
    "verifier": ("gantry.proto.verifier.v1.verifier_pb2", "VerifierService"),
    "vla": ("gantry.proto.vla.v1.vla_pb2", "VlaService"),
    "video": ("gantry.proto.video.v1.video_pb2", "VideoService"),
}
OPERATIONS = ("google.longrunning.operations_proto_pb2", "Operations")


def _service(module: str, name: str) -> descriptor.ServiceDescriptor:
    found: descriptor.ServiceDescriptor = importlib.import_module(
        module
    ).DESCRIPTOR.services_by_name[name]
    return found


def _cases() -> list[tuple[str, descriptor.MethodDescriptor]]:
    cases = []
    for svc, (module, name) in SERVICES.items():
        for spec in ((module, name), OPERATIONS):
            for method in _service(*spec).methods:
                cases.append((svc, method))
    return cases


CASES = _cases()


def _vocabulary(service: str) -> list[str]:
    """Strings valid for the service, so fuzzing gets past the first lookup."""
    words = ["tiny", "fuzz", "default", "greedy", "grpo", "sft", "fp8-jet", "bf16"]
    if service == "envfarm":
        words += ["maze_2d", "counting", "sliding_block", "easy", "hard"]
    if service == "retrieval":
        words += ["fuzz-collection", "minilm", "dense", "hybrid"]
    if service == "pruner":
        words += ["def f(x):\n    return x\n", "python"]
    if service == "verifier":
        words += ["visgym/maze_2d", "reasoning.hallucination", "fuzz-collection"]
    if service == "vla":
        words += ["corner", "reach the goal position"]
    if service == "video":
        words += ["video/mp4", "wan2.1-tiny-random", "a red cube"]
    return words


def _invoke(
    channel: grpc.Channel,
    method: descriptor.MethodDescriptor,
    request: message.Message,
    copies: int = 1,
) -> grpc.StatusCode:
    path = f"/{method.containing_service.full_name}/{method.name}"
    reply_cls = GetMessageClass(method.output_type)
    ser: Callable[[Any], bytes] = lambda m: m.SerializeToString()  # noqa: E731
    kwargs: dict[str, Any] = {
        "request_serializer": ser,
        "response_deserializer": reply_cls.FromString,
    }
    requests = [request] * copies
    try:
        if method.client_streaming and method.server_streaming:
            call = channel.stream_stream(path, **kwargs)(iter(requests), timeout=CALL_TIMEOUT_S)
            _drain(call)
        elif method.client_streaming:
            channel.stream_unary(path, **kwargs)(iter(requests), timeout=CALL_TIMEOUT_S)
        elif method.server_streaming:
            call = channel.unary_stream(path, **kwargs)(request, timeout=CALL_TIMEOUT_S)
            _drain(call)
        else:
            channel.unary_unary(path, **kwargs)(request, timeout=CALL_TIMEOUT_S)
    except grpc.RpcError as err:
        code: grpc.StatusCode = err.code()
        if code in FAILURES:
            raise AssertionError(
                f"{path} answered {code.name}: {err.details()!r:.300}\n"
                f"request: {str(request)[:1500]}"
            ) from None
        return code
    return grpc.StatusCode.OK


def _drain(call: Iterator[Any]) -> None:
    for n, _ in enumerate(call):
        if n >= MAX_STREAM_ITEMS:
            call.cancel()  # type: ignore[attr-defined]
            break


def _assert_healthy(stack: Any, service: str) -> None:
    proc = stack.service(service)
    assert proc.process.poll() is None, f"{service} died:\n{proc.log.read_text()[-3000:]}"
    with grpc.insecure_channel(proc.target) as channel:
        reply = health_pb2_grpc.HealthStub(channel).Check(
            health_pb2.HealthCheckRequest(service=""), timeout=10
        )
    assert reply.status == health_pb2.HealthCheckResponse.SERVING


@pytest.mark.slow
@pytest.mark.timeout(900)
@pytest.mark.parametrize(
    ("service", "method"),
    CASES,
    ids=[f"{svc}-{m.containing_service.name}.{m.name}" for svc, m in CASES],
)
def test_fuzzed_requests_never_fail_the_server(
    stack: Any,
    fuzz_totals: dict[str, Counter[str]],
    service: str,
    method: descriptor.MethodDescriptor,
) -> None:
    target = stack.target(service)
    strategy = message_strategy(method.input_type, vocabulary=_vocabulary(service))
    with sync_channel(
        target, token=stack.token, retry=None, default_timeout_s=CALL_TIMEOUT_S
    ) as ch:

        @settings(
            max_examples=EXAMPLES,
            deadline=None,
            derandomize=os.environ.get("GANTRY_FUZZ_RANDOM") != "1",
            database=None,
            suppress_health_check=list(HealthCheck),
            print_blob=True,
        )
        @given(request=strategy, data=st.data())
        def run(request: message.Message, data: st.DataObject) -> None:
            copies = data.draw(st.integers(0, 3)) if method.client_streaming else 1
            code = _invoke(ch, method, request, copies)
            fuzz_totals[service][code.name] += 1

        run()
    _assert_healthy(stack, service)


@pytest.mark.slow  # starts every service
@pytest.mark.parametrize("service", list(SERVICES))
def test_health_list_and_check_need_no_token_and_never_fail(stack: Any, service: str) -> None:
    with grpc.insecure_channel(stack.target(service)) as channel:
        health = health_pb2_grpc.HealthStub(channel)
        reply = health.Check(health_pb2.HealthCheckRequest(service=""), timeout=5)
        assert reply.status == health_pb2.HealthCheckResponse.SERVING
        listed = health.List(health_pb2.HealthListRequest(), timeout=5)
        assert listed.statuses[""].status == health_pb2.HealthCheckResponse.SERVING
        assert len(listed.statuses) >= 2  # "" and the service's own name
