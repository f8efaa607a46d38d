"""Every rollout replica a publish reaches, and the record replicas catch up from.

Targets: the `rollout_replicas` setting lists configured rollout peers (names or
configured addresses; checked at start). An entry `dns:///<host>:<port>` (the chart's
headless Service) expands at each publish into one `<address>:<port>` per address the
name resolves to, so replicas that scaled up or moved are reached without a restart.

The published record (`published_weights_dir`): after a publish that at least one replica
acknowledged, the trainer hard-links the checkpoint's safetensors files into a fresh
`weights-<version>-<suffix>` folder there and replaces `latest.json`
({"policy_version", "run_id", "checkpoint_id", "run_policy_version", "weights"}). A replica
that was down starts from it (rollout's `published_weights`). The previous folder is kept
one publish longer, for a replica reading it at that moment.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from gantry.core.peers import Peers
from gantry.core.storage import write_atomically

DNS_SCHEME = "dns:"
MANIFEST = "latest.json"
KEEP_WEIGHTS = 2  # the latest folder and the one before it


@dataclass(frozen=True)
class Expanded:
    """A configured entry and the addresses it stands for (or why none)."""

    entry: str
    targets: tuple[str, ...]
    error: str = ""


def configured_replicas(peers: Peers, entries: Sequence[str]) -> list[str]:
    """The replica entries as addresses; PERMISSION_DENIED (at start) for any entry that
    is not a configured rollout peer: the replica list cannot widen where tokens go."""
    return [peers.resolve(entry, field="rollout_replicas") for entry in entries]


def expand(target: str) -> Expanded:
    """`dns:///host:port` -> one target per resolved address; any other target as is."""
    if not target.startswith(DNS_SCHEME):
        return Expanded(target, (target,))
    # dns:[//authority]/host:port: the authority (a DNS server) is left to the resolver.
    rest = target[len(DNS_SCHEME) :].lstrip("/")
    if target.startswith(DNS_SCHEME + "//") and not target.startswith(DNS_SCHEME + "///"):
        rest = rest.split("/", 1)[-1]
    host, _, port = rest.rpartition(":")
    if not host or not port.isdigit():
        return Expanded(target, (), f"{target!r} is not dns:///<host>:<port>")
    try:
        infos = socket.getaddrinfo(host.strip("[]"), int(port), type=socket.SOCK_STREAM)
    except OSError as exc:
        return Expanded(target, (), f"{host} does not resolve: {exc}")
    addresses = sorted({str(info[4][0]) for info in infos})
    return Expanded(
        target, tuple(f"[{a}]:{port}" if ":" in a else f"{a}:{port}" for a in addresses)
    )


def latest_version(directory: Path) -> int:
    """The policy version of the last recorded publish (0 before any or if unreadable)."""
    try:
        return int(json.loads((directory / MANIFEST).read_text())["policy_version"])
    except (OSError, ValueError, KeyError, TypeError):
        return 0


def record_published(
    directory: Path,
    checkpoint_dir: Path,
    *,
    policy_version: int,
    run_id: str,
    checkpoint_id: str,
    run_policy_version: int,
) -> Path:
    """Record a publish for replicas that start later (blocking); returns the weights folder."""
    directory.mkdir(parents=True, exist_ok=True)
    staging = directory / f".staging-{uuid.uuid4().hex}"
    staging.mkdir()
    try:
        for file in sorted(checkpoint_dir.glob("*.safetensors")):
            try:
                os.link(file, staging / file.name)  # no copy: checkpoints are never rewritten
            except OSError:
                shutil.copy2(file, staging / file.name)  # another filesystem
        weights = directory / f"weights-{policy_version:09d}-{uuid.uuid4().hex[:8]}"
        staging.rename(weights)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    record = {
        "policy_version": policy_version,
        "run_id": run_id,
        "checkpoint_id": checkpoint_id,
        "run_policy_version": run_policy_version,
        "weights": weights.name,
    }
    write_atomically(directory / MANIFEST, json.dumps(record, indent=2) + "\n")
    older = sorted(p for p in directory.glob("weights-*") if p != weights)  # by version
    for stale in older[: max(len(older) - (KEEP_WEIGHTS - 1), 0)]:
        shutil.rmtree(stale, ignore_errors=True)
    return weights
