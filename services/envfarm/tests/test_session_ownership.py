"""SessionManager across replicas: ids name this replica, other replicas' ids get typed
errors, and a drain refuses new sessions while it waits, up to a bound, for the live ones."""

from __future__ import annotations

import asyncio

import grpc
import pytest

from gantry.core import errors
from gantry.core.routing import REPLICA_DRAINING, SESSION_ELSEWHERE, SESSION_LOST, Owner, owner_of
from gantry.envfarm.envs.registry import make
from gantry.envfarm.sessions import SessionManager

MAZE = "maze_2d"


def manager(name: str = "envfarm-0") -> SessionManager:
    return SessionManager(max_sessions=4, idle_timeout_s=60, lifetime_s=60, owner=Owner.start(name))


def test_ids_name_the_replica_and_others_ids_say_where_they_live() -> None:
    here = manager()
    session = here.add(MAZE, make(MAZE, "easy"), 0, None, None)
    assert owner_of(session.id) == here.owner
    assert here.get(session.id) is session
    with pytest.raises(errors.FailedPrecondition) as elsewhere:
        here.get(Owner.start("envfarm-1").new_session_id())
    assert elsewhere.value.reason == SESSION_ELSEWHERE
    assert elsewhere.value.metadata["owner"] == "envfarm-1"
    restarted = manager()  # the same name, a new process
    with pytest.raises(errors.Aborted) as lost:
        restarted.get(session.id)
    assert lost.value.reason == SESSION_LOST
    here.close(session.id)
    with pytest.raises(errors.NotFound):  # closed here: an ordinary NOT_FOUND
        here.get(session.id)


def test_a_drain_refuses_new_sessions_and_ends_with_the_last_one() -> None:
    async def drain() -> None:
        here = manager()
        session = here.add(MAZE, make(MAZE, "easy"), 0, None, None)
        waiting = asyncio.create_task(here.drain(30))
        await asyncio.sleep(0.05)
        with pytest.raises(errors.Unavailable) as refused:
            here.reserve()
        assert refused.value.reason == REPLICA_DRAINING
        assert refused.value.code == grpc.StatusCode.UNAVAILABLE
        assert here.get(session.id) is session  # still served
        assert not waiting.done()
        here.close(session.id)
        assert await asyncio.wait_for(waiting, 5) == 0

    asyncio.run(drain())


def test_a_drain_gives_up_at_its_bound() -> None:
    async def drain() -> int:
        here = manager()
        here.add(MAZE, make(MAZE, "easy"), 0, None, None)
        return await here.drain(0.1)

    assert asyncio.run(drain()) == 1
