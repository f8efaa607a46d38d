"""The loop's gRPC calls, one function per step, each against the public v1 contracts.

Nothing here imports a service's code: these are the calls any client of a Helm-deployed
Gantry would make.
"""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import grpc

from gantry.core import errors
from gantry.proto.common.v1 import chat_pb2, episode_pb2, sampling_pb2, trajectory_pb2
from gantry.proto.envfarm.v1 import envfarm_pb2, envfarm_pb2_grpc
from gantry.proto.rollout.v1 import rollout_pb2, rollout_pb2_grpc
from gantry.proto.trainer.v1 import trainer_pb2, trainer_pb2_grpc

DIFFICULTY = {"easy": episode_pb2.DIFFICULTY_EASY, "hard": episode_pb2.DIFFICULTY_HARD}
ROLES = {
    chat_pb2.ROLE_SYSTEM: "system",
    chat_pb2.ROLE_USER: "user",
    chat_pb2.ROLE_ASSISTANT: "assistant",
}
TERMINAL = {
    trainer_pb2.RUN_STATE_SUCCEEDED,
    trainer_pb2.RUN_STATE_FAILED,
    trainer_pb2.RUN_STATE_CANCELLED,
}
# Long calls (episodes, training) get their own deadlines instead of the 30 s default.
EPISODES_TIMEOUT_S = 1800.0
TEXT_ONLY = episode_pb2.EpisodeSettings(
    observation_mode=episode_pb2.OBSERVATION_MODE_TEXT, text_feedback=False
)


@dataclass(frozen=True)
class Stubs:
    envfarm: envfarm_pb2_grpc.EnvFarmServiceStub
    rollout: rollout_pb2_grpc.RolloutServiceStub
    trainer: trainer_pb2_grpc.TrainerServiceStub


class RunFailed(RuntimeError):
    """A trainer run ended in FAILED or CANCELLED."""


class Refused(RuntimeError):
    """A service refused a path or target from the loop's config (PERMISSION_DENIED)."""


DATASET_FIELD = "config.data.dataset_uri"
# What to change when the trainer refuses a field the loop fills in from its config.
_HINTS = {
    DATASET_FIELD: "services.shared_dir (where the loop writes the SFT data) "
    "must lie inside the trainer's datasets root (GANTRY_TRAINER_DATASETS_ROOT), at the "
    "same path on both sides",
    "config.base_model": "policy.base_model must lie inside the trainer's models root "
    "(GANTRY_TRAINER_MODELS_ROOT)",
    "rollout_target": "services.rollout_for_trainer must be empty (the trainer's own "
    "rollout_target), a peer name from GANTRY_TRAINER_ROLLOUT_PEERS, or an address "
    "configured there",
}


@contextlib.contextmanager
def _explain_refusals() -> Iterator[None]:
    try:
        yield
    except grpc.RpcError as exc:
        error = errors.from_rpc_error(exc)
        hint = _HINTS.get(error.metadata.get("field", ""))
        if error.code != grpc.StatusCode.PERMISSION_DENIED or hint is None:
            raise
        raise Refused(f"{error.message}\n  -> {hint}") from exc


# ---- demonstrations --------------------------------------------------------------------


def conversation_messages(
    conversation: chat_pb2.Conversation, system_prompt: str
) -> list[dict[str, str]]:
    """A Conversation as trainer JSONL messages; `system_prompt` replaces the system turn."""
    messages = []
    for message in conversation.messages:
        text = "\n".join(part.text for part in message.content if part.text)
        role = ROLES.get(message.role)
        if role is None:
            raise ValueError(f"unexpected role {message.role} in a demonstration")
        if role == "system" and system_prompt:
            text = system_prompt
        messages.append({"role": role, "content": text})
    return messages


def export_demonstrations(
    stubs: Stubs,
    env_id: str,
    difficulty: str,
    seeds: range,
    out: Path,
    *,
    system_prompt: str,
    on_progress: Callable[[int], None] | None = None,
) -> int:
    """Write solver demonstrations for `seeds` as chat JSONL; returns how many succeed."""
    request = envfarm_pb2.ExportDemonstrationsRequest(
        env_id=env_id,
        difficulty=DIFFICULTY[difficulty],
        seeds=list(seeds),
        settings=TEXT_ONLY,
    )
    written = 0
    out.parent.mkdir(parents=True, exist_ok=True)
    with out.open("a") as sink:
        for demo in stubs.envfarm.ExportDemonstrations(request, timeout=EPISODES_TIMEOUT_S):
            if demo.final_reward < 1.0:
                continue  # only successful plans teach the policy
            record = {
                "messages": conversation_messages(demo.conversation, system_prompt),
                "env_id": env_id,
                "difficulty": difficulty,
                "seed": demo.seed,
                "strategy": demo.strategy,
            }
            sink.write(json.dumps(record) + "\n")
            written += 1
            if on_progress is not None:
                on_progress(written)
    return written


# ---- episodes ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Episodes:
    trajectories: list[trajectory_pb2.Trajectory]
    errors: int
    seconds: float

    @property
    def successes(self) -> int:
        return sum(t.final_reward >= 1.0 for t in self.trajectories)

    @property
    def success_rate(self) -> float:
        return self.successes / len(self.trajectories) if self.trajectories else 0.0

    @property
    def mean_reward(self) -> float:
        if not self.trajectories:
            return 0.0
        return sum(t.final_reward for t in self.trajectories) / len(self.trajectories)

    @property
    def mean_turns(self) -> float:
        """Episode length: agent turns per episode."""
        if not self.trajectories:
            return 0.0
        return sum(len(t.turns) for t in self.trajectories) / len(self.trajectories)

    @property
    def mean_completion_tokens(self) -> float:
        return self.completion_tokens / len(self.trajectories) if self.trajectories else 0.0

    @property
    def completion_tokens(self) -> int:
        return sum(len(turn.completion.token_ids) for t in self.trajectories for turn in t.turns)

    @property
    def tokens_per_second(self) -> float:
        return self.completion_tokens / self.seconds if self.seconds > 0 else 0.0


def run_episodes(
    stubs: Stubs,
    env_id: str,
    difficulty: str,
    seeds: list[int],
    *,
    group_size: int,
    temperature: float,
    max_tokens: int,
    system_prompt: str,
    max_turns: int = 0,
) -> Episodes:
    """Episodes through rollout (which plays them against envfarm); greedy at temperature 0."""
    # No sampling seed: a seed would give every episode of a GRPO group the same samples,
    # hence equal rewards and zero advantages.
    sampling = sampling_pb2.SamplingParams(max_tokens=max_tokens, temperature=temperature)
    spec = rollout_pb2.EpisodeSpec(
        env_id=env_id,
        difficulty=DIFFICULTY[difficulty],
        seeds=seeds,
        episodes_per_seed=group_size,
        settings=TEXT_ONLY,
        sampling=sampling,
        system_prompt=system_prompt,
        max_turns=max_turns,
    )
    started = time.perf_counter()
    response = stubs.rollout.RunEpisodes(
        rollout_pb2.RunEpisodesRequest(spec=spec), timeout=EPISODES_TIMEOUT_S
    )
    return Episodes(
        list(response.trajectories), len(response.errors), time.perf_counter() - started
    )


# ---- training ---------------------------------------------------------------------------


def start_run(stubs: Stubs, name: str, config: trainer_pb2.RunConfig, request_id: str) -> str:
    with _explain_refusals():
        operation = stubs.trainer.StartRun(
            trainer_pb2.StartRunRequest(display_name=name, config=config, request_id=request_id)
        )
    metadata = trainer_pb2.StartRunMetadata()
    operation.metadata.Unpack(metadata)
    return metadata.run_id


def check_trainer_access(stubs: Stubs, base_model: str, data_dir: Path, rollout: str) -> None:
    """Before any work: does the trainer accept the base model, the SFT data folder (the
    same path on its side, inside its datasets root) and the rollout target?

    StartRun with an empty probe file checks every path and target, then fails reading
    the data, before it creates a run. Raises Refused with what to change.
    """
    probe = data_dir / ".gantry-loop-probe.jsonl"
    probe.write_text("")
    config = trainer_pb2.RunConfig(
        base_model=base_model, sft=trainer_pb2.SftConfig(), max_steps=1, rollout_target=rollout
    )
    config.data.dataset_uri = str(probe)
    request = trainer_pb2.StartRunRequest(display_name="gantry-loop-probe", config=config)
    try:
        with _explain_refusals():
            operation = stubs.trainer.StartRun(request)
    except grpc.RpcError as exc:
        error = errors.from_rpc_error(exc)
        fields = {v.field for v in getattr(error, "violations", ())}
        if error.code == grpc.StatusCode.INVALID_ARGUMENT and fields == {DATASET_FIELD}:
            return  # the empty data itself: everything else was accepted
        if error.code == grpc.StatusCode.NOT_FOUND:
            raise Refused(
                f"the trainer does not see {probe} (written by this process): "
                f"{_HINTS[DATASET_FIELD]}"
            ) from exc
        raise
    finally:
        probe.unlink(missing_ok=True)
    metadata = trainer_pb2.StartRunMetadata()  # a trainer that took empty data: clean up
    operation.metadata.Unpack(metadata)
    cancel(stubs, metadata.run_id)


def follow_run(
    stubs: Stubs,
    run_id: str,
    *,
    since_step: int = 0,
    until_step: int | None = None,
) -> Iterator[trainer_pb2.StepMetrics]:
    """Yield each step's metrics until `until_step` is reached or the run ends.

    Raises RunFailed if the run fails or is cancelled before `until_step`.
    """
    stream = stubs.trainer.StreamRunMetrics(
        trainer_pb2.StreamRunMetricsRequest(run_id=run_id, since_step=since_step, follow=True),
        timeout=None,
    )
    try:
        for message in stream:
            if message.metrics.step:
                yield message.metrics
            if until_step is not None and message.metrics.step >= until_step:
                return
            if message.state in TERMINAL:
                break
    finally:
        stream.cancel()
    run = get_run(stubs, run_id)
    if run.state != trainer_pb2.RUN_STATE_SUCCEEDED or (
        until_step is not None and run.step < until_step
    ):
        reason = run.error.message or trainer_pb2.RunState.Name(run.state)
        raise RunFailed(f"trainer run {run_id} stopped at step {run.step}: {reason}")


def get_run(stubs: Stubs, run_id: str) -> trainer_pb2.Run:
    return stubs.trainer.GetRun(trainer_pb2.GetRunRequest(run_id=run_id)).run


def submit(stubs: Stubs, run_id: str, trajectories: list[trajectory_pb2.Trajectory]) -> int:
    response = stubs.trainer.SubmitTrajectories(
        iter([trainer_pb2.SubmitTrajectoriesRequest(run_id=run_id, trajectories=trajectories)])
    )
    if response.rejected:
        first = response.rejected[0]
        raise RunFailed(
            f"trainer rejected {len(response.rejected)} trajectories, e.g. "
            f"{first.trajectory_id}: {first.reason}"
        )
    return response.accepted_count


def publish(stubs: Stubs, run_id: str, rollout: str) -> trainer_pb2.PublishWeightsResponse:
    """Push the run's latest weights to `rollout`: empty for the trainer's configured
    rollout, else a peer name or address configured on the trainer."""
    with _explain_refusals():
        response: trainer_pb2.PublishWeightsResponse = stubs.trainer.PublishWeights(
            trainer_pb2.PublishWeightsRequest(run_id=run_id, rollout_target=rollout),
            timeout=600.0,
        )
    return response


def cancel(stubs: Stubs, run_id: str) -> None:
    # Best effort: the run may already be over or the server gone.
    with contextlib.suppress(grpc.RpcError):
        stubs.trainer.CancelRun(trainer_pb2.CancelRunRequest(run_id=run_id), timeout=10.0)
