"""``helm install`` of charts/apprentice into a fresh control plane, as a new user would.

Default values first: install, upgrade with changed values, uninstall with ``crds.keep``
honoured both ways. Then every value set the chart documents (``charts/apprentice/ci/``)
installs and uninstalls. ``--wait`` makes Helm wait until the operator's pods are Ready
(kwok's fake kubelets run them; three fake nodes, so hard anti-affinity can be met).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from cluster_support import CHART, Cluster, eventually, example_task

RELEASE = "apprentice"
NS = "apprentice-system"
TASKS_NS = "chart-tasks"
CRD_NAMES = [
    "distilledtasks.apprentice.dev",
    "trainingjobs.apprentice.dev",
    "modelversions.apprentice.dev",
]


#: The value sets the chart documents (and renders offline in tests/kube/test_chart.py).
VALUE_SETS = sorted((CHART / "ci").glob("*-values.yaml"))

# Minimal prometheus-operator CRDs: the monitoring value sets need the kinds to exist.
MONITORING_KINDS = {"ServiceMonitor": "servicemonitors", "PodMonitor": "podmonitors"}
MONITORING_KINDS["PrometheusRule"] = "prometheusrules"


def _monitoring_crd(kind: str, plural: str) -> dict[str, Any]:
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": f"{plural}.monitoring.coreos.com"},
        "spec": {
            "group": "monitoring.coreos.com",
            "scope": "Namespaced",
            "names": {"kind": kind, "plural": plural, "singular": kind.lower()},
            "versions": [
                {
                    "name": "v1",
                    "served": True,
                    "storage": True,
                    "schema": {
                        "openAPIV3Schema": {
                            "type": "object",
                            "x-kubernetes-preserve-unknown-fields": True,
                        }
                    },
                }
            ],
        },
    }


@pytest.fixture(scope="module")
def fresh(cluster: Cluster) -> Cluster:
    """A release namespace, the tasks namespace, and no Apprentice CRDs yet."""
    cluster.delete_crds(CRD_NAMES)
    cluster.create_namespace(NS)
    cluster.create_namespace(TASKS_NS)
    return cluster


def _values(tmp_path: Path, values: dict[str, Any]) -> list[str]:
    file = tmp_path / "values.yaml"
    file.write_text(yaml.safe_dump(values))
    return ["-f", str(file)]


def install(cluster: Cluster, tmp_path: Path, values: dict[str, Any], verb: str = "install") -> str:
    return cluster.helm(
        verb, RELEASE, str(CHART), "-n", NS, *_values(tmp_path, values), "--wait", "--timeout=3m"
    )


def _env(cluster: Cluster) -> dict[str, str]:
    deploys = cluster.items("deployment", NS, f"app.kubernetes.io/instance={RELEASE}")
    assert len(deploys) == 1, [d["metadata"]["name"] for d in deploys]
    container = deploys[0]["spec"]["template"]["spec"]["containers"][0]
    return {e["name"]: e.get("value", "") for e in container.get("env", [])}


def test_default_install_then_upgrade_then_uninstall_keeps_the_crds(
    fresh: Cluster, tmp_path: Path
) -> None:
    out = install(fresh, tmp_path, {})
    assert "STATUS: deployed" in out, out
    for name in CRD_NAMES:
        crd = fresh.get("crd", name)
        assert crd is not None, f"{name} not installed by the chart"
    ready = fresh.items("deployment", NS, f"app.kubernetes.io/instance={RELEASE}")[0]
    assert ready["status"].get("readyReplicas") == ready["spec"]["replicas"]

    out = install(fresh, tmp_path, {"logLevel": "debug", "pollIntervalSeconds": 10}, "upgrade")
    assert "STATUS: deployed" in out, out
    env = _env(fresh)
    assert env["APPRENTICE_LOG_LEVEL"] == "debug"
    assert env["APPRENTICE_POLL_INTERVAL"] == "10"
    history = fresh.helm("history", RELEASE, "-n", NS, "-o", "yaml")
    assert [h["revision"] for h in yaml.safe_load(history)] == [1, 2]

    # A user's task, which crds.keep (the default) must protect from the uninstall.
    task = example_task("classify-ticket.yaml")
    task["metadata"] = {"name": "kept", "namespace": TASKS_NS}
    fresh.apply(task, TASKS_NS)
    fresh.helm("uninstall", RELEASE, "-n", NS, "--wait", "--timeout=2m")
    assert fresh.items("deployment", NS) == []
    for name in CRD_NAMES:
        assert fresh.get("crd", name) is not None, f"{name} removed although crds.keep is true"
    assert fresh.get("distilledtask", "kept", TASKS_NS) is not None


def test_uninstall_with_crds_keep_false_removes_the_crds(fresh: Cluster, tmp_path: Path) -> None:
    install(fresh, tmp_path, {"crds": {"keep": False}})
    # Nothing watches the kinds here (no operator runs): without this, the CRD finalizer's
    # own list may be the first, and the CRD can stay Terminating for minutes.
    fresh.warm_watch_caches(CRD_NAMES)
    fresh.helm("uninstall", RELEASE, "-n", NS, "--wait", "--timeout=2m")
    for name in CRD_NAMES:
        eventually(lambda n=name: fresh.get("crd", n) is None, 60, f"{name} deleted")


@pytest.fixture(scope="module")
def monitoring(fresh: Cluster) -> Cluster:
    fresh.apply([_monitoring_crd(k, p) for k, p in MONITORING_KINDS.items()], "default")
    for plural in MONITORING_KINDS.values():
        fresh.kubectl("wait", "--for=condition=Established", f"crd/{plural}.monitoring.coreos.com")
    for path in VALUE_SETS:
        for ns in (yaml.safe_load(path.read_text()) or {}).get("watchNamespaces", []):
            if fresh.get("namespace", ns) is None:
                fresh.create_namespace(ns)
    return fresh


def test_the_value_sets_are_found() -> None:
    assert len(VALUE_SETS) >= 5, VALUE_SETS


@pytest.mark.parametrize("values", VALUE_SETS, ids=lambda p: p.name)
def test_every_documented_value_set_installs(monitoring: Cluster, values: Path) -> None:
    out = monitoring.helm(
        "install", RELEASE, str(CHART), "-n", NS, "-f", str(values), "--wait", "--timeout=3m"
    )
    assert "STATUS: deployed" in out, out
    manifest = monitoring.helm("get", "manifest", RELEASE, "-n", NS)
    kinds = {d["kind"] for d in yaml.safe_load_all(manifest) if d}
    assert {"Deployment", "ServiceAccount"} <= kinds, kinds
    monitoring.helm("uninstall", RELEASE, "-n", NS, "--wait", "--timeout=2m")
