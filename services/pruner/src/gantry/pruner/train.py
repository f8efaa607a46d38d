"""Train the skimmer's line head: ``python -m gantry.pruner.train [--out PATH] ...``.

The encoder stays frozen: each file's line embeddings are computed once (and cached on
disk under ``--cache``), so only the small head (`LineHead`, ~0.2M parameters) trains.
Defaults take a few minutes on 2 CPU cores and write the head that ships with the package.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import random
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt
import torch

from gantry.pruner.data import FileContext, generate
from gantry.pruner.scoring import DEFAULT_HEAD, HeadScorer, LineHead, default_encoder_path


@dataclass(slots=True)
class Item:
    emb: npt.NDArray[np.float32]  # [n, D] (shared by the file's examples)
    hint: npt.NDArray[np.float32]  # [D]
    extra: npt.NDArray[np.float32]  # [n, E]
    labels: npt.NDArray[np.float32]  # [n]
    mask: npt.NDArray[np.float32]  # [n]: non-blank lines count in the loss
    relevant: list[int]


def featurize(
    scorer: HeadScorer, files: list[FileContext], cache: Path | None, log: bool = True
) -> list[Item]:
    items: list[Item] = []
    started = time.perf_counter()
    for k, context in enumerate(files):
        emb = _cached_embeddings(scorer, context.lines, cache)
        blank = np.array([not line.strip() for line in context.lines])
        for example in context.examples:
            _, q, extra = scorer.features(context.lines, example.hint, emb)
            labels = np.zeros(len(context.lines), dtype=np.float32)
            labels[example.relevant] = 1.0
            items.append(Item(emb, q, extra, labels, (~blank).astype(np.float32), example.relevant))
        if log and (k + 1) % 20 == 0:
            print(f"  featurized {k + 1}/{len(files)} files ({time.perf_counter() - started:.0f}s)")
    return items


def _key(lines: list[str]) -> str:
    return hashlib.sha1("\n".join(lines).encode()).hexdigest()


def _cached_embeddings(
    scorer: HeadScorer, lines: list[str], cache: Path | None
) -> npt.NDArray[np.float32]:
    if cache is None:
        return scorer.lines.embed_lines(lines)
    cache.mkdir(parents=True, exist_ok=True)
    path = cache / f"{_key(lines)}.npy"
    if path.is_file():
        return np.asarray(np.load(path), dtype=np.float32)
    emb = scorer.lines.embed_lines(lines)
    np.save(path, emb)
    return emb


def _crop(item: Item, length: int, rng: random.Random) -> tuple[int, int]:
    n = len(item.labels)
    if n <= length:
        return 0, n
    lo = max(0, min(item.relevant, default=0) - length + 1)
    hi = min(n - length, max(item.relevant, default=n - 1))
    start = rng.randint(lo, max(lo, hi)) if rng.random() < 0.8 else rng.randint(0, n - length)
    return start, start + length


def _batch(
    items: list[Item], crops: list[tuple[int, int]]
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    width = max(b - a for a, b in crops)
    dim, extra = items[0].emb.shape[1], items[0].extra.shape[1]
    emb = torch.zeros(len(items), width, dim)
    ext = torch.zeros(len(items), width, extra)
    labels = torch.zeros(len(items), width)
    mask = torch.zeros(len(items), width)
    hints = torch.stack([torch.from_numpy(item.hint) for item in items])
    for row, (item, (a, b)) in enumerate(zip(items, crops, strict=True)):
        emb[row, : b - a] = torch.from_numpy(item.emb[a:b])
        ext[row, : b - a] = torch.from_numpy(item.extra[a:b])
        labels[row, : b - a] = torch.from_numpy(item.labels[a:b])
        mask[row, : b - a] = torch.from_numpy(item.mask[a:b])
    return emb, hints, ext, labels, mask


def evaluate(head: LineHead, items: list[Item]) -> dict[str, float]:
    """Line-level loss, and recall of relevant lines when keeping the top 25% of lines."""
    head.eval()
    losses, recalls = [], []
    with torch.inference_mode():
        for item in items:
            emb, hints, ext, labels, mask = _batch([item], [(0, len(item.labels))])
            logits = head(emb, hints, ext)
            loss = torch.nn.functional.binary_cross_entropy_with_logits(logits, labels, weight=mask)
            losses.append(float(loss))
            scores = logits[0].numpy()
            top = set(np.argsort(-scores)[: max(1, len(scores) // 4)].tolist())
            if item.relevant:
                recalls.append(len(top.intersection(item.relevant)) / len(item.relevant))
    return {"loss": float(np.mean(losses)), "recall_at_25pct": float(np.mean(recalls))}


def train_head(
    train: list[Item],
    *,
    dim: int,
    epochs: int = 12,
    batch_size: int = 16,
    crop: int = 256,
    lr: float = 2e-3,
    seed: int = 0,
    valid: list[Item] | None = None,
    log: bool = True,
) -> LineHead:
    torch.manual_seed(seed)
    rng = random.Random(seed)
    head = LineHead(dim)
    optimizer = torch.optim.AdamW(head.parameters(), lr=lr, weight_decay=1e-2)
    steps = epochs * ((len(train) + batch_size - 1) // batch_size)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=lr, total_steps=max(1, steps))
    for epoch in range(epochs):
        head.train()
        order = list(range(len(train)))
        rng.shuffle(order)
        total = 0.0
        for start in range(0, len(order), batch_size):
            items = [train[i] for i in order[start : start + batch_size]]
            crops = [_crop(item, crop, rng) for item in items]
            emb, hints, ext, labels, mask = _batch(items, crops)
            logits = head(emb, hints, ext)
            loss = (
                torch.nn.functional.binary_cross_entropy_with_logits(
                    logits, labels, reduction="none"
                )
                * mask
            ).sum() / mask.sum().clamp(min=1)
            optimizer.zero_grad()
            loss.backward()  # type: ignore[no-untyped-call]
            torch.nn.utils.clip_grad_norm_(head.parameters(), 1.0)
            optimizer.step()
            schedule.step()
            total += float(loss.detach()) * len(items)
        if log:
            message = f"epoch {epoch + 1}/{epochs}: train loss {total / len(train):.4f}"
            if valid:
                metrics = evaluate(head, valid)
                message += f", held-out loss {metrics['loss']:.4f}, recall@25% lines " + (
                    f"{metrics['recall_at_25pct']:.3f}"
                )
            print(message, flush=True)
    head.eval()
    return head


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", type=Path, default=DEFAULT_HEAD, help="head weights to write")
    parser.add_argument("--encoder", default="", help="encoder checkpoint (default MiniLM)")
    parser.add_argument("--train-files", type=int, default=160)
    parser.add_argument("--valid-files", type=int, default=20)
    parser.add_argument("--epochs", type=int, default=12)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0 = default)")
    parser.add_argument(
        "--cache",
        type=Path,
        default=Path.home() / ".cache" / "gantry" / "pruner-embeddings",
        help="embedding cache",
    )
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    started = time.perf_counter()
    from gantry.models.loading import load_encoder

    encoder = load_encoder(args.encoder or default_encoder_path(), dtype="float32")
    scorer = HeadScorer(encoder, LineHead(int(encoder.config.hidden_size)))
    train_files = list(generate(split="train", max_files=args.train_files, seed=args.seed))
    valid_files = list(generate(split="test", max_files=args.valid_files, seed=args.seed + 1))
    print(
        f"{len(train_files)} train files ({sum(len(f.examples) for f in train_files)} examples), "
        f"{len(valid_files)} held-out files ({sum(len(f.examples) for f in valid_files)})"
    )
    train = featurize(scorer, train_files, args.cache)
    valid = featurize(scorer, valid_files, args.cache)
    print(f"features ready in {time.perf_counter() - started:.0f}s")
    head = train_head(train, dim=scorer.lines.dim, epochs=args.epochs, seed=args.seed, valid=valid)
    metrics = evaluate(head, valid)
    summary = {
        "encoder": Path(str(encoder.path)).name,
        "train_files": str(len(train_files)),
        "train_examples": str(len(train)),
        "epochs": str(args.epochs),
        "seed": str(args.seed),
        "heldout_recall_at_25pct_lines": f"{metrics['recall_at_25pct']:.4f}",
        "seconds": f"{time.perf_counter() - started:.0f}",
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    head.save(args.out, metadata={"training": json.dumps(summary)})
    print(f"wrote {args.out} ({args.out.stat().st_size / 1e6:.2f} MB): {summary}")


if __name__ == "__main__":
    main()
