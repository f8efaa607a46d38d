"""EvaluateEncoder reads evaluation sets only inside the datasets root (issue 13, item 4).

Every way out is PERMISSION_DENIED naming the field: absolute paths elsewhere, `..`,
other URI schemes, symlinks out of the root (the named path or a file inside a BEIR
directory), and a `split` that is not a plain name. Encoder ids name configured encoders,
never paths.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import grpc
import pytest
from google.longrunning import operations_pb2_grpc
from google.longrunning import operations_proto_pb2 as operations_pb2

from gantry.core import errors
from gantry.proto.retrieval.v1 import retrieval_pb2 as pb
from gantry.proto.retrieval.v1 import retrieval_pb2_grpc

Stub = retrieval_pb2_grpc.RetrievalServiceStub

RECORDS: list[dict[str, Any]] = [
    {"type": "document", "id": "d1", "text": "cats purr and chase mice"},
    {"type": "document", "id": "d2", "text": "the capital of France is Paris"},
    {"type": "query", "id": "q1", "text": "which animal purrs?"},
    {"type": "qrel", "query_id": "q1", "document_id": "d1", "relevance": 1},
]


def _write_set(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in RECORDS))
    return path


def _write_beir(folder: Path, split: str = "test") -> Path:
    (folder / "qrels").mkdir(parents=True, exist_ok=True)
    (folder / "corpus.jsonl").write_text(
        "".join(json.dumps({"_id": r["id"], "text": r["text"]}) + "\n" for r in RECORDS[:2])
    )
    (folder / "queries.jsonl").write_text(json.dumps({"_id": "q1", "text": "purrs?"}) + "\n")
    (folder / "qrels" / f"{split}.tsv").write_text("query-id\tcorpus-id\tscore\nq1\td1\t1\n")
    return folder


def _error(stub: Stub, **fields: Any) -> errors.GantryError:
    with pytest.raises(grpc.RpcError) as info:
        stub.EvaluateEncoder(pb.EvaluateEncoderRequest(encoder_id="minilm", **fields))
    return errors.from_rpc_error(info.value)


def _denied(stub: Stub, field: str, **fields: Any) -> None:
    error = _error(stub, **fields)
    assert isinstance(error, errors.PermissionDenied), (fields, error)
    assert error.metadata.get("field") == field, (fields, error)


def _finish(
    channel: grpc.Channel, operation: operations_pb2.Operation
) -> pb.EvaluateEncoderResponse:
    operations = operations_pb2_grpc.OperationsStub(channel)  # type: ignore[no-untyped-call]
    deadline = time.monotonic() + 60
    while not operation.done and time.monotonic() < deadline:
        operation = operations.WaitOperation(
            operations_pb2.WaitOperationRequest(name=operation.name), timeout=30
        )
    assert operation.done and not operation.HasField("error"), operation.error
    result = pb.EvaluateEncoderResponse()
    operation.response.Unpack(result)
    return result


def test_dataset_uri_outside_the_root_is_denied(
    stub: Stub, datasets_root: Path, tmp_path: Path
) -> None:
    outside = _write_set(tmp_path / "outside.jsonl")
    for uri in (
        str(outside),
        f"file://{outside}",
        "/etc/passwd",
        "/proc/self/environ",
        "../outside.jsonl",
        f"{datasets_root}/../outside.jsonl",
        "s3://bucket/set.jsonl",
        "http://127.0.0.1:1/set.jsonl",
    ):
        _denied(stub, "dataset_uri", dataset_uri=uri)
    # A symlink planted in the root that points out of it.
    link = datasets_root / "escape.jsonl"
    link.unlink(missing_ok=True)
    link.symlink_to(outside)
    _denied(stub, "dataset_uri", dataset_uri="escape.jsonl")
    # A BEIR directory inside the root whose corpus file is a symlink out of it.
    beir = _write_beir(datasets_root / "beir-escape")
    (beir / "corpus.jsonl").unlink()
    (beir / "corpus.jsonl").symlink_to(outside)
    _denied(stub, "dataset_uri", dataset_uri="beir-escape")


def test_split_is_a_plain_name(stub: Stub, datasets_root: Path) -> None:
    _write_beir(datasets_root / "beir-split")
    (datasets_root / "x.tsv").write_text("query-id\tcorpus-id\tscore\nq1\td1\t1\n")
    for split in ("../../x", "../x", "a/b", "..", "/etc/passwd"):
        _denied(stub, "split", dataset_uri="beir-split", split=split)


def test_sets_inside_the_root_evaluate(
    stub: Stub, channel: grpc.Channel, datasets_root: Path
) -> None:
    one_file = _write_set(datasets_root / "sets" / "small.jsonl")
    _write_beir(datasets_root / "beir-ok", split="dev")
    for uri, split in (
        ("sets/small.jsonl", ""),
        (f"file://{one_file}", ""),
        (str(datasets_root / "beir-ok"), "dev"),
    ):
        result = _finish(
            channel,
            stub.EvaluateEncoder(
                pb.EvaluateEncoderRequest(encoder_id="minilm", dataset_uri=uri, split=split)
            ),
        )
        assert result.queries_count == 1 and result.documents_count == 2
    missing = _error(stub, dataset_uri="sets/missing.jsonl")
    assert isinstance(missing, errors.NotFound)
    # Errors about a file name it relative to the root, not the server's layout.
    (datasets_root / "sets" / "broken.jsonl").write_text("not json\n")
    broken = _error(stub, dataset_uri="sets/broken.jsonl")
    assert isinstance(broken, errors.InvalidArgument) and "not JSON" in broken.message
    assert str(datasets_root) not in broken.message
    (datasets_root / "sets" / "bad-relevance.jsonl").write_text(
        json.dumps({"type": "qrel", "query_id": "q", "document_id": "d", "relevance": "x"}) + "\n"
    )
    assert isinstance(_error(stub, dataset_uri="sets/bad-relevance.jsonl"), errors.InvalidArgument)
    (datasets_root / "sets" / "binary.jsonl").write_bytes(b"\xff\xfe\x00garbage\n")
    assert isinstance(_error(stub, dataset_uri="sets/binary.jsonl"), errors.InvalidArgument)


def test_encoder_ids_are_never_paths(stub: Stub, datasets_root: Path) -> None:
    _write_set(datasets_root / "enc.jsonl")
    for encoder_id in ("/models/evil", "../encoders/x", "file:///etc", str(datasets_root)):
        with pytest.raises(grpc.RpcError) as info:
            stub.EvaluateEncoder(
                pb.EvaluateEncoderRequest(encoder_id=encoder_id, dataset_uri="enc.jsonl")
            )
        assert info.value.code() == grpc.StatusCode.NOT_FOUND, encoder_id
    with pytest.raises(grpc.RpcError) as info:
        stub.Embed(pb.EmbedRequest(texts=["x"], encoder_id="e" * 10_000_000))
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
