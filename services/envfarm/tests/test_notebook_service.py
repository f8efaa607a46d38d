"""Notebook (DSGym) tasks through envfarm's real gRPC server, in bubblewrap sandboxes with
the pipe-REPL kernel: the catalogue and its contract, analysis and prediction episodes
played to a graded outcome, reference solutions, demonstrations, and bad input."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest

from gantry.core import errors
from gantry.core.client import sync_channel
from gantry.core.testing.threaded import serve_in_thread
from gantry.envfarm.notebook.family import KernelRuntime, NotebookFamily
from gantry.envfarm.sandbox import make_backend
from gantry.envfarm.sandbox.testing import reachable_root
from gantry.envfarm.service import EnvFarmService
from gantry.envfarm.settings import EnvFarmSettings
from gantry.proto.envfarm.v1 import envfarm_pb2, envfarm_pb2_grpc

TOKEN = "notebook-test-token"
ANALYSIS = "dsgym/iris/mean-0"
PREDICTION = "dsgym/iris/predict-0"
pb = envfarm_pb2
Stub = envfarm_pb2_grpc.EnvFarmServiceStub


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    settings = EnvFarmSettings(
        host="127.0.0.1",
        port=0,
        metrics_port=0,
        auth_token=TOKEN,
        log_json=False,
        terminal_enabled=False,
        notebook_kernel="repl",
    )
    reachable_root(Path(KernelRuntime.for_backend("bubblewrap").site_packages))
    service = EnvFarmService(settings)
    root = reachable_root(tmp_path_factory.mktemp("sandboxes"))
    service._backend = make_backend("bubblewrap", root=root)
    notebooks = next(f for f in service.families.all if isinstance(f, NotebookFamily))
    notebooks._data_root = reachable_root(tmp_path_factory.mktemp("data"))  # not in /tmp
    with serve_in_thread(service) as running:
        yield f"127.0.0.1:{running.port}"


@pytest.fixture(scope="module")
def stub(server: str) -> Iterator[Stub]:
    with sync_channel(server, token=TOKEN) as channel:
        yield envfarm_pb2_grpc.EnvFarmServiceStub(channel)


def _error(fn: Any, request: Any) -> errors.GantryError:
    with pytest.raises(grpc.RpcError) as info:
        fn(request)
    return errors.from_rpc_error(info.value)


def _session(stub: Stub, env_id: str) -> str:
    created = stub.CreateSession(pb.CreateSessionRequest(env_id=env_id, seed=3))
    return str(created.session.id)


def _step(stub: Stub, session: str, action: str) -> pb.StepResult:
    return stub.Step(pb.StepRequest(session_id=session, action=action)).result


def test_the_catalogue_lists_notebook_tasks_with_their_contract(stub: Stub) -> None:
    listed = stub.ListEnvironments(
        pb.ListEnvironmentsRequest(kind=pb.ENVIRONMENT_KIND_NOTEBOOK, page_size=1000)
    ).environments
    assert len(listed) >= 100 and all(e.id.startswith("dsgym/") for e in listed)
    assert all(e.kind == pb.ENVIRONMENT_KIND_NOTEBOOK for e in listed)
    env = next(e for e in listed if e.id == ANALYSIS)
    assert env.finish_action == "submit" and "significant digits" in env.finish_action_format
    assert env.seed_semantics == pb.SEED_SEMANTICS_FIXED_TASK
    assert env.solver_kind == pb.SOLVER_KIND_REFERENCE and env.solver_strategies == ["reference"]
    assert env.task.type == pb.TASK_TYPE_ANALYSIS and env.task.metric == "answer_match"
    assert list(env.task.data_paths) == ["data/iris.csv"] and env.task.category == "mean"
    assert env.task.knobs["dataset"] == "iris" and env.task.generation_seed
    assert "Question:" in env.instructions
    predict = next(e for e in listed if e.id == PREDICTION)
    assert predict.task.type == pb.TASK_TYPE_PREDICTION and predict.task.metric == "accuracy"
    assert predict.task.submission_path == "submission.csv" and predict.task.higher_is_better
    assert predict.finish_action_format.startswith("submit (no answer")


def test_an_analysis_episode_is_graded_from_the_submitted_answer(stub: Stub) -> None:
    session = _session(stub, ANALYSIS)
    try:
        code = "import pandas as pd\ndf = pd.read_csv('data/iris.csv')\ndf.shape"
        cell = _step(stub, session, code)
        assert cell.observation.text.strip() == "(150, 5)" and not cell.terminated
        assert _step(stub, session, "n = len(df)").observation.text == "(no output)"
        assert _step(stub, session, "n").observation.text.strip() == "150"  # state is kept
        wrong = _step(stub, session, "submit 1.0")
        assert wrong.terminated and wrong.reward == 0.0
        assert not wrong.outcome.success and wrong.outcome.answer == "1.0"
        assert wrong.outcome.metric == "answer_match" and wrong.outcome.test_output == "incorrect"
    finally:
        stub.CloseSession(pb.CloseSessionRequest(session_id=session))


@pytest.mark.slow
def test_reference_solutions_solve_analysis_and_prediction_tasks(stub: Stub) -> None:
    for env_id in (ANALYSIS, PREDICTION):
        session = _session(stub, env_id)
        try:
            actions = list(stub.Solve(pb.SolveRequest(session_id=session)).actions)
            assert len(actions) == 2 and actions[-1].startswith("submit")
            results = [_step(stub, session, action) for action in actions]
            end = results[-1]
            assert end.terminated and end.reward == 1.0 and end.outcome.success, end.outcome
            if env_id == PREDICTION:
                assert end.outcome.metric == "accuracy" and end.outcome.score > 0.8
                assert "accuracy =" in end.outcome.test_output
            else:
                assert end.outcome.score == 1.0
        finally:
            stub.CloseSession(pb.CloseSessionRequest(session_id=session))


def test_data_are_read_only_and_the_labels_are_not_in_the_sandbox(stub: Stub) -> None:
    session = _session(stub, PREDICTION)
    try:
        listing = _step(stub, session, "import os\nsorted(os.listdir('data'))")
        assert listing.observation.text.strip() == "['test.csv', 'train.csv']"
        header = _step(stub, session, "open('data/test.csv').readline().strip()")
        assert "species" not in header.observation.text and "id" in header.observation.text
        write = _step(stub, session, "open('data/train.csv', 'w').write('x')")
        assert "Error" in write.observation.text and write.info["status"] == "error"
        empty = _step(stub, session, "submit")  # no submission.csv was written
        assert empty.terminated and not empty.outcome.success
        assert "submission.csv" in empty.outcome.test_output
    finally:
        stub.CloseSession(pb.CloseSessionRequest(session_id=session))


@pytest.mark.parametrize(
    ("action", "words"),
    [
        ("   ", "empty"),
        ("print(1)\x00\x01\x02", "control character"),
        ("x = 1\n" * 8000, "at most"),
        ("submit", "needs an answer"),
        ("submit five point eight", "expected a number"),
    ],
)
def test_bad_actions_are_invalid_argument_and_the_session_stays_usable(
    stub: Stub, action: str, words: str
) -> None:
    session = _session(stub, ANALYSIS)
    try:
        error = _error(stub.Step, pb.StepRequest(session_id=session, action=action))
        assert isinstance(error, errors.InvalidArgument), error
        assert error.violations[0].field == "action" and words in str(error)
        after = _step(stub, session, "21 * 2")
        assert after.observation.text.strip() == "42" and after.step_index == 1
    finally:
        stub.CloseSession(pb.CloseSessionRequest(session_id=session))


def test_unknown_tasks_are_not_found(stub: Stub) -> None:
    for env_id in ("dsgym/iris/mean-999", "dsgym/nope/mean-0", "dsgym/iris/group_count-0"):
        error = _error(stub.CreateSession, pb.CreateSessionRequest(env_id=env_id))
        assert isinstance(error, errors.NotFound), (env_id, error)


def test_demonstrations_export_the_solved_reference_trajectory(stub: Stub) -> None:
    request = pb.ExportDemonstrationsRequest(env_id=ANALYSIS, seeds=[1])
    items = list(stub.ExportDemonstrations(request))
    assert len(items) == 1 and items[0].final_reward == 1.0
    texts = ["".join(p.text for p in m.content) for m in items[0].conversation.messages]
    assert "pd.read_csv('data/iris.csv')" in texts[-3]  # the reference code cell,
    assert float(texts[-2]) == pytest.approx(1.19933, abs=1e-4)  # its output in the sandbox,
    assert texts[-1].startswith("submit 1.1993")  # then the answer


def test_an_exported_state_recreates_the_task(stub: Stub) -> None:
    session = _session(stub, ANALYSIS)
    try:
        state = stub.ExportState(pb.ExportStateRequest(session_id=session)).state_json
    finally:
        stub.CloseSession(pb.CloseSessionRequest(session_id=session))
    assert json.loads(state) == {"task": ANALYSIS}
    again = stub.CreateSession(pb.CreateSessionRequest(env_id=ANALYSIS, initial_state_json=state))
    stub.CloseSession(pb.CloseSessionRequest(session_id=again.session.id))
    assert "Question:" in again.observation.text
    other = json.dumps({"task": PREDICTION})  # a state of another task
    error = _error(
        stub.CreateSession, pb.CreateSessionRequest(env_id=ANALYSIS, initial_state_json=other)
    )
    assert isinstance(error, errors.InvalidArgument)
    assert error.violations[0].field == "initial_state_json"
