"""The chart's KServe option: rollout as an InferenceService, checked without a cluster.

The rendered InferenceService is validated against KServe's own CRD schema (v1beta1
openAPIV3Schema, vendored in schemas/ with its source), strictly: unknown fields fail, as
they would with kubectl's strict field validation. The predictor must carry the same
config, secret, probes and writable directories as the Deployment it replaces, and the
Deployment, Service, HPA and PDB of rollout must not render besides it.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import helm_python as helm
import jsonschema  # type: ignore[import-untyped]
import pytest

from .test_chart import CHART, RELEASE, _release, deployments, manifests, of_kind, render

SCHEMA_FILE = Path(__file__).parent / "schemas" / "kserve-inferenceservice-v1beta1.json"
VALUES = {"rollout": {"enabled": True}, "kserve": {"rollout": {"enabled": True}}}


def _strict(schema: Any) -> Any:
    """Close every object schema that lists its properties (no preserve-unknown-fields)."""
    if isinstance(schema, dict):
        schema = {k: _strict(v) for k, v in schema.items()}
        if (
            schema.get("type") == "object"
            and "properties" in schema
            and not schema.get("x-kubernetes-preserve-unknown-fields")
        ):
            schema.setdefault("additionalProperties", False)
        return schema
    if isinstance(schema, list):
        return [_strict(v) for v in schema]
    return schema


@pytest.fixture(scope="module")
def validator() -> jsonschema.Draft7Validator:
    vendored = json.loads(SCHEMA_FILE.read_text())
    assert "kserve/kserve" in vendored["source"]
    return jsonschema.Draft7Validator(_strict(vendored["schema"]))


@pytest.fixture(scope="module")
def rendered() -> list[dict[str, Any]]:
    helm.disable_logging()
    with helm.Chart.load(CHART) as chart:
        return render(chart, VALUES)


def _isvc(docs: list[dict[str, Any]]) -> dict[str, Any]:
    (isvc,) = of_kind(docs, "InferenceService").values()
    return isvc


def test_inference_service_matches_the_kserve_crd(
    rendered: list[dict[str, Any]], validator: jsonschema.Draft7Validator
) -> None:
    isvc = _isvc(rendered)
    assert isvc["apiVersion"] == "serving.kserve.io/v1beta1"
    errors = [e.message for e in validator.iter_errors(isvc)]
    assert not errors, errors
    broken = copy.deepcopy(isvc)
    broken["spec"]["predictor"]["containers"][0]["prots"] = []  # a typo must fail
    assert list(validator.iter_errors(broken))
    broken = copy.deepcopy(isvc)
    broken["spec"]["predictor"]["minReplicas"] = "one"
    assert list(validator.iter_errors(broken))


def test_rollout_renders_once(rendered: list[dict[str, Any]]) -> None:
    assert "rollout" not in deployments(rendered)
    names = {f"{d['kind']}/{d['metadata']['name']}" for d in rendered}
    assert f"Service/{RELEASE}-rollout" not in names
    assert not any(
        n.startswith(("HorizontalPodAutoscaler/", "PodDisruptionBudget/")) and "rollout" in n
        for n in names
    )
    assert f"ConfigMap/{RELEASE}-rollout" in names  # the predictor reads it
    assert not of_kind(manifests("default"), "InferenceService")  # off by default


def test_predictor_is_the_deployment_pod(rendered: list[dict[str, Any]]) -> None:
    with helm.Chart.load(CHART) as chart:
        plain = render(chart, {"rollout": {"enabled": True}})
    pod = deployments(plain)["rollout"]["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    predictor = _isvc(rendered)["spec"]["predictor"]
    (served,) = predictor["containers"]
    for key in (
        "image",
        "envFrom",
        "env",
        "startupProbe",
        "livenessProbe",
        "readinessProbe",
        "resources",
        "securityContext",
        "volumeMounts",
    ):
        assert served[key] == container[key], key
    assert served["ports"] == [
        {"name": "h2c", "containerPort": container["ports"][0]["containerPort"], "protocol": "TCP"}
    ]
    assert predictor["volumes"] == pod["volumes"]
    assert predictor["securityContext"] == pod["securityContext"]
    assert predictor["labels"]["app.kubernetes.io/component"] == "rollout"
    assert any(v.get("secret") for v in predictor["volumes"])  # the bearer token


def test_kserve_is_a_rollout_only_value() -> None:
    helm.disable_logging()
    with helm.Chart.load(CHART) as chart, pytest.raises(Exception, match="kserve"):
        chart.render({"kserve": {"retrieval": {"enabled": True}}}, **_release())
