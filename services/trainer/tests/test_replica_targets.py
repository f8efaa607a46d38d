"""Replica targets (configured peers only, dns:/// expanded) and the published record."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from gantry.core.errors import PermissionDenied
from gantry.core.peers import Peers
from gantry.trainer.replicas import (
    MANIFEST,
    configured_replicas,
    expand,
    latest_version,
    record_published,
)


def test_replica_entries_must_be_configured_peers() -> None:
    peers = Peers("rollout", "dns:///rollout-headless:50051", {"blue": "10.0.0.7:50051"})
    assert configured_replicas(peers, ["dns:///rollout-headless:50051", "blue"]) == [
        "dns:///rollout-headless:50051",
        "10.0.0.7:50051",
    ]
    with pytest.raises(PermissionDenied, match="rollout_replicas"):
        configured_replicas(peers, ["attacker.example:50051"])


def test_dns_entries_expand_to_one_target_per_address() -> None:
    local = expand("dns:///localhost:50051")
    assert local.targets and not local.error
    assert all(t.endswith(":50051") for t in local.targets)
    assert "127.0.0.1:50051" in local.targets or "[::1]:50051" in local.targets
    assert expand("10.0.0.7:50051").targets == ("10.0.0.7:50051",)
    assert expand("dns:///no-port").error
    assert expand("dns:///name.invalid:50051").error  # RFC 6761: never resolves


def test_published_record_links_the_weights_and_keeps_one_previous(tmp_path: Path) -> None:
    published = tmp_path / "published"
    assert latest_version(published) == 0
    folders = []
    for version in (3, 4, 5):
        checkpoint = tmp_path / f"step-{version}"
        checkpoint.mkdir()
        save_file({"w": torch.full((2, 2), float(version))}, str(checkpoint / "model.safetensors"))
        folders.append(
            record_published(
                published,
                checkpoint,
                policy_version=version,
                run_id="run-1",
                checkpoint_id=checkpoint.name,
                run_policy_version=version * 10,
            )
        )
        record = json.loads((published / MANIFEST).read_text())
        assert record["policy_version"] == version == latest_version(published)
        assert (published / record["weights"]) == folders[-1]
        linked = folders[-1] / "model.safetensors"
        assert os.stat(linked).st_ino == os.stat(checkpoint / "model.safetensors").st_ino
    assert not folders[0].exists() and folders[1].exists() and folders[2].exists()
    assert not list(published.glob(".staging-*"))
