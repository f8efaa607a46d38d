"""The pruner service through a real gRPC server and the generated stubs."""

from __future__ import annotations

import ast
import asyncio
from collections.abc import Iterator
from typing import Any, cast

import grpc
import pytest

from gantry.core import errors
from gantry.core.client import aio_channel, sync_channel
from gantry.core.ports import free_port
from gantry.core.server import start_server
from gantry.core.testing.threaded import serve_in_thread
from gantry.proto.pruner.v1 import pruner_pb2, pruner_pb2_grpc
from gantry.pruner.service import DEMO_CODE, PrunerService
from gantry.pruner.settings import PrunerSettings

TOKEN = "pruner-test-token"


@pytest.fixture(scope="module")
def target() -> Iterator[str]:
    settings = PrunerSettings(
        host="127.0.0.1", port=0, metrics_port=0, auth_token=TOKEN, log_json=False
    )
    with serve_in_thread(PrunerService(settings)) as running:
        yield f"127.0.0.1:{running.port}"


@pytest.fixture
def stub(target: str) -> Iterator[pruner_pb2_grpc.PrunerServiceStub]:
    with sync_channel(target, token=TOKEN) as channel:
        yield pruner_pb2_grpc.PrunerServiceStub(channel)


def _error(fn: Any, request: Any) -> errors.GantryError:
    with pytest.raises(grpc.RpcError) as info:
        fn(request)
    return errors.from_rpc_error(info.value)


def test_prune_keeps_the_relevant_function(stub: pruner_pb2_grpc.PrunerServiceStub) -> None:
    reply = stub.Prune(
        pruner_pb2.PruneRequest(
            text=DEMO_CODE,
            goal_hint="how are failed calls retried?",
            language="python",
            return_line_scores=True,
        )
    )
    lines = DEMO_CODE.split("\n")[:-1]
    assert reply.original_lines == len(lines)
    assert len(reply.line_scores) == len(lines)
    assert all(0.0 <= s <= 1.0 for s in reply.line_scores)
    kept = {i for r in reply.kept_ranges for i in range(r.start_line, r.end_line + 1)}
    retry_body = {
        i + 1 for i, line in enumerate(lines) if "attempts" in line or "last_error" in line
    }
    assert retry_body <= kept
    assert not any("ljust" in lines[i - 1] for i in kept)  # the table code is dropped
    assert "(filtered" in reply.pruned_text
    ast.parse(reply.pruned_text)
    assert reply.kept_lines == len(kept)
    assert reply.pruned_tokens < reply.original_tokens
    assert reply.compression_ratio == pytest.approx(
        reply.original_tokens / reply.pruned_tokens, rel=1e-4
    )
    assert reply.latency.ToTimedelta().total_seconds() > 0
    # Scores are only sent on request.
    plain = stub.Prune(pruner_pb2.PruneRequest(text=DEMO_CODE, goal_hint="retry"))
    assert not plain.line_scores


def test_token_budget(stub: pruner_pb2_grpc.PrunerServiceStub) -> None:
    full = stub.Prune(pruner_pb2.PruneRequest(text=DEMO_CODE, goal_hint="x", keep_threshold=0.0))
    assert full.pruned_text == DEMO_CODE and full.compression_ratio == pytest.approx(1.0)
    reply = stub.Prune(
        pruner_pb2.PruneRequest(text=DEMO_CODE, goal_hint="render rows as a table", token_budget=60)
    )
    assert 0 < reply.kept_lines < reply.original_lines
    assert "def render_table" in reply.pruned_text and "def retry" not in reply.pruned_text
    assert reply.pruned_tokens < reply.original_tokens
    ast.parse(reply.pruned_text)


@pytest.mark.parametrize(
    ("request_", "field"),
    [
        (pruner_pb2.PruneRequest(text="", goal_hint="x"), "text"),
        (pruner_pb2.PruneRequest(text=" \n\t", goal_hint="x"), "text"),
        (pruner_pb2.PruneRequest(text="a = 1", goal_hint=""), "goal_hint"),
        (pruner_pb2.PruneRequest(text="a = 1", goal_hint="x", token_budget=0), "token_budget"),
        (pruner_pb2.PruneRequest(text="a = 1", goal_hint="x", token_budget=-5), "token_budget"),
        (
            pruner_pb2.PruneRequest(text="a = 1", goal_hint="x", keep_threshold=1.5),
            "keep_threshold",
        ),
        (
            pruner_pb2.PruneRequest(text="a = 1", goal_hint="x", keep_threshold=float("nan")),
            "keep_threshold",
        ),
        (pruner_pb2.PruneRequest(text="a = 1", goal_hint="x", language="klingon"), "language"),
    ],
)
def test_prune_validation(
    stub: pruner_pb2_grpc.PrunerServiceStub, request_: pruner_pb2.PruneRequest, field: str
) -> None:
    error = _error(stub.Prune, request_)
    assert isinstance(error, errors.InvalidArgument)
    assert error.code == grpc.StatusCode.INVALID_ARGUMENT
    assert [v.field for v in error.violations] == [field]


def test_check_prompt(stub: pruner_pb2_grpc.PrunerServiceStub) -> None:
    reply = stub.CheckPrompt(
        pruner_pb2.CheckPromptRequest(
            prompt="Write a function that should sort a list.", suggest_rewrite=True
        )
    )
    assert len(reply.guidelines) == 10
    assert sum(g.weight for g in reply.guidelines) == pytest.approx(1.0, rel=1e-5)
    assert 0.0 < reply.score < 1.0
    kinds = {f.guideline for f in reply.findings}
    assert pruner_pb2.GUIDELINE_ASSERTIVE_LANGUAGE in kinds
    hedge = next(
        f for f in reply.findings if f.guideline == pruner_pb2.GUIDELINE_ASSERTIVE_LANGUAGE
    )
    assert (hedge.span.start, hedge.span.end) == (22, 28)  # "should"
    assert "must sort a list" in reply.suggested_prompt
    only = stub.CheckPrompt(
        pruner_pb2.CheckPromptRequest(
            prompt="Raise ValueError if the list is empty.",
            guidelines=[pruner_pb2.GUIDELINE_EXCEPTION_HANDLING],
        )
    )
    assert [(g.guideline, g.satisfied) for g in only.guidelines] == [
        (pruner_pb2.GUIDELINE_EXCEPTION_HANDLING, True)
    ]
    assert only.score == pytest.approx(1.0) and not only.findings


@pytest.mark.parametrize(
    ("request_", "field"),
    [
        (pruner_pb2.CheckPromptRequest(prompt=""), "prompt"),
        (pruner_pb2.CheckPromptRequest(prompt="x", guidelines=cast(Any, [0])), "guidelines[0]"),
        (pruner_pb2.CheckPromptRequest(prompt="x", guidelines=cast(Any, [1, 42])), "guidelines[1]"),
        (pruner_pb2.CheckPromptRequest(prompt="x", language="klingon"), "language"),
    ],
)
def test_check_prompt_validation(
    stub: pruner_pb2_grpc.PrunerServiceStub, request_: pruner_pb2.CheckPromptRequest, field: str
) -> None:
    error = _error(stub.CheckPrompt, request_)
    assert isinstance(error, errors.InvalidArgument)
    assert error.code == grpc.StatusCode.INVALID_ARGUMENT
    assert [v.field for v in error.violations] == [field]


def test_demo_call(target: str) -> None:
    with sync_channel(target, token=TOKEN) as channel:
        summary = PrunerService.demo_call(channel)
    assert summary.startswith("Prune kept lines") and "CheckPrompt score" in summary


async def test_calls_while_the_model_loads_are_unavailable() -> None:
    """The core call gate answers UNAVAILABLE (NOT_READY) until start() has loaded the scorer."""
    loading = asyncio.Event()

    class SlowLoad(PrunerService):
        async def start(self) -> None:
            await loading.wait()
            await super().start()

    port = free_port()
    settings = PrunerSettings(
        host="127.0.0.1", port=port, metrics_port=0, auth_token=TOKEN, scorer="lexical"
    )
    starting = asyncio.ensure_future(start_server(SlowLoad(settings)))
    prune = pruner_pb2.PruneRequest(text=DEMO_CODE, goal_hint="retry")
    async with aio_channel(f"127.0.0.1:{port}", token=TOKEN, retry=None) as channel:
        stub = pruner_pb2_grpc.PrunerServiceStub(channel)
        calls: list[tuple[Any, Any]] = [
            (stub.Prune, prune),
            (stub.CheckPrompt, pruner_pb2.CheckPromptRequest(prompt="Sort a list.")),
        ]
        for call, request in calls:
            with pytest.raises(grpc.aio.AioRpcError) as info:
                await call(request, timeout=10, wait_for_ready=True)
            assert info.value.code() == grpc.StatusCode.UNAVAILABLE, info.value
            assert errors.from_rpc_error(info.value).reason == "NOT_READY"
        loading.set()
        running = await asyncio.wait_for(starting, 30)
        try:
            reply = await stub.Prune(prune, timeout=10)
            assert reply.original_lines == DEMO_CODE.count("\n")
        finally:
            await running.stop(grace_s=0)
