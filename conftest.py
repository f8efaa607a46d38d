"""Session setup for every test unit, imported before any test module.

Triton reads ``TRITON_INTERPRET`` when a ``@triton.jit`` function is defined, so it is set
here, before any test (kernels, video's SALAD, FP8 layers) can import ``gantry.kernels`` —
whatever order the files run in and whichever xdist worker runs them. Automatic dispatch
still takes the torch path for CPU tensors; only ``backend="triton"`` uses the interpreter.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

os.environ.setdefault("TRITON_INTERPRET", "1")

# One math thread per process. The suite runs an xdist worker per core and many tests start
# service processes, so torch's default (a thread per core in every process) oversubscribes
# the CPU: measured on the 2-core CI machine, three processes of 2 OpenMP threads each made
# 8 training steps/s each where 1 thread each made 73 (spinning OpenMP workers starve one
# another). Subprocesses inherit these; a test that wants more threads sets them itself.
for _var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
    os.environ.setdefault(_var, "1")


# Longest files first. `--dist loadfile` hands whole files to the workers in collection
# order (with `--no-loadscope-reorder`; xdist's default reorder puts files with many tests
# first, which left the few-but-long end-to-end files for last: one worker ran them alone
# for minutes while the other sat idle). Ordering by each file's last measured duration is
# the longest-processing-time-first rule, close to the best split across workers. Files not
# in the record (new ones) keep their place after the measured ones. Refresh the record
# with `make test-durations` after a full run.
DURATIONS_FILE = Path(__file__).parent / "test_durations.json"


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    try:
        seconds: dict[str, float] = json.loads(DURATIONS_FILE.read_text())
    except (OSError, ValueError):
        return
    items.sort(key=lambda item: -seconds.get(item.nodeid.split("::", 1)[0], 0.0))
