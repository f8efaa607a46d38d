"""The chart's `openai` option: rollout's OpenAI-compatible HTTP port, wired end to end."""

from __future__ import annotations

from typing import Any

import helm_python as helm
import pytest

from .test_chart import CHART, of_kind, render

ON = {"rollout": {"enabled": True}, "openai": {"enabled": True, "port": 8080}}
CLIENTS = [{"namespaceSelector": {"matchLabels": {"team": "agents"}}}]


@pytest.fixture(scope="module")
def chart() -> Any:
    helm.disable_logging()
    with helm.Chart.load(CHART) as loaded:
        yield loaded


def _rollout(docs: list[dict[str, Any]], kind: str) -> dict[str, Any]:
    (doc,) = (
        d
        for d in of_kind(docs, kind).values()
        if d["metadata"]["labels"]["app.kubernetes.io/component"] == "rollout"
        and not d["metadata"]["name"].endswith("-headless")
    )
    return doc


def test_enabled_front_gets_a_port_setting_service_and_policy(chart: Any) -> None:
    docs = render(chart, {**ON, "networkPolicy": {"enabled": True, "clients": CLIENTS}})
    config = _rollout(docs, "ConfigMap")["data"]
    assert config["GANTRY_ROLLOUT_OPENAI_PORT"] == "8080"
    assert config["GANTRY_ROLLOUT_OPENAI_HOST"] == "0.0.0.0"
    (container,) = _rollout(docs, "Deployment")["spec"]["template"]["spec"]["containers"]
    assert {"name": "openai", "containerPort": 8080, "protocol": "TCP"} in container["ports"]
    ports = {p["name"]: p for p in _rollout(docs, "Service")["spec"]["ports"]}
    assert ports["openai"]["port"] == 8080 and ports["openai"]["targetPort"] == "openai"
    ingress = _rollout(docs, "NetworkPolicy")["spec"]["ingress"]
    openai_rules = [r for r in ingress if {"port": "openai", "protocol": "TCP"} in r["ports"]]
    assert [r["from"] for r in openai_rules] == [CLIENTS]


def test_off_by_default_and_only_on_rollout(chart: Any) -> None:
    docs = render(chart, {"rollout": {"enabled": True}})
    assert all("OPENAI" not in k for d in of_kind(docs, "ConfigMap").values() for k in d["data"])
    on = render(chart, ON)
    for service in of_kind(on, "Service").values():
        names = {p["name"] for p in service["spec"]["ports"]}
        is_rollout = service["metadata"]["labels"]["app.kubernetes.io/component"] == "rollout"
        headless = service["metadata"]["name"].endswith("-headless")
        assert ("openai" in names) == (is_rollout and not headless)


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"openai": {"enabled": True}}, "needs rollout.enabled"),
        ({**ON, "kserve": {"rollout": {"enabled": True}}}, "gRPC only"),
        ({**ON, "openai": {"enabled": True, "port": 9090}}, "collides"),
        ({**ON, "openai": {"enabled": True, "port": 0}}, "openai"),
    ],
)
def test_bad_combinations_fail_with_a_message(
    chart: Any, values: dict[str, Any], message: str
) -> None:
    with pytest.raises(Exception, match=message):
        render(chart, values)
