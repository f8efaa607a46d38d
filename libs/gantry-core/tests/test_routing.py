"""gantry.core.routing without servers: ids, the errors they yield, replica sets, placement."""

from __future__ import annotations

import grpc
import pytest

from gantry.core import errors
from gantry.core.routing import (
    LOAD_KEY,
    OWNER_UNAVAILABLE,
    SESSION_ELSEWHERE,
    SESSION_LOST,
    Owner,
    Replicas,
    owner_of,
    owner_unavailable,
)


def test_a_session_id_names_its_owner_and_incarnation() -> None:
    me = Owner.start("envfarm-0")
    session_id = me.new_session_id()
    assert owner_of(session_id) == me
    assert me.new_session_id() != session_id
    assert Owner.start("envfarm-0").incarnation != me.incarnation  # a restart is told apart
    for plain in ("", "0123abcd" * 4, "a.b", "Envfarm.0123abcd.x", "x.nothex!.y"):
        assert owner_of(plain) is None
    with pytest.raises(ValueError, match="DNS label"):
        Owner.start("Not_A_Label")


def test_a_replica_answers_for_sessions_it_does_not_hold() -> None:
    me = Owner.start("envfarm-0")
    other = Owner.start("envfarm-1").new_session_id()
    elsewhere = me.missing(other)
    assert elsewhere.code == grpc.StatusCode.FAILED_PRECONDITION
    assert elsewhere.reason == SESSION_ELSEWHERE
    assert elsewhere.metadata["owner"] == "envfarm-1"
    assert elsewhere.metadata["replica"] == "envfarm-0"
    restarted = Owner("envfarm-0", "00000000").new_session_id()
    lost = me.missing(restarted)
    assert lost.code == grpc.StatusCode.ABORTED and lost.reason == SESSION_LOST
    for unknown in (me.new_session_id(), "legacy-id"):
        assert me.missing(unknown).code == grpc.StatusCode.NOT_FOUND


def test_routed_errors_read_like_a_servers() -> None:
    cause = errors.Unavailable("connection refused")
    routed = owner_unavailable("envfarm-2.0123abcd.ff", "envfarm-2", cause)
    typed = errors.from_rpc_error(routed)
    assert isinstance(typed, errors.Unavailable)
    assert typed.reason == OWNER_UNAVAILABLE
    assert typed.metadata == {"owner": "envfarm-2", "session_id": "envfarm-2.0123abcd.ff"}
    assert typed.retry_after_s == 1.0


def test_static_lists_map_owners_to_addresses() -> None:
    replicas = Replicas("a=127.0.0.1:1, b=127.0.0.1:2")
    assert replicas.addresses() == ["127.0.0.1:1", "127.0.0.1:2"]
    assert replicas.address_of(Owner.start("b").new_session_id()) == "127.0.0.1:2"
    assert replicas.address_of(Owner.start("c").new_session_id()) is None  # ask around
    assert replicas.address_of("legacy") is None
    single = Replicas("host:50053")
    assert single.address_of("legacy") == "host:50053"
    learned = Owner.start("c").new_session_id()
    replicas.created(learned, "127.0.0.1:9", None)
    assert replicas.address_of(learned) == "127.0.0.1:9"
    for bad in ("", "host", "Bad_Name=h:1", "h:port"):
        with pytest.raises(ValueError, match=r"empty|host:port|DNS label"):
            Replicas(bad)


def test_dns_targets_reach_owners_by_their_pod_names() -> None:
    replicas = Replicas(
        "dns:///envfarm-headless.ns.svc:50053",
        resolve=lambda host, port: [f"10.0.0.1:{port}", f"10.0.0.2:{port}"],
    )
    assert replicas.addresses() == ["10.0.0.1:50053", "10.0.0.2:50053"]
    owned = Owner.start("envfarm-3").new_session_id()
    assert replicas.address_of(owned) == "envfarm-3.envfarm-headless.ns.svc:50053"


def test_new_sessions_go_to_the_least_loaded_replica_in_turn() -> None:
    replicas = Replicas("a=h:1,b=h:2,c=h:3")
    firsts = [replicas.candidates()[0] for _ in range(3)]
    assert sorted(firsts) == ["h:1", "h:2", "h:3"]  # in turn when nothing is known
    replicas.created(Owner.start("a").new_session_id(), "h:1", [(LOAD_KEY, "90/100")])
    replicas.created(Owner.start("b").new_session_id(), "h:2", [(LOAD_KEY, "10/100")])
    replicas.created(Owner.start("c").new_session_id(), "h:3", [(LOAD_KEY, "50/200")])
    assert replicas.candidates() == ["h:2", "h:3", "h:1"]  # 11%, 25.5%, 91%
    replicas.skip("h:2")
    assert replicas.candidates()[-1] == "h:2"  # refused lately: tried last
