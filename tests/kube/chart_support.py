"""Render the chart with the real helm binary: shared by the chart tests."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "charts" / "apprentice"
K8S_VERSION = "1.33.0"
#: Kinds whose schema is not built into Kubernetes (prometheus-operator's and kopf's).
NOT_BUILT_IN = {
    "ServiceMonitor": "monitoring.coreos.com/v1",
    "PodMonitor": "monitoring.coreos.com/v1",
    "PrometheusRule": "monitoring.coreos.com/v1",
    "KopfPeering": "kopf.dev/v1",
    "ClusterKopfPeering": "kopf.dev/v1",
}
#: The value sets the chart documents (charts/apprentice/ci/*-values.yaml), by name.
VALUE_SETS: dict[str, Path] = {
    p.name.removesuffix("-values.yaml"): p for p in sorted((CHART / "ci").glob("*-values.yaml"))
}


def value_set(name: str) -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load(VALUE_SETS[name].read_text()) or {}
    return data


def run_helm(
    helm: Path, *args: str, values: dict[str, Any] | None = None, tmp: Path | None = None
) -> subprocess.CompletedProcess[str]:
    cmd = [str(helm), *args]
    if values is not None and tmp is not None:
        file = tmp / "values.yaml"
        file.write_text(yaml.safe_dump(values))
        cmd += ["-f", str(file)]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=120, check=False)


def render(
    helm: Path, tmp: Path, values: dict[str, Any], *extra: str, namespace: str = "apprentice"
) -> list[dict[str, Any]]:
    out = run_helm(
        helm,
        "template",
        "apprentice",
        str(CHART),
        "--namespace",
        namespace,
        *extra,
        values=values,
        tmp=tmp,
    )
    assert out.returncode == 0, out.stderr
    return [d for d in yaml.safe_load_all(out.stdout) if d]


def by_kind(docs: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [d for d in docs if d["kind"] == kind]


def env_of(docs: list[dict[str, Any]]) -> dict[str, str]:
    (deploy,) = by_kind(docs, "Deployment")
    (container,) = deploy["spec"]["template"]["spec"]["containers"]
    return {e["name"]: e.get("value") for e in container["env"]}


def helm_binary() -> Path:
    """The real helm binary, unpacked into .tools/ on first use."""
    from apprentice.kube import tools

    return tools.ensure_tools(ROOT / ".tools")["helm"]
