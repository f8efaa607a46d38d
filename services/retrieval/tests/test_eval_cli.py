"""Encoder evaluation: dataset layouts and `gantry retrieval eval` ranking two checkpoints."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from gantry.core.cli import app
from gantry.retrieval.encoder_eval import DatasetError, load_eval_set, save_jsonl_set
from gantry.retrieval.keyword_set import keyword_set

from .tiny_models import tiny_encoder


def test_jsonl_round_trip_and_beir_directory(tmp_path: Path) -> None:
    data = keyword_set(errors=4, parts=2)
    loaded = load_eval_set(save_jsonl_set(data, tmp_path / "set.jsonl"))
    assert [d.id for d in loaded.documents] == [d.id for d in data.documents]
    assert loaded.qrels == data.qrels and loaded.queries == data.queries
    beir = tmp_path / "beir"
    (beir / "qrels").mkdir(parents=True)
    (beir / "corpus.jsonl").write_text(
        "\n".join(json.dumps({"_id": d.id, "title": "", "text": d.text}) for d in data.documents)
    )
    (beir / "queries.jsonl").write_text(
        "\n".join(json.dumps({"_id": q, "text": t}) for q, t in data.queries.items())
        + '\n{"_id": "train-only", "text": "not in the test split"}\n'
    )
    rows = ["query-id\tcorpus-id\tscore"] + [
        f"{q}\t{d}\t{g}" for q, judged in data.qrels.items() for d, g in judged.items()
    ]
    (beir / "qrels" / "test.tsv").write_text("\n".join(rows) + "\n")
    from_dir = load_eval_set(beir, "test")
    assert from_dir.qrels == data.qrels and set(from_dir.queries) == set(data.queries)
    with pytest.raises(DatasetError, match=r"qrels/dev\.tsv"):
        load_eval_set(beir, "dev")
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"type": "qrel", "query_id": "q", "document_id": "nope"}\n')
    with pytest.raises(DatasetError):
        load_eval_set(bad)


@pytest.mark.slow
def test_cli_ranks_real_minilm_above_a_random_encoder(tmp_path: Path) -> None:
    dataset = save_jsonl_set(keyword_set(errors=12, parts=8), tmp_path / "kw.jsonl")
    out = tmp_path / "results.json"
    random_encoder = str(tiny_encoder())
    result = CliRunner().invoke(
        app,
        [
            "retrieval",
            "eval",
            "--encoder",
            random_encoder,
            "--encoder",
            "minilm",
            "--dataset",
            str(dataset),
            "--device",
            "cpu",
            "--json",
            str(out),
        ],
    )
    assert result.exit_code == 0, result.output
    rows = json.loads(out.read_text())
    assert [r["encoder"] for r in rows] == ["minilm", random_encoder]
    assert rows[0]["ndcg"]["10"] > rows[1]["ndcg"]["10"]
    for row in rows:
        assert 0.0 <= row["mrr_at_10"] <= 1.0 and row["queries"] == 20
        assert row["recall"]["1"] <= row["recall"]["5"] <= row["recall"]["10"] <= 1.0
    assert "minilm" in result.output  # the ranking table


def test_command_is_mounted_through_the_entry_point() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "gantry.core.cli", "retrieval", "eval", "--help"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0 and "--encoder" in done.stdout
