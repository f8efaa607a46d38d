"""Build a copied Edge shard's indexes in a child process (`-m gantry.retrieval.edge_index DIR`).

Edge's `optimize()` holds the GIL until the HNSW graph is built; in the service process
that would stall every search. Here it only costs CPU, at a lower priority than serving.
"""

from __future__ import annotations

import os
import sys

import qdrant_edge as edge

from gantry.core.children import die_with_parent


def main(argv: list[str]) -> int:
    if len(argv) not in (1, 2) or (len(argv) == 2 and not argv[1].isdigit()):
        print("usage: python -m gantry.retrieval.edge_index SHARD_DIR [NICE]", file=sys.stderr)
        return 2
    # A killed service must not leave a builder writing into a folder it will remove.
    if not die_with_parent():
        return 1
    nice = int(argv[1]) if len(argv) == 2 else 10
    if nice:
        os.nice(nice)  # searches and writes in the service come first
    shard = edge.EdgeShard.load(argv[0])
    try:
        shard.optimize()
    finally:
        shard.close()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
