"""Gantry's agent-training loop, driven over the services' gRPC APIs (see docs/loop.md)."""

from gantry.loop.config import LoopConfig, load_config, parse_config
from gantry.loop.loop import LoopResult, TrainingLoop
from gantry.loop.runner import Outcome, run_loop

__all__ = [
    "LoopConfig",
    "LoopResult",
    "Outcome",
    "TrainingLoop",
    "load_config",
    "parse_config",
    "run_loop",
]
