"""Gantry's agent-training loop, driven over the services' gRPC APIs (see docs/loop.md)."""

from typing import TYPE_CHECKING, Any

from gantry.loop.config import LoopConfig, load_config, parse_config
from gantry.loop.loop import LoopResult, TrainingLoop

if TYPE_CHECKING:
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


def __getattr__(name: str) -> Any:
    # The runner (matplotlib, the report writer) loads on first use: every `gantry`
    # command imports this package for its CLI, and most never run a loop.
    if name in ("Outcome", "run_loop"):
        from gantry.loop import runner

        return getattr(runner, name)
    raise AttributeError(f"module 'gantry.loop' has no attribute {name!r}")
