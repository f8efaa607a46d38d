"""envfarm scaled out: real replica processes behind a routing channel (static list).

Sessions spread over the replicas and every call reaches its owner; a replica asked about
another's session names the owner; a killed replica's sessions fail with OWNER_UNAVAILABLE
while the others go on; a restarted one answers SESSION_LOST; VisGym sessions recover
from their exported state (opt-in); SIGTERM drains: no new sessions, the live ones are
served until they end.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import time
from collections.abc import Iterator

import grpc
import pytest

from gantry.core import errors
from gantry.core.client import sync_channel
from gantry.core.ports import free_port
from gantry.core.routing import (
    LOAD_KEY,
    OWNER_UNAVAILABLE,
    REPLICA_DRAINING,
    SESSION_ELSEWHERE,
    SESSION_LOST,
    AioRoutingChannel,
    owner_of,
)
from gantry.core.testing.process import ServiceProcess, spawn_service
from gantry.envfarm.client import RemoteEnv, RemoteVectorEnv
from gantry.envfarm.routing import farm_channel
from gantry.proto.envfarm.v1 import envfarm_pb2, envfarm_pb2_grpc

pytestmark = pytest.mark.slow
MAZE = "visgym/maze_2d"
PLAN_PREFIX = 3  # steps played before a fault


@contextlib.contextmanager
def replica(name: str, port: int = 0, **settings: str) -> Iterator[ServiceProcess]:
    env = {
        "GANTRY_ENVFARM_REPLICA_NAME": name,
        "GANTRY_ENVFARM_TERMINAL_ENABLED": "false",
        "GANTRY_ENVFARM_NOTEBOOK_ENABLED": "false",
        "GANTRY_ENVFARM_EXECUTOR_WORKERS": "2",
        **({"GANTRY_ENVFARM_PORT": str(port)} if port else {}),
        **{f"GANTRY_ENVFARM_{k.upper()}": v for k, v in settings.items()},
    }
    with spawn_service("gantry.envfarm", "envfarm", token=None, env=env) as process:
        yield process


def direct(process: ServiceProcess) -> envfarm_pb2_grpc.EnvFarmServiceStub:
    return envfarm_pb2_grpc.EnvFarmServiceStub(sync_channel(process.target, retry=None))


def spec(*processes: tuple[str, ServiceProcess]) -> str:
    return ",".join(f"{name}={p.target}" for name, p in processes)


def typed(call: object) -> errors.GantryError:
    with pytest.raises(grpc.RpcError) as failure:
        call()  # type: ignore[operator]
    return errors.from_rpc_error(failure.value)


@pytest.fixture(scope="module")
def farm() -> Iterator[dict[str, ServiceProcess]]:
    with replica("farm-a") as a, replica("farm-b") as b:
        yield {"farm-a": a, "farm-b": b}


def test_sessions_spread_and_every_call_reaches_its_owner(
    farm: dict[str, ServiceProcess],
) -> None:
    channel = farm_channel(spec(*farm.items()))
    envs = [RemoteEnv(channel, MAZE, seed=i) for i in range(6)]
    try:
        owners = [owner_of(env.session_id) for env in envs]
        assert all(o is not None for o in owners)
        counts = {name: sum(o.name == name for o in owners if o) for name in farm}
        assert counts == {"farm-a": 3, "farm-b": 3}, counts
        for env in envs:  # each call goes to the owner (another replica would refuse it)
            _, _, _, _, info = env.step(env.solve()[0])
            assert info["step"] == 1
        # Asked directly, the other replica names the owner: never a bare NOT_FOUND.
        session = envs[0].session_id
        owner = owner_of(session)
        assert owner is not None
        other = next(p for n, p in farm.items() if n != owner.name)
        error = typed(
            lambda: direct(other).Step(envfarm_pb2.StepRequest(session_id=session, action="up"))
        )
        assert error.code == grpc.StatusCode.FAILED_PRECONDITION
        assert error.reason == SESSION_ELSEWHERE
        assert error.metadata["owner"] == owner.name
        # Calls without a session (a server stream here: the loop's demonstrations) go
        # to any replica.
        demos = list(
            envs[0].stub.ExportDemonstrations(
                envfarm_pb2.ExportDemonstrationsRequest(env_id=MAZE, seeds=[1, 2])
            )
        )
        assert [d.seed for d in demos] == [1, 2]
        # Each creation reports the replica's load, which placement balances on.
        reply, call = direct(farm["farm-a"]).CreateSession.with_call(
            envfarm_pb2.CreateSessionRequest(env_id=MAZE)
        )
        load = dict(call.trailing_metadata())[LOAD_KEY]
        assert load == f"{counts['farm-a']}/1024"  # live sessions before this one / max
        direct(farm["farm-a"]).CloseSession(
            envfarm_pb2.CloseSessionRequest(session_id=reply.session.id)
        )
        # An id this farm never made stays NOT_FOUND.
        error = typed(
            lambda: envs[0].stub.GetSession(envfarm_pb2.GetSessionRequest(session_id="x"))
        )
        assert error.code == grpc.StatusCode.NOT_FOUND
    finally:
        for env in envs:
            env.close()


def test_a_dns_target_resolves_to_the_replicas(farm: dict[str, ServiceProcess]) -> None:
    """dns:/// (a headless Service in Kubernetes): here localhost, which may also resolve
    to ::1, where nothing listens: that address refuses and the next one is used."""
    port = farm["farm-a"].target.rsplit(":", 1)[1]
    channel = farm_channel(f"dns:///localhost:{port}")
    assert "127.0.0.1:" + port in channel.replicas.addresses()
    with RemoteEnv(channel, MAZE, seed=3) as env:
        assert env.session_id.startswith("farm-a.")
        _, _, _, _, info = env.step("up")
        assert info["step"] == 1
    channel.close()


def test_step_batch_fans_out_per_owner_and_keeps_the_order(
    farm: dict[str, ServiceProcess],
) -> None:
    channel = farm_channel(spec(*farm.items()))
    with RemoteVectorEnv(channel, MAZE, 4) as vec:
        assert {owner_of(e.session_id).name for e in vec.envs} == set(farm)  # type: ignore[union-attr]
        plans = [env.solve() for env in vec.envs]
        request = envfarm_pb2.StepBatchRequest(
            items=[
                envfarm_pb2.StepBatchItem(session_id=env.session_id, action=plan[0])
                for env, plan in zip(vec.envs, plans, strict=True)
            ],
            observation_encoding=envfarm_pb2.OBSERVATION_ENCODING_RAW,
        )
        reply = envfarm_pb2_grpc.EnvFarmServiceStub(channel).StepBatch(request)
        assert [r.session_id for r in reply.results] == [e.session_id for e in vec.envs]
        assert all(r.HasField("result") and r.result.step_index == 1 for r in reply.results)
        # Request-wide options (here the encoding) reach every owner's sub-batch.
        assert all(r.result.HasField("observation_pixels") for r in reply.results)
        assert not any(r.result.observation.HasField("image") for r in reply.results)
        # A caller's mistake across sub-batches is still the whole call's INVALID_ARGUMENT.
        twice = envfarm_pb2.StepBatchRequest(items=[*request.items, request.items[0]])
        error = typed(lambda: envfarm_pb2_grpc.EnvFarmServiceStub(channel).StepBatch(twice))
        assert error.code == grpc.StatusCode.INVALID_ARGUMENT
        assert "items[4].session_id" in error.message
        observations, _, _, _, infos = vec.step([plan[1] for plan in plans])
        assert [info["step"] for info in infos] == [2, 2, 2, 2]
        assert len(observations) == 4


def test_the_asyncio_channel_routes_like_the_blocking_one(
    farm: dict[str, ServiceProcess],
) -> None:
    """rollout's episode runner dials envfarm through AioRoutingChannel."""

    async def play() -> None:
        channel = AioRoutingChannel(spec(*farm.items()))
        stub = envfarm_pb2_grpc.EnvFarmServiceStub(channel)
        ids = []
        for seed in range(4):
            created = await stub.CreateSession(
                envfarm_pb2.CreateSessionRequest(env_id=MAZE, seed=seed)
            )
            ids.append(created.session.id)
        assert {o.name for o in map(owner_of, ids) if o} == set(farm)
        for session_id in ids:
            stepped = await stub.Step(envfarm_pb2.StepRequest(session_id=session_id, action="up"))
            assert stepped.result.step_index == 1
        batch = await stub.StepBatch(
            envfarm_pb2.StepBatchRequest(
                items=[envfarm_pb2.StepBatchItem(session_id=i, action="up") for i in ids]
            )
        )
        assert [r.session_id for r in batch.results] == ids
        assert [r.result.step_index for r in batch.results] == [2, 2, 2, 2]
        listed = await stub.ListEnvironments(envfarm_pb2.ListEnvironmentsRequest(id_prefix=MAZE))
        assert [e.id for e in listed.environments] == [MAZE]
        for session_id in ids:
            await stub.CloseSession(envfarm_pb2.CloseSessionRequest(session_id=session_id))
        await channel.close()

    asyncio.run(asyncio.wait_for(play(), 60))


def test_a_killed_replica_fails_its_sessions_cleanly_and_recovery_replays_them(
    farm: dict[str, ServiceProcess],
) -> None:
    with replica("farm-c") as c:
        replicas = spec(*farm.items(), ("farm-c", c))
        plain, recovering = farm_channel(replicas), farm_channel(replicas, recover=True)
        envs = [RemoteEnv(plain, MAZE, seed=i) for i in range(3)]
        kept = [RemoteEnv(recovering, MAZE, seed=10 + i) for i in range(3)]
        on_c = next(e for e in envs if e.session_id.startswith("farm-c."))
        saved = next(e for e in kept if e.session_id.startswith("farm-c."))
        plan = saved.solve()
        for action in plan[:PLAN_PREFIX]:
            saved.step(action)
        # The reference: the same episode, played on a replica that stays up.
        twin = RemoteEnv(direct_channel(farm["farm-a"]), MAZE, seed=saved.session.seed)
        for action in plan[:PLAN_PREFIX]:
            twin.step(action)
        expected = twin.step(plan[PLAN_PREFIX])
        # A vector env over a recovering channel: farm-c first (a fresh channel knows no load).
        vec_channel = farm_channel(
            f"farm-c={c.target},farm-a={farm['farm-a'].target}", recover=True
        )
        vec = RemoteVectorEnv(vec_channel, MAZE, 2)
        assert [e.session_id[:7] for e in vec.envs] == ["farm-c.", "farm-a."]
        vec.step(["up", "up"])
        c.process.send_signal(signal.SIGKILL)
        c.process.wait(timeout=10)

        started = time.monotonic()
        with pytest.raises(errors.Unavailable) as failure:
            on_c.step("up")
        assert time.monotonic() - started < 10, "a dead owner fails fast"
        assert failure.value.reason == OWNER_UNAVAILABLE
        assert failure.value.metadata["owner"] == "farm-c"
        for env in envs:  # the others play on
            if env is not on_c:
                env.step("up")
        batch = envfarm_pb2_grpc.EnvFarmServiceStub(plain).StepBatch(
            envfarm_pb2.StepBatchRequest(
                items=[
                    envfarm_pb2.StepBatchItem(session_id=e.session_id, action="up") for e in envs
                ]
            )
        )
        for env, result in zip(envs, batch.results, strict=True):
            if env is on_c:
                assert errors.error_from_status(result.error).reason == OWNER_UNAVAILABLE
            else:
                assert result.HasField("result")
        fresh = RemoteEnv(plain, MAZE)  # new sessions avoid the dead replica
        assert not fresh.session_id.startswith("farm-c.")

        # Opt-in recovery: the same episode continues on a live replica.
        obs, reward, terminated, _, info = saved.step(plan[PLAN_PREFIX])
        assert info["step"] == expected[4]["step"] == PLAN_PREFIX + 1
        assert obs["text"] == expected[0]["text"]
        assert (reward, terminated) == (expected[1], expected[2])
        assert recovering.recoveries == 1  # type: ignore[attr-defined]
        # StepBatch: the lost item is recovered and stepped in its place, the other as is.
        _, _, _, _, infos = vec.step(["up", "up"])
        assert [info["step"] for info in infos] == [2, 2]
        assert vec_channel.recoveries == 1  # type: ignore[attr-defined]
        vec.close()
        for env in [*envs, *kept, fresh, twin]:
            env.close()  # a session gone with its replica has nothing left to close


def direct_channel(process: ServiceProcess) -> grpc.Channel:
    return sync_channel(process.target)


def test_a_restarted_replica_answers_session_lost(farm: dict[str, ServiceProcess]) -> None:
    port = free_port()
    with replica("farm-r", port) as first:
        replicas = spec(("farm-r", first), ("farm-a", farm["farm-a"]))
        lost = RemoteEnv(farm_channel("farm-r=" + first.target), MAZE, seed=1)
        # A fresh channel knows no load and tries the replicas in order: farm-r first.
        kept = RemoteEnv(farm_channel(replicas, recover=True), MAZE, seed=2)
        assert kept.session_id.startswith("farm-r.")
        kept.step("up")
        first.process.send_signal(signal.SIGKILL)
        first.process.wait(timeout=10)
    with replica("farm-r", port):
        with pytest.raises(errors.Aborted) as failure:
            lost.step("up")
        assert failure.value.reason == SESSION_LOST
        assert failure.value.metadata["owner"] == "farm-r"
        _, _, _, _, info = kept.step("up")  # recovered from its exported state
        assert info["step"] == 2


def test_sigterm_drains_sessions_before_stopping(farm: dict[str, ServiceProcess]) -> None:
    with replica("farm-d", drain_timeout_s="30", grace_period_s="1") as d:
        stub = direct(d)
        session = stub.CreateSession(envfarm_pb2.CreateSessionRequest(env_id=MAZE)).session
        d.process.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + 10
        while True:  # refused once the signal is handled
            try:
                extra = stub.CreateSession(envfarm_pb2.CreateSessionRequest(env_id=MAZE))
                stub.CloseSession(envfarm_pb2.CloseSessionRequest(session_id=extra.session.id))
            except grpc.RpcError as exc:
                error = errors.from_rpc_error(exc)
                assert error.code == grpc.StatusCode.UNAVAILABLE
                assert error.reason == REPLICA_DRAINING
                break
            assert time.monotonic() < deadline, "the replica never started draining"
            time.sleep(0.1)
        # The router places new sessions elsewhere; the live session is still served.
        channel = farm_channel(spec(("farm-d", d), ("farm-a", farm["farm-a"])))
        placed = RemoteEnv(channel, MAZE)
        assert placed.session_id.startswith("farm-a.")
        placed.close()
        stepped = stub.Step(envfarm_pb2.StepRequest(session_id=session.id, action="up"))
        assert stepped.result.step_index == 1
        assert d.process.poll() is None, "it waits for its session"
        stub.CloseSession(envfarm_pb2.CloseSessionRequest(session_id=session.id))
        assert d.process.wait(timeout=15) == 0  # the last session ended: it stops


def test_an_owner_the_list_does_not_name_is_found_by_asking_every_replica(
    farm: dict[str, ServiceProcess],
) -> None:
    """Replica names the channel cannot map (a list labelled differently from the pods):
    the channel asks each replica's GetSession and sends the call to the one that has it."""
    created = direct(farm["farm-b"]).CreateSession(envfarm_pb2.CreateSessionRequest(env_id=MAZE))
    session_id = created.session.id
    mislabelled = f"x={farm['farm-a'].target},y={farm['farm-b'].target}"
    channel = farm_channel(mislabelled)
    stub = envfarm_pb2_grpc.EnvFarmServiceStub(channel)
    stepped = stub.Step(envfarm_pb2.StepRequest(session_id=session_id, action="up"))
    assert stepped.result.step_index == 1
    error = typed(
        lambda: stub.Step(envfarm_pb2.StepRequest(session_id="farm-a.0.none", action="up"))
    )
    assert error.code in (grpc.StatusCode.NOT_FOUND, grpc.StatusCode.ABORTED)
    stub.CloseSession(envfarm_pb2.CloseSessionRequest(session_id=session_id))
    channel.close()
