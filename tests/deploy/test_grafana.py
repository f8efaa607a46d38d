"""The Grafana dashboard the chart ships (charts/gantry/dashboards/gantry.json).

With `grafana.dashboards.enabled` the chart renders one ConfigMap carrying the Grafana
sidecar's label; without it, nothing. The dashboard must be a well-formed Grafana
dashboard (panels with targets, unique ids, a Prometheus datasource variable, namespace
and service variables), and every metric its PromQL reads must be one the code exports:
the series of `gantry.core.metrics.ServerMetrics` plus any metric a service defines (on
its `Service.registry`, with the metric types `gantry.core.metrics` re-exports).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import helm_python as helm
import kubernetes_validate
import pytest
import yaml
from prometheus_client import CollectorRegistry

from gantry.core.metrics import HttpMetrics, ServerMetrics
from gantry.envfarm.sessions import SessionMetrics

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "charts" / "gantry"
DASHBOARD = CHART / "dashboards" / "gantry.json"
RELEASE, NAMESPACE = "gantry", "agents"
KUBE_VERSIONS = ("1.29.0", "1.35.0")
ON = {"grafana": {"dashboards": {"enabled": True}}}

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


def dashboard_maps(docs: list[Manifest]) -> list[Manifest]:
    maps = [d for d in docs if d["kind"] == "ConfigMap"]
    return [d for d in maps if d["metadata"]["name"].endswith("-dashboards")]


def load_dashboard() -> dict[str, Any]:
    loaded = json.loads(DASHBOARD.read_text())
    assert isinstance(loaded, dict)
    return loaded


def panels(dashboard: dict[str, Any]) -> list[dict[str, Any]]:
    """Every panel, rows' nested panels included."""
    found = []
    for panel in dashboard["panels"]:
        found.append(panel)
        found.extend(panel.get("panels", []))
    return found


def expressions(dashboard: dict[str, Any]) -> list[str]:
    exprs = [t["expr"] for p in panels(dashboard) for t in p.get("targets", [])]
    for variable in dashboard["templating"]["list"]:
        query = variable.get("query")
        if variable["type"] == "query":
            exprs.append(query["query"] if isinstance(query, dict) else query)
    return exprs


# ---- which metric names a PromQL expression reads -------------------------------------------

_KEYWORDS = {"by", "without", "on", "ignoring", "group_left", "group_right", "bool", "offset"}
_KEYWORDS |= {"and", "or", "unless", "inf", "nan"}


def metric_names(expr: str) -> set[str]:
    """Metric names in a PromQL expression (or a Grafana label_values() query)."""
    text = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)  # string literals
    text = re.sub(r"\{[^}]*\}", "", text)  # label matchers
    text = re.sub(r"\[[^\]]*\]", "", text)  # range selectors
    text = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", "", text)
    text = re.sub(r"\$\{?\w+\}?", "", text)  # Grafana variables ($__rate_interval, ...)
    text = re.sub(r"label_values\s*\(([^,()]*),[^)]*\)", r"(\1)", text)  # (metric, label)
    text = re.sub(r"(?<![\w:.])\d+(?:\.\d+)?(?:[eE][-+]?\d+)?", "", text)  # numbers
    names: set[str] = set()
    for match in re.finditer(r"(?<![\w:])[A-Za-z_:][\w:]*", text):
        word = match.group()
        if text[match.end() :].lstrip().startswith("("):
            continue  # a function
        if word.lower() not in _KEYWORDS:
            names.add(word)
    return names


_SUFFIXES = {
    "counter": ("_total", "_created"),
    "gauge": ("",),
    "histogram": ("_bucket", "_count", "_sum", "_created"),
    "summary": ("", "_count", "_sum", "_created"),
}


def exported_names(registry: CollectorRegistry) -> set[str]:
    return {
        family.name + suffix for family in registry.collect() for suffix in _SUFFIXES[family.type]
    }


def service_metric_names() -> set[str]:
    """Names of the metrics defined anywhere in the distributions' code: prometheus_client
    metric types constructed with a literal name, in modules that import them from
    prometheus_client or from gantry.core.metrics."""
    names: set[str] = set()
    sources = [*ROOT.glob("libs/*/src"), *ROOT.glob("services/*/src"), ROOT / "kernels" / "src"]
    pattern = re.compile(r"\b(Counter|Gauge|Histogram|Summary)\(\s*[\"']([A-Za-z_:][\w:]*)[\"']")
    for source in sources:
        for path in source.rglob("*.py"):
            text = path.read_text()
            if "prometheus_client" not in text and "gantry.core.metrics" not in text:
                continue
            for kind, name in pattern.findall(text):
                base = name.removesuffix("_total") if kind == "Counter" else name
                names.update(base + suffix for suffix in _SUFFIXES[kind.lower()])
    return names


def known_metrics() -> set[str]:
    return exported_names(ServerMetrics().registry) | service_metric_names()


# ---- the chart -------------------------------------------------------------------------------


def test_off_by_default(chart: helm.Chart) -> None:
    assert dashboard_maps(render(chart, {})) == []
    assert dashboard_maps(render(chart, {"grafana": {"dashboards": {"enabled": False}}})) == []


def test_config_map_carries_the_sidecar_label_and_the_dashboard(chart: helm.Chart) -> None:
    maps = dashboard_maps(render(chart, ON))
    assert len(maps) == 1
    config_map = maps[0]
    assert config_map["metadata"]["namespace"] == NAMESPACE
    assert config_map["metadata"]["labels"]["grafana_dashboard"] == "1"
    assert config_map["metadata"]["labels"]["app.kubernetes.io/instance"] == RELEASE
    assert json.loads(config_map["data"]["gantry.json"]) == load_dashboard()
    for kube in KUBE_VERSIONS:
        kubernetes_validate.validate(config_map, kube, strict=True)


def test_label_namespace_and_annotations_are_configurable(chart: helm.Chart) -> None:
    values = {
        "grafana": {
            "dashboards": {
                "enabled": True,
                "label": "example.com/dashboard",
                "labelValue": "gantry",
                "namespace": "monitoring",
                "annotations": {"grafana_folder": "Gantry"},
            }
        }
    }
    (config_map,) = dashboard_maps(render(chart, values))
    metadata = config_map["metadata"]
    assert metadata["labels"]["example.com/dashboard"] == "gantry"
    assert "grafana_dashboard" not in metadata["labels"]
    assert metadata["namespace"] == "monitoring"
    assert metadata["annotations"] == {"grafana_folder": "Gantry"}


def test_lint_is_clean_with_the_dashboard() -> None:
    report = helm.lint(CHART, ON, strict=True, kube_version=f"v{KUBE_VERSIONS[-1]}")
    problems = [m for m in report["messages"] if m["severity"] >= 2]
    assert not problems and not report["errors"], (problems, report["errors"])


def test_a_bad_label_fails_with_a_message_naming_it() -> None:
    bad = {"grafana": {"dashboards": {"enabled": True, "label": "not a label!"}}}
    report = helm.lint(CHART, bad, strict=True)
    text = json.dumps(report)
    assert report["errors"] or any(m["severity"] >= 2 for m in report["messages"])
    assert "label" in text


# ---- the dashboard ---------------------------------------------------------------------------


def test_dashboard_shape() -> None:
    dashboard = load_dashboard()
    assert dashboard["title"] and dashboard["uid"]
    assert isinstance(dashboard["schemaVersion"], int)
    all_panels = panels(dashboard)
    ids = [p["id"] for p in all_panels]
    assert len(ids) == len(set(ids)), "panel ids are unique"
    graphs = [p for p in all_panels if p["type"] != "row"]
    assert len(graphs) >= 8
    for panel in graphs:
        assert panel["title"] and panel["type"] in {"timeseries", "stat", "gauge", "table"}
        grid = panel["gridPos"]
        assert grid["w"] > 0 and grid["h"] > 0 and grid["x"] >= 0 and grid["x"] + grid["w"] <= 24
        assert panel["datasource"]["uid"] == "${datasource}"
        assert panel["targets"], f"{panel['title']} has no query"
        ref_ids = [t["refId"] for t in panel["targets"]]
        assert len(ref_ids) == len(set(ref_ids))
        for target in panel["targets"]:
            assert target["expr"].strip()
            # Every query honours the dashboard's namespace and service selection.
            assert 'namespace=~"$namespace"' in target["expr"], target["expr"]
            assert 'service=~"$service"' in target["expr"], target["expr"]


def test_dashboard_variables() -> None:
    variables = {v["name"]: v for v in load_dashboard()["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource"
    assert variables["datasource"]["query"] == "prometheus"
    for name in ("namespace", "service"):
        assert variables[name]["type"] == "query"
        assert variables[name]["datasource"]["uid"] == "${datasource}"
        assert variables[name]["includeAll"] and variables[name]["multi"]


def test_the_dashboard_covers_the_service_signals() -> None:
    titles = " ".join(p["title"].lower() for p in panels(load_dashboard()))
    exprs = " ".join(expressions(load_dashboard()))
    assert "histogram_quantile(" in exprs and "_bucket" in exprs, "latency percentiles"
    assert 'code!="OK"' in exprs and "by (code)" in exprs, "errors by gRPC code"
    for word in ("requests / s", "latency", "errors", "in-flight", "sessions", "generation"):
        assert word in titles, word
    used = set().union(*(metric_names(e) for e in expressions(load_dashboard())))
    for family in ServerMetrics().registry.collect():
        assert any(name.startswith(family.name) for name in used), f"{family.name} unused"


SERVICE_SERIES = {
    "gantry_envfarm_sessions",
    "gantry_envfarm_sessions_opened_total",
    "gantry_envfarm_sessions_closed_total",
    "gantry_envfarm_steps_total",
    "gantry_rollout_prompt_tokens_total",
    "gantry_rollout_generated_tokens_total",
    "gantry_rollout_queued_sequences",
    "gantry_rollout_running_sequences",
    "gantry_http_requests_total",
    "gantry_http_request_seconds_bucket",
}


def test_the_source_scan_finds_what_service_registries_export() -> None:
    """The scan behind known_metrics() sees the series real registries hold (it would
    otherwise let a dashboard typo pass or reject a real series)."""
    registry = CollectorRegistry()
    ServerMetrics(registry)
    HttpMetrics(registry)
    SessionMetrics(registry)
    exported = exported_names(registry)
    assert exported <= service_metric_names(), exported - service_metric_names()
    assert known_metrics() >= SERVICE_SERIES, SERVICE_SERIES - known_metrics()


def test_the_service_rows_read_the_service_series() -> None:
    used = set().union(*(metric_names(e) for e in expressions(load_dashboard())))
    assert used >= SERVICE_SERIES, SERVICE_SERIES - used
    for panel in panels(load_dashboard()):
        text = (panel["title"] + panel.get("description", "")).lower()
        assert "approximat" not in text and "not exported" not in text, panel["title"]


def test_every_metric_in_the_dashboard_is_exported_by_the_code() -> None:
    known = known_metrics()
    assert "gantry_grpc_requests_total" in known and "gantry_grpc_request_seconds_bucket" in known
    for expr in expressions(load_dashboard()):
        names = metric_names(expr)
        assert names, f"no metric found in {expr}"
        unknown = names - known
        assert not unknown, f"{sorted(unknown)} in {expr!r} is not a metric the services export"


def test_metric_name_extraction() -> None:
    expr = (
        "histogram_quantile(0.95, sum by (le, method) (rate(gantry_grpc_request_seconds_bucket"
        '{namespace=~"$namespace", method=~"Generate|Step"}[$__rate_interval]))) / '
        "clamp_min(sum(rate(gantry_grpc_requests_total[5m])), 1e-9) and on (service) up"
    )
    assert metric_names(expr) == {
        "gantry_grpc_request_seconds_bucket",
        "gantry_grpc_requests_total",
        "up",
    }
    assert metric_names('label_values(gantry_grpc_in_flight{namespace=~"$x"}, service)') == {
        "gantry_grpc_in_flight"
    }
    assert metric_names("sum(rate(gantry_rollout_tokens_total[1m]))") - known_metrics() == {
        "gantry_rollout_tokens_total"
    }
