"""The chart's scaled-out envfarm: a StatefulSet under its headless Service, pod names in
session ids, a drain inside the termination grace, an HPA on sessions per pod through
prometheus-adapter. (Every manifest is schema-validated in test_chart.py.)"""

from __future__ import annotations

from typing import Any

import helm_python as helm
import kubernetes_validate
import pytest
import yaml

from gantry.core.routing import Owner, Replicas
from gantry.envfarm.settings import EnvFarmSettings

from .test_chart import KUBE_VERSIONS, NAMESPACE, RELEASE, config_data, manifests, of_kind, render

ENVFARM = f"{RELEASE}-envfarm"
HEADLESS = f"{ENVFARM}-headless"


def test_envfarm_is_a_statefulset_named_under_its_headless_service() -> None:
    docs = manifests("default")
    assert ENVFARM not in of_kind(docs, "Deployment")
    workload = of_kind(docs, "StatefulSet")[ENVFARM]
    spec = workload["spec"]
    assert spec["serviceName"] == HEADLESS
    assert spec["podManagementPolicy"] == "Parallel"
    assert spec["updateStrategy"] == {"type": "RollingUpdate"}
    assert "strategy" not in spec
    headless = of_kind(docs, "Service")[HEADLESS]["spec"]
    assert headless["clusterIP"] == "None"
    assert headless["publishNotReadyAddresses"] is True  # owners stay reachable while draining
    assert spec["selector"]["matchLabels"].items() <= headless["selector"].items()
    # Only envfarm: other services' headless Services publish ready pods alone.
    others = [s for n, s in of_kind(manifests("all-on"), "Service").items() if n != HEADLESS]
    assert not any(s["spec"].get("publishNotReadyAddresses") for s in others)


def test_each_pod_names_its_sessions_and_drains_within_its_grace(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    docs = manifests("default")
    pod = of_kind(docs, "StatefulSet")[ENVFARM]["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    env = {e["name"]: e for e in container["env"]}
    name_ref = env["GANTRY_ENVFARM_REPLICA_NAME"]["valueFrom"]["fieldRef"]
    assert name_ref == {"fieldPath": "metadata.name"}
    data = config_data(docs, "envfarm")
    drain, grace = (
        float(data["GANTRY_ENVFARM_DRAIN_TIMEOUT_S"]),
        float(data["GANTRY_ENVFARM_GRACE_PERIOD_S"]),
    )
    assert drain == 300
    assert pod["terminationGracePeriodSeconds"] > drain + grace, "SIGKILL after the drain"
    # The service takes what the chart gives it, and a pod name is a valid replica name.
    for key, value in data.items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("GANTRY_ENVFARM_REPLICA_NAME", f"{ENVFARM}-0")
    settings = EnvFarmSettings()
    assert settings.drain_timeout_s == drain
    assert Owner.start(settings.replica_name).name == f"{ENVFARM}-0"


def test_rollout_reaches_a_sessions_owner_at_its_pod_dns_name() -> None:
    """The rollout's envfarm target, read by the routing channel, maps the owner named in a
    session id to the DNS name the StatefulSet gives that pod."""
    docs = manifests("all-on")
    target = config_data(docs, "rollout")["GANTRY_ROLLOUT_ENVFARM_TARGET"]
    replicas = Replicas(target, resolve=lambda host, port: [])
    session = Owner.start(f"{ENVFARM}-1").new_session_id()
    workload = of_kind(docs, "StatefulSet")[ENVFARM]
    pod_dns = f"{ENVFARM}-1.{workload['spec']['serviceName']}.{NAMESPACE}.svc.cluster.local"
    assert replicas.address_of(session) == f"{pod_dns}:50053"


def test_the_hpa_scales_on_sessions_per_pod_through_prometheus_adapter() -> None:
    docs = manifests("all-on")
    hpa = of_kind(docs, "HorizontalPodAutoscaler")[ENVFARM]["spec"]
    assert hpa["scaleTargetRef"] == {
        "apiVersion": "apps/v1",
        "kind": "StatefulSet",
        "name": ENVFARM,
    }
    (metric,) = hpa["metrics"]
    assert metric["type"] == "Pods"
    assert metric["pods"]["metric"]["name"] == "gantry_envfarm_sessions_per_pod"
    assert metric["pods"]["target"] == {"type": "AverageValue", "averageValue": "256"}
    scale_down = hpa["behavior"]["scaleDown"]
    assert scale_down["policies"] == [{"type": "Pods", "value": 1, "periodSeconds": 120}]
    rules = of_kind(docs, "ConfigMap")[f"{RELEASE}-prometheus-adapter-rules"]
    (rule,) = yaml.safe_load(rules["data"]["config.yaml"])["rules"]
    assert rule["seriesQuery"].startswith("gantry_envfarm_sessions{")
    assert rule["name"]["as"] == metric["pods"]["metric"]["name"]
    assert rule["resources"]["overrides"]["pod"] == {"resource": "pod"}
    assert "sum(" in rule["metricsQuery"] and "<<.GroupBy>>" in rule["metricsQuery"]
    for kube in KUBE_VERSIONS:
        kubernetes_validate.validate(rules, kube, strict=True)
    assert f"{RELEASE}-prometheus-adapter-rules" not in of_kind(manifests("default"), "ConfigMap")


def test_own_metrics_or_no_adapter_rule_are_respected(chart: helm.Chart) -> None:
    cpu: dict[str, Any] = {
        "type": "Resource",
        "resource": {"name": "cpu", "target": {"type": "Utilization", "averageUtilization": 60}},
    }
    values = {
        "envfarm": {
            "autoscaling": {"enabled": True, "metrics": [cpu]},
            "sessions": {"prometheusAdapterRules": False, "drainSeconds": 0},
        }
    }
    docs = render(chart, values)
    assert of_kind(docs, "HorizontalPodAutoscaler")[ENVFARM]["spec"]["metrics"] == [cpu]
    assert f"{RELEASE}-prometheus-adapter-rules" not in of_kind(docs, "ConfigMap")
    assert config_data(docs, "envfarm")["GANTRY_ENVFARM_DRAIN_TIMEOUT_S"] == "0"


@pytest.mark.parametrize(
    ("sessions", "message"),
    [
        ({"drainSeconds": -1}, "/envfarm/sessions/drainSeconds"),
        ({"targetPerReplica": 0}, "/envfarm/sessions/targetPerReplica"),
        ({"drain": 10}, "'drain' not allowed"),
    ],
)
def test_bad_session_values_name_the_key(
    chart: helm.Chart, sessions: dict[str, Any], message: str
) -> None:
    with pytest.raises((helm.HelmValuesError, helm.HelmRenderError)) as failure:
        render(chart, {"envfarm": {"sessions": sessions}})
    assert message in str(failure.value)


@pytest.fixture(scope="module")
def chart() -> Any:
    from .test_chart import CHART

    helm.disable_logging()
    with helm.Chart.load(CHART) as loaded:
        yield loaded
