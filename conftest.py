"""Session setup for every test unit, imported before any test module.

Triton reads ``TRITON_INTERPRET`` when a ``@triton.jit`` function is defined, so it is set
here, before any test (kernels, video's SALAD, FP8 layers) can import ``gantry.kernels`` —
whatever order the files run in and whichever xdist worker runs them. Automatic dispatch
still takes the torch path for CPU tensors; only ``backend="triton"`` uses the interpreter.
"""

from __future__ import annotations

import os

os.environ.setdefault("TRITON_INTERPRET", "1")
