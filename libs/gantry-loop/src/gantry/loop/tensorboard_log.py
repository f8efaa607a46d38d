"""TensorBoard event files for the loop, written as records arrive (`tensorboard --logdir`).

Every numeric field of a record becomes a scalar tagged `<stage>/<field>`, or
`<stage>/<task>/<field>` for per-task stages (demonstrations, rollouts, evaluate):

- sft/*, grpo/*: per optimiser step (loss, tokens_per_second, reward_mean, kl,
  logprob_mismatch, ... whatever the trainer reports);
- rollouts/<task>/*: per GRPO iteration (success_rate, mean_reward, mean_turns,
  mean_completion_tokens, tokens_per_second, errors);
- evaluate/<task>/*: per evaluation, x = 0 untrained, 1 after SFT, 1 + k after GRPO
  iteration k;
- publish/*: per publish (seconds, policy_version), x as for evaluate.
"""

from __future__ import annotations

import time
from pathlib import Path

from tensorboard.compat.proto.event_pb2 import Event  # type: ignore[import-untyped]
from tensorboard.compat.proto.summary_pb2 import Summary  # type: ignore[import-untyped]
from tensorboard.summary.writer.event_file_writer import EventFileWriter  # type: ignore[import-untyped]

from gantry.loop.loop import Record

DIRECTORY = "tensorboard"
_PER_TASK = {"demonstrations", "rollouts", "evaluate"}
_AXES = {"stage", "task", "label", "iteration", "step", "after", "time_s"}


def step_of(record: Record) -> int:
    """The x value of a record's scalars (see the module docstring)."""
    if "step" in record:
        return int(record["step"])
    iteration = int(record.get("iteration", 0))
    if record["stage"] == "evaluate":
        return iteration + (record.get("label") != "untrained")
    if record["stage"] == "publish":
        return iteration + 1
    return iteration


def scalars(record: Record) -> dict[str, float]:
    """`tag -> value` for every numeric field of `record`."""
    prefix = record["stage"]
    if prefix in _PER_TASK and "task" in record:
        prefix = f"{prefix}/{record['task']}"
    return {
        f"{prefix}/{key}": float(value)
        for key, value in record.items()
        if key not in _AXES and isinstance(value, int | float) and not isinstance(value, bool)
    }


class TensorBoardWriter:
    """An Observer writing every record as scalars under `<report dir>/tensorboard`."""

    # TensorBoard's own event writer: torch's SummaryWriter wraps the same one, but
    # importing torch costs seconds in a loop that drives remote services.
    def __init__(self, directory: Path, *, flush_secs: int = 5) -> None:
        self.directory = directory
        directory.mkdir(parents=True, exist_ok=True)
        self._writer = EventFileWriter(str(directory), flush_secs=flush_secs)

    def stage(self, name: str, detail: str = "") -> None:
        pass

    def record(self, record: Record) -> None:
        values = [Summary.Value(tag=t, simple_value=v) for t, v in scalars(record).items()]
        if values:
            event = Event(
                wall_time=time.time(), step=step_of(record), summary=Summary(value=values)
            )
            self._writer.add_event(event)
        if record["stage"] != "sft":  # per-step SFT records rely on flush_secs
            self._writer.flush()

    def close(self) -> None:
        self._writer.close()
