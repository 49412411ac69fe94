"""Pure builders for one training run: the TrainingJob, its ``batch/v1`` Job, the ModelVersion.

Ownership follows lifetime: a TrainingJob and every ModelVersion are owned by the
DistilledTask (deleting the task removes its history); the Job is owned by its
TrainingJob. The trainer (``python -m apprentice.training.job``) takes its settings from
``APPRENTICE_*`` variables, pulls the run's training data from the gateway's admin API
(selected by the gateway, as for the embedded mode) with the admin token (an env var
from the Secret), writes the adapter and ``metrics.json`` under :func:`adapter_path`,
and leaves the reason of a failure in its termination message.
"""

from __future__ import annotations

from typing import Any

from apprentice.kube import API_VERSION, TASK_LABEL, TRAINING_JOB_LABEL
from apprentice.kube.models import ModelVersionSpec, TrainingJobSpec
from apprentice.kube.objects import (
    DATA_DIR,
    MODELS_DIR,
    Manifest,
    TaskObject,
    container_security_context,
    gateway_env,
    hf_token_env,
    inference_affinity,
    labels,
    owner_reference,
    placement,
    pod_security_context,
    pull_secrets,
    resources,
    unprivileged_env,
)

__all__ = [
    "adapter_path",
    "get_job",
    "get_model_version",
    "get_training_job",
    "job_name",
    "model_version_name",
    "training_job_name",
]


def training_job_name(task: str, version: str) -> str:
    return f"{task}-{version}"


def job_name(training_job: str) -> str:
    return f"{training_job}-train"


def model_version_name(task: str, version: str) -> str:
    return f"{task}-{version}"


def adapter_path(task_name: str, version: str) -> str:
    """Where the trainer writes a version's adapter on the shared volume."""
    return f"{MODELS_DIR}/{task_name}/{version}"


def get_training_job(
    task: TaskObject, version: str, *, reason: str | None, examples: int | None
) -> Manifest:
    """A TrainingJob for the next version, owned by the DistilledTask."""
    spec = TrainingJobSpec(
        task_ref=task.name, task=task.spec.name, version=version, reason=reason, examples=examples
    )
    return {
        "apiVersion": API_VERSION,
        "kind": "TrainingJob",
        "metadata": {
            "name": training_job_name(task.name, version),
            "namespace": task.namespace,
            "labels": labels(task.name, "training"),
            "ownerReferences": [owner_reference("DistilledTask", task.name, task.uid)],
        },
        "spec": spec.model_dump(by_alias=True, mode="json", exclude_none=True),
    }


def get_job(
    task: TaskObject, training_job: str, training_job_uid: str, version: str, gateway_url: str
) -> Manifest:
    """The ``batch/v1`` Job that trains one version on the trainer image."""
    training = task.spec.training
    meta_labels = {**labels(task.name, "training"), TRAINING_JOB_LABEL: training_job}
    job_spec: dict[str, Any] = {
        "backoffLimit": training.backoff_limit,
        "activeDeadlineSeconds": training.active_deadline_seconds,
        "template": {
            "metadata": {"labels": meta_labels},
            "spec": _trainer_pod(task, _trainer_container(task, version, gateway_url)),
        },
    }
    if training.ttl_seconds_after_finished is not None:
        job_spec["ttlSecondsAfterFinished"] = training.ttl_seconds_after_finished
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {
            "name": job_name(training_job),
            "namespace": task.namespace,
            "labels": meta_labels,
            "ownerReferences": [owner_reference("TrainingJob", training_job, training_job_uid)],
        },
        "spec": job_spec,
    }


def _trainer_container(task: TaskObject, version: str, gateway_url: str) -> Manifest:
    """The trainer; its settings are its APPRENTICE_* variables (see apprentice.training.job)."""
    spec = task.spec
    training = spec.training
    gpu = spec.student.gpu
    default = (
        {
            "requests": {"cpu": "4", "memory": "32Gi", task.defaults.gpu_resource: 1},
            "limits": {"memory": "64Gi", task.defaults.gpu_resource: 1},
        }
        if gpu
        else {"requests": {"cpu": "1", "memory": "2Gi"}, "limits": {"memory": "4Gi"}}
    )
    return {
        "name": "trainer",
        "image": training.image or task.defaults.trainer_image,
        "imagePullPolicy": task.defaults.pull_policy,
        "command": ["python", "-m", "apprentice.training.job"],
        "env": [
            *gateway_env(task),
            {"name": "APPRENTICE_GATEWAY_URL", "value": gateway_url},
            {"name": "APPRENTICE_TASK", "value": spec.name},
            {"name": "APPRENTICE_OUTPUT_DIR", "value": adapter_path(spec.name, version)},
            {"name": "APPRENTICE_BASE_MODEL", "value": spec.training_base},
            {"name": "APPRENTICE_FINE_TUNE_BACKEND", "value": training.fine_tune_backend.value},
            {"name": "APPRENTICE_TRAINING", "value": training.hyperparameters.model_dump_json()},
            {"name": "APPRENTICE_DEVICE", "value": "cuda" if gpu else "cpu"},
            # In a cluster the trainer fetches a Hugging Face base model itself (offline
            # is the default only for the embedded mode, where nothing may download).
            {"name": "APPRENTICE_ALLOW_DOWNLOAD", "value": "1"},
            {"name": "HF_HOME", "value": f"{DATA_DIR}/hf-cache"},
            *[e for e in unprivileged_env() if e["name"] != "HOME"],  # gateway_env sets HOME
            *hf_token_env(task),
        ],
        "terminationMessagePolicy": "FallbackToLogsOnError",
        "resources": resources(training.resources, default),
        "securityContext": container_security_context(),
        "volumeMounts": [
            {"name": "data", "mountPath": DATA_DIR},
            {"name": "tmp", "mountPath": "/tmp"},
        ],
    }


def _trainer_pod(task: TaskObject, container: Manifest) -> Manifest:
    """The trainer's pod: unprivileged, on the task's volume, placed by profile."""
    training = task.spec.training
    pod: Manifest = {
        **pull_secrets(task),
        "restartPolicy": "Never",
        "automountServiceAccountToken": False,
        "securityContext": pod_security_context(),
        "containers": [container],
        "volumes": [
            {"name": "data", "persistentVolumeClaim": {"claimName": task.names.pvc}},
            {"name": "tmp", "emptyDir": {}},
        ],
    }
    if task.spec.student.gpu:
        pod.update(task.gpu_placement(training.node_selector, training.tolerations))
    else:
        pod.update(placement(training.node_selector, training.tolerations))
    if task.spec.storage.access_mode == "ReadWriteOnce":
        # The volume attaches to one node: train where the inference pod runs (a gpu task
        # then needs a node with two GPUs; see the chart's README on GPU topology).
        pod["affinity"] = inference_affinity(task)
    return pod


def get_model_version(
    task: TaskObject, training_job: str, version: str, metrics: dict[str, Any] | None = None
) -> Manifest:
    """The ModelVersion of a finished run, owned by the DistilledTask."""
    spec = ModelVersionSpec(
        task_ref=task.name,
        task=task.spec.name,
        version=version,
        path=adapter_path(task.spec.name, version),
        training_job=training_job,
        metrics=metrics or {},
    )
    return {
        "apiVersion": API_VERSION,
        "kind": "ModelVersion",
        "metadata": {
            "name": model_version_name(task.name, version),
            "namespace": task.namespace,
            "labels": {
                **labels(task.name, "model"),
                TRAINING_JOB_LABEL: training_job,
                TASK_LABEL: task.name,
            },
            "ownerReferences": [owner_reference("DistilledTask", task.name, task.uid)],
        },
        "spec": spec.model_dump(by_alias=True, mode="json", exclude_none=True),
    }
