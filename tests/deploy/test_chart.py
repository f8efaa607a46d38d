"""The Helm chart charts/gantry, tested without a cluster.

Helm's own engine (the Go SDK embedded in the `helm-python-sdk` wheel) lints the chart and
renders it for several value sets; every rendered object is validated offline against the
Kubernetes OpenAPI schemas shipped in `kubernetes-validate`, for the oldest Kubernetes the
chart supports and a recent one; then the deployment policies are asserted: limits and
native gRPC probes on every container, non-root read-only containers, GPU services on GPU
nodes, NetworkPolicies that admit only the calls the services make. Bad values must fail
with a message naming the value.
"""

from __future__ import annotations

import copy
import functools
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import helm_python as helm
import kubernetes_validate
import pytest
import yaml

from gantry.core.ports import DEFAULT_PORTS

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "charts" / "gantry"
RELEASE, NAMESPACE = "gantry", "agents"
# The chart's kubeVersion floor (Chart.yaml) and a recent release; both ship with
# kubernetes-validate, so validation needs no network.
KUBE_VERSIONS = ("1.29.0", "1.35.0")
SERVICES = tuple(DEFAULT_PORTS)
GPU_SERVICES = frozenset({"rollout", "trainer", "video", "vla"})
# Who calls whom (the `talksTo` defaults); with every service on, these and only these
# connections are allowed, plus retrieval -> Qdrant.
CALLS = {
    ("rollout", "envfarm"),
    ("rollout", "pruner"),
    ("trainer", "rollout"),
    ("trainer", "verifier"),
    ("envfarm", "rollout"),
    ("verifier", "rollout"),
    ("verifier", "retrieval"),
    ("verifier", "envfarm"),
}
# Paths that must be writable emptyDirs under a read-only root filesystem.
WRITABLE = {
    "/tmp": None,
    "/home/gantry": "HOME",
    "/var/cache/gantry/triton": "TRITON_CACHE_DIR",
    "/var/cache/gantry/inductor": "TORCHINDUCTOR_CACHE_DIR",
}

Manifest = dict[str, Any]


def ci_values(name: str) -> dict[str, Any]:
    loaded = yaml.safe_load((CHART / "ci" / f"{name}-values.yaml").read_text())
    assert isinstance(loaded, dict)
    return loaded


VALUE_SETS: dict[str, dict[str, Any]] = {
    "default": {},
    "all-on": ci_values("all-on"),
    "minimal": ci_values("minimal"),
    "gpu-pools": ci_values("gpu-pools"),
    "external-qdrant": ci_values("external-qdrant"),
}


@pytest.fixture(scope="module")
def chart() -> Iterator[helm.Chart]:
    helm.disable_logging()
    with helm.Chart.load(CHART) as loaded:
        yield loaded


@functools.cache
def _render(set_name: str) -> tuple[tuple[str, Manifest], ...]:
    with helm.Chart.load(CHART) as loaded:
        return _documents(loaded.render(VALUE_SETS[set_name], **_release()))


def _release() -> dict[str, Any]:
    return {"name": RELEASE, "namespace": NAMESPACE, "is_install": True}


def _documents(rendered: dict[str, str]) -> tuple[tuple[str, Manifest], ...]:
    docs = []
    for template, text in sorted(rendered.items()):
        if not template.endswith(".yaml"):
            continue
        for doc in yaml.safe_load_all(text):
            if doc:
                docs.append((template, doc))
    return tuple(docs)


def render(chart: helm.Chart, values: dict[str, Any]) -> list[Manifest]:
    return [doc for _, doc in _documents(chart.render(values, **_release()))]


def manifests(set_name: str) -> list[Manifest]:
    return [copy.deepcopy(doc) for _, doc in _render(set_name)]


def of_kind(docs: list[Manifest], kind: str) -> dict[str, Manifest]:
    return {d["metadata"]["name"]: d for d in docs if d["kind"] == kind}


def component(doc: Manifest) -> str:
    labels = doc["metadata"]["labels"]
    return str(labels["app.kubernetes.io/component"])


def deployments(docs: list[Manifest]) -> dict[str, Manifest]:
    """Gantry service workloads by service name: Deployments, and envfarm's StatefulSet."""
    workloads = [*of_kind(docs, "Deployment").values(), *of_kind(docs, "StatefulSet").values()]
    return {component(d): d for d in workloads if component(d) in SERVICES}


def enabled(set_name: str) -> set[str]:
    defaults = yaml.safe_load((CHART / "values.yaml").read_text())
    values = VALUE_SETS[set_name]
    return {
        name for name in SERVICES if values.get(name, {}).get("enabled", defaults[name]["enabled"])
    }


def pod_spec(workload: Manifest) -> Manifest:
    spec: Manifest = workload["spec"]["template"]["spec"]
    return spec


def config_data(docs: list[Manifest], service: str) -> dict[str, str]:
    data: dict[str, str] = of_kind(docs, "ConfigMap")[f"{RELEASE}-{service}"]["data"]
    return data


# ---- lint, render, Kubernetes schemas ---------------------------------------------------------


@pytest.mark.parametrize("set_name", VALUE_SETS)
def test_helm_lint_is_clean(set_name: str) -> None:
    for kube in KUBE_VERSIONS:
        report = helm.lint(CHART, VALUE_SETS[set_name], strict=True, kube_version=f"v{kube}")
        problems = [m for m in report["messages"] if m["severity"] >= 2]
        assert not problems and not report["errors"], (problems, report["errors"])


@pytest.mark.parametrize("set_name", VALUE_SETS)
def test_every_manifest_matches_the_kubernetes_schema(set_name: str) -> None:
    docs = manifests(set_name)
    assert docs
    for doc in docs:
        if doc["kind"] == "ServiceMonitor":  # a CRD: checked in test_service_monitor
            continue
        for kube in KUBE_VERSIONS:
            try:
                kubernetes_validate.validate(doc, kube, strict=True)
            except kubernetes_validate.ValidationError as exc:
                where = "/".join(str(p) for p in exc.path)
                pytest.fail(f"{doc['kind']}/{doc['metadata']['name']} at {where} ({kube}): {exc}")


def test_the_validator_rejects_a_broken_manifest() -> None:
    broken = copy.deepcopy(next(iter(deployments(manifests("default")).values())))
    pod_spec(broken)["containers"][0]["livenessProbe"]["grpc"]["port"] = "grpc"
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(broken, KUBE_VERSIONS[0], strict=True)
    pod_spec(broken)["containers"][0]["livenessProbe"]["grpc"] = {"port": 1, "typo": 1}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(broken, KUBE_VERSIONS[-1], strict=True)


@pytest.mark.parametrize("set_name", VALUE_SETS)
def test_each_value_set_renders_the_services_it_enables(set_name: str) -> None:
    docs = manifests(set_name)
    assert set(deployments(docs)) == enabled(set_name)
    names = [f"{d['kind']}/{d['metadata']['name']}" for d in docs]
    assert len(names) == len(set(names)), "duplicate objects"
    for doc in docs:
        assert doc["metadata"].get("namespace", NAMESPACE) == NAMESPACE
        assert len(doc["metadata"]["name"]) <= 63


@pytest.mark.parametrize("name", SERVICES)
def test_each_service_turns_on_and_off_alone(chart: helm.Chart, name: str) -> None:
    values: dict[str, Any] = {other: {"enabled": other == name} for other in SERVICES}
    if name == "retrieval":
        values["qdrant"] = {"enabled": True}
    docs = render(chart, values)
    assert set(deployments(docs)) == {name}
    expected_kinds = {
        "StatefulSet" if name == "envfarm" else "Deployment",
        "Service",
        "ServiceAccount",
        "ConfigMap",
        "PodDisruptionBudget",
        "NetworkPolicy",
    }
    if name == "video":  # memory sessions live on a claim of their own
        expected_kinds.add("PersistentVolumeClaim")
    mine = {
        d["kind"]
        for d in docs
        if d["metadata"]["labels"].get("app.kubernetes.io/component") == name
    }
    assert mine == expected_kinds
    values[name]["enabled"] = False
    values.pop("qdrant", None)
    leftovers = {f"{d['kind']}/{d['metadata']['name']}" for d in render(chart, values)}
    assert leftovers == {f"Secret/{RELEASE}-auth"}


# ---- the policies --------------------------------------------------------------------------


@pytest.mark.parametrize("set_name", VALUE_SETS)
def test_every_container_has_limits_probes_and_a_locked_down_context(set_name: str) -> None:
    docs = manifests(set_name)
    workloads = [d for d in docs if d["kind"] in {"Deployment", "StatefulSet"}]
    assert workloads
    for workload in workloads:
        spec = pod_spec(workload)
        who = workload["metadata"]["name"]
        pod_context = spec["securityContext"]
        assert pod_context["runAsNonRoot"] is True, who
        assert pod_context["runAsUser"] > 0, who
        assert pod_context["seccompProfile"]["type"] == "RuntimeDefault", who
        assert spec["automountServiceAccountToken"] is False, who
        assert spec["enableServiceLinks"] is False, who
        for container in spec.get("initContainers", []) + spec["containers"]:
            resources = container["resources"]
            for kind in ("requests", "limits"):
                assert {"cpu", "memory"} <= set(resources[kind]), (who, kind)
            for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
                assert probe in container, (who, probe)
            context = container["securityContext"]
            assert context["readOnlyRootFilesystem"] is True, who
            assert context["allowPrivilegeEscalation"] is False, who
            assert context["capabilities"]["drop"] == ["ALL"], who
            assert "add" not in context["capabilities"], who
            assert context.get("runAsUser", pod_context["runAsUser"]) != 0, who
            assert not context.get("privileged", False), who


@pytest.mark.parametrize("set_name", VALUE_SETS)
def test_gantry_pods_probe_grpc_health_and_get_writable_dirs(set_name: str) -> None:
    docs = manifests(set_name)
    for name, deployment in deployments(docs).items():
        spec = pod_spec(deployment)
        (container,) = spec["containers"]
        ports = {p["name"]: p["containerPort"] for p in container["ports"]}
        assert set(ports) == {"grpc", "metrics"}
        for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
            # Native gRPC probe: grpc.health.v1 on the serving port, "" = the whole server.
            assert container[probe]["grpc"] == {"port": ports["grpc"], "service": ""}
        env = {e["name"]: e.get("value") for e in container["env"]}
        mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
        volumes = {v["name"]: v for v in spec["volumes"]}
        for path, variable in WRITABLE.items():
            assert path in mounts, (name, path)
            assert "emptyDir" in volumes[mounts[path]], (name, path)
            if variable:
                assert env[variable] == path, (name, variable)
        data = config_data(docs, name)
        prefix = f"GANTRY_{name.upper()}_"
        assert data[prefix + "PORT"] == str(ports["grpc"])
        assert data[prefix + "METRICS_PORT"] == str(ports["metrics"])
        assert data[prefix + "DATA_DIR"] in mounts
        assert float(data[prefix + "MAX_CONNECTION_AGE_S"]) > 0
        grace = float(data[prefix + "GRACE_PERIOD_S"])
        assert spec["terminationGracePeriodSeconds"] > grace, "drain ends before SIGKILL"
        assert container["envFrom"] == [{"configMapRef": {"name": f"{RELEASE}-{name}"}}]
        annotations = deployment["spec"]["template"]["metadata"]["annotations"]
        assert len(annotations["checksum/config"]) == 64, "config changes roll the pods"


@pytest.mark.parametrize("set_name", VALUE_SETS)
def test_gpu_services_land_on_gpu_nodes(set_name: str) -> None:
    values = VALUE_SETS[set_name]
    pool = {**yaml.safe_load((CHART / "values.yaml").read_text())["gpuNodePool"]}
    pool.update(values.get("gpuNodePool", {}))
    for name, deployment in deployments(manifests(set_name)).items():
        spec = pod_spec(deployment)
        limits = spec["containers"][0]["resources"]["limits"]
        gpus = int(limits.get("nvidia.com/gpu", 0))
        tolerations = spec.get("tolerations", [])
        gpu_tolerated = any(t.get("key") == "nvidia.com/gpu" for t in tolerations)
        service_values = values.get(name, {})
        wants_gpu = service_values.get("gpu", {}).get("enabled", name in GPU_SERVICES)
        if wants_gpu:
            assert gpus == service_values.get("gpu", {}).get("count", 1), name
            # The GPU limit restricts the pod to nodes with GPUs; the pool's selector
            # picks which (a service's own selector may refine it: trainer on its pool).
            selector = spec.get("nodeSelector", {})
            for key, value in pool["nodeSelector"].items():
                own = service_values.get("nodeSelector", {})
                assert selector.get(key) == own.get(key, value), (name, key)
            assert gpu_tolerated, f"{name} does not tolerate the GPU taint"
            if pool.get("runtimeClassName"):
                assert spec["runtimeClassName"] == pool["runtimeClassName"]
        else:
            assert gpus == 0 and not gpu_tolerated, f"{name} must stay off GPU nodes"
            assert "runtimeClassName" not in spec


def test_gpu_pools_value_set_places_every_pool() -> None:
    docs = deployments(manifests("gpu-pools"))
    trainer = pod_spec(docs["trainer"])
    assert trainer["containers"][0]["resources"]["limits"]["nvidia.com/gpu"] == 8
    assert trainer["nodeSelector"] == {
        "cloud.google.com/gke-accelerator": "nvidia-h100-80gb",
        "pool": "train",
    }
    assert {t["key"] for t in trainer["tolerations"]} == {"nvidia.com/gpu", "dedicated"}
    assert "podAntiAffinity" in trainer["affinity"]
    assert pod_spec(docs["retrieval"])["nodeSelector"] == {
        "cloud.google.com/gke-accelerator": "nvidia-l4"
    }
    assert pod_spec(docs["envfarm"])["nodeSelector"] == {"pool": "cpu"}
    assert pod_spec(docs["rollout"])["containers"][0]["resources"]["limits"]["nvidia.com/gpu"] == 2


@pytest.mark.parametrize("set_name", VALUE_SETS)
def test_services_expose_grpc_and_metrics(set_name: str) -> None:
    docs = manifests(set_name)
    services = of_kind(docs, "Service")
    for name in enabled(set_name):
        port = VALUE_SETS[set_name].get(name, {}).get("port", DEFAULT_PORTS[name])
        ports = {p["name"]: p for p in services[f"{RELEASE}-{name}"]["spec"]["ports"]}
        assert ports["grpc"]["port"] == port
        assert ports["grpc"]["appProtocol"] == "kubernetes.io/h2c"
        assert ports["metrics"]["port"] == 9090
        headless = services[f"{RELEASE}-{name}-headless"]["spec"]
        assert headless["clusterIP"] == "None"
        assert [p["port"] for p in headless["ports"]] == [port]
        account = of_kind(docs, "ServiceAccount")[f"{RELEASE}-{name}"]
        assert account["automountServiceAccountToken"] is False


def test_autoscaling_and_disruption_budgets() -> None:
    docs = manifests("all-on")
    hpas = {component(h): h for h in of_kind(docs, "HorizontalPodAutoscaler").values()}
    assert set(hpas) == {"rollout", "envfarm", "pruner"}
    for name, hpa in hpas.items():
        assert hpa["spec"]["scaleTargetRef"]["name"] == f"{RELEASE}-{name}"
        assert "replicas" not in deployments(docs)[name]["spec"], "the HPA owns replicas"
    assert hpas["envfarm"]["spec"]["minReplicas"] == 2
    assert hpas["pruner"]["spec"]["metrics"][0]["resource"]["name"] == "cpu"
    assert hpas["rollout"]["spec"]["metrics"][0]["pods"]["metric"]["name"] == (
        "gantry_grpc_in_flight"
    )
    pdbs = {component(p) for p in of_kind(docs, "PodDisruptionBudget").values()}
    assert pdbs == set(SERVICES)
    assert not of_kind(manifests("minimal"), "PodDisruptionBudget")


def _allowed_calls(docs: list[Manifest]) -> set[tuple[str, str]]:
    """(caller, callee) pairs that both the callee's ingress and caller's egress admit."""
    policies = {component(p): p["spec"] for p in of_kind(docs, "NetworkPolicy").values()}

    def selects(peer: Manifest, target: str) -> bool:
        labels = peer.get("podSelector", {}).get("matchLabels", {})
        return bool(labels) and labels.get("app.kubernetes.io/component") == target

    calls = set()
    for callee, policy in policies.items():
        for rule in policy.get("ingress", []):
            for peer in rule.get("from", []):
                for caller in policies:
                    egress = policies[caller].get("egress", [])
                    if selects(peer, caller) and any(
                        selects(to, callee) for e in egress for to in e.get("to", [])
                    ):
                        calls.add((caller, callee))
    return calls


def test_network_policies_admit_only_the_calls_services_make() -> None:
    docs = manifests("all-on")
    policies = {component(p): p for p in of_kind(docs, "NetworkPolicy").values()}
    # envfarm's sandbox Pods get a deny-all policy (test_sandbox_chart.py).
    assert set(policies) == set(SERVICES) | {"qdrant", "sandbox"}, "every pod is isolated"
    for policy in policies.values():
        assert policy["spec"]["policyTypes"] == ["Ingress", "Egress"]
    assert _allowed_calls(docs) == CALLS | {("retrieval", "qdrant")}
    # Metrics only from the monitoring namespace; gRPC from callers and labelled clients.
    envfarm = policies["envfarm"]["spec"]
    metrics_rule = next(r for r in envfarm["ingress"] if r["ports"][0]["port"] == "metrics")
    assert metrics_rule["from"] == [
        {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}}}
    ]
    grpc_rule = next(r for r in envfarm["ingress"] if r["ports"][0]["port"] == "grpc")
    assert {"podSelector": {"matchLabels": {"gantry.dev/client": "true"}}} in grpc_rule["from"]
    assert policies["qdrant"]["spec"]["egress"] == []


def test_network_policies_follow_the_enabled_services() -> None:
    docs = manifests("external-qdrant")  # verifier and retrieval only
    assert _allowed_calls(docs) == {("verifier", "retrieval")}
    retrieval = next(
        p["spec"] for p in of_kind(docs, "NetworkPolicy").values() if component(p) == "retrieval"
    )
    to_qdrant = retrieval["egress"][-1]
    assert to_qdrant["ports"] == [{"port": 6333, "protocol": "TCP"}]
    assert to_qdrant["to"] == [{"ipBlock": {"cidr": "203.0.113.0/24"}}]
    assert not of_kind(manifests("minimal"), "NetworkPolicy")


def test_services_find_the_services_they_call() -> None:
    docs = manifests("all-on")
    for caller, callee in CALLS:
        data = config_data(docs, caller)
        target = data[f"GANTRY_{caller.upper()}_{callee.upper()}_TARGET"]
        assert target == (
            f"dns:///{RELEASE}-{callee}-headless.{NAMESPACE}.svc.cluster.local:"
            f"{DEFAULT_PORTS[callee]}"
        )
    # Only enabled peers get a target.
    rollout_alone = config_data(manifests("gpu-pools"), "rollout")
    assert "GANTRY_ROLLOUT_ENVFARM_TARGET" in rollout_alone
    assert "GANTRY_ROLLOUT_PRUNER_TARGET" not in rollout_alone


def test_service_settings_come_from_the_config_map() -> None:
    data = config_data(manifests("all-on"), "envfarm")
    assert data["GANTRY_ENVFARM_MAX_SESSIONS"] == "2048"
    assert data["GANTRY_ENVFARM_SESSION_IDLE_TIMEOUT_S"] == "120.5"
    rollout = config_data(manifests("all-on"), "rollout")
    assert rollout["GANTRY_ROLLOUT_MODEL_PATH"] == "/models/policy"


def test_envfarm_accepts_the_rendered_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    """The implemented service parses exactly what the chart gives it."""
    from gantry.envfarm.settings import EnvFarmSettings

    for set_name in ("default", "all-on"):
        for key, value in config_data(manifests(set_name), "envfarm").items():
            monkeypatch.setenv(key, value)
        settings = EnvFarmSettings()
        assert settings.port == DEFAULT_PORTS["envfarm"]
        assert settings.metrics_port == 9090
        assert settings.auth_token_file == Path("/var/run/secrets/gantry/auth/token")
        assert str(settings.data_dir) == "/var/lib/gantry"
    assert settings.max_sessions == 2048


# ---- auth, Qdrant, monitoring, notes -----------------------------------------------------------


def _token_volume(deployment: Manifest) -> Manifest | None:
    for volume in pod_spec(deployment)["volumes"]:
        if volume["name"] == "auth-token":
            return dict(volume["secret"])
    return None


def test_auth_token_comes_from_a_secret(chart: helm.Chart) -> None:
    docs = manifests("default")
    secret = of_kind(docs, "Secret")[f"{RELEASE}-auth"]
    assert len(secret["data"]["token"]) > 40
    volume = _token_volume(deployments(docs)["envfarm"])
    assert volume and volume["secretName"] == f"{RELEASE}-auth"
    assert volume["items"] == [{"key": "token", "path": "token"}]

    docs = manifests("minimal")
    assert not of_kind(docs, "Secret"), "an existing Secret is referenced, not created"
    volume = _token_volume(deployments(docs)["envfarm"])
    assert volume and volume["secretName"] == "my-gantry-token"

    docs = render(chart, {"auth": {"disabled": True}})
    assert not of_kind(docs, "Secret")
    assert _token_volume(deployments(docs)["envfarm"]) is None
    data = config_data(docs, "envfarm")
    assert data["GANTRY_ENVFARM_AUTH_DISABLED"] == "true"
    assert "GANTRY_ENVFARM_AUTH_TOKEN_FILE" not in data


def test_in_chart_qdrant() -> None:
    docs = manifests("all-on")
    (qdrant,) = [s for s in of_kind(docs, "StatefulSet").values() if component(s) == "qdrant"]
    (container,) = pod_spec(qdrant)["containers"]
    assert {p["name"]: p["containerPort"] for p in container["ports"]} == {
        "http": 6333,
        "grpc": 6334,
    }
    assert container["image"].startswith("docker.io/qdrant/qdrant:")
    assert qdrant["spec"]["volumeClaimTemplates"][0]["spec"]["resources"]["requests"] == {
        "storage": "10Gi"
    }
    env = {e["name"]: e for e in container["env"]}
    assert env["QDRANT__SERVICE__API_KEY"]["valueFrom"]["secretKeyRef"]["name"] == "gantry-qdrant"
    data = config_data(docs, "retrieval")
    assert data["GANTRY_RETRIEVAL_QDRANT_URL"] == (
        f"http://{RELEASE}-qdrant.{NAMESPACE}.svc.cluster.local:6333"
    )
    assert data["GANTRY_RETRIEVAL_QDRANT_API_KEY_FILE"] == "/var/run/secrets/gantry/qdrant/api-key"


def test_external_qdrant() -> None:
    docs = manifests("external-qdrant")
    assert not [s for s in of_kind(docs, "StatefulSet").values() if component(s) == "qdrant"]
    assert all(
        component(d) != "qdrant"
        for d in docs
        if "labels" in d["metadata"] and "app.kubernetes.io/component" in d["metadata"]["labels"]
    )
    data = config_data(docs, "retrieval")
    assert data["GANTRY_RETRIEVAL_QDRANT_URL"] == "https://qdrant.example.com:6333"
    volumes = {v["name"]: v for v in pod_spec(deployments(docs)["retrieval"])["volumes"]}
    assert volumes["qdrant-api-key"]["secret"]["secretName"] == "qdrant-cloud"


def test_service_monitor() -> None:
    docs = manifests("all-on")
    (monitor,) = of_kind(docs, "ServiceMonitor").values()
    assert monitor["apiVersion"] == "monitoring.coreos.com/v1"
    assert monitor["metadata"]["labels"]["release"] == "prometheus"
    (endpoint,) = monitor["spec"]["endpoints"]
    assert endpoint["port"] == "metrics" and endpoint["path"] == "/metrics"
    selector = monitor["spec"]["selector"]
    scraped = [
        s
        for s in of_kind(docs, "Service").values()
        if all(s["metadata"]["labels"].get(k) == v for k, v in selector["matchLabels"].items())
        and s["metadata"]["labels"].get("app.kubernetes.io/component") in SERVICES
        and "gantry.dev/headless" not in s["metadata"]["labels"]
    ]
    assert {component(s) for s in scraped} == set(SERVICES)
    assert all(any(p["name"] == "metrics" for p in s["spec"]["ports"]) for s in scraped)
    assert not of_kind(manifests("default"), "ServiceMonitor")


def test_notes_tell_how_to_reach_and_scale(chart: helm.Chart) -> None:
    notes = chart.render({}, **_release())["gantry/templates/NOTES.txt"]
    for expected in (
        f"{RELEASE}-envfarm.{NAMESPACE}.svc:50053",
        "kubectl -n agents port-forward svc/gantry-envfarm 50053:50053",
        'grpcurl -plaintext -H "authorization: Bearer $TOKEN" localhost:50053 list',
        "grpc.health.v1.Health/Check",
        "kubectl -n agents scale statefulset/gantry-envfarm --replicas=3",
        "autoscaling.enabled=true",
    ):
        assert expected in notes, expected


# ---- values --------------------------------------------------------------------------------


def test_values_give_every_service_the_same_block() -> None:
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    keys = {name: set(values[name]) for name in SERVICES}
    keys["envfarm"] -= {"sandbox", "sessions"}  # envfarm's own blocks (sandboxes, sessions)
    keys["trainer"] -= {"distributed"}  # multi-pod runs (test_trainer_ranks_chart.py)
    assert keys["retrieval"] - keys["envfarm"] == {"qdrant"}
    assert all(k == keys["envfarm"] for n, k in keys.items() if n != "retrieval")
    assert [n for n in SERVICES if values[n]["enabled"]] == ["envfarm"]
    assert {n: values[n]["port"] for n in SERVICES} == DEFAULT_PORTS
    assert {n for n in SERVICES if values[n]["gpu"]["enabled"]} == GPU_SERVICES
    assert {(a, b) for a in SERVICES for b in values[a]["talksTo"]} == CALLS
    assert values["qdrant"]["enabled"] is False


BAD_VALUES: list[tuple[str, dict[str, Any], str]] = [
    ("port not a number", {"envfarm": {"port": "fifty"}}, "/envfarm/port"),
    ("privileged port", {"envfarm": {"port": 80}}, "/envfarm/port"),
    ("typo in a key", {"envfarm": {"replica": 2}}, "'replica' not allowed"),
    ("unknown service", {"verifyer": {"enabled": True}}, "'verifyer' not allowed"),
    ("missing cpu limit", {"envfarm": {"resources": {"limits": {"cpu": None}}}}, "'cpu'"),
    ("bad quantity", {"envfarm": {"resources": {"limits": {"memory": "lots"}}}}, "memory"),
    ("zero GPUs", {"rollout": {"enabled": True, "gpu": {"count": 0}}}, "/rollout/gpu/count"),
    ("root user", {"podSecurityContext": {"runAsUser": 0}}, "/podSecurityContext/runAsUser"),
    (
        "writable root filesystem",
        {"containerSecurityContext": {"readOnlyRootFilesystem": False}},
        "/containerSecurityContext/readOnlyRootFilesystem",
    ),
    ("unknown peer", {"envfarm": {"talksTo": ["database"]}}, "/envfarm/talksTo"),
    ("chart-managed setting", {"envfarm": {"config": {"port": 1}}}, "/envfarm/config/port"),
    ("qdrant on a non-retrieval service", {"envfarm": {"qdrant": {"url": ""}}}, "/envfarm/qdrant"),
    (
        "qdrant url without scheme",
        {"retrieval": {"qdrant": {"url": "qdrant:6333"}}},
        "/retrieval/qdrant/url",
    ),
    ("bad pull policy", {"image": {"pullPolicy": "Sometimes"}}, "/image/pullPolicy"),
    # Checks the schema cannot express fail the render, naming the values.
    (
        "retrieval without qdrant",
        {"retrieval": {"enabled": True}},
        "retrieval needs a Qdrant: set qdrant.enabled=true",
    ),
    (
        "both qdrants",
        {
            "retrieval": {"enabled": True, "qdrant": {"url": "http://q:6333"}},
            "qdrant": {"enabled": True},
        },
        "use either the in-chart Qdrant or an external URL",
    ),
    (
        "min above max replicas",
        {"envfarm": {"autoscaling": {"enabled": True, "minReplicas": 5, "maxReplicas": 2}}},
        "envfarm.autoscaling: minReplicas (5) is greater than maxReplicas (2)",
    ),
    ("same ports", {"envfarm": {"metricsPort": 50053}}, "port and metricsPort are both 50053"),
]


@pytest.mark.parametrize(
    ("values", "message"),
    [pytest.param(v, m, id=i) for i, v, m in BAD_VALUES],
)
def test_bad_values_fail_with_a_clear_message(
    chart: helm.Chart, values: dict[str, Any], message: str
) -> None:
    with pytest.raises((helm.HelmValuesError, helm.HelmRenderError)) as failure:
        chart.render(values, **_release())
    assert message in str(failure.value)


def test_a_broken_value_set_fails_lint_and_names_every_problem(chart: helm.Chart) -> None:
    broken = {
        "envfarm": {"port": "fifty", "replica": 2, "resources": {"limits": {"cpu": None}}},
        "rollout": {"enabled": True, "gpu": {"count": 0}},
        "containerSecurityContext": {"readOnlyRootFilesystem": False},
    }
    report = helm.lint(CHART, broken, strict=True, kube_version=f"v{KUBE_VERSIONS[0]}")
    assert report["errors"], "helm lint must reject the broken values"
    with pytest.raises(helm.HelmValuesError) as failure:
        chart.render(broken, **_release())
    for problem in (
        "/envfarm/port",
        "'replica' not allowed",
        "missing property 'cpu'",
        "/rollout/gpu/count",
        "/containerSecurityContext/readOnlyRootFilesystem",
    ):
        assert problem in str(failure.value), problem


def test_video_data_is_a_persistent_claim(chart: helm.Chart) -> None:
    docs = render(chart, {"video": {"enabled": True}})
    claims = [d for d in docs if d["kind"] == "PersistentVolumeClaim"]
    assert [c["spec"]["resources"]["requests"]["storage"] for c in claims] == ["100Gi"]
    deployment = next(
        d for d in docs if d["kind"] == "Deployment" and d["metadata"]["name"].endswith("video")
    )
    volumes = {v["name"]: v for v in deployment["spec"]["template"]["spec"]["volumes"]}
    assert volumes["data"]["persistentVolumeClaim"]["claimName"] == claims[0]["metadata"]["name"]
    existing = render(chart, {"video": {"enabled": True, "data": {"existingClaim": "mine"}}})
    assert not [d for d in existing if d["kind"] == "PersistentVolumeClaim"]
