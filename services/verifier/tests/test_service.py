"""The verifier through gRPC with real peers: a rollout process (tiny model) as judge and
agent, an envfarm process for executable checks and a retrieval process for evidence.

The tiny model's text is random, so the tests assert what must hold whatever it writes:
judge output parses (the schema constrains it), verdict follows the score, executable
checks outrank the judge, every step is audited, limits and errors name their fields.
"""

from __future__ import annotations

import contextlib
import itertools
import socket
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor, wait
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import httpx
import pytest
from google.protobuf import json_format

from gantry.core import errors
from gantry.core.client import sync_channel
from gantry.core.ports import free_port
from gantry.core.testing.process import ServiceProcess, spawn_service
from gantry.core.testing.threaded import serve_in_thread
from gantry.proto.common.v1 import episode_pb2, sampling_pb2
from gantry.proto.envfarm.v1 import envfarm_pb2, envfarm_pb2_grpc
from gantry.proto.retrieval.v1 import retrieval_pb2, retrieval_pb2_grpc
from gantry.proto.rollout.v1 import rollout_pb2, rollout_pb2_grpc
from gantry.proto.verifier.v1 import verifier_pb2 as pb
from gantry.proto.verifier.v1 import verifier_pb2_grpc
from gantry.verifier.evidence import answer_actions
from gantry.verifier.service import VerifierService
from gantry.verifier.settings import AgentEndpoint, JudgeSpec, VerifierSettings

pytestmark = pytest.mark.slow  # real model calls (seconds each on a shared CPU)

TOKEN = "verifier-service-token"
ENV, SEED = "visgym/maze_2d", 11
COLLECTION = "capitals"
FOCUS = pb.Rubric(focus_labels=["reasoning.hallucination", "action_errors.format_mistake"])


@dataclass
class Peers:
    rollout: str
    openai_url: str
    envfarm: str
    retrieval: str
    openai_model: str = ""


@contextlib.contextmanager
def _spawn_together(
    *specs: tuple[str, dict[str, str]],
) -> Iterator[list[ServiceProcess]]:
    """Start the services at once (model loads overlap), stop them all on exit."""
    managers = [
        spawn_service(f"gantry.{name}", name, token=TOKEN, env=env, startup_timeout_s=240)
        for name, env in specs
    ]
    with contextlib.ExitStack() as stack, ThreadPoolExecutor(len(managers)) as pool:
        futures = [pool.submit(m.__enter__) for m in managers]
        wait(futures)
        for manager, future in zip(managers, futures, strict=True):
            if future.exception() is None:
                stack.push(manager.__exit__)
        yield [future.result() for future in futures]


@pytest.fixture(scope="module")
def peers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Peers]:
    openai_port = free_port()
    data = tmp_path_factory.mktemp("retrieval")
    with _spawn_together(
        ("rollout", {"GANTRY_ROLLOUT_OPENAI_PORT": str(openai_port)}),
        ("envfarm", {}),
        (
            "retrieval",
            {"GANTRY_RETRIEVAL_QDRANT_PATH": ":memory:", "GANTRY_RETRIEVAL_DATA_DIR": str(data)},
        ),
    ) as (rollout, envfarm, retrieval):
        with sync_channel(retrieval.target, token=TOKEN) as channel:
            stub = retrieval_pb2_grpc.RetrievalServiceStub(channel)
            stub.CreateCollection(retrieval_pb2.CreateCollectionRequest(name=COLLECTION))
            texts = [
                "Canberra is the capital city of Australia.",
                "Sydney is Australia's largest city.",
            ]
            points = [retrieval_pb2.Point(id=f"d{i}", text=t) for i, t in enumerate(texts)]
            stub.Upsert(
                retrieval_pb2.UpsertRequest(collection=COLLECTION, points=points, wait=True)
            )
        url = f"http://127.0.0.1:{openai_port}/v1"
        models = httpx.get(f"{url}/models", headers={"authorization": f"Bearer {TOKEN}"})
        yield Peers(
            rollout.target, url, envfarm.target, retrieval.target, models.json()["data"][0]["id"]
        )


def _settings(peers: Peers, key_file: Path, **extra: Any) -> VerifierSettings:
    base: dict[str, Any] = {
        "host": "127.0.0.1",
        "port": 0,
        "metrics_port": 0,
        "auth_token": TOKEN,
        "log_json": False,
        "rollout_target": peers.rollout,
        "envfarm_target": peers.envfarm,
        "retrieval_target": peers.retrieval,
        "judges": {
            "default": JudgeSpec(top_logprobs=5),
            "oa": JudgeSpec(
                backend="openai",
                url=peers.openai_url,
                model=peers.openai_model,
                api_key_file=key_file,
            ),
        },
        "agents": {
            "oa": AgentEndpoint(
                url=peers.openai_url, model=peers.openai_model, api_key_file=key_file
            )
        },
        "judge_text_chars": 8,  # the tiny model's prose is noise: keep it short
        "max_prompt_chars": 600,
        "peer_timeout_s": 120,
    }
    return VerifierSettings(**(base | extra))


@dataclass
class Verifier:
    stub: verifier_pb2_grpc.VerifierServiceStub
    service: VerifierService
    model_name: str  # what rollout's GetModelInfo reports


@pytest.fixture(scope="module")
def key_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("keys") / "rollout.key"
    path.write_text(TOKEN)
    return path


@pytest.fixture(scope="module")
def verifier(peers: Peers, key_file: Path) -> Iterator[Verifier]:
    service = VerifierService(_settings(peers, key_file))
    with (
        serve_in_thread(service) as running,
        sync_channel(f"127.0.0.1:{running.port}", token=TOKEN) as channel,
    ):
        with sync_channel(peers.rollout, token=TOKEN) as rollout:
            info = rollout_pb2_grpc.RolloutServiceStub(rollout).GetModelInfo(
                rollout_pb2.GetModelInfoRequest(), timeout=30
            )
        yield Verifier(verifier_pb2_grpc.VerifierServiceStub(channel), service, info.model_name)


@pytest.fixture(scope="module")
def plan(peers: Peers) -> list[str]:
    with sync_channel(peers.envfarm, token=TOKEN) as channel:
        farm = envfarm_pb2_grpc.EnvFarmServiceStub(channel)
        created = farm.CreateSession(
            envfarm_pb2.CreateSessionRequest(
                env_id=ENV,
                seed=SEED,
                settings=episode_pb2.EpisodeSettings(
                    observation_mode=episode_pb2.OBSERVATION_MODE_TEXT
                ),
            )
        )
        return list(farm.Solve(envfarm_pb2.SolveRequest(session_id=created.session.id)).actions)


def _request(**extra: Any) -> pb.VerifyRequest:
    trajectory = [
        pb.TraceStep(index=0, action="search('capital of Australia')", observation="Canberra"),
        pb.TraceStep(index=1, action="answer Sydney", terminated=True, reward=0.0),
    ]
    fields: dict[str, Any] = {
        "task": "What is the capital of Australia?",
        "answer": "Sydney",
        "trajectory": trajectory,
        "rubric": FOCUS,
    }
    return pb.VerifyRequest(**(fields | extra))


def _complete(call: Any, request: Any, timeout: float) -> None:
    result = call(request, timeout=timeout)
    if not isinstance(result, pb.VerifyResponse | pb.VerifyBatchResponse):
        list(result)  # a stream: its error comes while reading


def _error(call: Any, request: Any, timeout: float = 60) -> errors.GantryError:
    with pytest.raises(grpc.RpcError) as info:
        _complete(call, request, timeout)
    return errors.from_rpc_error(info.value)


def _io(step: pb.PipelineStep) -> tuple[dict[str, Any], dict[str, Any]]:
    """A step's input and output as plain JSON values."""
    return json_format.MessageToDict(step.input), json_format.MessageToDict(step.output)


def _consistent(v: pb.Verification) -> None:
    """What every verification must satisfy, whatever the judge wrote."""
    assert 1 <= v.score <= 4
    assert (v.verdict == pb.VERDICT_ACCEPT) == (v.score >= v.accept_threshold)
    assert len(v.sub_questions) <= 3 and len(v.feedback.instructions) <= 3
    assert bool(v.feedback.reflection or v.feedback.instructions) == (
        v.verdict == pb.VERDICT_REJECT
    )
    assert all(s.duration.ToNanoseconds() > 0 for s in v.steps)
    assert v.usage.total_tokens == sum(s.usage.total_tokens for s in v.steps)
    if v.score_probabilities:
        assert sum(v.score_probabilities) == pytest.approx(1.0, abs=1e-4)
        assert 1.0 <= v.expected_score <= 4.0


def test_rollout_returns_top_logprobs_with_texts(peers: Peers) -> None:
    with sync_channel(peers.rollout, token=TOKEN) as channel:
        stub = rollout_pb2_grpc.RolloutServiceStub(channel)
        params = sampling_pb2.SamplingParams(
            temperature=0, max_tokens=4, top_logprobs=3, logprobs=True
        )
        reply = stub.Generate(
            rollout_pb2.GenerateRequest(
                input=rollout_pb2.GenerationInput(
                    prompts=[rollout_pb2.Prompt(text="The capital of Australia is")],
                    sampling=params,
                )
            ),
            timeout=60,
        )
    tokens = reply.results[0].completions[0].tokens
    assert len(tokens.top_logprobs) == len(tokens.token_ids) == 4
    for token_id, logprob, top in zip(
        tokens.token_ids, tokens.logprobs, tokens.top_logprobs, strict=True
    ):
        alternatives = list(top.alternatives)
        assert len(alternatives) == 3
        assert [a.logprob for a in alternatives] == sorted(
            (a.logprob for a in alternatives), reverse=True
        )
        # greedy and unconstrained: the sampled token is the most likely raw one
        assert alternatives[0].token_id == token_id
        assert alternatives[0].logprob == pytest.approx(logprob, abs=1e-4)
    assert (
        "".join(t.alternatives[0].text for t in tokens.top_logprobs)
        == reply.results[0].completions[0].text
    )


def test_plain_judge_answers_through_rollout(verifier: Verifier) -> None:
    request = _request(mode=pb.VERIFICATION_MODE_PLAIN_JUDGE, judge=pb.JudgeConfig(seed=5))
    v = verifier.stub.Verify(request, timeout=120).verification
    _consistent(v)
    assert v.mode == pb.VERIFICATION_MODE_PLAIN_JUDGE and v.judge == "default"
    assert v.judge_model == verifier.model_name and v.accept_threshold == 3
    assert not v.failures and not v.sub_questions  # one prompt, no decomposition
    names = [s.name for s in v.steps]
    assert names == ["judge"] + (["feedback"] if v.verdict == pb.VERDICT_REJECT else [])
    judge = v.steps[0]
    assert judge.attempts >= 1 and judge.usage.completion_tokens > 0
    inputs, outputs = _io(judge)
    assert outputs["judge_output"]["score"] == v.score
    assert "Sydney" in inputs["prompt"]
    # the step's series are on the service's /metrics registry
    registry = verifier.service.registry
    seconds = registry.get_sample_value(
        "gantry_verifier_step_seconds_count", {"step": "judge", "mode": "plain_judge"}
    )
    assert seconds is not None and seconds >= 1
    calls = registry.get_sample_value(
        "gantry_verifier_judge_calls_total", {"judge": "default", "step": "judge"}
    )
    assert calls is not None and calls >= 1


def test_full_mode_gathers_evidence_and_checks_outrank_the_judge(
    verifier: Verifier, plan: list[str]
) -> None:
    check = pb.ExecutableCheck(replay=pb.EnvfarmReplayCheck(env_id=ENV, seed=SEED, actions=plan))
    steps = [pb.TraceStep(index=0, action=plan[0], action_parsed=False)]
    request = _request(evidence_collection=COLLECTION, checks=[check])
    del request.trajectory[:]
    request.trajectory.extend(steps)
    v = verifier.stub.Verify(request, timeout=240).verification
    _consistent(v)
    assert v.mode == pb.VERIFICATION_MODE_FULL  # the default
    assert [s.name for s in v.steps] == [
        "checks",
        "error_identification",
        "decomposition",
        "evidence",
        "judge",
    ]
    assert v.checks[0].passed and v.verdict == pb.VERDICT_ACCEPT  # ground truth decides
    judged = int(_io(v.steps[4])[1]["judge_output"]["score"])
    assert v.score == max(judged, 3)
    # the fact (an unparsed action) is a label without asking anyone
    assert ("action_errors.format_mistake", 0) in [(f.label, f.step_index) for f in v.failures]
    searched = [q for q in v.sub_questions if q.source_ref.collection == COLLECTION]
    assert searched and "Canberra" in searched[0].evidence + " ".join(
        str(h) for h in _io(v.steps[3])[1]["hits"]
    )
    assert all(
        q.answer != pb.SUB_QUESTION_ANSWER_UNSPECIFIED for q in v.sub_questions if q.evidence
    )


def test_decomposed_judge_uses_only_the_trajectory(verifier: Verifier) -> None:
    request = _request(
        mode=pb.VERIFICATION_MODE_DECOMPOSED_JUDGE,
        evidence_collection=COLLECTION,  # not consulted in this mode
        max_steps=2,
        rubric=pb.Rubric(focus=[pb.FAILURE_SUBCLASS_STEP_LIMIT_EXHAUSTED], accept_threshold=1),
    )
    request.trajectory[1].terminated = False
    v = verifier.stub.Verify(request, timeout=240).verification
    _consistent(v)
    assert v.verdict == pb.VERDICT_ACCEPT and v.accept_threshold == 1  # any score >= 1
    assert [s.name for s in v.steps] == [
        "error_identification",
        "decomposition",
        "evidence",
        "judge",
    ]
    assert all(q.source_ref.WhichOneof("kind") == "trajectory" for q in v.sub_questions)
    assert {f.label for f in v.failures} == {"max_step_reached.step_limit_exhausted"}
    assert v.failures[0].failure_class == pb.FAILURE_CLASS_MAX_STEP_REACHED


def test_openai_compatible_judge(verifier: Verifier) -> None:
    request = _request(
        mode=pb.VERIFICATION_MODE_PLAIN_JUDGE,
        judge=pb.JudgeConfig(judge="oa", sampling=sampling_pb2.SamplingParams(temperature=0)),
        rubric=pb.Rubric(accept_threshold=1),
    )
    v = verifier.stub.Verify(request, timeout=120).verification
    _consistent(v)
    assert v.judge == "oa" and v.verdict == pb.VERDICT_ACCEPT
    assert v.judge_model  # the endpoint's model name


def test_refine_streams_rounds_and_returns_the_best(verifier: Verifier) -> None:
    request = pb.VerifyAndRefineRequest(
        task="What is the capital of Australia?",
        answer="Sydney",
        rubric=pb.Rubric(accept_threshold=4, focus_labels=FOCUS.focus_labels),
        mode=pb.VERIFICATION_MODE_PLAIN_JUDGE,
        max_rounds=2,
        agent=pb.RefineAgent(sampling=sampling_pb2.SamplingParams(max_tokens=6, temperature=0)),
    )
    messages = list(verifier.stub.VerifyAndRefine(request, timeout=240))
    rounds = [m.round for m in messages]
    assert [r.round for r in rounds] == list(range(1, len(rounds) + 1)) and len(rounds) <= 2
    assert [m.done for m in messages] == [False] * (len(messages) - 1) + [True]
    for r in rounds:
        _consistent(r.verification)
    for earlier, later in itertools.pairwise(rounds):
        assert earlier.refined_answer and later.answer in (earlier.refined_answer, earlier.answer)
    scores = [r.verification.score for r in rounds]
    last = messages[-1]
    best = max(i for i, s in enumerate(scores) if s == max(scores))  # ties: the later round
    assert last.best_round == best + 1 and last.final_answer == rounds[best].answer
    assert not rounds[-1].refined_answer


def _solves(envfarm: str, actions: list[str]) -> bool:
    """Envfarm's own verdict on a plan: replayed from the seed, it ends with reward."""
    with sync_channel(envfarm, token=TOKEN) as channel:
        farm = envfarm_pb2_grpc.EnvFarmServiceStub(channel)
        session = farm.CreateSession(envfarm_pb2.CreateSessionRequest(env_id=ENV, seed=SEED))
        total, last = 0.0, envfarm_pb2.StepResult()
        for action in actions:
            last = farm.Step(
                envfarm_pb2.StepRequest(session_id=session.session.id, action=action)
            ).result
            total += last.reward
            if last.terminated or last.truncated:
                break
        return last.terminated and total > 0


def test_refine_checks_follow_the_refined_answers(
    verifier: Verifier, peers: Peers, plan: list[str]
) -> None:
    first = "Goal reached. Actions: " + "; ".join([plan[0], "stop"])
    request = pb.VerifyAndRefineRequest(
        task="Reach the goal of the maze, then stop. Answer with your actions.",
        answer=first,
        mode=pb.VERIFICATION_MODE_PROGRAMMATIC,
        checks=[
            pb.ExecutableCheck(
                replay=pb.EnvfarmReplayCheck(env_id=ENV, seed=SEED, actions_from_answer=True)
            )
        ],
        max_rounds=2,
        agent=pb.RefineAgent(sampling=sampling_pb2.SamplingParams(max_tokens=24, temperature=0)),
    )
    first_round, second_round = (
        m.round for m in verifier.stub.VerifyAndRefine(request, timeout=240)
    )
    assert first_round.verification.verdict == pb.VERDICT_REJECT
    assert first_round.verification.checks[0].steps == 2  # the answer's two actions
    assert first_round.refined_answer and second_round.answer in (
        first_round.refined_answer,
        first,
    )
    # Round 2's check replayed round 2's answer: its verdict is envfarm's on that answer.
    actions = answer_actions(second_round.answer)
    (check,) = second_round.verification.checks
    assert check.steps <= len(actions)
    assert check.passed == _solves(peers.envfarm, actions)
    assert (second_round.verification.verdict == pb.VERDICT_ACCEPT) == check.passed


def test_validation_names_fields(verifier: Verifier) -> None:
    verify = verifier.stub.Verify
    cases: list[tuple[pb.VerifyRequest, grpc.StatusCode, str]] = [
        (_request(answer=" "), grpc.StatusCode.INVALID_ARGUMENT, "answer"),
        (_request(task=""), grpc.StatusCode.INVALID_ARGUMENT, "task"),
        (
            _request(trajectory=[pb.TraceStep(index=i) for i in range(300)]),
            grpc.StatusCode.INVALID_ARGUMENT,
            "trajectory",
        ),
        (
            _request(trajectory=[pb.TraceStep(index=3)]),
            grpc.StatusCode.INVALID_ARGUMENT,
            "trajectory[0].index",
        ),
        (
            _request(rubric=pb.Rubric(focus_labels=["reasoning.nope"])),
            grpc.StatusCode.INVALID_ARGUMENT,
            "rubric.focus_labels[0]",
        ),
        (
            _request(rubric=pb.Rubric(accept_threshold=5)),
            grpc.StatusCode.INVALID_ARGUMENT,
            "rubric.accept_threshold",
        ),
        (
            _request(judge=pb.JudgeConfig(judge="gpt-5")),
            grpc.StatusCode.INVALID_ARGUMENT,
            "judge.judge",
        ),
        (
            _request(judge=pb.JudgeConfig(sampling=sampling_pb2.SamplingParams(temperature=-1))),
            grpc.StatusCode.INVALID_ARGUMENT,
            "judge.sampling.temperature",
        ),
        (
            _request(judge=pb.JudgeConfig(sampling=sampling_pb2.SamplingParams(top_logprobs=3))),
            grpc.StatusCode.INVALID_ARGUMENT,
            "judge.sampling.top_logprobs",
        ),
        (_request(mode=9), grpc.StatusCode.INVALID_ARGUMENT, "mode"),  # type: ignore[arg-type]
        (_request(max_steps=-1), grpc.StatusCode.INVALID_ARGUMENT, "max_steps"),
        (
            _request(retrieval_peer="evil.example:443"),
            grpc.StatusCode.PERMISSION_DENIED,
            "retrieval_peer",
        ),
        (_request(answer="x" * 70_000), grpc.StatusCode.INVALID_ARGUMENT, "answer"),
    ]
    for request, code, field in cases:
        error = _error(verify, request)
        assert error.code == code, (field, error)
        assert field in str(error), (field, str(error))
    batch = _error(verifier.stub.VerifyBatch, pb.VerifyBatchRequest())
    assert batch.code == grpc.StatusCode.INVALID_ARGUMENT and "requests" in str(batch)
    refine = verifier.stub.VerifyAndRefine
    base: dict[str, Any] = {"task": "t", "answer": "a"}
    for agent, code, field in [
        (pb.RefineAgent(endpoint="nope"), grpc.StatusCode.INVALID_ARGUMENT, "agent.endpoint"),
        (
            pb.RefineAgent(rollout_target="10.1.2.3:50051"),
            grpc.StatusCode.PERMISSION_DENIED,
            "agent.rollout_target",
        ),
        (
            pb.RefineAgent(endpoint="oa", rollout_target="x"),
            grpc.StatusCode.INVALID_ARGUMENT,
            "agent.endpoint",
        ),
    ]:
        error = _error(refine, pb.VerifyAndRefineRequest(agent=agent, **base))
        assert error.code == code and field in str(error), (field, error)
    rounds = _error(refine, pb.VerifyAndRefineRequest(max_rounds=99, **base))
    assert rounds.code == grpc.StatusCode.INVALID_ARGUMENT and "max_rounds" in str(rounds)


def test_get_taxonomy(verifier: Verifier) -> None:
    reply = verifier.stub.GetTaxonomy(pb.GetTaxonomyRequest(), timeout=10)
    assert len(reply.classes) == 5 and sum(len(c.subclasses) for c in reply.classes) == 13


def test_deadline_propagates(verifier: Verifier) -> None:
    # FULL mode makes several judge calls; a deadline a fifth of what one takes here (timed
    # on this machine, so a fast one cannot finish inside it) ends the call early. (The
    # deadline reaching the judge peer itself is checked in test_admission_limit against a
    # peer that never answers.)
    request = _request(mode=pb.VERIFICATION_MODE_FULL)
    verifier.stub.Verify(request, timeout=60)  # warm
    started = time.monotonic()
    verifier.stub.Verify(request, timeout=60)
    full_s = time.monotonic() - started
    started = time.monotonic()
    error = _error(verifier.stub.Verify, request, timeout=max(full_s / 5, 0.01))
    assert error.code == grpc.StatusCode.DEADLINE_EXCEEDED
    assert time.monotonic() - started < full_s + 5


def test_admission_limit(peers: Peers, key_file: Path) -> None:
    # A socket that listens but never speaks HTTP/2: a judge call there waits out its deadline.
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(8)
    hang = f"127.0.0.1:{silent.getsockname()[1]}"
    settings = _settings(
        peers,
        key_file,
        rollout_peers={"hang": hang},
        judges={"default": JudgeSpec(), "hang": JudgeSpec(peer="hang")},
        max_concurrent_verifications=1,
        max_queued_verifications=0,
    )
    with (
        silent,
        serve_in_thread(VerifierService(settings)) as running,
        sync_channel(f"127.0.0.1:{running.port}", token=TOKEN) as channel,
    ):
        stub = verifier_pb2_grpc.VerifierServiceStub(channel)
        plain = pb.VERIFICATION_MODE_PLAIN_JUDGE
        # One slot, no queue: a second call while one runs is refused at once.
        held: list[errors.GantryError] = []
        slow = _request(mode=plain, judge=pb.JudgeConfig(judge="hang"))
        busy = threading.Thread(target=lambda: held.append(_error(stub.Verify, slow, timeout=3)))
        busy.start()
        time.sleep(1.0)
        refused = _error(stub.Verify, _request(mode=plain))
        busy.join()
        assert refused.code == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert "max_concurrent_verifications" in str(refused)
        assert held[0].code == grpc.StatusCode.DEADLINE_EXCEEDED  # the deadline reached the peer
