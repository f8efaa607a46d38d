"""The trainer dials only rollout servers its operator configured, so the bearer token it
carries never reaches an address taken from a request: a listener on a port nobody
configured must see no connection at all, whatever the request says."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import grpc
import pytest

from gantry.proto.common.v1 import episode_pb2
from gantry.proto.trainer.v1 import trainer_pb2

from .helpers import TOKEN, error_of, stubs, trainer_server, wait_run


class Listener:
    """A plain TCP listener that records every connection and every byte."""

    def __init__(self) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.sock.settimeout(0.1)
        self.port = self.sock.getsockname()[1]
        self.connections = 0
        self.received = b""
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except TimeoutError:
                continue
            self.connections += 1
            conn.settimeout(0.5)
            try:
                while chunk := conn.recv(65536):
                    self.received += chunk
            except OSError:
                pass
            finally:
                conn.close()

    def close(self) -> None:
        self._stop.set()
        self._thread.join(5)
        self.sock.close()


@contextmanager
def listener() -> Iterator[Listener]:
    harvest = Listener()
    try:
        yield harvest
    finally:
        harvest.close()


def grpo_config(tiny_path: str, **fields: Any) -> trainer_pb2.RunConfig:
    config = trainer_pb2.RunConfig(
        base_model=tiny_path, grpo=trainer_pb2.GrpoConfig(group_size=2), batch_size=2, **fields
    )
    config.data.submitted = True
    return config


def test_request_addresses_are_refused_and_never_dialled(tmp_path: Path, tiny_path: str) -> None:
    with (
        listener() as harvest,
        trainer_server(
            tmp_path, rollout_target="127.0.0.1:1", rollout_peers={"blue": "127.0.0.1:2"}
        ) as target,
        stubs(target) as (stub, _),
    ):
        spellings = [
            harvest.address,
            f"dns:///{harvest.address}",
            f"ipv4:{harvest.address}",
            f"localhost:{harvest.port}",
            f"{harvest.address} ",
            "127.0.0.1:1,127.0.0.1:2",
        ]
        for address in spellings:
            for fields in (
                {"rollout_target": address},
                {"rollout_target": address, "publish_interval": 1},
            ):
                err = error_of(
                    stub.StartRun,
                    trainer_pb2.StartRunRequest(config=grpo_config(tiny_path, **fields)),
                )
                assert err.code == grpc.StatusCode.PERMISSION_DENIED, (address, err)
                assert "config.rollout_target" in err.message
            episodes = grpo_config(tiny_path, rollout_target=address)
            episodes.data.episodes.env_id = "maze_2d"
            episodes.data.episodes.settings.observation_mode = episode_pb2.OBSERVATION_MODE_TEXT
            err = error_of(stub.StartRun, trainer_pb2.StartRunRequest(config=episodes))
            assert err.code == grpc.StatusCode.PERMISSION_DENIED

        op = stub.StartRun(trainer_pb2.StartRunRequest(config=grpo_config(tiny_path)))
        meta = trainer_pb2.StartRunMetadata()
        op.metadata.Unpack(meta)
        wait_run(stub, meta.run_id, until=lambda r: r.state == trainer_pb2.RUN_STATE_RUNNING)
        for address in spellings:
            err = error_of(
                stub.PublishWeights,
                trainer_pb2.PublishWeightsRequest(run_id=meta.run_id, rollout_target=address),
            )
            assert err.code == grpc.StatusCode.PERMISSION_DENIED, (address, err)
            assert "rollout_target" in err.message and "blue" in err.message
        stub.CancelRun(trainer_pb2.CancelRunRequest(run_id=meta.run_id))
        wait_run(stub, meta.run_id)
        assert harvest.connections == 0 and TOKEN.encode() not in harvest.received


def test_a_persisted_run_is_checked_again_before_dialling(tmp_path: Path, tiny_path: str) -> None:
    """run.json names a rollout address that was configured when the run started but no
    longer is: the restarted trainer refuses to dial it (PublishWeights without a target)."""
    with listener() as harvest:
        # Exactly a configured address is accepted too (clients that pass what they were given).
        config = grpo_config(tiny_path, rollout_target=harvest.address)
        with (
            trainer_server(tmp_path, rollout_peers={"blue": harvest.address}) as target,
            stubs(target) as (stub, _),
        ):
            op = stub.StartRun(trainer_pb2.StartRunRequest(config=config))
            meta = trainer_pb2.StartRunMetadata()
            op.metadata.Unpack(meta)
            wait_run(stub, meta.run_id, until=lambda r: r.state == trainer_pb2.RUN_STATE_RUNNING)
        # Restarted with another peer list (the listener's port is not in it).
        with (
            trainer_server(tmp_path, rollout_peers={"green": "127.0.0.1:1"}) as target,
            stubs(target) as (stub, _),
        ):
            run = wait_run(
                stub, meta.run_id, until=lambda r: r.state == trainer_pb2.RUN_STATE_RUNNING
            )
            assert run.config.rollout_target == harvest.address
            err = error_of(
                stub.PublishWeights, trainer_pb2.PublishWeightsRequest(run_id=meta.run_id)
            )
            assert err.code == grpc.StatusCode.PERMISSION_DENIED
            assert "config.rollout_target" in err.message
            stub.CancelRun(trainer_pb2.CancelRunRequest(run_id=meta.run_id))
            cancelled = wait_run(stub, meta.run_id)
            assert cancelled.state == trainer_pb2.RUN_STATE_CANCELLED
        assert harvest.connections == 0 and TOKEN.encode() not in harvest.received


@pytest.mark.slow
def test_an_episodes_run_whose_rollout_is_no_longer_configured_fails_on_resume(
    tmp_path: Path, tiny_path: str
) -> None:
    with listener() as harvest:
        config = grpo_config(tiny_path, rollout_target=harvest.address)
        config.data.episodes.env_id = "maze_2d"
        config.data.episodes.settings.observation_mode = episode_pb2.OBSERVATION_MODE_TEXT
        with (
            trainer_server(tmp_path, rollout_target=harvest.address) as target,
            stubs(target) as (stub, _),
        ):
            op = stub.StartRun(trainer_pb2.StartRunRequest(config=config))
            meta = trainer_pb2.StartRunMetadata()
            op.metadata.Unpack(meta)
            wait_run(stub, meta.run_id, until=lambda r: r.state == trainer_pb2.RUN_STATE_RUNNING)
        time.sleep(1.0)  # the configured listener was dialled; let that connection end
        seen = harvest.connections
        with (
            trainer_server(tmp_path, rollout_target="127.0.0.1:1") as target,
            stubs(target) as (stub, _),
        ):
            run = wait_run(stub, meta.run_id)
        time.sleep(1.0)
        assert run.state == trainer_pb2.RUN_STATE_FAILED
        assert run.error.code == grpc.StatusCode.PERMISSION_DENIED.value[0]
        assert "config.rollout_target" in run.error.message
        assert harvest.connections == seen
