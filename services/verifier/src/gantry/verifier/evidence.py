"""Evidence from peers: retrieval Search over a named collection, envfarm executable checks.

Every address comes from the operator's configuration (`Peers`); a request names a peer
or leaves it empty. Executable checks compute ground truth: read a live session's outcome,
or replay actions in a fresh session (text observations, closed afterwards) and read the
reward and, for task families with a grader (terminal completion tests, answer checks),
the graded outcome.
"""

from __future__ import annotations

import contextlib
import json
import re
from collections.abc import Sequence
from typing import Any

import grpc

from gantry.core.client import aio_channel
from gantry.core.errors import GantryError, InvalidArgument, NotFound, clip, from_rpc_error
from gantry.proto.common.v1 import episode_pb2
from gantry.proto.envfarm.v1 import envfarm_pb2, envfarm_pb2_grpc
from gantry.proto.retrieval.v1 import retrieval_pb2, retrieval_pb2_grpc
from gantry.proto.verifier.v1 import verifier_pb2 as pb
from gantry.verifier.judge import _peer_error
from gantry.verifier.settings import PeerKind, VerifierSettings

SEARCH_TOP_K = 3
EVIDENCE_CHARS = 600  # per hit, in the judge's prompt
FINAL_STATE_CHARS = 400  # a failed replay's last text observation, in its detail
# An envfarm action inside free text: ('verb', ...) with at most one level of nested
# brackets, or a bare stop (quoted or not).
_ACTION = re.compile(r"\('[a-z_]+',\s*(?:[^()\[\]]|\([^()]*\)|\[[^\[\]]*\])*\)|\bstop\b")


def answer_actions(answer: str) -> list[str]:
    """The actions an answer lists, in order; the prose around them is ignored."""
    return _ACTION.findall(answer)


class PeerChannels:
    """One channel per configured (kind, target), opened on first use."""

    def __init__(self, settings: VerifierSettings) -> None:
        self.settings = settings
        self._channels: dict[tuple[str, str], grpc.aio.Channel] = {}

    def channel(self, kind: PeerKind, target: str) -> grpc.aio.Channel:
        assert target in self.settings.peers(kind).targets()  # resolved through Peers
        key = (kind, target)
        if key not in self._channels:
            token = self.settings.peer_token(kind)
            self._channels[key] = aio_channel(target, token=token, default_timeout_s=None)
        return self._channels[key]

    async def close(self) -> None:
        for channel in self._channels.values():
            await channel.close()
        self._channels.clear()


def _field_error(error: grpc.RpcError, description: str, field: str) -> GantryError:
    """A peer's verdict on a value the caller gave: the caller's field is named."""
    code = error.code() if isinstance(error, grpc.aio.AioRpcError | grpc.Call) else None
    remote = from_rpc_error(error)
    if code == grpc.StatusCode.NOT_FOUND:
        return NotFound(f"{field}: {clip(str(remote))}", resource_type=field, resource_name="")
    if code == grpc.StatusCode.INVALID_ARGUMENT:
        return InvalidArgument.for_field(field, f"{description} refused it: {clip(str(remote))}")
    return _peer_error(error, description)


def _payload_text(point: retrieval_pb2.ScoredPoint) -> str:
    fields = point.payload.fields
    for key in ("text", "content", "passage", "body"):
        if key in fields and fields[key].HasField("string_value"):
            return fields[key].string_value
    return json.dumps({k: str(v) for k, v in fields.items()})[:EVIDENCE_CHARS] or point.id


async def search(
    channels: PeerChannels, target: str, collection: str, query: str, timeout_s: float
) -> list[dict[str, Any]]:
    """Top hits for `query` in `collection`: [{id, score, text}]."""
    stub = retrieval_pb2_grpc.RetrievalServiceStub(channels.channel("retrieval", target))
    request = retrieval_pb2.SearchRequest(
        collection=collection, text=query, top_k=SEARCH_TOP_K, with_payload=True
    )
    try:
        reply = await stub.Search(request, timeout=timeout_s)
    except grpc.RpcError as error:
        raise _field_error(error, f"retrieval at {target}", "evidence_collection") from None
    return [
        {"id": p.id, "score": round(p.score, 4), "text": clip(_payload_text(p), EVIDENCE_CHARS)}
        for p in reply.results
    ]


def _passes(total_reward: float, min_total_reward: float) -> bool:
    return total_reward >= min_total_reward if min_total_reward > 0 else total_reward > 0


async def run_check(
    channels: PeerChannels,
    target: str,
    index: int,
    check: pb.ExecutableCheck,
    actions: Sequence[str],
    timeout_s: float,
) -> pb.CheckResult:
    stub = envfarm_pb2_grpc.EnvFarmServiceStub(channels.channel("envfarm", target))
    field = f"checks[{index}]"
    description = f"envfarm at {target}"
    if check.WhichOneof("kind") == "session":
        try:
            reply = await stub.GetSession(
                envfarm_pb2.GetSessionRequest(session_id=check.session.session_id),
                timeout=timeout_s,
            )
        except grpc.RpcError as error:
            raise _field_error(error, description, f"{field}.session.session_id") from None
        session = reply.session
        done = session.state != envfarm_pb2.SESSION_STATE_ACTIVE
        truncated = done and session.max_steps > 0 and session.step_index >= session.max_steps
        passed = done and _passes(session.total_reward, check.session.min_total_reward)
        state = envfarm_pb2.SessionState.Name(session.state)
        return pb.CheckResult(
            index=index,
            passed=passed,
            total_reward=session.total_reward,
            steps=session.step_index,
            terminated=done and not truncated,
            truncated=truncated,
            detail=f"session {session.env_id} {state} after {session.step_index} of "
            f"{session.max_steps} steps, total reward {session.total_reward:g}",
        )
    return await _replay(stub, description, field, index, check.replay, actions, timeout_s)


async def _replay(
    stub: envfarm_pb2_grpc.EnvFarmServiceAsyncStub,
    description: str,
    field: str,
    index: int,
    replay: pb.EnvfarmReplayCheck,
    actions: Sequence[str],
    timeout_s: float,
) -> pb.CheckResult:
    create = envfarm_pb2.CreateSessionRequest(
        env_id=replay.env_id,
        difficulty=replay.difficulty,
        initial_state_json=replay.initial_state_json,
        settings=episode_pb2.EpisodeSettings(
            observation_mode=episode_pb2.OBSERVATION_MODE_TEXT, text_feedback=True
        ),
    )
    if not replay.initial_state_json:
        create.seed = replay.seed
    try:
        created = await stub.CreateSession(create, timeout=timeout_s)
    except grpc.RpcError as error:
        raise _field_error(error, description, f"{field}.replay.env_id") from None
    session_id = created.session.id
    total, steps, last = 0.0, 0, envfarm_pb2.StepResult()
    invalid = ""  # the first action the environment refused, for the agent's next try
    try:
        for action in actions:
            try:
                step = await stub.Step(
                    envfarm_pb2.StepRequest(session_id=session_id, action=action),
                    timeout=timeout_s,
                )
            except grpc.RpcError as error:
                raise _field_error(error, description, f"{field}.replay.actions") from None
            last, steps = step.result, steps + 1
            total += last.reward
            if not invalid and not last.action_valid:
                invalid = f"step {steps - 1} {clip(action, 60)!r}: {clip(last.feedback, 120)}"
            if last.terminated or last.truncated:
                break
    finally:
        # Expiry reclaims a session we fail to close; the outcome is already known.
        with contextlib.suppress(grpc.RpcError):
            await stub.CloseSession(
                envfarm_pb2.CloseSessionRequest(session_id=session_id), timeout=10
            )
    if last.HasField("outcome"):  # a graded task family (completion test, answer check)
        outcome = last.outcome
        passed = bool(outcome.success)
        detail = (
            f"{outcome.metric or 'grader'}: {'success' if passed else 'failure'} "
            f"(score {outcome.score:g}) {clip(outcome.test_output, 300)}"
        ).strip()
    else:
        passed = last.terminated and _passes(total, replay.min_total_reward)
        ending = (
            "terminated" if last.terminated else "truncated" if last.truncated else "unfinished"
        )
        detail = f"replayed {steps} of {len(actions)} actions: {ending}, total reward {total:g}"
        if not actions:
            detail = "no actions to replay (the answer lists none)"
        if last.feedback:
            detail += f"; last feedback: {clip(last.feedback, 200)}"
        if invalid:
            detail += f"; first invalid action: {invalid}"
        if last.observation.text and not passed:
            detail += f"; final state:\n{clip(last.observation.text, FINAL_STATE_CHARS)}"
    return pb.CheckResult(
        index=index,
        passed=passed,
        total_reward=total,
        steps=steps,
        terminated=last.terminated,
        truncated=last.truncated,
        detail=detail,
    )
