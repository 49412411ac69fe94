"""In Kubernetes a retrain warm-starts as in the embedded mode.

The gateway names the adapter a run starts from (the active version's path, as the
operator registered it from the ModelVersion) with the run's data; the trainer Job
opens that path. So the path must mean the same file in both pods: the same claim,
mounted at the same place, holding the adapters where the gateway's config says.
And the one switch, ``training.hyperparameters.warmStart``, reaches both: the
gateway that decides and the trainer that honours it.
"""

from __future__ import annotations

import json
from pathlib import PurePosixPath
from typing import Any

import pytest
from kube_samples import classify

from apprentice import config
from apprentice.kube import manifests, training_manifests
from apprentice.kube.manifests import TaskObject


def _mount(pod: dict[str, Any], container: str) -> tuple[str, str]:
    """(claim, mount path) of the container's volume that holds the adapters."""
    claims = {
        v["name"]: v["persistentVolumeClaim"]["claimName"]
        for v in pod["volumes"]
        if "persistentVolumeClaim" in v
    }
    (found,) = (c for c in pod["containers"] if c["name"] == container)
    (mount,) = (m for m in found["volumeMounts"] if m["name"] in claims)
    return claims[mount["name"]], mount["mountPath"]


@pytest.mark.parametrize(
    "student",
    [{}, {"profile": "cpu", "baseModel": "apprentice/tiny"}],
    ids=["gpu-vllm", "cpu"],
)
def test_the_active_adapter_path_is_the_same_file_for_gateway_and_trainer(
    student: dict[str, Any],
) -> None:
    task = TaskObject.from_body(classify(student=student) if student else classify())
    gateway_pod = manifests.get_deployment(task, "h")["spec"]["template"]["spec"]
    job = training_manifests.get_job(task, "classify-ticket-v2", "uid", "v2", "http://gw:8080")
    trainer_pod = job["spec"]["template"]["spec"]
    claim, at = _mount(gateway_pod, "gateway")
    assert _mount(trainer_pod, "trainer") == (claim, at)
    # v1's path, as the operator registers it with the gateway, under that one mount ...
    v1 = training_manifests.get_model_version(task, "classify-ticket-v1", "v1")["spec"]["path"]
    assert PurePosixPath(v1).is_relative_to(at)
    # ... and where the gateway's own config keeps the task's adapters.
    loaded = config.loads(manifests.get_config_map(task)["data"]["apprentice.yaml"])
    assert PurePosixPath(loaded.local.model_dir) / task.spec.name / "v1" == PurePosixPath(v1)


@pytest.mark.parametrize("warm", [True, False])
def test_one_switch_reaches_the_gateway_that_decides_and_the_trainer(warm: bool) -> None:
    spec: dict[str, Any] = {"training": {"hyperparameters": {"warmStart": warm}}}
    task = TaskObject.from_body(classify(**spec))
    loaded = config.loads(manifests.get_config_map(task)["data"]["apprentice.yaml"])
    assert loaded.local.training.warm_start is warm
    job = training_manifests.get_job(task, "classify-ticket-v2", "uid", "v2", "http://gw:8080")
    (trainer,) = job["spec"]["template"]["spec"]["containers"]
    env = {e["name"]: e.get("value") for e in trainer["env"]}
    assert json.loads(env["APPRENTICE_TRAINING"])["warm_start"] is warm


def test_warm_start_is_on_unless_the_task_turns_it_off() -> None:
    task = TaskObject.from_body(classify())
    assert task.spec.training.hyperparameters.warm_start is True
