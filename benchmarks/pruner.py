"""Pruner benchmark: relevant-line recall vs compression on held-out files, and latency.

Held-out split: stdlib files whose path hash puts them in the test fold (never trained
on); examples from `gantry.pruner.data` (docstring and call-site goal hints, the target
function's lines as the label). At each keep ratio r every method keeps lines worth at
most r x the original tokens:

- skimmer: the service's pipeline (MiniLM line embeddings + trained head, Viterbi +
  syntax-tree closure, markers);
- bm25: rank-bm25's BM25Okapi over identifier-split line terms, best lines first;
- truncation: the first lines that fit (keep-the-first-N-tokens);
- lexical+structure (ablation): the service's pipeline with the no-model lexical scorer.

Compression is measured on the returned text (markers included). Latency: Prune on
2K/8K/32K-token Python contexts on CPU, cold (new text) and warm (same text, new hint);
``--baseline REV`` also times the pruner package as it was at git revision REV, size by
size in the same run (a subprocess on that revision's sources), with the load average.

    .venv/bin/python benchmarks/pruner.py [--test-files 40] [--json out.json]
    .venv/bin/python benchmarks/pruner.py --latency-only --baseline 54be6a7
    .venv/bin/python benchmarks/pruner.py --encoder-ab   # needs onnxruntime (not a dep)

``--encoder-ab`` times the MiniLM forward the cold path is made of (one batch of 16 of
the service's windows, width 256) interleaved round by round: torch (1 and 2 threads)
against ONNX Runtime fp32 and dynamic int8 when onnxruntime is importable, with the
largest hidden-state difference and the smallest cosine of the pooled line vectors.
"""

from __future__ import annotations

import argparse
import ast
import io
import json
import os
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np
import torch
from rank_bm25 import BM25Okapi

from gantry.pruner.data import FileContext, generate, source_files
from gantry.pruner.lexical import terms
from gantry.pruner.pruner import Pruner
from gantry.pruner.scoring import HeadScorer, LexicalScorer
from gantry.pruner.select import render
from gantry.pruner.structure import build_structure


def _with_markers(lines: list[str], keep: np.ndarray, count: Any) -> tuple[int, set[int]]:
    structure = build_structure(lines, "text")
    rendered = render(structure, lines, keep)
    tokens = sum(count([line for line, k in zip(lines, keep, strict=True) if k]))
    tokens += sum(count(rendered.markers))
    return tokens, {i for i in range(len(lines)) if keep[i]}


def bm25_keep(lines: list[str], hint: str, budget: int, line_tokens: list[int]) -> np.ndarray:
    docs = [terms(line) or ["\u2205"] for line in lines]
    scores = BM25Okapi(docs).get_scores(terms(hint) or ["\u2205"])
    keep = np.zeros(len(lines), dtype=bool)
    used = 0
    for i in sorted(range(len(lines)), key=lambda k: (-scores[k], k)):
        if used + line_tokens[i] <= budget:
            keep[i] = True
            used += line_tokens[i]
    return keep


def truncation_keep(line_tokens: list[int], budget: int) -> np.ndarray:
    keep = np.zeros(len(line_tokens), dtype=bool)
    used = 0
    for i, tokens in enumerate(line_tokens):
        if used + tokens > budget:
            break
        keep[i] = True
        used += tokens
    return keep


def strict(files: list[FileContext], head: Pruner, ratio: float) -> dict[str, dict[str, float]]:
    """Compression matched on the returned text: each method's budget shrinks until its
    output (markers included) is at most ``ratio`` x the original tokens."""
    count = head.scorer.count_tokens
    rows: dict[str, list[tuple[float, float]]] = defaultdict(list)
    for context in files:
        lines = context.lines
        line_tokens = count(lines)
        total = sum(line_tokens)
        target = total * ratio
        for example in context.examples:
            relevant = set(example.relevant)

            def skimmer(
                budget: int,
                hint: str = example.hint,
                text: str = context.text,
                lines: list[str] = lines,
            ) -> tuple[int, set[int]]:
                out = head.prune(text, hint, token_budget=budget, language="python")
                kept = {i - 1 for a, b in out.kept_ranges for i in range(a, b + 1)}
                return sum(count([lines[i] for i in kept])) + sum(count(out.markers)), kept

            def bm25(
                budget: int,
                hint: str = example.hint,
                lines: list[str] = lines,
                line_tokens: list[int] = line_tokens,
            ) -> tuple[int, set[int]]:
                return _with_markers(lines, bm25_keep(lines, hint, budget, line_tokens), count)

            def truncation(
                budget: int, lines: list[str] = lines, line_tokens: list[int] = line_tokens
            ) -> tuple[int, set[int]]:
                return _with_markers(lines, truncation_keep(line_tokens, budget), count)

            for name, method in (("skimmer", skimmer), ("bm25", bm25), ("truncation", truncation)):
                budget = int(target)
                tokens, kept = method(budget)
                for _ in range(6):
                    if tokens <= target or budget <= 1:
                        break
                    budget = max(1, int(budget - (tokens - target)))
                    tokens, kept = method(budget)
                rows[name].append((len(kept & relevant) / len(relevant), total / max(1, tokens)))
    return {
        name: {
            "recall": float(np.mean([v[0] for v in values])),
            "compression": float(np.mean([v[1] for v in values])),
            "min_compression": float(np.min([v[1] for v in values])),
        }
        for name, values in rows.items()
    }


def evaluate(
    files: list[FileContext], head: Pruner, lexical: Pruner, ratios: list[float]
) -> dict[str, Any]:
    count = head.scorer.count_tokens
    results: dict[float, dict[str, list[tuple[float, float, str]]]] = {
        r: defaultdict(list) for r in ratios
    }
    parse_failures = 0
    prunes = 0
    for context in files:
        lines = context.lines
        text = context.text
        line_tokens = count(lines)
        total = sum(line_tokens)
        for example in context.examples:
            relevant = set(example.relevant)
            for ratio in ratios:
                budget = max(1, int(total * ratio))
                for name, pruner in (("skimmer", head), ("lexical+structure", lexical)):
                    out = pruner.prune(text, example.hint, token_budget=budget, language="python")
                    kept = {i - 1 for a, b in out.kept_ranges for i in range(a, b + 1)}
                    # Recompute tokens with the head's tokenizer so every method is comparable.
                    pruned_tokens = sum(count([lines[i] for i in kept])) + sum(count(out.markers))
                    results[ratio][name].append(
                        (
                            len(kept & relevant) / len(relevant),
                            total / max(1, pruned_tokens),
                            example.kind,
                        )
                    )
                    if name == "skimmer":
                        prunes += 1
                        try:
                            ast.parse(out.text)
                        except SyntaxError:
                            parse_failures += 1
                for name, keep in (
                    ("bm25", bm25_keep(lines, example.hint, budget, line_tokens)),
                    ("truncation", truncation_keep(line_tokens, budget)),
                ):
                    tokens, kept = _with_markers(lines, keep, count)
                    results[ratio][name].append(
                        (len(kept & relevant) / len(relevant), total / max(1, tokens), example.kind)
                    )
    summary: dict[str, Any] = {
        "parse_failures": parse_failures,
        "skimmer_prunes": prunes,
        "ratios": {},
    }
    for ratio in ratios:
        rows = {}
        for name, values in results[ratio].items():
            rows[name] = {
                "recall": float(np.mean([v[0] for v in values])),
                "compression": float(np.mean([v[1] for v in values])),
                "recall_docstring": float(np.mean([v[0] for v in values if v[2] == "docstring"])),
                "recall_call": float(np.mean([v[0] for v in values if v[2] == "call"])),
            }
        summary["ratios"][str(ratio)] = rows
    return summary


def _pool() -> list[str]:
    pool: list[str] = []
    for path in source_files():
        try:
            text = path.read_text(encoding="utf-8")
            ast.parse(text)
        except (UnicodeDecodeError, SyntaxError, ValueError):
            continue
        pool.extend(text.split("\n"))
        if len(pool) > 12_000:
            break
    return pool


def latency(head: Pruner, sizes: list[int], repeats: int) -> dict[str, dict[str, float]]:
    count = head.scorer.count_tokens
    pool = _pool()
    # One small prune first: the first forward pass of a process pays one-off setup costs
    # that are not what a cold file costs a running service.
    head.prune("\n".join(pool[:200]), "warm-up", keep_ratio=0.25, language="python")
    out = {}
    for size in sizes:
        lines: list[str] = []
        tokens = 0
        for line in pool:
            lines.append(line)
            tokens += count([line])[0]
            if tokens >= size:
                break
        cold, warm = [], []
        for rep in range(repeats):
            text = f"# run {rep} {time.time()}\n" + "\n".join(lines)  # new text: no cache hit
            started = time.perf_counter()
            head.prune(
                text, f"where are errors raised? ({rep})", keep_ratio=0.25, language="python"
            )
            cold.append(time.perf_counter() - started)
            started = time.perf_counter()
            head.prune(
                text, f"how is the config parsed? ({rep})", keep_ratio=0.25, language="python"
            )
            warm.append(time.perf_counter() - started)
        out[str(size)] = {
            "tokens": float(tokens),
            "cold_s": statistics.median(cold),
            "warm_s": statistics.median(warm),
            "load_1min": os.getloadavg()[0],
        }
    return out


def baseline_latency(rev: str, size: int, repeats: int) -> dict[str, float]:
    """This script's latency run on the pruner package of git revision ``rev``."""
    root = Path(__file__).resolve().parents[1]
    with tempfile.TemporaryDirectory() as tmp:
        archive = subprocess.run(
            ["git", "-C", str(root), "archive", rev, "services/pruner/src"],
            check=True,
            capture_output=True,
        ).stdout
        with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
            tar.extractall(tmp, filter="data")
        env = {**os.environ, "PYTHONPATH": f"{tmp}/services/pruner/src"}
        command = [sys.executable, __file__, "--latency-only", "--latency-sizes", str(size)]
        command += ["--repeats", str(repeats), "--print-json"]
        done = subprocess.run(command, check=True, capture_output=True, text=True, env=env)
    row: dict[str, float] = json.loads(done.stdout.strip().splitlines()[-1])[str(size)]
    return row


def encoder_ab(head: Pruner, rounds: int) -> None:
    """The MiniLM forward: torch vs ONNX Runtime (fp32, int8), interleaved (see above)."""
    scorer = head.scorer
    assert isinstance(scorer, HeadScorer)
    encoder, model = scorer.lines, scorer.lines.encoder.model
    lines = _pool()[:600]
    windows = encoder.windows([x[: encoder.line_cap] for x in encoder.token_ids(lines)])
    batch = sorted(windows, key=lambda w: -len(w[0]))[:16]
    ids = torch.zeros((len(batch), 256), dtype=torch.long)
    mask = torch.zeros_like(ids)
    for row, (seq, _) in enumerate(batch):
        ids[row, : len(seq)] = torch.tensor(seq[:256])
        mask[row, : len(seq)] = 1
    layers, dim = model.config.num_hidden_layers, model.config.hidden_size
    ffn = model.config.intermediate_size
    flop = ids.numel() * layers * 2 * (4 * dim * dim + 2 * dim * ffn)
    flop += len(batch) * layers * 4 * 256 * 256 * dim  # attention scores and values
    print(f"batch {tuple(ids.shape)}, {int(mask.sum())} real tokens, {flop / 1e9:.1f} GFLOP")

    def torch_run(threads: int) -> Any:
        def call() -> np.ndarray[Any, Any]:
            torch.set_num_threads(threads)
            with torch.inference_mode():
                hidden: np.ndarray[Any, Any] = model(
                    input_ids=ids, attention_mask=mask
                ).last_hidden_state.numpy()
                return hidden

        return call

    runs = {f"torch, {t} thread(s)": torch_run(t) for t in (2, 1)}
    try:
        import onnxruntime as ort  # type: ignore[import-not-found]
    except ImportError:
        print("onnxruntime is not installed: torch only")
    else:
        runs.update(_onnx_runs(model, ids, mask, ort))
    reference = runs["torch, 2 thread(s)"]()
    keep = mask.numpy().astype(bool)

    def pooled(hidden: np.ndarray[Any, Any]) -> np.ndarray[Any, Any]:
        v = np.stack([hidden[r][keep[r]].mean(0) for r in range(len(batch))])
        unit: np.ndarray[Any, Any] = v / np.linalg.norm(v, axis=1, keepdims=True)
        return unit

    times: dict[str, list[float]] = {name: [] for name in runs}
    outputs = {name: run() for name, run in runs.items()}  # warm-up, and the outputs
    for _ in range(rounds):
        for name, run in runs.items():
            started = time.perf_counter()
            run()
            times[name].append(time.perf_counter() - started)
    for name, out in outputs.items():
        seconds = statistics.median(times[name])
        diff = float(np.abs(out - reference)[keep].max())
        cosine = float((pooled(out) * pooled(reference)).sum(1).min())
        print(
            f"{name:<26} {seconds:7.3f} s  {flop / 1e9 / seconds:6.1f} GFLOP/s  "
            f"max |d hidden| {diff:.1e}  min pooled cosine {cosine:.5f}"
        )
    print(f"load {os.getloadavg()[0]:.1f}")


def _onnx_runs(model: Any, ids: torch.Tensor, mask: torch.Tensor, ort: Any) -> dict[str, Any]:
    from onnxruntime.quantization import (  # type: ignore[import-not-found]
        QuantType,
        quantize_dynamic,
    )

    class Hidden(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.model = model

        def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> Any:
            return self.model(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state

    folder = Path(tempfile.mkdtemp(prefix="pruner-onnx-"))
    fp32, int8 = folder / "minilm.onnx", folder / "minilm.int8.onnx"
    axes = {k: {0: "batch", 1: "tokens"} for k in ("input_ids", "attention_mask", "hidden")}
    torch.onnx.export(
        Hidden().eval(),
        (ids[:2, :64], mask[:2, :64]),
        str(fp32),
        input_names=["input_ids", "attention_mask"],
        output_names=["hidden"],
        dynamic_axes=axes,
        opset_version=17,
        dynamo=False,
    )
    quantize_dynamic(str(fp32), str(int8), weight_type=QuantType.QInt8)
    feed = {"input_ids": ids.numpy(), "attention_mask": mask.numpy()}
    runs = {}
    for label, path in (("onnxruntime fp32", fp32), ("onnxruntime int8", int8)):
        for threads in (2, 1):
            options = ort.SessionOptions()
            options.intra_op_num_threads, options.inter_op_num_threads = threads, 1
            session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
            runs[f"{label}, {threads} thread(s)"] = lambda s=session: s.run(None, feed)[0]
    return runs


def print_row(size: str, row: dict[str, float], old: dict[str, float] | None, rev: str) -> None:
    line = (
        f"  {size:>6} tokens ({row['tokens']:.0f}): cold {row['cold_s'] * 1000:.0f} ms, "
        f"warm (cached embeddings, new hint) {row['warm_s'] * 1000:.0f} ms"
    )
    if old is not None:
        line += (
            f"; at {rev}: cold {old['cold_s'] * 1000:.0f} ms, warm "
            f"{old['warm_s'] * 1000:.0f} ms (load {old['load_1min']:.1f} / "
            f"{row['load_1min']:.1f})"
        )
    print(line, flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--test-files", type=int, default=40)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--ratios", type=float, nargs="+", default=[0.5, 0.25, 0.125])
    parser.add_argument("--latency-sizes", type=int, nargs="+", default=[2048, 8192, 32768])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--strict-ratio", type=float, default=0.25)
    parser.add_argument("--json", type=Path)
    parser.add_argument("--latency-only", action="store_true", help="skip the recall eval")
    parser.add_argument("--baseline", default="", help="git revision to time side by side")
    parser.add_argument("--print-json", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--encoder-ab", action="store_true", help="torch vs ONNX Runtime only")
    args = parser.parse_args()
    if not args.print_json:
        print(f"torch threads: {torch.get_num_threads()}, load {os.getloadavg()[0]:.1f}")
    head = Pruner(HeadScorer.load())
    if args.encoder_ab:
        encoder_ab(head, args.repeats)
        return
    summary: dict[str, Any] = {}
    if not args.latency_only:
        summary = quality(head, args)
    if args.print_json:
        print(json.dumps(latency(head, args.latency_sizes, args.repeats)))
        return
    rows: dict[str, dict[str, float]] = {}
    baseline: dict[str, dict[str, float]] = {}
    print("\nPrune latency (CPU, keep ratio 0.25, median):", flush=True)
    for size in args.latency_sizes:  # old and new size by size, so both see the same load
        key = str(size)
        if args.baseline:
            baseline[key] = baseline_latency(args.baseline, size, args.repeats)
        rows.update(latency(head, [size], args.repeats))
        print_row(key, rows[key], baseline.get(key), args.baseline)
    summary["latency"] = rows
    summary["baseline"] = {"rev": args.baseline, "latency": baseline}
    if args.json:
        args.json.write_text(json.dumps(summary, indent=2))


def quality(head: Pruner, args: argparse.Namespace) -> dict[str, Any]:
    lexical_scorer = LexicalScorer()
    lexical_scorer.count_tokens = head.scorer.count_tokens  # type: ignore[method-assign]
    lexical = Pruner(lexical_scorer)
    files = list(generate(split="test", max_files=args.test_files, seed=args.seed))
    n_examples = sum(len(f.examples) for f in files)
    print(f"held-out: {len(files)} files, {n_examples} examples")
    started = time.perf_counter()
    summary = evaluate(files, head, lexical, args.ratios)
    print(f"evaluated in {time.perf_counter() - started:.0f}s")
    for ratio, rows in summary["ratios"].items():
        print(f"\nkeep ratio {ratio} (target {1 / float(ratio):.0f}x)")
        print(f"  {'method':<20}{'recall':>8}{'docstring':>11}{'call':>8}{'compression':>13}")
        for name, row in rows.items():
            print(
                f"  {name:<20}{row['recall']:>8.3f}{row['recall_docstring']:>11.3f}"
                f"{row['recall_call']:>8.3f}{row['compression']:>12.2f}x"
            )
        skim = rows["skimmer"]["recall"]
        print(
            f"  skimmer / bm25 recall: {skim / max(rows['bm25']['recall'], 1e-9):.2f}x; "
            f"skimmer / truncation: {skim / max(rows['truncation']['recall'], 1e-9):.2f}x"
        )
    matched = strict(files, head, args.strict_ratio)
    summary["strict"] = {"ratio": args.strict_ratio, "rows": matched}
    print(f"\nmatched compression (output incl. markers <= {args.strict_ratio} x original):")
    for name, row in matched.items():
        print(
            f"  {name:<12} recall {row['recall']:.3f}, compression {row['compression']:.2f}x "
            f"(min {row['min_compression']:.2f}x)"
        )
    failures, total = summary["parse_failures"], summary["skimmer_prunes"]
    print(f"\nskimmer outputs that fail to parse: {failures}/{total}")
    return summary


if __name__ == "__main__":
    main()
