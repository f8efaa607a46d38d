"""Terminal tasks through envfarm's real gRPC server, in bubblewrap sandboxes: the catalogue,
sessions played to a graded outcome, reference solutions, demonstrations, bad input, and
GenerateTasks (templates, a model over an OpenAI-compatible endpoint) / DeleteTaskSuite."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import grpc
import pytest
from google.longrunning import operations_pb2_grpc
from google.longrunning import operations_proto_pb2 as operations_pb2

from gantry.core import errors
from gantry.core.client import sync_channel
from gantry.core.testing.threaded import serve_in_thread
from gantry.envfarm.client import RemoteEnv
from gantry.envfarm.sandbox import make_backend
from gantry.envfarm.sandbox.testing import reachable_root
from gantry.envfarm.service import EnvFarmService
from gantry.envfarm.settings import EnvFarmSettings
from gantry.envfarm.terminal.suite import template_task
from gantry.proto.common.v1 import chat_pb2, episode_pb2
from gantry.proto.envfarm.v1 import envfarm_pb2, envfarm_pb2_grpc
from gantry.proto.rollout.v1 import rollout_pb2, rollout_pb2_grpc

TOKEN = "terminal-test-token"
TASK = "terminal/core/config_files-000"  # an easy task: one command solves it
pb = envfarm_pb2


class ScriptedModel:
    """An OpenAI-compatible endpoint that first answers nonsense, then a real task."""

    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []
        good = template_task("m", "sqlite", 0, 11, "easy").to_json()
        self.answers = [
            "Sure! Here is a task: (no JSON, sorry)",
            "```json\n" + json.dumps(good) + "\n```",
        ]

    def serve(self) -> tuple[ThreadingHTTPServer, str]:
        model = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                model.requests.append(body)
                answer = model.answers[min(len(model.requests), len(model.answers)) - 1]
                data = json.dumps({"choices": [{"message": {"content": answer}}]}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args: Any) -> None:
                pass

        server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        return server, f"http://127.0.0.1:{server.server_address[1]}/v1"


class HalfSolver(rollout_pb2_grpc.RolloutServiceServicer):
    """A RolloutService whose RunEpisodes plays through envfarm: even attempts play the
    reference solution, odd ones submit at once (so half the attempts succeed)."""

    envfarm = ""

    def RunEpisodes(
        self, request: rollout_pb2.RunEpisodesRequest, context: Any
    ) -> rollout_pb2.RunEpisodesResponse:
        reply = rollout_pb2.RunEpisodesResponse()
        with sync_channel(self.envfarm, token=TOKEN) as channel:
            farm = envfarm_pb2_grpc.EnvFarmServiceStub(channel)
            for attempt in range(request.spec.episodes_per_seed):
                sid = farm.CreateSession(
                    pb.CreateSessionRequest(env_id=request.spec.env_id)
                ).session.id
                plan = farm.Solve(pb.SolveRequest(session_id=sid)).actions
                reward = 0.0
                for action in plan if attempt % 2 == 0 else ["submit"]:
                    reward = farm.Step(pb.StepRequest(session_id=sid, action=action)).result.reward
                farm.CloseSession(pb.CloseSessionRequest(session_id=sid))
                reply.trajectories.add(env_id=request.spec.env_id, final_reward=reward)
        return reply


@pytest.fixture(scope="module")
def solver() -> Iterator[tuple[HalfSolver, str]]:
    servicer = HalfSolver()  # type: ignore[abstract]  # serves RunEpisodes only
    grpc_server = grpc.server(ThreadPoolExecutor(max_workers=2))
    rollout_pb2_grpc.add_RolloutServiceServicer_to_server(servicer, grpc_server)
    port = grpc_server.add_insecure_port("127.0.0.1:0")
    grpc_server.start()
    yield servicer, f"127.0.0.1:{port}"
    grpc_server.stop(None)


@pytest.fixture(scope="module")
def model() -> Iterator[tuple[ScriptedModel, str]]:
    scripted = ScriptedModel()
    server, url = scripted.serve()
    yield scripted, url
    server.shutdown()


@pytest.fixture(scope="module")
def server(
    tmp_path_factory: pytest.TempPathFactory,
    model: tuple[ScriptedModel, str],
    solver: tuple[HalfSolver, str],
) -> Iterator[str]:
    settings = EnvFarmSettings(
        host="127.0.0.1",
        port=0,
        metrics_port=0,
        auth_token=TOKEN,
        log_json=False,
        generator_target=model[1],
        rollout_target=solver[1],
        terminal_suites_dir=tmp_path_factory.mktemp("suites"),
        notebook_enabled=False,  # this file is about the terminal family
    )
    service = EnvFarmService(settings)
    root = reachable_root(tmp_path_factory.mktemp("sandboxes"))
    service._backend = make_backend("bubblewrap", root=root)  # workspaces under tmp_path
    with serve_in_thread(service) as running:
        solver[0].envfarm = f"127.0.0.1:{running.port}"
        yield solver[0].envfarm


@pytest.fixture(scope="module")
def channel(server: str) -> Iterator[grpc.Channel]:
    with sync_channel(server, token=TOKEN) as ch:
        yield ch


@pytest.fixture(scope="module")
def stub(channel: grpc.Channel) -> envfarm_pb2_grpc.EnvFarmServiceStub:
    return envfarm_pb2_grpc.EnvFarmServiceStub(channel)


def _error(fn: Any, request: Any) -> errors.GantryError:
    with pytest.raises(grpc.RpcError) as info:
        fn(request)
    return errors.from_rpc_error(info.value)


def _field(error: errors.GantryError) -> str:
    assert isinstance(error, errors.InvalidArgument), error
    return error.violations[0].field


def _session(stub: envfarm_pb2_grpc.EnvFarmServiceStub, **kw: Any) -> pb.CreateSessionResponse:
    return stub.CreateSession(pb.CreateSessionRequest(env_id=kw.pop("env_id", TASK), **kw))


def test_the_catalogue_lists_terminal_tasks_with_their_contract(
    stub: envfarm_pb2_grpc.EnvFarmServiceStub,
) -> None:
    terminal = stub.ListEnvironments(
        pb.ListEnvironmentsRequest(kind=pb.ENVIRONMENT_KIND_TERMINAL, page_size=1000)
    ).environments
    assert len(terminal) >= 200 and all(e.id.startswith("terminal/core/") for e in terminal)
    env = next(e for e in terminal if e.id == TASK)
    assert env.kind == pb.ENVIRONMENT_KIND_TERMINAL and env.finish_action == "submit"
    assert env.seed_semantics == pb.SEED_SEMANTICS_FIXED_TASK
    assert env.solver_kind == pb.SOLVER_KIND_REFERENCE and env.solver_strategies == ["reference"]
    assert env.task.category == "config_files" and env.task.type == pb.TASK_TYPE_SHELL
    assert env.task.metric == "completion_test" and env.task.generation_seed
    assert env.limits.step_timeout.seconds == 10 and env.difficulties[0].max_steps == 30
    assert "config/app.json" in env.description
    visual = stub.ListEnvironments(pb.ListEnvironmentsRequest(id_prefix="visgym/maze_2d"))
    assert visual.environments[0].finish_action == "('stop',)"
    assert visual.environments[0].seed_semantics == pb.SEED_SEMANTICS_INITIAL_STATE
    assert not stub.ListEnvironments(
        pb.ListEnvironmentsRequest(kind=pb.ENVIRONMENT_KIND_NOTEBOOK, id_prefix="terminal/")
    ).environments
    everything: list[str] = []
    token = ""
    while True:  # every kind, paged, in id order
        page = stub.ListEnvironments(pb.ListEnvironmentsRequest(page_size=97, page_token=token))
        everything += [e.id for e in page.environments]
        token = page.next_page_token
        if not token:
            break
    assert everything == sorted(everything) and TASK in everything
    assert "visgym/maze_2d" in everything


def test_a_session_is_played_to_a_graded_success(
    stub: envfarm_pb2_grpc.EnvFarmServiceStub,
) -> None:
    created = _session(stub, seed=5)
    session = created.session
    assert "config/app.json" in created.observation.text and "submit" in created.observation.text
    assert session.seed == 5 and session.limits.test_timeout.seconds == 20
    listing = stub.Step(pb.StepRequest(session_id=session.id, action="ls config; cd config"))
    assert listing.result.observation.text == "app.json\n[exit status 0]"
    assert str(listing.result.info["cwd"]).endswith("/config") and not listing.result.HasField(
        "outcome"
    )
    assert stub.Step(pb.StepRequest(session_id=session.id, action="cd ..")).result.step_index == 2
    plan = stub.Solve(pb.SolveRequest(session_id=session.id))
    assert plan.strategy == "reference" and plan.actions[-1] == "submit"
    for action in plan.actions:
        result = stub.Step(pb.StepRequest(session_id=session.id, action=action)).result
    assert result.terminated and result.reward == 1.0
    assert result.outcome.success and result.outcome.score == 1.0
    assert (
        result.outcome.metric == "completion_test"
        and "1 passed, 0 failed" in result.outcome.test_output
    )
    got = stub.GetSession(pb.GetSessionRequest(session_id=session.id)).session
    assert got.state == pb.SESSION_STATE_DONE and got.total_reward == 1.0
    error = _error(stub.Step, pb.StepRequest(session_id=session.id, action="ls"))
    assert isinstance(error, errors.FailedPrecondition)
    # Reset rebuilds the initial state: the edit is gone, so submitting now fails.
    stub.Reset(pb.ResetRequest(session_id=session.id))
    failed = stub.Step(pb.StepRequest(session_id=session.id, action="submit")).result
    assert failed.terminated and failed.reward == 0.0 and not failed.outcome.success
    assert "FAILED test_config" in failed.outcome.test_output
    stub.CloseSession(pb.CloseSessionRequest(session_id=session.id))


def test_the_step_limit_ends_and_grades_the_episode(
    stub: envfarm_pb2_grpc.EnvFarmServiceStub,
) -> None:
    created = _session(stub, settings=episode_pb2.EpisodeSettings(max_steps=2))
    sid = created.session.id
    assert created.session.max_steps == 2
    first = stub.Step(pb.StepRequest(session_id=sid, action="true")).result
    assert not first.truncated and not first.HasField("outcome")
    last = stub.Step(pb.StepRequest(session_id=sid, action="echo hi")).result
    assert last.truncated and not last.terminated and last.HasField("outcome")
    assert not last.outcome.success and "step limit" in last.feedback
    stub.CloseSession(pb.CloseSessionRequest(session_id=sid))


def test_bad_input_names_the_field_and_the_session_stays_usable(
    stub: envfarm_pb2_grpc.EnvFarmServiceStub,
) -> None:
    sid = _session(stub).session.id
    for action, says in [
        ("", "empty"),
        ("ls\x00-la", "U+0000"),
        ("\x1b[2J\x07", "U+001B"),
        ("x" * 20000, "at most 16384"),
        ("\ufffe\x01", "U+0001"),
        ("submit please", "no answer"),
    ]:
        error = _error(stub.Step, pb.StepRequest(session_id=sid, action=action))
        assert _field(error) == "action" and says in error.message, (action[:10], error.message)
    error = _error(stub.Step, pb.StepRequest(session_id=sid, action="y" * 70000))
    assert _field(error) == "action"
    batch = stub.StepBatch(
        pb.StepBatchRequest(
            items=[
                pb.StepBatchItem(session_id=sid, action="\x00"),
            ]
        )
    )
    assert batch.results[0].error.code == grpc.StatusCode.INVALID_ARGUMENT.value[0]
    assert "items[0].action" in batch.results[0].error.message
    still = stub.Step(pb.StepRequest(session_id=sid, action="echo ok")).result
    assert still.step_index == 1 and still.observation.text == "ok\n[exit status 0]"
    unknown = _error(stub.CreateSession, pb.CreateSessionRequest(env_id="terminal/core/nope-000"))
    assert isinstance(unknown, errors.NotFound) and "env_id" in unknown.message
    missing = _error(
        lambda r: list(stub.ExportDemonstrations(r)),
        pb.ExportDemonstrationsRequest(env_id="terminal/core/nope-000", seeds=[1]),
    )
    assert isinstance(missing, errors.NotFound)
    assert _field(_error(stub.Solve, pb.SolveRequest(session_id=sid, strategy="bfs"))) == "strategy"
    assert _field(_error(stub.Solve, pb.SolveRequest(session_id=sid, detour_count=1))) == (
        "detour_count"
    )
    assert (
        _field(_error(stub.Solve, pb.SolveRequest(session_id=sid, include_goal_image=True)))
        == "include_goal_image"
    )
    for limits, field in [
        (pb.ResourceLimits(memory_bytes=1), "limits.memory_bytes"),
        (pb.ResourceLimits(network=True), "limits.network"),
        (pb.ResourceLimits(step_timeout={"nanos": 1000}), "limits.step_timeout"),
    ]:
        refused = _error(stub.CreateSession, pb.CreateSessionRequest(env_id=TASK, limits=limits))
        assert _field(refused) == field
    goal = episode_pb2.EpisodeSettings(goal_image=True)
    assert _field(
        _error(stub.CreateSession, pb.CreateSessionRequest(env_id=TASK, settings=goal))
    ) == ("settings.goal_image")
    stub.CloseSession(pb.CloseSessionRequest(session_id=sid))


def test_export_state_round_trips_and_bad_states_are_refused(
    stub: envfarm_pb2_grpc.EnvFarmServiceStub,
) -> None:
    sid = _session(stub).session.id
    exported = stub.ExportState(pb.ExportStateRequest(session_id=sid))
    assert exported.env_id == TASK and json.loads(exported.state_json)["category"] == "config_files"
    again = _session(stub, initial_state_json=exported.state_json)
    assert again.observation.text.startswith("Edit the JSON file config/app.json")
    state = json.loads(exported.state_json)
    for broken in (
        {**state, "solution": "rm -rf /"},
        {**state, "id": "config_files-001"},
        [1, 2],
    ):
        error = _error(
            stub.CreateSession,
            pb.CreateSessionRequest(env_id=TASK, initial_state_json=json.dumps(broken)),
        )
        assert _field(error) == "initial_state_json"
    for s in (sid, again.session.id):
        stub.CloseSession(pb.CloseSessionRequest(session_id=s))


def test_demonstrations_are_the_reference_solution_played(
    stub: envfarm_pb2_grpc.EnvFarmServiceStub,
) -> None:
    demos = list(
        stub.ExportDemonstrations(
            pb.ExportDemonstrationsRequest(env_id="terminal/core/permissions-001", seeds=[3])
        )
    )
    assert len(demos) == 1 and demos[0].final_reward == 1.0 and demos[0].strategy == "reference"
    messages = demos[0].conversation.messages
    assert messages[0].role == chat_pb2.ROLE_SYSTEM and "bash shell" in messages[0].content[0].text
    assert "deploy/" in messages[1].content[0].text
    actions = [m.content[0].text for m in messages if m.role == chat_pb2.ROLE_ASSISTANT]
    assert actions[-1] == "submit" and actions[0].startswith("find deploy")
    assert "[exit status 0]" in messages[3].content[0].text  # the first command's output
    error = _error(
        lambda r: list(stub.ExportDemonstrations(r)),
        pb.ExportDemonstrationsRequest(env_id=TASK, seeds=[1], strategies=["bfs"]),
    )
    assert _field(error) == "strategies[0]"
    error = _error(
        lambda r: list(stub.ExportDemonstrations(r)),
        pb.ExportDemonstrationsRequest(env_id=TASK, seeds=list(range(65))),
    )
    assert _field(error) == "seeds" and "same fixed task" in error.message


def _wait(channel: grpc.Channel, name: str) -> operations_pb2.Operation:
    operations = operations_pb2_grpc.OperationsStub(channel)  # type: ignore[no-untyped-call]
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        op: operations_pb2.Operation = operations.GetOperation(
            operations_pb2.GetOperationRequest(name=name)
        )
        if op.done:
            return op
        time.sleep(0.2)
    raise AssertionError(f"operation {name} did not finish")


def test_generate_a_template_suite_then_delete_it(
    stub: envfarm_pb2_grpc.EnvFarmServiceStub, channel: grpc.Channel
) -> None:
    op = stub.GenerateTasks(
        pb.GenerateTasksRequest(
            suite_name="gen-a", num_tasks=3, categories=["git", "sqlite"], seed=4
        )
    )
    done = _wait(channel, op.name)
    assert not done.HasField("error"), done.error
    response = pb.GenerateTasksResponse()
    done.response.Unpack(response)
    meta = pb.GenerateTasksMetadata()
    done.metadata.Unpack(meta)
    assert meta.stage == pb.TASK_PIPELINE_STAGE_DONE and meta.progress == 1.0
    assert meta.proposed_count == 3 and meta.kept_count == 3 and meta.tested_count == 3
    assert len(response.env_ids) == 3 and response.rejected_count == 0
    assert all(i.startswith("terminal/gen-a/") for i in response.env_ids)
    listed = stub.ListEnvironments(pb.ListEnvironmentsRequest(id_prefix="terminal/gen-a/"))
    assert [e.id for e in listed.environments] == list(response.env_ids)
    assert {e.task.category for e in listed.environments} <= {"git", "sqlite"}
    again = _error(stub.GenerateTasks, pb.GenerateTasksRequest(suite_name="gen-a", num_tasks=1))
    assert isinstance(again, errors.AlreadyExists)
    session = _session(stub, env_id=response.env_ids[0]).session
    stub.CloseSession(pb.CloseSessionRequest(session_id=session.id))
    deleted = stub.DeleteTaskSuite(pb.DeleteTaskSuiteRequest(suite_name="gen-a"))
    assert list(deleted.env_ids) == list(response.env_ids)
    assert not stub.ListEnvironments(
        pb.ListEnvironmentsRequest(id_prefix="terminal/gen-a/")
    ).environments
    gone = _error(stub.CreateSession, pb.CreateSessionRequest(env_id=response.env_ids[0]))
    assert isinstance(gone, errors.NotFound)
    missing = _error(stub.DeleteTaskSuite, pb.DeleteTaskSuiteRequest(suite_name="gen-a"))
    assert isinstance(missing, errors.NotFound)
    core = _error(stub.DeleteTaskSuite, pb.DeleteTaskSuiteRequest(suite_name="core"))
    assert isinstance(core, errors.FailedPrecondition)


@pytest.mark.slow  # generates tasks until cancelled, then one more
def test_a_cancelled_generation_leaves_no_suite(
    stub: envfarm_pb2_grpc.EnvFarmServiceStub, channel: grpc.Channel
) -> None:
    request = pb.GenerateTasksRequest(suite_name="gen-cancel", num_tasks=20, seed=2)
    op = stub.GenerateTasks(request)
    time.sleep(1.0)  # a few tasks validated and in the suite already
    operations = operations_pb2_grpc.OperationsStub(channel)  # type: ignore[no-untyped-call]
    operations.CancelOperation(operations_pb2.CancelOperationRequest(name=op.name))
    done = _wait(channel, op.name)
    assert done.error.code == grpc.StatusCode.CANCELLED.value[0]
    listed = stub.ListEnvironments(pb.ListEnvironmentsRequest(id_prefix="terminal/gen-cancel/"))
    assert not listed.environments
    again = stub.GenerateTasks(pb.GenerateTasksRequest(suite_name="gen-cancel", num_tasks=1))
    assert _wait(channel, again.name).HasField("response")  # the name is free again
    stub.DeleteTaskSuite(pb.DeleteTaskSuiteRequest(suite_name="gen-cancel"))


def test_generate_tasks_refuses_bad_requests(stub: envfarm_pb2_grpc.EnvFarmServiceStub) -> None:
    request = pb.GenerateTasksRequest
    for bad, field in [
        (request(num_tasks=1), "suite_name"),
        (request(suite_name="core", num_tasks=1), "suite_name"),
        (request(suite_name="Bad Name", num_tasks=1), "suite_name"),
        (request(suite_name="s", num_tasks=0), "num_tasks"),
        (request(suite_name="s", num_tasks=1, categories=["git", "cooking"]), "categories[1]"),
        (request(suite_name="s", num_tasks=1, mode=9), "mode"),  # type: ignore[arg-type]
        (request(suite_name="s", num_tasks=1, generator_target="x:1"), "generator_target"),
        (request(suite_name="s", num_tasks=1, max_build_iterations=99), "max_build_iterations"),
    ]:
        assert _field(_error(stub.GenerateTasks, bad)) == field
    elsewhere = _error(
        stub.GenerateTasks,
        request(
            suite_name="s",
            num_tasks=1,
            mode=pb.TASK_GENERATION_MODE_MODEL,
            generator_target="10.0.0.1:50051",
        ),
    )
    assert (
        isinstance(elsewhere, errors.PermissionDenied) and "generator_target" in elsewhere.message
    )
    elsewhere = _error(
        stub.GenerateTasks,
        request(suite_name="s", num_tasks=1, solvability_filter=True, solver_target="h:1"),
    )
    assert isinstance(elsewhere, errors.PermissionDenied) and "solver_target" in elsewhere.message
    too_many = request(suite_name="s", num_tasks=1, solvability_filter=True, min_solved=17)
    assert _field(_error(stub.GenerateTasks, too_many)) == "min_solved"


@pytest.mark.slow  # 16 graded episodes
def test_the_solvability_filter_keeps_what_the_solver_solves_often_enough(
    stub: envfarm_pb2_grpc.EnvFarmServiceStub, channel: grpc.Channel
) -> None:
    def generate(suite: str, min_solved: int) -> pb.GenerateTasksResponse:
        request = pb.GenerateTasksRequest(
            suite_name=suite,
            num_tasks=2,
            categories=["config_files"],
            solvability_filter=True,
            solve_attempts=4,
            min_solved=min_solved,
            seed=3,
        )
        done = _wait(channel, stub.GenerateTasks(request).name)
        response = pb.GenerateTasksResponse()
        done.response.Unpack(response)
        return response

    kept = generate("filter-a", 2)  # 2 of 4 attempts solve each task
    assert len(kept.env_ids) == 2 and kept.rejected_count == 0
    dropped = generate("filter-b", 3)
    assert not dropped.env_ids and dict(dropped.rejected_by_reason) == {"unsolvable": 2}
    assert not stub.ListEnvironments(
        pb.ListEnvironmentsRequest(id_prefix="terminal/filter-b/")
    ).environments
    stub.DeleteTaskSuite(pb.DeleteTaskSuiteRequest(suite_name="filter-a"))


def test_a_model_written_task_is_repaired_validated_and_kept(
    stub: envfarm_pb2_grpc.EnvFarmServiceStub,
    channel: grpc.Channel,
    model: tuple[ScriptedModel, str],
) -> None:
    op = stub.GenerateTasks(
        pb.GenerateTasksRequest(
            suite_name="gen-model",
            num_tasks=1,
            categories=["sqlite"],
            mode=pb.TASK_GENERATION_MODE_MODEL,
            seed=1,
        )
    )
    done = _wait(channel, op.name)
    response = pb.GenerateTasksResponse()
    done.response.Unpack(response)
    assert list(response.env_ids) == ["terminal/gen-model/sqlite-000"], done
    scripted = model[0]
    assert len(scripted.requests) == 2  # the nonsense answer went back for repair
    assert "not a valid task" in scripted.requests[1]["messages"][-1]["content"]
    (env,) = stub.ListEnvironments(
        pb.ListEnvironmentsRequest(id_prefix="terminal/gen-model/")
    ).environments
    assert env.task.source == "model" and "shop.db" in env.description
    stub.DeleteTaskSuite(pb.DeleteTaskSuiteRequest(suite_name="gen-model"))


@pytest.mark.slow  # loads a tiny model into a real rollout server
def test_rollout_plays_terminal_tasks_like_any_environment(
    server: str, tmp_path_factory: pytest.TempPathFactory
) -> None:
    from gantry.envfarm.terminal.llm import RolloutEndpoint
    from gantry.proto.common.v1 import sampling_pb2
    from gantry.proto.rollout.v1 import rollout_pb2, rollout_pb2_grpc
    from gantry.rollout.service import RolloutService
    from gantry.rollout.settings import RolloutSettings

    rollout = RolloutService(
        RolloutSettings(
            host="127.0.0.1",
            port=0,
            metrics_port=0,
            auth_token=TOKEN,
            log_json=False,
            data_dir=tmp_path_factory.mktemp("rollout"),
            envfarm_target=server,
            torch_threads=1,
        )
    )
    spec = rollout_pb2.EpisodeSpec(
        env_id=TASK,
        seeds=[7],
        episodes_per_seed=2,
        settings=episode_pb2.EpisodeSettings(observation_mode=episode_pb2.OBSERVATION_MODE_TEXT),
        sampling=sampling_pb2.SamplingParams(max_tokens=6, seed=0),
        max_turns=3,
    )
    with (
        serve_in_thread(rollout) as running,
        sync_channel(f"127.0.0.1:{running.port}", token=TOKEN) as channel,
    ):
        reply = rollout_pb2_grpc.RolloutServiceStub(channel).RunEpisodes(
            rollout_pb2.RunEpisodesRequest(spec=spec)
        )
        # The same server as a GenerateTasks text generator (RolloutService.Generate).
        endpoint = RolloutEndpoint(
            f"127.0.0.1:{running.port}",
            token=TOKEN,
            model="",
            sampling=sampling_pb2.SamplingParams(max_tokens=5, seed=1),
        )
        text = asyncio.run(endpoint.complete([{"role": "user", "content": "write a task"}]))
    assert isinstance(text, str) and text  # a random model's words, but an answer
    assert len(reply.trajectories) + len(reply.errors) == 2
    for error in reply.errors:  # a random policy's binary garbage is refused, never run
        assert error.status.code == grpc.StatusCode.INVALID_ARGUMENT.value[0]
        assert "action" in error.status.message
    for trajectory in reply.trajectories:
        assert trajectory.seed == 7 and "bash shell" in trajectory.task
        first = trajectory.turns[0].observation.text
        assert first.startswith("Edit the JSON file config/app.json")
        assert len(trajectory.turns) == 3 and trajectory.truncated  # the turn limit
        for turn in trajectory.turns:
            assert "exit_code" in turn.info or turn.info["timed_out"]
        assert trajectory.final_reward == 0.0  # a random policy does not edit JSON


def test_the_gymnasium_client_plays_a_terminal_task(channel: grpc.Channel) -> None:
    with RemoteEnv(channel, TASK, seed=1) as env:
        obs, _ = env.reset()
        assert obs["image"] is None and "config/app.json" in obs["text"]
        for action in env.solve():
            obs, reward, terminated, _, info = env.step(action)
        assert terminated and reward == 1.0 and info["outcome"]["success"]
        assert info["outcome"]["metric"] == "completion_test"
