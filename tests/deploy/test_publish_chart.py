"""The chart wires weight publishing to every rollout pod: the trainer's replicas are the
rollout headless Service (a configured peer), and with a published-weights claim the
trainer records its publishes where every rollout pod reads them at start."""

from __future__ import annotations

import copy
import json
from typing import Any

import helm_python as helm
import kubernetes_validate
import pytest

from gantry.core.peers import Peers
from gantry.trainer.replicas import configured_replicas

from .test_chart import CHART, KUBE_VERSIONS, Manifest, ci_values, config_data, pod_spec, render

CLAIM = "gantry-published"


def values(**extra: Any) -> dict[str, Any]:
    loaded = copy.deepcopy(ci_values("all-on"))
    loaded.update(extra)
    return loaded


@pytest.fixture(scope="module")
def docs() -> list[Manifest]:
    helm.disable_logging()
    with helm.Chart.load(CHART) as chart:
        return render(chart, values(publishedWeights={"existingClaim": CLAIM}))


def workload(docs: list[Manifest], name: str) -> Manifest:
    for doc in docs:
        labels = doc["metadata"].get("labels", {})
        if doc["kind"] == "Deployment" and labels.get("app.kubernetes.io/component") == name:
            return doc
    raise AssertionError(f"no {name} Deployment")


def test_trainer_publishes_to_the_rollout_headless_service(docs: list[Manifest]) -> None:
    trainer = config_data(docs, "trainer")
    target = trainer["GANTRY_TRAINER_ROLLOUT_TARGET"]
    assert target.startswith("dns:///") and "-rollout-headless." in target
    replicas = json.loads(trainer["GANTRY_TRAINER_ROLLOUT_REPLICAS"])
    assert replicas == [target]
    # What the trainer checks at start: every replica entry is a configured rollout peer.
    assert configured_replicas(Peers("rollout", target), replicas) == [target]


def test_published_weights_claim_is_shared(docs: list[Manifest]) -> None:
    trainer = config_data(docs, "trainer")
    rollout = config_data(docs, "rollout")
    mounts = {}
    for name in ("trainer", "rollout"):
        spec = pod_spec(workload(docs, name))
        (volume,) = [v for v in spec["volumes"] if v["name"] == "published-weights"]
        assert volume["persistentVolumeClaim"]["claimName"] == CLAIM
        (mount,) = [
            m for m in spec["containers"][0]["volumeMounts"] if m["name"] == "published-weights"
        ]
        mounts[name] = mount
    assert mounts["rollout"]["readOnly"] is True and mounts["trainer"]["readOnly"] is False
    assert trainer["GANTRY_TRAINER_PUBLISHED_WEIGHTS_DIR"] == mounts["trainer"]["mountPath"]
    # Rollout reads it inside its checkpoints root (<data_dir>/checkpoints by default).
    assert rollout["GANTRY_ROLLOUT_PUBLISHED_WEIGHTS"] == mounts["rollout"]["mountPath"]
    assert mounts["rollout"]["mountPath"].startswith(
        rollout["GANTRY_ROLLOUT_DATA_DIR"] + "/checkpoints/"
    )
    for version in KUBE_VERSIONS:
        for name in ("trainer", "rollout"):
            kubernetes_validate.validate(workload(docs, name), version, strict=True)


def test_off_without_a_claim_or_when_disabled() -> None:
    with helm.Chart.load(CHART) as chart:
        plain = render(chart, values())
        single = render(chart, values(publishedWeights={"toAllReplicas": False}))
    assert "GANTRY_TRAINER_PUBLISHED_WEIGHTS_DIR" not in config_data(plain, "trainer")
    assert "GANTRY_ROLLOUT_PUBLISHED_WEIGHTS" not in config_data(plain, "rollout")
    assert "GANTRY_TRAINER_ROLLOUT_REPLICAS" in config_data(plain, "trainer")
    assert "GANTRY_TRAINER_ROLLOUT_REPLICAS" not in config_data(single, "trainer")
