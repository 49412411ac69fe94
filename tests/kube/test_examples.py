"""Every example manifest is valid: CRD schema + CEL twins for ours, Kubernetes for the rest."""

from __future__ import annotations

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


def test_the_gated_model_example_passes_its_hugging_face_token_by_reference() -> None:
    """Finding 9: Llama 3.2 is gated; vLLM and the trainer get HF_TOKEN from the Secret."""
    from apprentice.kube.training_manifests import get_job

    (task,) = [
        d
        for d in docs(ROOT / "examples" / "kubernetes" / "classify-ticket.yaml")
        if d["kind"] == "DistilledTask"
    ]
    assert task["spec"]["student"]["baseModel"].startswith("meta-llama/")
    ref = task["spec"]["student"]["hfTokenSecretRef"]
    body = {**task, "metadata": {**task["metadata"], "namespace": "ml", "uid": "u1"}}
    obj = TaskObject.from_body(body)
    (deploy,) = [c for c in build_children(obj) if c["kind"] == "Deployment"]
    containers = {c["name"]: c for c in deploy["spec"]["template"]["spec"]["containers"]}
    job = get_job(obj, "classify-ticket-v1", "u2", "v1", obj.endpoint)
    (trainer,) = job["spec"]["template"]["spec"]["containers"]
    wanted = {"secretKeyRef": {"name": ref["name"], "key": ref["key"]}}
    for container in (containers["vllm"], trainer):
        env = {e["name"]: e for e in container["env"]}
        assert env["HF_TOKEN"]["valueFrom"] == wanted, container["name"]
