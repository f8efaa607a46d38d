"""Retrieval commands: `gantry retrieval eval ...` (the encoder evaluation lives in `encoder_eval`).

`gantry` finds this app through the `gantry.commands` entry point group.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from gantry.retrieval.embedders import default_model_path, load_embedder
from gantry.retrieval.encoder_eval import DatasetError, EvalResult, evaluate, load_eval_set
from gantry.retrieval.settings import DEFAULT_ENCODER_ID, EncoderSpec

app = typer.Typer(
    help="Retrieval tools: encoder evaluation, moving an embedded store to a server.",
    no_args_is_help=True,
)
console = Console()


def _encoder_spec(location: str, index: int) -> EncoderSpec:
    """A checkpoint directory, or "minilm" for the packaged default encoder."""
    if location == DEFAULT_ENCODER_ID and not Path(location).exists():
        return EncoderSpec(id=DEFAULT_ENCODER_ID, path=default_model_path())
    path = Path(location)
    if not path.is_dir():
        raise typer.BadParameter(f"{location}: not a checkpoint directory", param_hint="--encoder")
    name = "".join(c if c.isalnum() or c in "._-" else "-" for c in path.name)[:60]
    return EncoderSpec(id=f"{name or 'encoder'}-{index}", path=str(path))


def rank_encoders(
    encoders: list[str],
    dataset: Path,
    *,
    split: str = "test",
    max_queries: int = 0,
    batch_size: int = 32,
    device: str = "auto",
    query_prefix: str = "",
    document_prefix: str = "",
) -> list[EvalResult]:
    """Evaluate each encoder on the same set; best nDCG@10 first."""
    data = load_eval_set(dataset, split)
    results = []
    for index, location in enumerate(encoders):
        spec = _encoder_spec(location, index).model_copy(
            update={"query_prefix": query_prefix, "document_prefix": document_prefix}
        )
        embedder = load_embedder(spec, device=device)
        results.append(
            evaluate(
                embedder,
                data,
                name=location,
                max_queries=max_queries,
                batch_size=batch_size,
            )
        )
    return sorted(results, key=lambda r: r.ndcg[10], reverse=True)


def _table(results: list[EvalResult], dataset: Path) -> Table:
    first = results[0]
    table = Table(
        title=f"{dataset.name}: {first.queries_count} queries, {first.documents_count} documents"
    )
    for column in ("rank", "encoder", "nDCG@10", "MRR@10", *(f"R@{k}" for k in first.recall)):
        table.add_column(column)
    table.add_column("encode s")
    for rank, r in enumerate(results, start=1):
        table.add_row(
            str(rank),
            r.encoder,
            f"{r.ndcg[10]:.4f}",
            f"{r.mrr_at_10:.4f}",
            *(f"{v:.4f}" for v in r.recall.values()),
            f"{r.encode_time_s:.1f}",
        )
    return table


@app.command("eval")
def eval_command(
    encoder: Annotated[
        list[str],
        typer.Option(
            "--encoder", help="Checkpoint directory (repeat to compare); 'minilm' = packaged"
        ),
    ],
    dataset: Annotated[Path, typer.Option("--dataset", help="JSONL eval file or BEIR directory")],
    split: Annotated[str, typer.Option(help="qrels split of a BEIR directory")] = "test",
    max_queries: Annotated[int, typer.Option(help="Evaluate at most this many (0 = all)")] = 0,
    batch_size: Annotated[int, typer.Option(help="Texts per forward pass")] = 32,
    device: Annotated[str, typer.Option(help="auto, cpu, cuda, ...")] = "auto",
    query_prefix: Annotated[str, typer.Option(help="Prepended to queries")] = "",
    document_prefix: Annotated[str, typer.Option(help="Prepended to documents")] = "",
    json_out: Annotated[
        Path | None, typer.Option("--json", help="Also write the results as JSON here")
    ] = None,
) -> None:
    """Rank encoder checkpoints by nDCG@10 (and MRR@10, recall@k) on a qrels dataset."""
    try:
        results = rank_encoders(
            encoder,
            dataset,
            split=split,
            max_queries=max_queries,
            batch_size=batch_size,
            device=device,
            query_prefix=query_prefix,
            document_prefix=document_prefix,
        )
    except DatasetError as exc:
        raise typer.BadParameter(str(exc), param_hint="--dataset") from exc
    console.print(_table(results, dataset))
    if json_out is not None:
        rows = [
            {
                "rank": rank,
                "encoder": r.encoder,
                "ndcg": r.ndcg,
                "recall": r.recall,
                "mrr_at_10": r.mrr_at_10,
                "queries": r.queries_count,
                "documents": r.documents_count,
                "encode_time_s": r.encode_time_s,
            }
            for rank, r in enumerate(results, start=1)
        ]
        json_out.write_text(json.dumps(rows, indent=2) + "\n")


@app.command("migrate")
def migrate_command(
    store: Annotated[Path, typer.Option(help="The Edge store directory (<data_dir>/qdrant-edge)")],
    qdrant_url: Annotated[str, typer.Option(help="Target Qdrant server, e.g. http://qdrant:6333")],
    api_key_file: Annotated[Path | None, typer.Option(help="File with the API key")] = None,
    collection: Annotated[
        list[str] | None, typer.Option(help="Collections to copy (default: all)")
    ] = None,
) -> None:
    """Copy embedded (Edge) collections to a Qdrant server: same settings, ids, vectors and
    payloads. Stop the service first (one process per store); rerunning is safe."""
    from gantry.retrieval.edge_store import EdgeStore, IndexSettings
    from gantry.retrieval.store import QdrantStore

    if not store.is_dir():
        raise typer.BadParameter(f"{store}: not a directory", param_hint="--store")
    api_key = api_key_file.read_text().strip() if api_key_file else None
    source = EdgeStore(store, index=IndexSettings(min_points=2**62))  # no builds while copying
    target = QdrantStore.open(url=qdrant_url, api_key=api_key)
    try:
        names = collection or [c.name for c in source.list_collections()]
        for name in names:
            copied = source.migrate(name, target)
            console.print(f"{name}: {copied} chunk points copied")
    finally:
        source.close()
        target.close()
