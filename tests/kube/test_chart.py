"""The Helm chart, rendered by the real helm binary and validated offline."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from apprentice.kube import crds, tools

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "charts" / "apprentice"
K8S_VERSION = "1.33.0"
NOT_BUILT_IN = {"ServiceMonitor", "KopfPeering", "ClusterKopfPeering"}

VARIANTS: dict[str, dict[str, Any]] = {
    "default": {},
    "gpu": {
        "gpu": {
            "resourceName": "nvidia.com/gpu",
            "nodeSelector": {"pool": "gpu"},
            "tolerations": [
                {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}
            ],
        }
    },
    "postgresql": {
        "postgresql": {"enabled": True, "dsnSecret": {"name": "apprentice-db", "key": "dsn"}}
    },
    "servicemonitor": {
        "metrics": {"serviceMonitor": {"enabled": True, "labels": {"release": "prom"}}}
    },
    "namespaced": {
        "watchNamespaces": ["team-a", "team-b"],
        "replicaCount": 1,
        "imagePullSecrets": [{"name": "regcred"}],
        "image": {"digest": "sha256:" + "a" * 64},
    },
}


@pytest.fixture(scope="module")
def helm() -> Path:
    return tools.ensure_tools(ROOT / ".tools")["helm"]


def run_helm(
    helm: Path, *args: str, values: dict[str, Any] | None = None, tmp: Path | None = None
) -> subprocess.CompletedProcess[str]:
    cmd = [str(helm), *args]
    if values is not None and tmp is not None:
        file = tmp / "values.yaml"
        file.write_text(yaml.safe_dump(values))
        cmd += ["-f", str(file)]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=120, check=False)


def render(helm: Path, tmp: Path, values: dict[str, Any]) -> list[dict[str, Any]]:
    out = run_helm(
        helm,
        "template",
        "apprentice",
        str(CHART),
        "--namespace",
        "apprentice",
        values=values,
        tmp=tmp,
    )
    assert out.returncode == 0, out.stderr
    return [d for d in yaml.safe_load_all(out.stdout) if d]


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_helm_lint_is_clean(helm: Path, tmp_path: Path, variant: str) -> None:
    out = run_helm(helm, "lint", "--strict", str(CHART), values=VARIANTS[variant], tmp=tmp_path)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "[ERROR]" not in out.stdout and "[WARNING]" not in out.stdout


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_rendered_manifests_validate_against_kubernetes(
    helm: Path, tmp_path: Path, variant: str
) -> None:
    docs = render(helm, tmp_path, VARIANTS[variant])
    kinds = {d["kind"] for d in docs}
    assert {"Deployment", "ServiceAccount", "ClusterRole", "CustomResourceDefinition"} <= kinds
    for doc in docs:
        if doc["kind"] in NOT_BUILT_IN:
            assert doc["apiVersion"] in ("monitoring.coreos.com/v1", "kopf.dev/v1")
            continue
        kubernetes_validate.validate(doc, K8S_VERSION, strict=True)


def by_kind(docs: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [d for d in docs if d["kind"] == kind]


def test_chart_crds_are_the_generated_crds(helm: Path, tmp_path: Path) -> None:
    rendered = {
        d["metadata"]["name"]: d
        for d in by_kind(render(helm, tmp_path, {}), "CustomResourceDefinition")
    }
    for crd in crds.all_crds().values():
        got = rendered[crd["metadata"]["name"]]
        assert got["spec"] == crd["spec"]
        assert got["metadata"]["annotations"] == {"helm.sh/resource-policy": "keep"}
    assert {"clusterkopfpeerings.kopf.dev", "kopfpeerings.kopf.dev"} <= set(rendered)


def test_crds_can_be_left_out_or_not_kept(helm: Path, tmp_path: Path) -> None:
    assert not by_kind(
        render(helm, tmp_path, {"crds": {"enabled": False}}), "CustomResourceDefinition"
    )
    not_kept = by_kind(
        render(helm, tmp_path, {"crds": {"keep": False}}), "CustomResourceDefinition"
    )
    assert not_kept and all("annotations" not in d["metadata"] for d in not_kept)


def test_values_schema_rejects_unknown_keys(helm: Path, tmp_path: Path) -> None:
    out = run_helm(helm, "template", "x", str(CHART), values={"replicas": 2}, tmp=tmp_path)
    assert out.returncode != 0 and "replicas" in out.stderr


def env_of(docs: list[dict[str, Any]]) -> dict[str, str]:
    (deploy,) = by_kind(docs, "Deployment")
    (container,) = deploy["spec"]["template"]["spec"]["containers"]
    return {e["name"]: e.get("value") for e in container["env"]}


def test_images_default_to_the_app_version(helm: Path, tmp_path: Path) -> None:
    app_version = yaml.safe_load((CHART / "Chart.yaml").read_text())["appVersion"]
    docs = render(helm, tmp_path, {})
    (deploy,) = by_kind(docs, "Deployment")
    image = deploy["spec"]["template"]["spec"]["containers"][0]["image"]
    assert image == f"ghcr.io/apprentice-dev/apprentice-operator:{app_version}"
    env = env_of(docs)
    assert env["APPRENTICE_GATEWAY_IMAGE"].endswith(f":{app_version}")
    assert env["APPRENTICE_TRAINER_IMAGE"].endswith(f":{app_version}")
    assert env["APPRENTICE_PEERING"] == "apprentice"


def test_operator_settings_follow_the_values(helm: Path, tmp_path: Path) -> None:
    env = env_of(render(helm, tmp_path, {**VARIANTS["postgresql"], **VARIANTS["gpu"]}))
    assert env["APPRENTICE_POSTGRES_SECRET"] == "apprentice-db/dsn"
    assert env["APPRENTICE_GPU_NODE_SELECTOR"] == '{"pool":"gpu"}'
    from apprentice.kube.runtime import settings_from_env

    settings = settings_from_env(env)
    assert settings.defaults.gpu_node_selector == {"pool": "gpu"}
    assert settings.defaults.postgres is not None
    assert settings.defaults.postgres.name == "apprentice-db"
    assert settings.clusterwide and settings.peering == "apprentice"


def test_rbac_is_least_privilege(helm: Path, tmp_path: Path) -> None:
    docs = render(helm, tmp_path, VARIANTS["namespaced"])
    (cluster_role,) = by_kind(docs, "ClusterRole")
    cluster_resources = {r for rule in cluster_role["rules"] for r in rule["resources"]}
    assert cluster_resources == {"customresourcedefinitions", "namespaces", "clusterkopfpeerings"}
    roles = by_kind(docs, "Role")
    assert sorted(r["metadata"]["namespace"] for r in roles) == ["team-a", "team-b"]
    for doc in by_kind(docs, "Role") + by_kind(docs, "ClusterRole"):
        for rule in doc["rules"]:
            assert "*" not in rule["verbs"] and "*" not in rule["resources"]
            if "secrets" in rule["resources"]:
                assert sorted(rule["verbs"]) == ["create", "get"]
    assert len(by_kind(docs, "KopfPeering")) == 2 and not by_kind(docs, "ClusterKopfPeering")
    env = env_of(docs)
    assert env["APPRENTICE_WATCH_NAMESPACES"] == "team-a,team-b"
    assert env["APPRENTICE_IMAGE_PULL_SECRETS"] == "regcred"


def test_operator_pod_is_hardened(helm: Path, tmp_path: Path) -> None:
    (deploy,) = by_kind(render(helm, tmp_path, {}), "Deployment")
    pod = deploy["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    container = pod["containers"][0]
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert container["securityContext"]["capabilities"] == {"drop": ["ALL"]}


def test_service_monitor_scrapes_the_metrics_service(helm: Path, tmp_path: Path) -> None:
    docs = render(helm, tmp_path, VARIANTS["servicemonitor"])
    (monitor,) = by_kind(docs, "ServiceMonitor")
    (service,) = by_kind(docs, "Service")
    assert monitor["metadata"]["labels"]["release"] == "prom"
    assert (
        monitor["spec"]["selector"]["matchLabels"].items() <= service["metadata"]["labels"].items()
    )
    assert monitor["spec"]["endpoints"][0]["port"] == service["spec"]["ports"][0]["name"]
