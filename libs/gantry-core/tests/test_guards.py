"""Storage roots, peer targets, limits and bounded error details."""

from __future__ import annotations

import math
import os
from pathlib import Path

import grpc
import pytest
from google.protobuf import struct_pb2

from gantry.core.errors import (
    ECHO_LIMIT,
    MESSAGE_LIMIT,
    FailedPrecondition,
    InvalidArgument,
    NotFound,
    PermissionDenied,
)
from gantry.core.limits import (
    check_bytes,
    check_count,
    check_id,
    check_total_bytes,
    struct_to_python,
)
from gantry.core.peers import Peers
from gantry.core.storage import StorageRoot, safe_name, write_atomically


@pytest.fixture
def root(tmp_path: Path) -> StorageRoot:
    base = tmp_path / "root"
    (base / "sub").mkdir(parents=True)
    (base / "sub" / "data.jsonl").write_text("{}\n")
    (tmp_path / "outside.txt").write_text("secret")
    return StorageRoot("datasets", base)


def test_relative_absolute_and_file_uri_resolve_inside(root: StorageRoot) -> None:
    assert root.path is not None
    want = Path(os.path.realpath(root.path / "sub" / "data.jsonl"))
    assert root.resolve("sub/data.jsonl", field="f") == want
    assert root.resolve(str(root.path / "sub/data.jsonl"), field="f") == want
    assert root.resolve(f"file://{root.path}/sub/data.jsonl", field="f") == want
    assert root.resolve("new/file.txt", field="f").parent.name == "new"


@pytest.mark.parametrize(
    "value",
    ["../outside.txt", "sub/../../outside.txt", "/etc/shadow", "/proc/self/environ", "file:///etc"],
)
def test_escapes_are_permission_denied_naming_the_field(root: StorageRoot, value: str) -> None:
    with pytest.raises(PermissionDenied) as caught:
        root.resolve(value, field="config.data.dataset_uri")
    assert "config.data.dataset_uri" in caught.value.message
    assert caught.value.code == grpc.StatusCode.PERMISSION_DENIED


def test_symlink_out_of_the_root_is_refused(root: StorageRoot, tmp_path: Path) -> None:
    assert root.path is not None
    (root.path / "link").symlink_to(tmp_path / "outside.txt")
    (root.path / "dirlink").symlink_to(tmp_path)
    for value in ("link", "dirlink/outside.txt"):
        with pytest.raises(PermissionDenied):
            root.resolve(value, field="f")


@pytest.mark.parametrize("value", ["s3://bucket/key", "http://evil:80/x", "gs://b/o"])
def test_other_schemes_are_refused(root: StorageRoot, value: str) -> None:
    with pytest.raises(PermissionDenied) as caught:
        root.resolve(value, field="uri")
    assert caught.value.reason == "SCHEME_NOT_ALLOWED"


def test_malformed_paths_are_invalid(root: StorageRoot) -> None:
    for value in ("", "a\x00b", "x" * 300, "a/" * 3000):
        with pytest.raises(InvalidArgument):
            root.resolve(value, field="f")


def test_unconfigured_root_refuses_everything() -> None:
    with pytest.raises(PermissionDenied) as caught:
        StorageRoot("encoders", None).resolve("model", field="encoder")
    assert caught.value.reason == "STORAGE_ROOT_NOT_CONFIGURED"


def test_must_exist_and_not_root(root: StorageRoot) -> None:
    with pytest.raises(NotFound):
        root.resolve("missing.jsonl", field="f", must_exist=True)
    assert root.path is not None
    with pytest.raises(PermissionDenied):
        root.resolve(str(root.path), field="f", allow_root=False)


def test_safe_name() -> None:
    assert safe_name("test", field="split") == "test"
    for bad in ("../../x", "a/b", "..", ".", "a\\b"):
        with pytest.raises(PermissionDenied):
            safe_name(bad, field="split")
    with pytest.raises(InvalidArgument):
        safe_name("x" * 200, field="split")


def test_write_atomically_leaves_no_temp_files(tmp_path: Path) -> None:
    target = tmp_path / "run.json"
    for i in range(5):
        write_atomically(target, f"{i}")
    assert target.read_text() == "4"
    assert [p.name for p in tmp_path.iterdir()] == ["run.json"]


def test_peers_resolve_only_configured_targets() -> None:
    peers = Peers("rollout", "rollout:50051", {"blue": "rollout-blue:50051"})
    assert peers.resolve("", field="rollout_target") == "rollout:50051"
    assert peers.resolve("blue", field="rollout_target") == "rollout-blue:50051"
    assert peers.resolve("rollout-blue:50051", field="rollout_target") == "rollout-blue:50051"
    for hostile in ("127.0.0.1:9999", "evil.example:443", "dns:///evil", "blue "):
        with pytest.raises(PermissionDenied) as caught:
            peers.resolve(hostile, field="rollout_target")
        assert "rollout_target" in caught.value.message
    with pytest.raises(InvalidArgument):
        peers.resolve("x" * 10_000, field="rollout_target")
    with pytest.raises(FailedPrecondition):
        Peers("rollout").resolve("", field="rollout_target")


def test_error_details_are_bounded() -> None:
    huge = "x" * 10_000_000
    err = NotFound(f"session {huge} not found", resource_type="session", resource_name=huge)
    status = err.to_status()
    assert len(status.SerializeToString()) < MESSAGE_LIMIT + 4 * ECHO_LIMIT
    bad = InvalidArgument.for_field(huge, huge)
    assert len(bad.to_status().SerializeToString()) < 4 * MESSAGE_LIMIT


def test_limits() -> None:
    check_bytes("é" * 10, field="f", limit=20)
    with pytest.raises(InvalidArgument, match="f: is 22 bytes"):
        check_bytes("é" * 11, field="f", limit=20)
    with pytest.raises(InvalidArgument):
        check_id("a\nb", field="id")
    with pytest.raises(InvalidArgument, match="at least 1"):
        check_count(0, field="n", limit=8, minimum=1)
    with pytest.raises(InvalidArgument, match="limit is 8"):
        check_count([1] * 9, field="n", limit=8)
    with pytest.raises(InvalidArgument, match="in total"):
        check_total_bytes(["ab"] * 10, field="prompts", limit=19)


def _nested(depth: int) -> struct_pb2.Struct:
    inner = struct_pb2.Struct()
    inner.fields["leaf"].number_value = 1
    for _ in range(depth):
        outer = struct_pb2.Struct()
        outer.fields["k"].struct_value.CopyFrom(inner)
        inner = outer
    return inner


def test_struct_to_python_refuses_non_finite_and_deep_values() -> None:
    good = struct_pb2.Struct()
    good.update({"a": 1.5, "b": [True, "x", None], "c": {"d": 2}})
    assert struct_to_python(good, field="extra") == {
        "a": 1.5,
        "b": [True, "x", None],
        "c": {"d": 2},
    }
    for value in (math.nan, math.inf, -math.inf):
        bad = struct_pb2.Struct()
        bad.fields["t"].list_value.values.add().number_value = value
        with pytest.raises(InvalidArgument, match=r"extra\.t\[0\]"):
            struct_to_python(bad, field="extra")
    assert struct_to_python(_nested(10), field="e")
    with pytest.raises(InvalidArgument, match="nests deeper"):
        struct_to_python(_nested(40), field="e")
