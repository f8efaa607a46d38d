"""Embedded Qdrant persists: upsert, kill the process (SIGKILL), restart, same results.

On Edge (the WAL) an index build starts right after the upsert (trigger at 2 points, no
quiet time), so the kill usually interrupts it and the restart recovers from that too.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from gantry.core.client import sync_channel
from gantry.core.testing.process import spawn_service
from gantry.proto.retrieval.v1 import retrieval_pb2 as pb
from gantry.proto.retrieval.v1 import retrieval_pb2_grpc

DOCS = {
    "valve": "Replace the pressure valve PV-220 when the gauge reads above 8 bar.",
    "belt": "The drive belt DB-17 wears out after roughly 2000 operating hours.",
    "fan": "Clean the cooling fan filter every month to avoid overheating.",
    "pump": "Hydraulic pump HP-9 needs ISO VG 46 oil.",
}


def _search(target: str) -> list[tuple[str, float]]:
    with sync_channel(target) as channel:
        stub = retrieval_pb2_grpc.RetrievalServiceStub(channel)
        reply = stub.Search(
            pb.SearchRequest(
                collection="kb",
                text="which oil does the HP-9 pump take?",
                top_k=3,
                mode=pb.SEARCH_MODE_HYBRID,
            )
        )
        return [(r.id, round(r.score, 5)) for r in reply.results]


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["edge", "local"])
def test_data_survives_a_killed_process(tmp_path: Path, backend: str) -> None:
    env = {
        "GANTRY_RETRIEVAL_DATA_DIR": str(tmp_path / "data"),
        "GANTRY_RETRIEVAL_QDRANT_EMBEDDED": backend,
        "GANTRY_RETRIEVAL_EDGE_INDEX_MIN_POINTS": "2",
        "GANTRY_RETRIEVAL_EDGE_INDEX_QUIET_S": "0",
    }
    with spawn_service(
        "gantry.retrieval", "retrieval", token=None, env=env, startup_timeout_s=240
    ) as first:
        with sync_channel(first.target) as channel:
            stub = retrieval_pb2_grpc.RetrievalServiceStub(channel)
            stub.CreateCollection(pb.CreateCollectionRequest(name="kb", sparse_enabled=True))
            points = [pb.Point(id=k, text=v) for k, v in DOCS.items()]
            stub.Upsert(pb.UpsertRequest(collection="kb", points=points, wait=True))
        before = _search(first.target)
        first.process.kill()  # no graceful shutdown: nothing gets flushed on the way out
        first.process.wait()
    assert before[0][0] == "pump" and len(before) == 3
    assert (tmp_path / "data" / ("qdrant-edge" if backend == "edge" else "qdrant")).is_dir()
    with spawn_service(
        "gantry.retrieval", "retrieval", token=None, env=env, startup_timeout_s=240
    ) as second:
        assert _search(second.target) == before
        with sync_channel(second.target) as channel:
            stub = retrieval_pb2_grpc.RetrievalServiceStub(channel)
            info = stub.GetCollection(pb.GetCollectionRequest(name="kb")).collection
        assert info.points_count == len(DOCS) and info.sparse_enabled
