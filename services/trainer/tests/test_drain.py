"""SIGTERM on a real trainer process: running runs checkpoint at once, and a following
StreamRunMetrics ends with UNAVAILABLE + RetryInfo during the drain instead of being cut
when the grace period runs out; the process then exits well before the grace period."""

from __future__ import annotations

import signal
import threading
import time
from pathlib import Path
from typing import Any

import grpc
import pytest
from google.protobuf import json_format

from gantry.core.errors import from_rpc_error
from gantry.core.testing.process import spawn_service
from gantry.proto.trainer.v1 import trainer_pb2

from .helpers import TOKEN, root_env, sft_config, stubs, wait_run

GRACE_S = 40.0


@pytest.mark.slow
def test_sigterm_checkpoints_runs_and_ends_metric_streams_with_retry_info(
    tmp_path: Path, chats: Path, tiny_path: str
) -> None:
    env = {
        "GANTRY_TRAINER_DATA_DIR": str(tmp_path),
        "GANTRY_TRAINER_TORCH_THREADS": "1",
        "GANTRY_TRAINER_LOG_JSON": "false",
        "GANTRY_TRAINER_GRACE_PERIOD_S": str(GRACE_S),
        **root_env(),
    }
    config = sft_config(tiny_path, chats, steps=10_000, seed=2)
    outcome: dict[str, Any] = {"steps": []}
    with spawn_service("gantry.trainer", "trainer", token=TOKEN, env=env) as trainer:
        with stubs(trainer.target) as (stub, _):
            op = stub.StartRun(trainer_pb2.StartRunRequest(config=config))
            meta = trainer_pb2.StartRunMetadata()
            op.metadata.Unpack(meta)
            wait_run(stub, meta.run_id, until=lambda r: r.step >= 1)
            following = threading.Event()

            def follow() -> None:
                request = trainer_pb2.StreamRunMetricsRequest(run_id=meta.run_id, follow=True)
                try:
                    for item in stub.StreamRunMetrics(request, timeout=2 * GRACE_S):
                        outcome["steps"].append(item.metrics.step)
                        following.set()
                except grpc.RpcError as exc:
                    outcome["error"] = from_rpc_error(exc)
                outcome["ended"] = time.monotonic()

            reader = threading.Thread(target=follow, daemon=True)
            reader.start()
            assert following.wait(30)
            signalled = time.monotonic()
            trainer.process.send_signal(signal.SIGTERM)
            reader.join(2 * GRACE_S)
        trainer.process.wait(2 * GRACE_S)
        exited = time.monotonic()
    error = outcome["error"]
    assert error.code == grpc.StatusCode.UNAVAILABLE, error
    assert getattr(error, "retry_after_s", None) and "since_step" in error.message
    assert outcome["ended"] - signalled < 15, "the stream was cut at the grace period"
    assert exited - signalled < GRACE_S / 2, "the drain waited for the grace period"
    saved = json_format.Parse(
        (tmp_path / "runs" / meta.run_id / "run.json").read_text(), trainer_pb2.Run()
    )
    assert saved.state == trainer_pb2.RUN_STATE_RUNNING  # resumes on the next start
    assert saved.latest_checkpoint.step == saved.step >= max(outcome["steps"])
