"""Limits and fairness (issue 13, items 5-7): sizes are checked before any tokenization,
Prune admission is bounded (RESOURCE_EXHAUSTED + RetryInfo beyond the queue), an abandoned
Prune stops working, CheckPrompt never waits behind Prune, and no prompt makes the
guideline checker's regular expressions backtrack for minutes."""

from __future__ import annotations

import ast
import threading
import time
from collections.abc import Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, cast

import grpc
import numpy as np
import numpy.typing as npt
import pytest

from gantry.core import errors
from gantry.core.client import sync_channel
from gantry.core.testing.threaded import serve_in_thread
from gantry.proto.pruner.v1 import pruner_pb2 as pb
from gantry.proto.pruner.v1 import pruner_pb2_grpc
from gantry.pruner.guidelines import check_prompt
from gantry.pruner.pruner import Pruner
from gantry.pruner.scoring import checkpoint
from gantry.pruner.service import DEMO_CODE, PrunerService
from gantry.pruner.settings import PrunerSettings
from gantry.pruner.structure import (
    MAX_PARSE_CHARS,
    PYTHON,
    SYNTAX_TREE,
    TOKENS,
    build_structure,
    detect_language,
)
from gantry.pruner.testing import RandomScorer

Stub = pruner_pb2_grpc.PrunerServiceStub
SMALL_PROMPT = "Write a function that sorts a list of integers."


class BlockingScorer(RandomScorer):
    """Scores only once `release` is set; reaches a checkpoint every 10 ms meanwhile."""

    name = "blocking"

    def __init__(self) -> None:
        super().__init__()
        self.release = threading.Event()
        self.started = threading.Semaphore(0)
        self.stopped = threading.Semaphore(0)

    def score(self, lines: Sequence[str], goal_hint: str) -> npt.NDArray[np.float64]:
        self.started.release()
        try:
            while not self.release.wait(0.01):
                checkpoint()
        except BaseException:
            self.stopped.release()
            raise
        return super().score(lines, goal_hint)


def _settings(**overrides: Any) -> PrunerSettings:
    base: dict[str, Any] = {
        "host": "127.0.0.1",
        "port": 0,
        "metrics_port": 0,
        "auth_disabled": True,
        "log_json": False,
        "scorer": "lexical",
    }
    return PrunerSettings(**{**base, **overrides})


@pytest.fixture(scope="module")
def small() -> Iterator[tuple[Stub, BlockingScorer]]:
    settings = _settings(
        max_text_bytes=1000,
        max_text_lines=20,
        max_goal_hint_bytes=50,
        max_prompt_bytes=300,
        max_concurrent_prunes=1,
        max_queued_prunes=1,
    )
    with serve_in_thread(PrunerService(settings)) as running:
        scorer = BlockingScorer()
        service = cast(PrunerService, running.service)
        service.pruner = Pruner(scorer)
        with sync_channel(f"127.0.0.1:{running.port}", retry=None) as channel:
            yield pruner_pb2_grpc.PrunerServiceStub(channel), scorer


def _invalid(call: Any, request: Any) -> str:
    with pytest.raises(grpc.RpcError) as info:
        call(request, timeout=10)
    error = errors.from_rpc_error(info.value)
    assert isinstance(error, errors.InvalidArgument), repr(error)
    return error.violations[0].field


def test_sizes_are_checked_before_any_work(small: tuple[Stub, BlockingScorer]) -> None:
    stub, scorer = small
    cases: list[tuple[Any, Any, str]] = [
        (stub.Prune, pb.PruneRequest(text="é" * 501, goal_hint="x"), "text"),  # 1002 bytes
        (stub.Prune, pb.PruneRequest(text="a\n" * 21, goal_hint="x"), "text"),  # 21 lines
        (stub.Prune, pb.PruneRequest(text="a = 1", goal_hint="h" * 51), "goal_hint"),
        (stub.Prune, pb.PruneRequest(text="a = 1", goal_hint="x", language="p" * 100), "language"),
        (stub.CheckPrompt, pb.CheckPromptRequest(prompt="é" * 151), "prompt"),
        (
            stub.CheckPrompt,
            pb.CheckPromptRequest(prompt="x", guidelines=cast(Any, [1] * 11)),
            "guidelines",
        ),
        (stub.CheckPrompt, pb.CheckPromptRequest(prompt="x", language="\x00" * 40), "language"),
    ]
    for call, request, field in cases:
        assert _invalid(call, request) == field, field
    # 10 MB values: a short INVALID_ARGUMENT, never RESOURCE_EXHAUSTED from echoing them.
    big = "x" * 10_000_000
    huge: list[tuple[Any, Any]] = [
        (stub.Prune, pb.PruneRequest(text=big, goal_hint="x")),
        (stub.Prune, pb.PruneRequest(text="a", goal_hint=big)),
        (stub.Prune, pb.PruneRequest(text="a", goal_hint="x", language=big)),
        (stub.CheckPrompt, pb.CheckPromptRequest(prompt=big)),
        (stub.CheckPrompt, pb.CheckPromptRequest(prompt="x", language=big)),
    ]
    for call, request in huge:
        with pytest.raises(grpc.RpcError) as info:
            call(request, timeout=10)
        assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert len(info.value.details() or "") < 300
    assert not scorer.started.acquire(timeout=0)  # nothing reached the scorer


def test_prune_admission_is_bounded_and_cancel_frees_the_slot(
    small: tuple[Stub, BlockingScorer],
) -> None:
    stub, scorer = small
    scorer.release.clear()
    request = pb.PruneRequest(text="\n".join(DEMO_CODE.split("\n")[:15]), goal_hint="retry")
    with ThreadPoolExecutor(2) as pool:
        running = stub.Prune.future(request, timeout=30)
        assert scorer.started.acquire(timeout=10)
        queued: Future[Any] = pool.submit(stub.Prune, request, timeout=30)
        time.sleep(0.3)  # let it reach the queue
        with pytest.raises(grpc.RpcError) as info:
            stub.Prune(request, timeout=10)
        refused = errors.from_rpc_error(info.value)
        assert isinstance(refused, errors.ResourceExhausted), repr(refused)
        assert refused.reason == "PRUNE_QUEUE_FULL" and (refused.retry_after_s or 0) >= 1
        # CheckPrompt answers at once while every Prune slot is taken.
        started = time.perf_counter()
        stub.CheckPrompt(pb.CheckPromptRequest(prompt=SMALL_PROMPT), timeout=10)
        assert time.perf_counter() - started < 4.0  # 7.9 s when Prune held the GIL
        # The caller of the running Prune gives up: its work stops, the queued one runs.
        running.cancel()
        assert scorer.stopped.acquire(timeout=10), "the abandoned Prune kept working"
        assert scorer.started.acquire(timeout=10)
        scorer.release.set()
        reply = queued.result(timeout=30)
        assert reply.original_lines > 0


def test_adversarial_prompts_check_in_linear_time() -> None:
    """Each of these took from seconds to hours before the patterns were made linear
    (`\\n`*N: 13 s at 10 KB; `x(x)`*N: 228 s at 200 KB; `x`*N: hours at 200 KB)."""
    n = 50_000
    for unit in ("x", "\n", "\n ", "x(x)", "f(", "`x(`", "input: ", "a_", "otherwise "):
        prompt = (unit * (n // len(unit) + 1))[:n]
        started = time.perf_counter()
        check_prompt(prompt, "python", [], rewrite=True)
        assert time.perf_counter() - started < 5.0, repr(unit)


def test_large_python_is_not_parsed(monkeypatch: pytest.MonkeyPatch) -> None:
    """ast.parse holds the interpreter lock for seconds on megabytes: big Python is
    structured from its tokens instead (pure Python), with the same units, so its pruned
    text still parses."""
    text = DEMO_CODE * (MAX_PARSE_CHARS // len(DEMO_CODE) + 1)
    lines = text.split("\n")
    small = DEMO_CODE.split("\n")
    assert detect_language(DEMO_CODE) == PYTHON
    assert build_structure(small, PYTHON).builder == SYNTAX_TREE
    with monkeypatch.context() as patched:

        def no_parse(*args: object, **kwargs: object) -> None:
            raise AssertionError("ast.parse called on a text over MAX_PARSE_CHARS")

        patched.setattr(ast, "parse", no_parse)
        assert detect_language(text) != PYTHON
        big = build_structure(lines, PYTHON)
    assert big.builder == TOKENS and big.python_syntax
    result = Pruner(RandomScorer(1)).prune(text, "retry", language="python", keep_ratio=0.2)
    assert result.kept_lines < result.original_lines
    ast.parse(result.text)


@pytest.mark.slow
def test_check_prompt_is_fast_while_three_maximal_prunes_run() -> None:
    """The fairness figure: three Prune calls at the default size limit (2 MB of Python,
    the real MiniLM scorer) in flight, CheckPrompt latency at most 4 s on 2 cores shared
    with the rest of the suite (measured ≤ 2 s alone; it was 7.9 s before, 23 s in the
    original report). The Prunes are abandoned at
    their deadline, which also stops their work."""
    settings = _settings(scorer="head")
    text = (DEMO_CODE * (settings.max_text_bytes // len(DEMO_CODE) + 1))[: settings.max_text_bytes]
    window_s = 12.0
    with (
        serve_in_thread(PrunerService(settings)) as running,
        sync_channel(f"127.0.0.1:{running.port}", retry=None) as channel,
        ThreadPoolExecutor(3) as pool,
    ):
        stub = pruner_pb2_grpc.PrunerServiceStub(channel)
        stub.CheckPrompt(pb.CheckPromptRequest(prompt=SMALL_PROMPT), timeout=30)
        request = pb.PruneRequest(text=text, goal_hint="how are calls retried?")
        prunes = [pool.submit(stub.Prune, request, timeout=window_s + 1) for _ in range(3)]
        time.sleep(1.0)
        latencies = []
        deadline = time.monotonic() + window_s - 1.5
        while time.monotonic() < deadline:
            started = time.perf_counter()
            stub.CheckPrompt(pb.CheckPromptRequest(prompt=SMALL_PROMPT), timeout=30)
            latencies.append(time.perf_counter() - started)
            time.sleep(0.05)
        for prune in prunes:
            with pytest.raises(grpc.RpcError) as info:
                prune.result(timeout=60)
            assert info.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
    print(f"CheckPrompt under 3 maximal Prunes: {len(latencies)} calls, max {max(latencies):.3f} s")
    assert latencies and max(latencies) <= 4.0
