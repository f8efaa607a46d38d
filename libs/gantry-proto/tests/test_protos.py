"""Checks on the generated stubs: no drift from protos/, all services load, tensors round-trip."""

from __future__ import annotations

import importlib
import importlib.util
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import pytest
from google.protobuf import descriptor_pool

from gantry.proto.common.v1 import tensor_pb2

ROOT = Path(__file__).resolve().parents[3]
CHECKED_IN = ROOT / "libs" / "gantry-proto" / "src" / "gantry" / "proto"

# area -> service name: the eight v1 services (module gantry.proto.<area>.v1.<area>_pb2).
SERVICES = {
    "rollout": "RolloutService",
    "trainer": "TrainerService",
    "envfarm": "EnvFarmService",
    "pruner": "PrunerService",
    "verifier": "VerifierService",
    "retrieval": "RetrievalService",
    "video": "VideoService",
    "vla": "VlaService",
}
EXPECTED_SERVICES = {f"gantry.{area}.v1.{name}" for area, name in SERVICES.items()}


def _load_generator() -> ModuleType:
    path = ROOT / "scripts" / "gen_protos.py"
    spec = importlib.util.spec_from_file_location("gantry_gen_protos", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def _protos() -> list[Path]:
    return sorted((ROOT / "protos" / "gantry").rglob("*.proto"))


def _tree(root: Path) -> dict[str, bytes]:
    return {
        p.relative_to(root).as_posix(): p.read_bytes()
        for p in sorted(root.rglob("*"))
        if p.is_file() and "__pycache__" not in p.parts
    }


def test_generated_stubs_match_protos(tmp_path: Path) -> None:
    generator = _load_generator()
    fresh_root = tmp_path / "proto"
    generator.generate(fresh_root)
    fresh, checked_in = _tree(fresh_root), _tree(CHECKED_IN)
    hint = "generated stubs are stale: run scripts/gen_protos.py"
    missing = sorted(fresh.keys() - checked_in.keys())
    extra = sorted(checked_in.keys() - fresh.keys())
    assert not missing and not extra, f"{hint} (missing: {missing}, unexpected: {extra})"
    differing = sorted(name for name in fresh if fresh[name] != checked_in[name])
    assert not differing, f"{hint} (differing: {differing})"


@pytest.mark.parametrize("area", sorted(SERVICES))
def test_service_modules_import(area: str) -> None:
    pb2 = importlib.import_module(f"gantry.proto.{area}.v1.{area}_pb2")
    grpc_module = importlib.import_module(f"gantry.proto.{area}.v1.{area}_pb2_grpc")
    service = pb2.DESCRIPTOR.services_by_name[SERVICES[area]]
    assert pb2.DESCRIPTOR.name == f"gantry/{area}/v1/{area}.proto"
    assert service.methods, f"{service.full_name} declares no RPCs"
    assert hasattr(grpc_module, f"{SERVICES[area]}Stub")
    assert hasattr(grpc_module, f"add_{SERVICES[area]}Servicer_to_server")


def test_exactly_the_eight_services() -> None:
    pool = descriptor_pool.Default()
    found: set[str] = set()
    for area in SERVICES:
        importlib.import_module(f"gantry.proto.{area}.v1.{area}_pb2")
    for proto in sorted(p.relative_to(ROOT / "protos").as_posix() for p in _protos()):
        file = pool.FindFileByName(proto)
        found.update(service.full_name for service in file.services_by_name.values())
    assert found == EXPECTED_SERVICES


def test_every_proto_has_a_module() -> None:
    for proto in _protos():
        rel = proto.relative_to(ROOT / "protos" / "gantry")
        module = ".".join(("gantry", "proto", *rel.parent.parts, f"{proto.stem}_pb2"))
        loaded = importlib.import_module(module)
        assert loaded.DESCRIPTOR.name == proto.relative_to(ROOT / "protos").as_posix()


def test_long_running_methods_declare_operation_info() -> None:
    from google.longrunning import operations_proto_pb2

    # The stubs type the extension as a plain FieldDescriptor, which Extensions[] rejects.
    operation_info: Any = operations_proto_pb2.operation_info
    pool = descriptor_pool.Default()
    for area in SERVICES:
        importlib.import_module(f"gantry.proto.{area}.v1.{area}_pb2")
        service = pool.FindServiceByName(f"gantry.{area}.v1.{SERVICES[area]}")
        for method in service.methods:
            if method.output_type.full_name != "google.longrunning.Operation":
                continue
            info = method.GetOptions().Extensions[operation_info]
            for type_name in (info.response_type, info.metadata_type):
                assert pool.FindMessageTypeByName(type_name), f"{method.full_name}: {type_name}"


def test_tensor_round_trip() -> None:
    array = np.arange(24, dtype="<f4").reshape(2, 3, 4)
    tensor = tensor_pb2.Tensor(
        dtype=tensor_pb2.DTYPE_FLOAT32, shape=list(array.shape), data=array.tobytes()
    )
    decoded = tensor_pb2.Tensor.FromString(tensor.SerializeToString())
    assert decoded.dtype == tensor_pb2.DTYPE_FLOAT32
    assert list(decoded.shape) == [2, 3, 4]
    restored = np.frombuffer(decoded.data, dtype="<f4").reshape(tuple(decoded.shape))
    np.testing.assert_array_equal(restored, array)


def test_dtype_enum_covers_the_wire_types() -> None:
    names = set(tensor_pb2.DType.keys())
    expected = {
        "DTYPE_UNSPECIFIED",
        "DTYPE_FLOAT32",
        "DTYPE_FLOAT16",
        "DTYPE_BFLOAT16",
        "DTYPE_FLOAT64",
        "DTYPE_INT8",
        "DTYPE_UINT8",
        "DTYPE_INT16",
        "DTYPE_INT32",
        "DTYPE_INT64",
        "DTYPE_BOOL",
        "DTYPE_FLOAT8_E4M3FN",
        "DTYPE_FLOAT8_E5M2",
    }
    assert names == expected
    assert tensor_pb2.DTYPE_UNSPECIFIED == 0
