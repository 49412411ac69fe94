"""Every example manifest is valid: CRD schema + CEL twins for ours, Kubernetes for the rest."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from apprentice.kube import crd_validation, crds
from apprentice.kube.manifests import TaskObject, build_children

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = sorted((ROOT / "examples" / "kubernetes").glob("*.yaml"))
CRDS = crds.all_crds()


def docs(path: Path) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(path.read_text()) if d]


def test_the_three_tasks_are_there() -> None:
    tasks = {
        d["metadata"]["name"]: d for p in EXAMPLES for d in docs(p) if d["kind"] == "DistilledTask"
    }
    providers = sorted(
        (d["spec"]["teacher"]["provider"], d["spec"]["student"].get("profile", "gpu"))
        for d in tasks.values()
    )
    assert providers == [("anthropic", "gpu"), ("openai", "gpu"), ("replay", "cpu")]


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.name)
def test_example_validates(path: Path) -> None:
    for doc in docs(path):
        if doc["kind"] in CRDS:
            assert crd_validation.validate(CRDS[doc["kind"]], doc) == []
            body = {**doc, "metadata": {**doc["metadata"], "namespace": "default"}}
            for child in build_children(TaskObject.from_body(body)):
                kubernetes_validate.validate(child, "1.33.0", strict=True)
        else:
            kubernetes_validate.validate(doc, "1.33.0", strict=True)


def test_cpu_example_replay_answers_are_mounted_from_its_configmap() -> None:
    cpu = {d["kind"]: d for d in docs(ROOT / "examples" / "kubernetes" / "cpu-replay-task.yaml")}
    ref = cpu["DistilledTask"]["spec"]["teacher"]["replayFrom"]
    assert cpu["ConfigMap"]["metadata"]["name"] == ref["name"]
    lines = cpu["ConfigMap"]["data"][ref["key"]].strip().splitlines()
    assert lines and all(yaml.safe_load(line).keys() == {"input", "output"} for line in lines)


def test_argocd_health_check_covers_our_kinds_and_reads_conditions() -> None:
    (cm,) = docs(ROOT / "examples" / "gitops" / "argocd-health.yaml")
    kubernetes_validate.validate(cm, "1.33.0", strict=True)
    keys = {k.removeprefix("resource.customizations.health."): v for k, v in cm["data"].items()}
    assert set(keys) == {
        "apprentice.dev_DistilledTask",
        "apprentice.dev_TrainingJob",
        "apprentice.dev_ModelVersion",
    }
    lua = keys["apprentice.dev_DistilledTask"]
    for word in ('"Ready"', '"Stalled"', '"Degraded"', "observedGeneration", '"Healthy"'):
        assert word in lua
    for text in keys.values():  # every block opened is closed (a cheap syntax check)
        script = re.sub(r'"[^"]*"', '""', text)
        opened = len(re.findall(r"\b(?:if|for)\b", script)) - script.count("elseif")
        one_line = len(re.findall(r"\bthen\b[^\n]*\bend\b", script))
        assert len(re.findall(r"\bend\b", script)) == opened, script
        assert one_line <= opened


def test_flux_health_checks_name_the_example_tasks() -> None:
    flux = {d["kind"]: d for d in docs(ROOT / "examples" / "gitops" / "flux-kustomization.yaml")}
    checks = flux["Kustomization"]["spec"]["healthChecks"]
    names = {
        d["metadata"]["name"] for p in EXAMPLES for d in docs(p) if d["kind"] == "DistilledTask"
    }
    assert all(
        c["kind"] == "DistilledTask" and c["apiVersion"] == "apprentice.dev/v1alpha1"
        for c in checks
    )
    assert {c["name"] for c in checks} <= names
