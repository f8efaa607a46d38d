"""Executable checks against a real envfarm process: the programmatic verifier mode.

No judge model is involved: the verdict is the environment's own ground truth (a
replayed plan's reward, a live session's outcome).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import grpc
import pytest

from gantry.core import errors
from gantry.core.client import sync_channel
from gantry.core.ports import free_port
from gantry.core.testing.process import spawn_service
from gantry.proto.common.v1 import episode_pb2
from gantry.proto.envfarm.v1 import envfarm_pb2, envfarm_pb2_grpc
from gantry.proto.verifier.v1 import verifier_pb2 as pb
from gantry.proto.verifier.v1 import verifier_pb2_grpc

TOKEN = "verifier-checks-token"
ENV = "visgym/maze_2d"
SEED = 7
PROGRAMMATIC = pb.VERIFICATION_MODE_PROGRAMMATIC
DEAD_ROLLOUT = f"127.0.0.1:{free_port()}"


@pytest.fixture(scope="module")
def envfarm() -> Iterator[str]:
    with spawn_service("gantry.envfarm", "envfarm", token=TOKEN) as process:
        yield process.target


@pytest.fixture(scope="module")
def farm(envfarm: str) -> Iterator[envfarm_pb2_grpc.EnvFarmServiceStub]:
    with sync_channel(envfarm, token=TOKEN) as channel:
        yield envfarm_pb2_grpc.EnvFarmServiceStub(channel)


@pytest.fixture(scope="module")
def stub(envfarm: str) -> Iterator[verifier_pb2_grpc.VerifierServiceStub]:
    """The verifier as its own process (`python -m gantry.verifier`), as deployed."""
    env = {
        "GANTRY_VERIFIER_ENVFARM_TARGET": envfarm,
        "GANTRY_VERIFIER_ROLLOUT_TARGET": DEAD_ROLLOUT,  # nothing listens: no judge here
    }
    with (
        spawn_service("gantry.verifier", "verifier", token=TOKEN, env=env) as process,
        sync_channel(process.target, token=TOKEN) as channel,
    ):
        yield verifier_pb2_grpc.VerifierServiceStub(channel)


@pytest.fixture(scope="module")
def plan(farm: envfarm_pb2_grpc.EnvFarmServiceStub) -> list[str]:
    """The solver's plan for the seed: replaying it must succeed."""
    created = farm.CreateSession(
        envfarm_pb2.CreateSessionRequest(
            env_id=ENV,
            seed=SEED,
            settings=episode_pb2.EpisodeSettings(
                observation_mode=episode_pb2.OBSERVATION_MODE_TEXT
            ),
        )
    )
    actions = list(farm.Solve(envfarm_pb2.SolveRequest(session_id=created.session.id)).actions)
    farm.CloseSession(envfarm_pb2.CloseSessionRequest(session_id=created.session.id))
    assert len(actions) >= 2
    return actions


def _replay(actions: list[str], **extra: Any) -> pb.ExecutableCheck:
    return pb.ExecutableCheck(
        replay=pb.EnvfarmReplayCheck(env_id=ENV, seed=SEED, actions=actions, **extra)
    )


def _request(*checks: pb.ExecutableCheck, **extra: Any) -> pb.VerifyRequest:
    fields: dict[str, Any] = {
        "task": "Reach the goal of the maze, then stop.",
        "answer": "done",
        "mode": PROGRAMMATIC,
        "checks": checks,
    }
    return pb.VerifyRequest(**(fields | extra))


def _complete(call: Any, request: Any) -> None:
    result = call(request, timeout=60)
    if not isinstance(result, pb.VerifyResponse | pb.VerifyBatchResponse):
        list(result)  # a stream: its error comes while reading


def _error(call: Any, request: Any) -> errors.GantryError:
    with pytest.raises(grpc.RpcError) as info:
        _complete(call, request)
    return errors.from_rpc_error(info.value)


def test_a_solved_plan_is_accepted(
    stub: verifier_pb2_grpc.VerifierServiceStub, plan: list[str]
) -> None:
    v = stub.Verify(_request(_replay(plan)), timeout=60).verification
    assert v.mode == PROGRAMMATIC and v.judge == "" and v.usage.total_tokens == 0
    assert v.score == 4 and v.verdict == pb.VERDICT_ACCEPT and v.accept_threshold == 3
    (check,) = v.checks
    assert check.passed and check.terminated and check.total_reward > 0
    assert check.steps == len(plan)
    assert [s.name for s in v.steps] == ["checks"]
    assert v.steps[0].duration.ToNanoseconds() > 0
    assert not v.feedback.reflection


def test_a_broken_plan_is_rejected_with_feedback(
    stub: verifier_pb2_grpc.VerifierServiceStub, plan: list[str]
) -> None:
    # Stop before the goal: the episode terminates without reward.
    broken = [*plan[:1], plan[-1]]
    v = stub.Verify(_request(_replay(broken)), timeout=60).verification
    assert v.score == 1 and v.verdict == pb.VERDICT_REJECT
    assert not v.checks[0].passed
    assert "check 0 failed" in v.feedback.reflection
    assert 1 <= len(v.feedback.instructions) <= 3
    assert [s.name for s in v.steps] == ["checks", "feedback"]
    # What an agent can act on: where the episode ended, and the first refused action.
    assert "final state:" in v.checks[0].detail and "# wall" in v.checks[0].detail
    prose = stub.Verify(_request(_replay(["move up", *plan])), timeout=60).verification
    assert "first invalid action: step 0 'move up'" in prose.checks[0].detail


def test_trajectory_actions_replay_and_facts_label_the_step_limit(
    stub: verifier_pb2_grpc.VerifierServiceStub, plan: list[str]
) -> None:
    steps = [pb.TraceStep(index=i, action=a) for i, a in enumerate(plan[:-1])]
    steps[-1].truncated = True
    request = _request(
        pb.ExecutableCheck(replay=pb.EnvfarmReplayCheck(env_id=ENV, seed=SEED)),
        trajectory=steps,
        max_steps=len(steps),
    )
    v = stub.Verify(request, timeout=60).verification
    assert v.verdict == pb.VERDICT_REJECT and v.checks[0].steps == len(steps)
    labels = [(f.label, f.step_index) for f in v.failures]
    assert ("max_step_reached.step_limit_exhausted", len(steps) - 1) in labels
    assert v.failures[0].subclass == pb.FAILURE_SUBCLASS_STEP_LIMIT_EXHAUSTED


def test_a_live_session_is_read(
    stub: verifier_pb2_grpc.VerifierServiceStub,
    farm: envfarm_pb2_grpc.EnvFarmServiceStub,
    plan: list[str],
) -> None:
    created = farm.CreateSession(envfarm_pb2.CreateSessionRequest(env_id=ENV, seed=SEED))
    session_id = created.session.id
    check = pb.ExecutableCheck(session=pb.EnvfarmSessionCheck(session_id=session_id))
    live = stub.Verify(_request(check), timeout=60).verification
    assert live.verdict == pb.VERDICT_REJECT and not live.checks[0].passed  # not finished yet
    for action in plan:
        farm.Step(envfarm_pb2.StepRequest(session_id=session_id, action=action))
    done = stub.Verify(_request(check), timeout=60).verification
    assert done.verdict == pb.VERDICT_ACCEPT and done.checks[0].steps == len(plan)


def test_check_errors_name_the_field(stub: verifier_pb2_grpc.VerifierServiceStub) -> None:
    missing = _error(
        stub.Verify,
        _request(
            pb.ExecutableCheck(replay=pb.EnvfarmReplayCheck(env_id="visgym/nope", actions=["x"]))
        ),
    )
    assert missing.code in (grpc.StatusCode.NOT_FOUND, grpc.StatusCode.INVALID_ARGUMENT)
    assert "checks[0].replay.env_id" in str(missing)
    gone = _error(
        stub.Verify, _request(pb.ExecutableCheck(session=pb.EnvfarmSessionCheck(session_id="nope")))
    )
    assert gone.code == grpc.StatusCode.NOT_FOUND and "checks[0].session.session_id" in str(gone)
    elsewhere = pb.ExecutableCheck(
        envfarm_peer="10.0.0.1:50053", replay=pb.EnvfarmReplayCheck(env_id=ENV, actions=["x"])
    )
    address = _error(stub.Verify, _request(elsewhere))
    assert address.code == grpc.StatusCode.PERMISSION_DENIED
    assert "checks[0].envfarm_peer" in str(address)
    none = _error(stub.Verify, _request())
    assert none.code == grpc.StatusCode.INVALID_ARGUMENT and "checks" in str(none)
    empty = _error(
        stub.Verify, _request(pb.ExecutableCheck(replay=pb.EnvfarmReplayCheck(env_id=ENV)))
    )
    assert empty.code == grpc.StatusCode.INVALID_ARGUMENT
    assert "checks[0].replay.actions" in str(empty)


def test_batch_reports_each_item(
    stub: verifier_pb2_grpc.VerifierServiceStub, plan: list[str]
) -> None:
    good, bad = _request(_replay(plan)), _request(_replay(plan))
    bad.answer = ""
    reply = stub.VerifyBatch(pb.VerifyBatchRequest(requests=[good, bad]), timeout=60)
    assert [r.index for r in reply.results] == [0, 1]
    assert reply.results[0].verification.verdict == pb.VERDICT_ACCEPT
    assert reply.results[1].error.code == grpc.StatusCode.INVALID_ARGUMENT.value[0]
    assert "requests[1].answer" in reply.results[1].error.message


def test_an_unreachable_judge_is_unavailable(stub: verifier_pb2_grpc.VerifierServiceStub) -> None:
    request = _request()
    request.mode = pb.VERIFICATION_MODE_PLAIN_JUDGE
    error = _error(stub.Verify, request)
    assert error.code == grpc.StatusCode.UNAVAILABLE
    assert DEAD_ROLLOUT in str(error)


def _answer(actions: list[str]) -> str:
    return "I reached the goal. My actions, in order: " + "; ".join(actions) + ". Done."


def test_actions_from_answer_replay_what_the_answer_lists(
    stub: verifier_pb2_grpc.VerifierServiceStub, plan: list[str]
) -> None:
    from_answer = pb.ExecutableCheck(
        replay=pb.EnvfarmReplayCheck(env_id=ENV, seed=SEED, actions_from_answer=True)
    )
    # A misleading trajectory: the check reads the answer, not the steps.
    misleading = [pb.TraceStep(index=0, action="stop")]
    good = stub.Verify(
        _request(from_answer, answer=_answer(plan), trajectory=misleading), timeout=60
    ).verification
    assert good.verdict == pb.VERDICT_ACCEPT and good.checks[0].steps == len(plan)
    short = stub.Verify(_request(from_answer, answer=_answer(plan[:-2])), timeout=60)
    assert short.verification.verdict == pb.VERDICT_REJECT
    assert short.verification.checks[0].steps == len(plan) - 2
    prose = stub.Verify(_request(from_answer, answer="I went up, then right."), timeout=60)
    (check,) = prose.verification.checks
    assert not check.passed and check.steps == 0 and "lists none" in check.detail
    both = _replay(plan, actions_from_answer=True)
    error = _error(stub.Verify, _request(both))
    assert error.code == grpc.StatusCode.INVALID_ARGUMENT
    assert "checks[0].replay.actions_from_answer" in str(error)


def _refine(*checks: pb.ExecutableCheck, answer: str) -> pb.VerifyAndRefineRequest:
    return pb.VerifyAndRefineRequest(
        task="Reach the goal of the maze, then stop.",
        answer=answer,
        mode=PROGRAMMATIC,
        checks=checks,
        max_rounds=3,
    )


def test_refine_runs_the_checks(
    stub: verifier_pb2_grpc.VerifierServiceStub, plan: list[str]
) -> None:
    from_answer = pb.ExecutableCheck(
        replay=pb.EnvfarmReplayCheck(env_id=ENV, seed=SEED, actions_from_answer=True)
    )
    # A right first answer is accepted by the check in round 1: no agent is called
    # (none could be: this verifier's rollout peer does not listen). Wrong answers and
    # the agent's retries: test_service.py, with a real rollout.
    (message,) = stub.VerifyAndRefine(_refine(from_answer, answer=_answer(plan)), timeout=60)
    assert message.done and message.best_round == 1 and message.final_answer == _answer(plan)
    v = message.round.verification
    assert v.mode == PROGRAMMATIC and v.verdict == pb.VERDICT_ACCEPT
    assert v.checks[0].passed and v.checks[0].steps == len(plan)
    # Later rounds have no trajectory: a replay check must follow the answer (or list actions).
    trajectory_only = pb.ExecutableCheck(replay=pb.EnvfarmReplayCheck(env_id=ENV, seed=SEED))
    request = _refine(trajectory_only, answer=_answer(plan))
    request.trajectory.extend(pb.TraceStep(index=i, action=a) for i, a in enumerate(plan))
    error = _error(stub.VerifyAndRefine, request)
    assert error.code == grpc.StatusCode.INVALID_ARGUMENT
    assert "checks[0].replay.actions_from_answer" in str(error)
    too_many = _refine(*[from_answer] * 5, answer="x")
    error = _error(stub.VerifyAndRefine, too_many)
    assert error.code == grpc.StatusCode.INVALID_ARGUMENT and "checks" in str(error)
