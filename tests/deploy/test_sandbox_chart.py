"""The chart's part for envfarm's Kubernetes sandboxes, rendered without a cluster.

With `envfarm.sandbox.backend: kubernetes` (the default) envfarm gets exactly what the
backend needs: a Role for pods and pods/exec in the sandbox namespace, a short-lived
projected API token (no automounted one), egress to the API server, and the settings
that configure the backend; the sandbox Pods get a deny-all NetworkPolicy whose selector
matches the label the backend puts on them. Every object is checked against the
Kubernetes schema. Other backends render none of it.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import helm_python as helm
import kubernetes_validate
import pytest
import yaml

from gantry.envfarm.sandbox import backend_from_settings
from gantry.envfarm.sandbox.kubernetes_backend import KubernetesBackend, pod_manifest
from gantry.envfarm.settings import EnvFarmSettings

CHART = Path(__file__).resolve().parents[2] / "charts" / "gantry"
RELEASE, NAMESPACE = "gantry", "agents"
KUBE_VERSIONS = ("1.29.0", "1.35.0")
TOKEN_PATH = "/var/run/secrets/kubernetes.io/serviceaccount"

Manifest = dict[str, Any]


@pytest.fixture(scope="module")
def chart() -> Iterator[helm.Chart]:
    helm.disable_logging()
    with helm.Chart.load(CHART) as loaded:
        yield loaded


def render(chart: helm.Chart, values: dict[str, Any]) -> list[Manifest]:
    rendered = chart.render(values, name=RELEASE, namespace=NAMESPACE, is_install=True)
    return [
        doc
        for template, text in sorted(rendered.items())
        if template.endswith(".yaml")
        for doc in yaml.safe_load_all(text)
        if doc
    ]


def find(docs: list[Manifest], kind: str, name: str) -> Manifest | None:
    return next((d for d in docs if d["kind"] == kind and d["metadata"]["name"] == name), None)


def envfarm_pod(docs: list[Manifest]) -> Manifest:
    deployment = find(docs, "StatefulSet", f"{RELEASE}-envfarm")
    assert deployment is not None
    spec: Manifest = deployment["spec"]["template"]["spec"]
    return spec


def test_envfarm_may_manage_pods_and_nothing_else(chart: helm.Chart) -> None:
    docs = render(chart, {})
    role = find(docs, "Role", f"{RELEASE}-sandbox")
    binding = find(docs, "RoleBinding", f"{RELEASE}-sandbox")
    assert role is not None and binding is not None
    assert role["metadata"]["namespace"] == NAMESPACE
    rules = {tuple(r["resources"]): set(r["verbs"]) for r in role["rules"]}
    assert rules == {
        ("pods",): {"create", "get", "list", "watch", "delete"},
        ("pods/exec",): {"create", "get"},
    }
    assert all(r["apiGroups"] == [""] for r in role["rules"])
    assert binding["roleRef"] == {
        "apiGroup": "rbac.authorization.k8s.io",
        "kind": "Role",
        "name": f"{RELEASE}-sandbox",
    }
    assert binding["subjects"] == [
        {"kind": "ServiceAccount", "name": f"{RELEASE}-envfarm", "namespace": NAMESPACE}
    ]
    assert not [d for d in docs if d["kind"] in {"ClusterRole", "ClusterRoleBinding"}]
    for doc in docs:
        if doc["kind"] in {"Role", "RoleBinding", "NetworkPolicy", "StatefulSet", "ConfigMap"}:
            for kube in KUBE_VERSIONS:
                kubernetes_validate.validate(doc, kube, strict=True)


def test_sandbox_pods_are_cut_off_and_selected_by_the_backends_label(chart: helm.Chart) -> None:
    policy = find(render(chart, {}), "NetworkPolicy", f"{RELEASE}-sandbox")
    assert policy is not None
    spec = policy["spec"]
    assert spec["policyTypes"] == ["Ingress", "Egress"]
    assert spec["ingress"] == [] and spec["egress"] == []
    labels = pod_manifest("p", image="i")["metadata"]["labels"]
    selector = spec["podSelector"]["matchLabels"]
    assert selector and all(labels.get(k) == v for k, v in selector.items())


def test_only_envfarm_gets_an_api_token_and_the_api_egress(chart: helm.Chart) -> None:
    docs = render(chart, {})
    pod = envfarm_pod(docs)
    assert pod["automountServiceAccountToken"] is False  # projected explicitly instead
    [volume] = [v for v in pod["volumes"] if v["name"] == "kube-api"]
    sources = volume["projected"]["sources"]
    assert sources[0]["serviceAccountToken"]["expirationSeconds"] <= 3600
    [mount] = [m for m in pod["containers"][0]["volumeMounts"] if m["name"] == "kube-api"]
    assert mount == {"name": "kube-api", "mountPath": TOKEN_PATH, "readOnly": True}
    for doc in docs:
        if doc["kind"] == "Deployment" and doc["metadata"]["name"] != f"{RELEASE}-envfarm":
            volumes = doc["spec"]["template"]["spec"].get("volumes", [])
            assert all(v["name"] != "kube-api" for v in volumes)
    policy = find(docs, "NetworkPolicy", f"{RELEASE}-envfarm")
    assert policy is not None
    ports = [{p["port"] for p in rule["ports"]} for rule in policy["spec"]["egress"]]
    assert {443, 6443} in ports


def test_the_settings_build_the_backend_the_values_describe(
    chart: helm.Chart, monkeypatch: pytest.MonkeyPatch
) -> None:
    values = {
        "envfarm": {
            "sandbox": {
                "namespace": "sandboxes",
                "runtimeClassName": "gvisor",
                "warmPool": 4,
                "image": "ghcr.io/acme/tasks:7",
                "cpu": "500m",
                "memoryBytes": 536870912,
            }
        }
    }
    docs = render(chart, values)
    for kind in ("Role", "RoleBinding", "NetworkPolicy"):
        doc = find(docs, kind, f"{RELEASE}-sandbox")
        assert doc is not None and doc["metadata"]["namespace"] == "sandboxes", kind
    config = find(docs, "ConfigMap", f"{RELEASE}-envfarm")
    assert config is not None
    for key, value in config["data"].items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("GANTRY_ENVFARM_AUTH_DISABLED", "true")
    monkeypatch.delenv("GANTRY_ENVFARM_AUTH_TOKEN_FILE")
    backend = backend_from_settings(EnvFarmSettings())
    assert isinstance(backend, KubernetesBackend)
    assert (backend.namespace, backend.runtime_class, backend.warm_pool) == (
        "sandboxes",
        "gvisor",
        4,
    )
    assert (backend.image, backend.cpu, backend.memory_bytes) == (
        "ghcr.io/acme/tasks:7",
        "500m",
        536870912,
    )


def test_other_backends_render_no_kubernetes_access(chart: helm.Chart) -> None:
    docs = render(chart, {"envfarm": {"sandbox": {"backend": "bubblewrap"}}})
    assert find(docs, "Role", f"{RELEASE}-sandbox") is None
    assert find(docs, "NetworkPolicy", f"{RELEASE}-sandbox") is None
    assert all(v["name"] != "kube-api" for v in envfarm_pod(docs)["volumes"])
    config = find(docs, "ConfigMap", f"{RELEASE}-envfarm")
    assert config is not None
    assert config["data"]["GANTRY_ENVFARM_SANDBOX_BACKEND"] == "bubblewrap"
    assert "GANTRY_ENVFARM_SANDBOX_NAMESPACE" not in config["data"]


@pytest.mark.parametrize(
    ("sandbox", "message"),
    [
        ({"backend": "chroot"}, "/envfarm/sandbox/backend"),
        ({"namespace": "Not_A_Namespace"}, "/envfarm/sandbox/namespace"),
        ({"warmPool": -1}, "/envfarm/sandbox/warmPool"),
        ({"runtimeClass": "gvisor"}, "'runtimeClass' not allowed"),
    ],
)
def test_bad_sandbox_values_name_the_value(
    chart: helm.Chart, sandbox: dict[str, Any], message: str
) -> None:
    with pytest.raises((helm.HelmValuesError, helm.HelmRenderError)) as failure:
        render(chart, {"envfarm": {"sandbox": sandbox}})
    assert message in str(failure.value)
    with pytest.raises((helm.HelmValuesError, helm.HelmRenderError)):
        render(chart, {"rollout": {"sandbox": {"backend": "kubernetes"}}})
