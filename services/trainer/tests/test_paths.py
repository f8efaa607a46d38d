"""Every path a client names stays inside its storage root: dataset_uri (datasets root),
output_uri (outputs root), base_model (models root or this trainer's checkpoints).
Escapes are PERMISSION_DENIED naming the field, before anything is opened, written or
deleted, and resume trusts neither checkpoint.json's uri nor a pickle in trainer_state.pt.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest
import torch
from google.protobuf import json_format

from gantry.proto.trainer.v1 import trainer_pb2, trainer_pb2_grpc
from gantry.trainer import checkpoints

from .helpers import MODELS_ROOT, error_of, sft_config, stubs, trainer_server, wait_run


class Layout:
    """tmp/state (data_dir), tmp/datasets (datasets root), tmp/outside (not a root)."""

    def __init__(self, tmp: Path, chats: Path) -> None:
        self.state = tmp / "state"
        self.datasets = tmp / "datasets"
        self.outputs = self.state / "outputs"  # the default outputs root
        self.outside = tmp / "outside"
        for folder in (self.state, self.datasets, self.outputs, self.outside):
            folder.mkdir(parents=True)
        self.dataset = self.datasets / "demos.jsonl"
        shutil.copy(chats, self.dataset)
        self.secret = self.outside / "secret.jsonl"  # valid data: only the root refuses it
        shutil.copy(chats, self.secret)
        self.planted = self.outside / ".tmp-step-000001-0123456789ab"
        self.planted.mkdir()
        (self.planted / "keep").write_text("not the trainer's")

    def outside_entries(self) -> list[str]:
        return sorted(str(p.relative_to(self.outside)) for p in self.outside.rglob("*"))


@pytest.fixture(scope="module")
def layout(tmp_path_factory: pytest.TempPathFactory, chats: Path) -> Layout:
    return Layout(tmp_path_factory.mktemp("roots"), chats)


@pytest.fixture(scope="module")
def stub(layout: Layout) -> Iterator[trainer_pb2_grpc.TrainerServiceStub]:
    with (
        trainer_server(layout.state, datasets_root=layout.datasets) as target,
        stubs(target) as (trainer, _),
    ):
        yield trainer


def start(stub: trainer_pb2_grpc.TrainerServiceStub, config: trainer_pb2.RunConfig) -> Any:
    return error_of(stub.StartRun, trainer_pb2.StartRunRequest(config=config))


def dataset_config(tiny_path: str, uri: str, **fields: Any) -> trainer_pb2.RunConfig:
    config = sft_config(tiny_path, Path("unused"), steps=1, **fields)
    config.data.dataset_uri = uri
    return config


def test_dataset_uri_escapes_are_permission_denied(
    stub: trainer_pb2_grpc.TrainerServiceStub, layout: Layout, tiny_path: str
) -> None:
    link = layout.datasets / "link.jsonl"
    link.symlink_to(layout.secret)
    mixed = layout.datasets / "mixed"
    mixed.mkdir()
    shutil.copy(layout.dataset, mixed / "a.jsonl")
    (mixed / "b.jsonl").symlink_to(layout.secret)
    escapes = [
        str(layout.secret),
        "/etc/shadow",
        "/proc/self/environ",
        "/nonexistent/x.jsonl",
        "../outside/secret.jsonl",
        "sub/../../outside/secret.jsonl",
        f"file://{layout.secret}",
        "s3://bucket/data.jsonl",
        "link.jsonl",
        "mixed",
    ]
    messages = {}
    for uri in escapes:
        err = start(stub, dataset_config(tiny_path, uri))
        assert err.code == grpc.StatusCode.PERMISSION_DENIED, (uri, err)
        assert "config.data.dataset_uri" in err.message, err.message
        messages[uri] = err.message
    # The answer does not depend on whether the file exists outside the root.
    assert (
        messages["/etc/shadow"] == messages["/nonexistent/x.jsonl"] == messages[str(layout.secret)]
    )


@pytest.mark.slow
def test_dataset_walks_stay_inside_the_root(
    stub: trainer_pb2_grpc.TrainerServiceStub, layout: Layout, tiny_path: str
) -> None:
    walk = layout.datasets / "walk"
    walk.mkdir()
    (walk / "out").symlink_to(layout.outside, target_is_directory=True)
    err = start(stub, dataset_config(tiny_path, "walk"))  # followed, it would find data
    assert err.code == grpc.StatusCode.INVALID_ARGUMENT and "no JSONL data" in err.message
    missing = start(stub, dataset_config(tiny_path, "missing.jsonl"))
    assert missing.code == grpc.StatusCode.NOT_FOUND
    for bad in ("x" * 300 + ".jsonl", "a\x00b"):
        err = start(stub, dataset_config(tiny_path, bad))
        assert err.code == grpc.StatusCode.INVALID_ARGUMENT, err
        assert "config.data.dataset_uri" in err.message
    # Relative to the root, absolute inside it, file:// inside it: all accepted.
    for uri in ("demos.jsonl", str(layout.dataset), f"file://{layout.dataset}"):
        op = stub.StartRun(trainer_pb2.StartRunRequest(config=dataset_config(tiny_path, uri)))
        meta = trainer_pb2.StartRunMetadata()
        op.metadata.Unpack(meta)
        assert wait_run(stub, meta.run_id).state == trainer_pb2.RUN_STATE_SUCCEEDED


def test_output_uri_escapes_write_and_delete_nothing(
    stub: trainer_pb2_grpc.TrainerServiceStub, layout: Layout, tiny_path: str
) -> None:
    before = layout.outside_entries()
    (layout.outputs / "escape").symlink_to(layout.outside, target_is_directory=True)
    for uri in (
        str(layout.outside),
        str(layout.outside / "new"),
        "../../outside",
        f"file://{layout.outside}",
        "escape",
        "escape/new",
        ".",
        "gs://bucket/run",
    ):
        err = start(stub, dataset_config(tiny_path, "demos.jsonl", output_uri=uri))
        assert err.code == grpc.StatusCode.PERMISSION_DENIED, (uri, err)
        assert "config.output_uri" in err.message
    assert layout.outside_entries() == before
    assert (layout.planted / "keep").exists()

    # A folder of its own inside the outputs root: written there, and only there.
    config = dataset_config(tiny_path, "demos.jsonl", output_uri="mine")
    op = stub.StartRun(trainer_pb2.StartRunRequest(config=config))
    meta = trainer_pb2.StartRunMetadata()
    op.metadata.Unpack(meta)
    run = wait_run(stub, meta.run_id)
    assert run.state == trainer_pb2.RUN_STATE_SUCCEEDED
    assert Path(run.latest_checkpoint.uri) == (layout.outputs / "mine" / "step-000001").resolve()
    # Another run cannot take over (and later clean up) that folder.
    err = start(stub, dataset_config(tiny_path, "demos.jsonl", output_uri="mine"))
    assert err.code == grpc.StatusCode.FAILED_PRECONDITION and "config.output_uri" in err.message


def test_base_model_outside_the_roots_is_permission_denied(
    stub: trainer_pb2_grpc.TrainerServiceStub, layout: Layout, tiny_path: str
) -> None:
    copy = layout.outside / "model"
    shutil.copytree(tiny_path, copy)
    for value in (str(copy), "/etc", "../outside/model", f"file://{copy}"):
        err = start(stub, dataset_config(value, "demos.jsonl"))
        assert err.code == grpc.StatusCode.PERMISSION_DENIED, (value, err)
        assert "config.base_model" in err.message
    err = start(stub, dataset_config("m" * 300, "demos.jsonl"))
    assert err.code == grpc.StatusCode.INVALID_ARGUMENT and "config.base_model" in err.message
    not_a_model = start(stub, dataset_config(str(MODELS_ROOT), "demos.jsonl"))
    assert not_a_model.code == grpc.StatusCode.PERMISSION_DENIED  # the root itself
    shutil.rmtree(copy)


def test_clean_temporaries_removes_only_what_save_creates(tmp_path: Path) -> None:
    ours = tmp_path / ".tmp-step-000003-0123456789ab"
    ours.mkdir()
    (ours / "model.safetensors").write_bytes(b"partial")
    others = [tmp_path / ".tmp-planted", tmp_path / ".tmp-step-000001-zzz", tmp_path / "step-1"]
    for other in others:
        other.mkdir()
    outside = tmp_path.parent / f"{tmp_path.name}-outside"
    outside.mkdir()
    (tmp_path / ".tmp-step-000002-aaaaaaaaaaaa").symlink_to(outside, target_is_directory=True)
    checkpoints.clean_temporaries(tmp_path)
    assert not ours.exists()
    assert all(other.is_dir() for other in others) and outside.is_dir()


class _Payload:
    """Unpickling this (weights_only=False) would create a folder: arbitrary code."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[Any, tuple[str]]:
        return (os.mkdir, (str(self.marker),))


def test_resume_never_unpickles_code_nor_trusts_stored_paths(
    tmp_path: Path, chats: Path, tiny_path: str
) -> None:
    marker = tmp_path / "pwned"
    elsewhere = tmp_path / "elsewhere"
    config = sft_config(tiny_path, chats, steps=10_000, seed=5)
    with trainer_server(tmp_path / "state") as target, stubs(target) as (stub, _):
        op = stub.StartRun(trainer_pb2.StartRunRequest(config=config))
        meta = trainer_pb2.StartRunMetadata()
        op.metadata.Unpack(meta)
        wait_run(stub, meta.run_id, until=lambda r: r.step >= 1)
    # Stopped mid-run: it checkpointed and stays RUNNING, to resume on the next start.
    run_dir = tmp_path / "state" / "runs" / meta.run_id
    saved = json_format.Parse((run_dir / "run.json").read_text(), trainer_pb2.Run())
    assert saved.state == trainer_pb2.RUN_STATE_RUNNING
    checkpoint = run_dir / "checkpoints" / saved.latest_checkpoint.id
    torch.save({"optimizer": _Payload(marker)}, checkpoint / checkpoints.STATE_FILE)
    shutil.copytree(checkpoint, elsewhere)  # a stored uri pointing here must not be used
    meta_file = checkpoint / checkpoints.META_FILE
    stored = json_format.Parse(meta_file.read_text(), trainer_pb2.Checkpoint())
    stored.uri = str(elsewhere)
    meta_file.write_text(json_format.MessageToJson(stored))

    with trainer_server(tmp_path / "state") as target, stubs(target) as (stub, _):
        run = wait_run(stub, meta.run_id)
        listed = stub.ListCheckpoints(trainer_pb2.ListCheckpointsRequest(run_id=meta.run_id))
    assert not marker.exists()
    assert run.state == trainer_pb2.RUN_STATE_FAILED
    assert run.error.code == grpc.StatusCode.FAILED_PRECONDITION.value[0]
    assert "weights_only" in run.error.message
    assert listed.checkpoints[0].uri == str(checkpoint.resolve())


def test_run_json_paths_are_checked_again_on_resume(
    tmp_path: Path, chats: Path, tiny_path: str
) -> None:
    """A run.json naming an output folder outside today's outputs root (edited, or from
    before the roots changed) fails the run instead of writing there."""
    config = sft_config(tiny_path, chats, steps=10_000, seed=5)
    with trainer_server(tmp_path / "state") as target, stubs(target) as (stub, _):
        op = stub.StartRun(trainer_pb2.StartRunRequest(config=config))
        meta = trainer_pb2.StartRunMetadata()
        op.metadata.Unpack(meta)
        wait_run(stub, meta.run_id, until=lambda r: r.step >= 1)
    outside = tmp_path / "outside"
    outside.mkdir()
    run_file = tmp_path / "state" / "runs" / meta.run_id / "run.json"
    saved = json_format.Parse(run_file.read_text(), trainer_pb2.Run())
    saved.config.output_uri = str(outside)
    run_file.write_text(json_format.MessageToJson(saved))
    with trainer_server(tmp_path / "state") as target, stubs(target) as (stub, _):
        run = wait_run(stub, meta.run_id)
        err = error_of(stub.ListCheckpoints, trainer_pb2.ListCheckpointsRequest(run_id=meta.run_id))
    assert run.state == trainer_pb2.RUN_STATE_FAILED
    assert run.error.code == grpc.StatusCode.PERMISSION_DENIED.value[0]
    assert "config.output_uri" in run.error.message
    assert err.code == grpc.StatusCode.PERMISSION_DENIED
    assert list(outside.iterdir()) == []
