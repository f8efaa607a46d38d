"""Spans of a run: one `trainer.step` per optimiser step, on the worker thread, children
of the StartRun call that launched the run."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from gantry.core import tracing
from gantry.proto.trainer.v1 import trainer_pb2

from .helpers import sft_config, stubs, trainer_server, wait_run


@pytest.fixture
def exported(monkeypatch: pytest.MonkeyPatch) -> InMemorySpanExporter:
    """Spans of this test only: a provider of its own, not the process-wide one."""
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))

    def get_tracer(name: str, *args: Any, **kwargs: Any) -> trace.Tracer:
        return provider.get_tracer(name, *args, **kwargs)

    monkeypatch.setattr(trace, "get_tracer", get_tracer)
    # Gantry makes its tracer once per process: an earlier test's would bypass ours.
    monkeypatch.setattr(tracing, "_tracer", None)
    return exporter


def test_each_step_is_a_span_under_the_start_run_call(
    exported: InMemorySpanExporter, tmp_path: Path, chats: Path, tiny_path: str
) -> None:
    with trainer_server(tmp_path) as target, stubs(target) as (stub, _):
        op = stub.StartRun(
            trainer_pb2.StartRunRequest(config=sft_config(tiny_path, chats, steps=2))
        )
        meta = trainer_pb2.StartRunMetadata()
        op.metadata.Unpack(meta)
        assert wait_run(stub, meta.run_id).state == trainer_pb2.RUN_STATE_SUCCEEDED
    spans = exported.get_finished_spans()
    (start,) = [
        s
        for s in spans
        if s.name.endswith("TrainerService/StartRun") and s.kind == trace.SpanKind.SERVER
    ]
    steps = sorted(
        (s for s in spans if s.name == "trainer.step"),
        key=lambda s: int(s.attributes["step"]),  # type: ignore[index,arg-type]
    )
    assert [dict(s.attributes or {}) for s in steps] == [
        {"run_id": meta.run_id, "step": step, "method": "sft", "loss": s.attributes["loss"]}  # type: ignore[index]
        for step, s in zip((1, 2), steps, strict=True)
    ]
    assert all(s.attributes["loss"] > 0 for s in steps)  # type: ignore[index,operator]
    for step in steps:
        assert step.parent is not None and start.context is not None
        assert step.parent.span_id == start.context.span_id
        assert step.context is not None
        assert step.context.trace_id == start.context.trace_id
