"""TensorBoard event files for a run: every step metric the run reports, as a scalar.

`tensorboard --logdir <outputs root>` then shows every run live. A run writes to
`tensorboard/` inside its `config.output_uri` folder when it names one, else to
`<outputs root>/tensorboard/<run id>/`. Tags are `<method>/<metric>`: the StepMetrics
fields the method fills (loss, learning_rate, grad_norm, tokens_per_second; for GRPO also
reward_mean, reward_std, kl, entropy, staleness_mean) and every `extra` entry
(step_seconds; for GRPO logprob_mismatch, clip_fraction, ...), at the metric's step and
wall time.

A resumed run appends a new event file with `purge_step` = its restored step + 1: steps
a killed process wrote after its last checkpoint are recomputed, and TensorBoard drops the
old copies, so every step shows once.
"""

from __future__ import annotations

from pathlib import Path
from typing import Protocol

from gantry.proto.trainer.v1 import trainer_pb2

DIRECTORY = "tensorboard"
_COMMON = ("loss", "learning_rate", "grad_norm", "tokens_per_second")
FIELDS: dict[str, tuple[str, ...]] = {
    "sft": _COMMON,
    "grpo": (*_COMMON, "reward_mean", "reward_std", "kl", "entropy", "staleness_mean"),
}


class _Writer(Protocol):
    def add_scalar(
        self, tag: str, scalar_value: float, global_step: int, walltime: float
    ) -> None: ...
    def flush(self) -> None: ...
    def close(self) -> None: ...


def scalars(method: str, metrics: trainer_pb2.StepMetrics) -> dict[str, float]:
    """The tags and values one step's metrics become."""
    values = {name: float(getattr(metrics, name)) for name in FIELDS.get(method, _COMMON)}
    values.update(metrics.extra)
    return {f"{method}/{name}": value for name, value in values.items()}


class TensorBoardLog:
    """One run's event writer: written and flushed every step, closed when the run stops."""

    def __init__(self, directory: Path, method: str, *, purge_step: int | None) -> None:
        from torch.utils.tensorboard import SummaryWriter

        self.directory = directory
        self.method = method
        self._writer: _Writer = SummaryWriter(str(directory), purge_step=purge_step)

    def write(self, metrics: trainer_pb2.StepMetrics) -> None:
        walltime = metrics.time.ToNanoseconds() / 1e9
        for tag, value in scalars(self.method, metrics).items():
            self._writer.add_scalar(tag, value, int(metrics.step), walltime)
        self._writer.flush()  # live: TensorBoard sees the step now, not in two minutes

    def close(self) -> None:
        self._writer.close()
