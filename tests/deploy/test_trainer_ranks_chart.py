"""The chart's multi-pod trainer (trainer.distributed): rank 0 in the trainer pod, ranks
1..N-1 in a StatefulSet, a ClusterIP rendezvous Service, a shared ReadWriteMany data
volume, NetworkPolicies that let only the trainer and its ranks talk; the settings and
variables the chart renders are parsed by the trainer's own code (TrainerSettings and the
rank entry point), and bad values fail the render with a message naming the value."""

from __future__ import annotations

import copy
from collections.abc import Iterator
from typing import Any

import helm_python as helm
import kubernetes_validate
import pytest

from .test_chart import (
    CHART,
    KUBE_VERSIONS,
    NAMESPACE,
    RELEASE,
    Manifest,
    ci_values,
    component,
    config_data,
    of_kind,
    pod_spec,
    render,
)

RANKS = f"{RELEASE}-trainer-ranks"
RENDEZVOUS = f"{RELEASE}-trainer-rendezvous"
MULTIPOD = ci_values("trainer-multipod")
WORLD = MULTIPOD["trainer"]["distributed"]["worldSize"]


def values(**trainer: Any) -> dict[str, Any]:
    """The multi-pod example with trainer values replaced (top level of trainer only)."""
    loaded = copy.deepcopy(MULTIPOD)
    loaded["trainer"].update(trainer)
    return loaded


def distributed(**changes: Any) -> dict[str, Any]:
    return values(distributed={**MULTIPOD["trainer"]["distributed"], **changes})


@pytest.fixture(scope="module")
def chart() -> Iterator[helm.Chart]:
    helm.disable_logging()
    with helm.Chart.load(CHART) as loaded:
        yield loaded


@pytest.fixture(scope="module")
def docs(chart: helm.Chart) -> list[Manifest]:
    return render(chart, MULTIPOD)


def the(docs: list[Manifest], kind: str, name: str) -> Manifest:
    return of_kind(docs, kind)[name]


def container(workload: Manifest) -> Manifest:
    (only,) = pod_spec(workload)["containers"]
    return dict(only)


def env_of(workload: Manifest) -> dict[str, Any]:
    return {e["name"]: e.get("value", e.get("valueFrom")) for e in container(workload)["env"]}


def test_the_multipod_form_lints_and_matches_the_kubernetes_schemas(docs: list[Manifest]) -> None:
    report = helm.lint(CHART, MULTIPOD, strict=True, kube_version=f"v{KUBE_VERSIONS[0]}")
    assert not report["errors"], report["errors"]
    assert not [m for m in report["messages"] if m["severity"] >= 2]
    for doc in docs:
        for kube in KUBE_VERSIONS:
            kubernetes_validate.validate(doc, kube, strict=True)


def test_ranks_are_a_statefulset_of_world_size_minus_one_pods(docs: list[Manifest]) -> None:
    ranks = the(docs, "StatefulSet", RANKS)
    spec = ranks["spec"]
    assert spec["replicas"] == WORLD - 1  # the trainer pod is rank 0
    assert spec["podManagementPolicy"] == "Parallel"
    assert spec["serviceName"] == RANKS
    headless = the(docs, "Service", RANKS)["spec"]
    assert headless["clusterIP"] == "None"
    selector = spec["selector"]["matchLabels"]
    assert headless["selector"] == selector
    assert selector.items() <= spec["template"]["metadata"]["labels"].items()
    trainer = the(docs, "Deployment", f"{RELEASE}-trainer")
    assert not selector.items() <= trainer["spec"]["template"]["metadata"]["labels"].items()
    rank = container(ranks)
    assert rank["image"] == container(trainer)["image"]
    assert rank["command"] == ["python", "-m", "gantry.trainer.rank", "--serve"]


def test_ranks_dial_the_trainer_pod_on_the_rendezvous_port(docs: list[Manifest]) -> None:
    env = env_of(the(docs, "StatefulSet", RANKS))
    assert env["GANTRY_TRAINER_POD_INDEX"] == {
        "fieldRef": {"fieldPath": "metadata.labels['apps.kubernetes.io/pod-index']"}
    }
    assert env["WORLD_SIZE"] == str(WORLD)
    assert env["LOCAL_RANK"] == "0"
    assert env["GANTRY_TRAINER_RANK_DEVICE"] == "cuda"
    assert env["GANTRY_TRAINER_RANK_TIMEOUT_S"] == "900"
    assert env["NCCL_SOCKET_IFNAME"] == "eth0"  # the trainer's extraEnv
    # MASTER_ADDR is a ClusterIP Service that reaches the trainer pod's rendezvous port.
    assert env["MASTER_ADDR"] == f"{RENDEZVOUS}.{NAMESPACE}.svc.cluster.local"
    service = the(docs, "Service", RENDEZVOUS)["spec"]
    assert service["type"] == "ClusterIP"
    (port,) = service["ports"]
    assert env["MASTER_PORT"] == str(port["port"]) == "29500"
    trainer = the(docs, "Deployment", f"{RELEASE}-trainer")
    assert service["selector"].items() <= trainer["spec"]["template"]["metadata"]["labels"].items()
    ports = {p["name"]: p["containerPort"] for p in container(trainer)["ports"]}
    assert ports[port["targetPort"]] == port["port"]


def test_the_trainer_front_takes_the_rendered_settings(
    docs: list[Manifest], monkeypatch: pytest.MonkeyPatch
) -> None:
    from gantry.trainer.settings import TrainerSettings

    for key, value in config_data(docs, "trainer").items():
        monkeypatch.setenv(key, value)
    settings = TrainerSettings()
    rank_env = env_of(the(docs, "StatefulSet", RANKS))
    assert settings.ranks == "pods"
    assert settings.max_world_size == WORLD
    assert settings.rendezvous_host == rank_env["MASTER_ADDR"]
    assert settings.rendezvous_port == int(rank_env["MASTER_PORT"])
    assert settings.rank_timeout_s == float(rank_env["GANTRY_TRAINER_RANK_TIMEOUT_S"])
    assert settings.rank_restarts == 3
    assert str(settings.models_root) == "/models"


class _Joined(BaseException):
    """Ends the rank loop (which retries on Exception) once it has read its variables."""


def test_a_rank_pod_joins_as_pod_index_plus_one(
    docs: list[Manifest], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The rank entry point, given the pod's command and variables (the downward API's
    pod index filled in as the kubelet would for pod -2), joins as rank 3 of 4."""
    from gantry.trainer import rank

    ranks = the(docs, "StatefulSet", RANKS)
    for name, value in env_of(ranks).items():
        monkeypatch.setenv(name, value if isinstance(value, str) else "2")
    monkeypatch.delenv("RANK", raising=False)
    assert int(env_of(ranks)["WORLD_SIZE"]) == WORLD
    joined: list[tuple[int, str, float, bool]] = []

    def follow(rank_: int, address: str, timeout_s: float, *, serve: bool) -> None:
        joined.append((rank_, address, timeout_s, serve))
        raise _Joined

    monkeypatch.setattr(rank, "follow", follow)
    command = container(ranks)["command"]
    with pytest.raises(_Joined):
        rank.main(command[3:])
    address = f"{RENDEZVOUS}.{NAMESPACE}.svc.cluster.local:29500"
    assert joined == [(3, address, 900.0, True)]


def test_every_rank_mounts_the_trainer_volumes_at_the_same_paths(docs: list[Manifest]) -> None:
    trainer = the(docs, "Deployment", f"{RELEASE}-trainer")
    ranks = the(docs, "StatefulSet", RANKS)

    def mounted(workload: Manifest) -> dict[str, Any]:
        volumes = {v["name"]: v for v in pod_spec(workload)["volumes"]}
        return {m["mountPath"]: volumes[m["name"]] for m in container(workload)["volumeMounts"]}

    front, rank = mounted(trainer), mounted(ranks)
    data_dir = config_data(docs, "trainer")["GANTRY_TRAINER_DATA_DIR"]
    assert front[data_dir] == rank[data_dir]
    assert rank[data_dir]["persistentVolumeClaim"]["claimName"] == "trainer-shared"
    assert front["/models"] == rank["/models"]  # extraVolumes: the models root
    for path in ("/tmp", "/home/gantry", "/dev/shm"):
        assert "emptyDir" in rank[path], path
    assert set(rank) <= set(front), "a rank sees nothing the trainer does not"


def test_rank_pods_are_locked_down_and_placed_on_the_gpu_pool(docs: list[Manifest]) -> None:
    ranks = the(docs, "StatefulSet", RANKS)
    spec = pod_spec(ranks)
    assert spec["automountServiceAccountToken"] is False
    assert spec["enableServiceLinks"] is False
    assert spec["securityContext"]["runAsNonRoot"] is True
    context = container(ranks)["securityContext"]
    assert context["readOnlyRootFilesystem"] is True
    assert context["allowPrivilegeEscalation"] is False
    assert context["capabilities"] == {"drop": ["ALL"]}
    resources = container(ranks)["resources"]
    assert resources["limits"] == {"cpu": "16", "memory": "96Gi", "nvidia.com/gpu": 1}
    assert spec["nodeSelector"] == {"cloud.google.com/gke-accelerator": "nvidia-h100-80gb"}
    assert {t["key"] for t in spec["tolerations"]} == {"nvidia.com/gpu", "dedicated"}
    # The trainer pod itself is one rank: one GPU.
    trainer = the(docs, "Deployment", f"{RELEASE}-trainer")
    assert container(trainer)["resources"]["limits"]["nvidia.com/gpu"] == 1


def test_rank_pods_default_to_the_trainer_placement(chart: helm.Chart) -> None:
    plain = distributed(rankPods={})
    plain["trainer"]["nodeSelector"] = {"pool": "train"}
    plain["trainer"]["tolerations"] = [{"key": "team", "operator": "Exists"}]
    docs = render(chart, plain)
    trainer = pod_spec(the(docs, "Deployment", f"{RELEASE}-trainer"))
    ranks = the(docs, "StatefulSet", RANKS)
    spec = pod_spec(ranks)
    assert spec["nodeSelector"] == trainer["nodeSelector"]
    assert spec["tolerations"] == trainer["tolerations"]
    assert container(ranks)["resources"] == trainer["containers"][0]["resources"]


def test_only_the_trainer_and_its_ranks_reach_one_another(docs: list[Manifest]) -> None:
    policies = {component(p): p["spec"] for p in of_kind(docs, "NetworkPolicy").values()}

    def peers(rule: Manifest, side: str) -> set[str]:
        return {p["podSelector"]["matchLabels"]["app.kubernetes.io/component"] for p in rule[side]}

    def all_tcp(rule: Manifest) -> bool:
        return bool(rule["ports"] == [{"protocol": "TCP"}])

    ranks = policies["trainer-ranks"]
    assert ranks["policyTypes"] == ["Ingress", "Egress"]
    (ingress,) = ranks["ingress"]
    assert all_tcp(ingress) and peers(ingress, "from") == {"trainer", "trainer-ranks"}
    dns, egress = ranks["egress"]
    assert {p["port"] for p in dns["ports"]} == {53}
    assert all_tcp(egress) and peers(egress, "to") == {"trainer", "trainer-ranks"}
    # The trainer: all TCP with its ranks, and only with them; its other ports as before.
    trainer = policies["trainer"]
    wide_in = [r for r in trainer["ingress"] if any("port" not in p for p in r["ports"])]
    wide_out = [r for r in trainer["egress"] if any("port" not in p for p in r["ports"])]
    assert [peers(r, "from") for r in wide_in] == [{"trainer-ranks"}]
    assert [peers(r, "to") for r in wide_out] == [{"trainer-ranks"}]
    assert all(all_tcp(r) for r in wide_in + wide_out)
    # No other pod may open the rendezvous port: no other rule names it or all ports.
    assert not any(p.get("port") == "rendezvous" for r in trainer["ingress"] for p in r["ports"])
    for name, policy in policies.items():
        if name not in {"trainer", "trainer-ranks"}:
            for rule in policy.get("egress", []):
                for peer in rule.get("to", []):
                    labels = peer.get("podSelector", {}).get("matchLabels", {})
                    assert labels.get("app.kubernetes.io/component") != "trainer-ranks", name


def test_the_rendezvous_stays_inside_the_cluster(chart: helm.Chart) -> None:
    exposed = values(service={"type": "LoadBalancer", "annotations": {}})
    docs = render(chart, exposed)
    front = the(docs, "Service", f"{RELEASE}-trainer")["spec"]
    assert front["type"] == "LoadBalancer"
    assert "rendezvous" not in {p["name"] for p in front["ports"]}
    assert the(docs, "Service", RENDEZVOUS)["spec"]["type"] == "ClusterIP"


def test_off_by_default_and_a_chart_made_rwx_claim_works(chart: helm.Chart) -> None:
    single = render(chart, values(distributed={"enabled": False, "worldSize": 1}))
    names = {d["metadata"]["name"] for d in single}
    assert RANKS not in names and RENDEZVOUS not in names
    assert "GANTRY_TRAINER_RANKS" not in config_data(single, "trainer")
    ports = container(the(single, "Deployment", f"{RELEASE}-trainer"))["ports"]
    assert {p["name"] for p in ports} == {"grpc", "metrics"}

    rwx = {"enabled": True, "size": "2Ti", "accessModes": ["ReadWriteMany"]}
    docs = render(chart, values(data={"sizeLimit": "1Gi", "persistence": rwx}))
    (claim,) = of_kind(docs, "PersistentVolumeClaim").values()
    assert claim["spec"]["accessModes"] == ["ReadWriteMany"]
    volumes = {v["name"]: v for v in pod_spec(the(docs, "StatefulSet", RANKS))["volumes"]}
    assert volumes["data"]["persistentVolumeClaim"]["claimName"] == claim["metadata"]["name"]


RWX = "needs the trainer's data volume on ReadWriteMany storage"
BAD: list[tuple[str, dict[str, Any], str]] = [
    ("no shared claim", values(data={"existingClaim": "", "sizeLimit": "1Gi"}), RWX),
    (
        "a ReadWriteOnce claim",
        values(data={"persistence": {"enabled": True, "size": "1Ti"}}),
        "set trainer.data.persistence.accessModes to [ReadWriteMany]",
    ),
    ("one rank", distributed(worldSize=1), "/trainer/distributed/worldSize"),
    ("two GPUs per rank pod", distributed(gpusPerPod=2), "/trainer/distributed/gpusPerPod"),
    ("privileged port", distributed(rendezvousPort=80), "/trainer/distributed/rendezvousPort"),
    ("negative restarts", distributed(restarts=-1), "/trainer/distributed/restarts"),
    ("zero timeout", distributed(rankTimeoutSeconds=0), "/trainer/distributed/rankTimeoutSeconds"),
    ("a typo", distributed(worldsize=4), "'worldsize' not allowed"),
    (
        "bad rank pod resources",
        distributed(rankPods={"resources": {"limits": {"cpu": "1"}}}),
        "/trainer/distributed/rankPods/resources",
    ),
    (
        "on another service",
        {"rollout": {"distributed": {"enabled": True}}},
        "/rollout/distributed",
    ),
    (
        "rendezvous on the gRPC port",
        distributed(rendezvousPort=50052),
        "trainer.distributed.rendezvousPort 50052 collides with trainer.port",
    ),
    ("two fronts", values(replicas=2), "trainer.replicas must be 1"),
    (
        "eight GPUs in the front",
        values(gpu={"enabled": True, "count": 8}),
        "trainer.gpu.count is 8 but trainer.distributed.gpusPerPod is 1",
    ),
    (
        "a rank setting in config",
        values(config={"max_world_size": 8}),
        "trainer.config.max_world_size: with trainer.distributed.enabled the chart sets it",
    ),
    (
        "a long release name",
        {**MULTIPOD, "fullnameOverride": "x" * 40},
        "has 54 characters; Kubernetes allows 52",
    ),
]


@pytest.mark.parametrize(("bad", "message"), [pytest.param(v, m, id=i) for i, v, m in BAD])
def test_bad_values_fail_with_a_clear_message(
    chart: helm.Chart, bad: dict[str, Any], message: str
) -> None:
    with pytest.raises((helm.HelmValuesError, helm.HelmRenderError)) as failure:
        chart.render(bad, namespace=NAMESPACE, name=RELEASE, is_install=True)
    assert message in str(failure.value)
