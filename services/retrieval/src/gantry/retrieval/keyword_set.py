"""A small keyword-heavy retrieval set: error codes and part numbers in look-alike documents.

Documents share a few templates, so their meaning barely differs; what tells them apart
is a rare identifier (E-4821, PN-31-K207). Queries name the identifier. Dense sentence
embeddings blur such tokens into word pieces, lexical (BM25) matching does not: the set
shows what hybrid search adds. Deterministic for a given seed.
"""

from __future__ import annotations

import random

from gantry.retrieval.encoder_eval import EvalDocument, EvalSet

COMPONENTS = ("conveyor motor", "hydraulic pump", "cooling fan", "servo drive")
FAULTS = (
    "overheated and shut down",
    "lost its supply voltage",
    "stalled under load",
)
PARTS = ("drive belt", "bearing kit", "fuse holder", "filter cartridge")
MACHINES = ("packaging", "bottling", "labelling")


def keyword_set(*, seed: int = 0, errors: int = 36, parts: int = 24) -> EvalSet:
    rng = random.Random(seed)
    codes = rng.sample(range(1000, 9999), errors)
    part_numbers = [
        f"PN-{rng.randint(10, 99)}-{rng.choice('ABCDEFGHJK')}{rng.randint(100, 999)}"
        for _ in range(parts)
    ]
    docs: list[EvalDocument] = []
    queries: dict[str, str] = {}
    qrels: dict[str, dict[str, int]] = {}
    for i, code in enumerate(codes):
        component, fault = COMPONENTS[i % len(COMPONENTS)], FAULTS[i % len(FAULTS)]
        doc_id = f"err-{i}"
        docs.append(
            EvalDocument(
                doc_id,
                f"Error E-{code}: the {component} {fault}. Check the {component} wiring "
                "and connectors, then restart the controller from the service menu.",
            )
        )
        queries[f"q-{doc_id}"] = f"what does error E-{code} mean?"
        qrels[f"q-{doc_id}"] = {doc_id: 1}
    for i, number in enumerate(part_numbers):
        part, machine = PARTS[i % len(PARTS)], MACHINES[i % len(MACHINES)]
        doc_id = f"part-{i}"
        docs.append(
            EvalDocument(
                doc_id,
                f"Part {number} is the replacement {part} for the {machine} line. "
                "Order it from the spare-parts catalogue; fitting takes about an hour.",
            )
        )
        queries[f"q-{doc_id}"] = f"which machine uses {number}?"
        qrels[f"q-{doc_id}"] = {doc_id: 1}
    rng.shuffle(docs)
    return EvalSet(docs, queries, qrels)
