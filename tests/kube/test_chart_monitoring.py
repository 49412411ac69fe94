"""Monitoring and network objects of the chart match what the operator and gateway expose.

The PodMonitor and NetworkPolicy select pods by the labels the operator's own manifest
builders put on a task's inference pod; every metric an alert or dashboard panel reads is
one the gateway or the operator defines (finding 11).
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from chart_support import CHART, by_kind, helm_binary, render, run_helm, value_set

from apprentice.kube import metrics as operator_metrics
from apprentice.kube.manifests import TaskObject, build_children
from apprentice.reporting.metrics import METRIC_NAMES

ROOT = Path(__file__).resolve().parents[2]
NS = "apprentice"  # the release namespace chart_support.render uses
CPU_TASK = ROOT / "examples" / "kubernetes" / "cpu-replay-task.yaml"
#: Series a metric family exposes besides its name (histograms, counters).
SUFFIXES = ("_bucket", "_sum", "_count", "_created")
#: From kube-state-metrics and Prometheus itself, not from this project.
EXTERNAL = {"kube_pod_status_phase", "up"}
PROMQL_WORDS = {
    "sum", "max", "min", "by", "rate", "increase", "histogram_quantile", "absent", "or",
    "and", "le", "offset",
}  # fmt: skip


@pytest.fixture(scope="module")
def helm() -> Path:
    return helm_binary()


@pytest.fixture(scope="module")
def inference_pod() -> dict[str, Any]:
    """The inference pod template the operator builds for the CPU example task."""
    (task,) = [
        d for d in yaml.safe_load_all(CPU_TASK.read_text()) if d and d["kind"] == "DistilledTask"
    ]
    body = {**task, "metadata": {**task["metadata"], "namespace": "team-a", "uid": "u1"}}
    (deploy,) = [c for c in build_children(TaskObject.from_body(body)) if c["kind"] == "Deployment"]
    pod: dict[str, Any] = deploy["spec"]["template"]
    return pod


def classify_body() -> dict[str, Any]:
    path = ROOT / "examples" / "kubernetes" / "classify-ticket.yaml"
    (task,) = [
        d for d in yaml.safe_load_all(path.read_text()) if d and d["kind"] == "DistilledTask"
    ]
    return {**task, "metadata": {**task["metadata"], "namespace": "team-a", "uid": "u2"}}


def known_metrics() -> set[str]:
    ours = set(METRIC_NAMES)
    for counter in vars(operator_metrics).values():
        name = getattr(counter, "_name", None)
        if isinstance(name, str):
            ours.add(name + "_total" if type(counter).__name__ == "Counter" else name)
    return ours


def metric_names(expr: str) -> set[str]:
    """Metric names in a PromQL expression (label matchers and strings removed)."""
    bare = re.sub(r"\{[^}]*\}|\"[^\"]*\"|\[[^\]]*\]", " ", expr)
    words = set(re.findall(r"[a-zA-Z_:][a-zA-Z0-9_:]*", bare))
    groupings = set()
    for group in re.findall(r"\bby\s*\(([^)]*)\)", bare):
        groupings |= {w.strip() for w in group.split(",")}
    return words - PROMQL_WORDS - groupings


def base(name: str) -> str:
    for suffix in SUFFIXES:
        if name.endswith(suffix) and not name.endswith("_total"):
            return name.removesuffix(suffix)
    return name


def test_metric_name_parser_finds_names_and_skips_labels() -> None:
    expr = 'sum by (task, le) (rate(a_b_bucket{kind="x y", pod=~"p.+"}[5m])) > 0 or up == 0'
    assert metric_names(expr) == {"a_b_bucket", "up"}


def test_gateway_pod_monitor_selects_the_operators_inference_pods(
    helm: Path, tmp_path: Path, inference_pod: dict[str, Any]
) -> None:
    docs = render(helm, tmp_path, value_set("monitoring"))
    (monitor,) = by_kind(docs, "PodMonitor")
    assert (
        monitor["spec"]["selector"]["matchLabels"].items()
        <= inference_pod["metadata"]["labels"].items()
    )
    endpoint, vllm_endpoint = monitor["spec"]["podMetricsEndpoints"]
    gateway = next(c for c in inference_pod["spec"]["containers"] if c["name"] == "gateway")
    assert endpoint["port"] in {p["name"] for p in gateway["ports"]}
    assert endpoint["path"] == "/metrics"
    # The vLLM container of a gpu-profile pod names its port as the PodMonitor does.
    children = build_children(TaskObject.from_body(classify_body()))
    (deploy,) = [c for c in children if c["kind"] == "Deployment"]
    (vllm,) = [c for c in deploy["spec"]["template"]["spec"]["containers"] if c["name"] == "vllm"]
    assert vllm_endpoint["port"] in {p["name"] for p in vllm["ports"]}
    assert monitor["spec"]["namespaceSelector"] == {"any": True}
    (operator_labels,) = [
        d["spec"]["template"]["metadata"]["labels"] for d in by_kind(docs, "Deployment")
    ]
    assert not monitor["spec"]["selector"]["matchLabels"].items() <= operator_labels.items()
    namespaced = render(helm, tmp_path, {**value_set("monitoring"), "watchNamespaces": ["a"]})
    (monitor,) = by_kind(namespaced, "PodMonitor")
    assert monitor["spec"]["namespaceSelector"] == {"matchNames": ["a"]}


def test_alerts_cover_on_call_needs_and_read_real_metrics(helm: Path, tmp_path: Path) -> None:
    docs = render(helm, tmp_path, value_set("monitoring"))
    (rule,) = by_kind(docs, "PrometheusRule")
    alerts = {r["alert"]: r for g in rule["spec"]["groups"] for r in g["rules"]}
    assert {
        "ApprenticeBudgetNearCap",
        "ApprenticeBudgetExhausted",
        "ApprenticeEmergency",
        "ApprenticeTrainingFailed",
        "ApprenticeGatewayDown",
        "ApprenticeTrainerPending",
        "ApprenticeOperatorDown",
    } <= set(alerts)
    known = known_metrics() | EXTERNAL
    for name, alert in alerts.items():
        names = {base(n) for n in metric_names(alert["expr"])}
        assert names and names <= {base(k) for k in known}, (name, names - known)
        assert alert["labels"]["severity"] in {"warning", "critical"}
        assert alert["labels"]["team"] == "ml"  # alertLabels reach every alert
        assert alert["annotations"]["summary"] and alert["annotations"]["description"]
        assert "{{`" not in json.dumps(alert)  # helm's escapes are gone, Prometheus's stay
    # GatewayDown reads the PodMonitor's own job, so it fires for gateways only.
    (monitor,) = by_kind(docs, "PodMonitor")
    job = f"{monitor['metadata']['namespace']}/{monitor['metadata']['name']}"
    assert f'up{{job="{job}"}}' in alerts["ApprenticeGatewayDown"]["expr"]
    assert "{{ $labels.pod }}" in alerts["ApprenticeGatewayDown"]["annotations"]["description"]
    kinds = set(re.findall(r'kind="([a-z_0-9]+)"', json.dumps(alerts)))
    from apprentice.reporting.alerts import ALERT_KINDS

    assert kinds <= set(ALERT_KINDS)


def test_dashboard_is_valid_json_reading_real_metrics(helm: Path, tmp_path: Path) -> None:
    docs = render(helm, tmp_path, value_set("monitoring"))
    (cm,) = [d for d in by_kind(docs, "ConfigMap") if d["metadata"]["name"].endswith("dashboard")]
    assert cm["metadata"]["labels"]["grafana_dashboard"] == "1"
    dashboard = json.loads(cm["data"]["apprentice.json"])
    assert dashboard == json.loads((CHART / "dashboards" / "apprentice.json").read_text())
    known = {base(k) for k in known_metrics()}
    panels = dashboard["panels"]
    assert len({p["id"] for p in panels}) == len(panels) >= 10
    for panel in panels:
        for target in panel["targets"]:
            names = {base(n) for n in metric_names(target["expr"])}
            assert names and names <= known, (panel["title"], names - known)


def test_network_policy_lets_the_operator_reach_gateways_and_the_api(
    helm: Path, tmp_path: Path, inference_pod: dict[str, Any]
) -> None:
    docs = render(helm, tmp_path, value_set("hardened"))
    (policy,) = [p for p in by_kind(docs, "NetworkPolicy") if p["metadata"]["namespace"] == NS]
    (deploy,) = by_kind(docs, "Deployment")
    pod_labels = deploy["spec"]["template"]["metadata"]["labels"]
    assert policy["spec"]["podSelector"]["matchLabels"].items() <= pod_labels.items()
    assert policy["spec"]["policyTypes"] == ["Ingress", "Egress"]
    egress = policy["spec"]["egress"]
    (to_gateways,) = [e for e in egress if any("podSelector" in t for t in e.get("to", []))]
    (peer,) = to_gateways["to"]
    assert peer["podSelector"]["matchLabels"].items() <= inference_pod["metadata"]["labels"].items()
    assert peer["namespaceSelector"]["matchExpressions"][0]["values"] == ["team-a"]
    gateway = next(c for c in inference_pod["spec"]["containers"] if c["name"] == "gateway")
    assert to_gateways["ports"][0]["port"] == gateway["ports"][0]["containerPort"]
    api = [e for e in egress if any("ipBlock" in t for t in e.get("to", []))]
    assert api and api[0]["to"] == [{"ipBlock": {"cidr": "10.0.0.1/32"}}]
    assert any(p["port"] == 53 for e in egress for p in e.get("ports", []))
    ingress_ports = {p["port"] for rule in policy["spec"]["ingress"] for p in rule["ports"]}
    assert ingress_ports == {8080, 9090}  # liveness probe and metrics, nothing else
    assert not by_kind(render(helm, tmp_path, {}), "NetworkPolicy")  # off by default


def test_gateway_network_policy_admits_the_operator_trainers_and_named_clients(
    helm: Path, tmp_path: Path, inference_pod: dict[str, Any]
) -> None:
    from apprentice.kube.training_manifests import get_job

    docs = render(helm, tmp_path, value_set("hardened"))
    (policy,) = [
        p for p in by_kind(docs, "NetworkPolicy") if p["metadata"]["namespace"] == "team-a"
    ]
    labels = inference_pod["metadata"]["labels"]
    assert policy["spec"]["podSelector"]["matchLabels"].items() <= labels.items()
    assert policy["spec"]["policyTypes"] == ["Ingress"]
    (rule,) = policy["spec"]["ingress"]
    gateway = next(c for c in inference_pod["spec"]["containers"] if c["name"] == "gateway")
    assert [p["port"] for p in rule["ports"]] == [gateway["ports"][0]["containerPort"]]
    peers = rule["from"]
    (deploy,) = by_kind(docs, "Deployment")
    operator_labels = deploy["spec"]["template"]["metadata"]["labels"]
    operator_peer = next(p for p in peers if "namespaceSelector" in p and "podSelector" in p)
    assert operator_peer["namespaceSelector"]["matchLabels"] == {"kubernetes.io/metadata.name": NS}
    assert operator_peer["podSelector"]["matchLabels"].items() <= operator_labels.items()
    (task,) = [
        d for d in yaml.safe_load_all(CPU_TASK.read_text()) if d and d["kind"] == "DistilledTask"
    ]
    body = {**task, "metadata": {**task["metadata"], "namespace": "team-a", "uid": "u1"}}
    obj = TaskObject.from_body(body)
    trainer_labels = get_job(obj, "t-v1", "u3", "v1", obj.endpoint)["spec"]["template"]["metadata"][
        "labels"
    ]
    assert any(
        set(p) == {"podSelector"}
        and p["podSelector"]["matchLabels"].items() <= trainer_labels.items()
        for p in peers
    )
    assert {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "apps"}}} in peers
    no_namespaces = {**value_set("hardened"), "watchNamespaces": []}
    out = run_helm(helm, "template", "x", str(CHART), values=no_namespaces, tmp=tmp_path)
    assert (
        out.returncode != 0 and "networkPolicy.gateways.enabled needs watchNamespaces" in out.stderr
    )
