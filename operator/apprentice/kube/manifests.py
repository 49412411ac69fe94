"""Pure builders: a DistilledTask spec in, Kubernetes object dicts out (no API calls here).

``get_*`` functions return one manifest each; :func:`build_children` returns every child
of a DistilledTask in apply order. Everything carries an owner reference to the
DistilledTask, so deleting it garbage-collects the children, and the standard
``app.kubernetes.io`` labels. The gateway's config names the *environment variables*
that Secret keys fill, never a secret value. Shared pieces live in
:mod:`apprentice.kube.objects` (re-exported here).
"""

from __future__ import annotations

import base64
import hashlib
import json
from typing import Any

import yaml

from apprentice import config
from apprentice.config import ProviderKind
from apprentice.kube import CONFIG_HASH_ANNOTATION
from apprentice.kube.objects import (
    ADMIN_TOKEN_ENV,
    CONFIG_DIR,
    CONFIG_FILE,
    DATA_DIR,
    MODELS_DIR,
    REPLAY_DIR,
    STORE_URL_ENV,
    Defaults,
    Manifest,
    Names,
    TaskObject,
    container_security_context,
    gateway_env,
    hf_token_env,
    labels,
    metadata,
    owner_reference,
    placement,
    pod_security_context,
    pull_secrets,
    resources,
    selector,
    traces_env,
    unprivileged_env,
)

__all__ = [
    "ADMIN_TOKEN_ENV",
    "CONFIG_FILE",
    "DATA_DIR",
    "STORE_URL_ENV",
    "Defaults",
    "Manifest",
    "Names",
    "TaskObject",
    "build_children",
    "build_gateway_config",
    "config_hash",
    "container_security_context",
    "get_admin_secret",
    "get_config_map",
    "get_deployment",
    "get_pvc",
    "get_service",
    "labels",
    "owner_reference",
    "pod_security_context",
]

VLLM_PORT = 8000


def build_gateway_config(task: TaskObject) -> dict[str, Any]:
    """The gateway's apprentice.yaml for this one task (snake_case; no secret values)."""
    spec = task.spec
    task_keys = set(config.TaskConfig.model_fields)
    task_block = spec.model_dump(mode="json", include=task_keys, exclude_none=True)
    task_block.pop("budget", None)  # the task's caps are the gateway's global caps
    local = spec.local_config(
        model_dir=f"{MODELS_DIR}/", sidecar_url=f"http://127.0.0.1:{VLLM_PORT}/v1"
    )
    store = (
        f"${{{STORE_URL_ENV}}}" if spec.storage.postgres else f"sqlite:///{DATA_DIR}/apprentice.db"
    )
    remote = spec.teacher.provider_config(f"{REPLAY_DIR}/{_replay_key(task)}")
    # storage.requestRetentionDays when set (the API server's CRD default sets it)
    retention = spec.storage.model_dump(include={"request_retention_days"}, exclude_unset=True)
    out: dict[str, Any] = {
        "tasks": [task_block],
        "remote": remote.model_dump(mode="json", exclude_none=True),
        "local": local.model_dump(mode="json", include=local.model_fields_set, exclude_none=True),
        "budget": spec.budget.model_dump(mode="json", exclude_none=True),
        "store": {"url": store, **retention},
        "gateway": {
            "host": "0.0.0.0",
            "port": spec.gateway.port,
            "admin_token_env": ADMIN_TOKEN_ENV,
            "orchestrator": "operator",
            "require_api_keys": task.require_api_keys,
        },
    }
    traces = task.defaults.traces  # the chart's gateway.tracing; off: no block, as before
    if traces is not None:
        out["telemetry"] = {"traces": traces.model_dump(mode="json", exclude_none=True)}
    return out


def _replay_key(task: TaskObject) -> str:
    ref = task.spec.teacher.replay_from
    return ref.key if ref else "answers.jsonl"


def get_config_map(task: TaskObject) -> Manifest:
    """The gateway's config file; validated here so a bad one never reaches a pod."""
    data = build_gateway_config(task)
    config.ApprenticeConfig.model_validate(
        config.expand_env(data, {STORE_URL_ENV: "postgresql://validate"})
    )
    text = yaml.safe_dump(data, sort_keys=False)
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": metadata(task, task.names.config_map, "gateway"),
        "data": {"apprentice.yaml": text},
    }


def config_hash(config_map: Manifest, secret: str = "") -> str:
    """Stable hash of the gateway config (and of a generated admin token, whose change must
    restart the pods that read it from their env): a pod-template annotation."""
    text = json.dumps(config_map["data"], sort_keys=True) + secret
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def get_pvc(task: TaskObject) -> Manifest:
    storage = task.spec.storage
    spec: Manifest = {
        "accessModes": [storage.access_mode],
        "resources": {"requests": {"storage": storage.size}},
    }
    if storage.storage_class_name:
        spec["storageClassName"] = storage.storage_class_name
    return {
        "apiVersion": "v1",
        "kind": "PersistentVolumeClaim",
        "metadata": metadata(task, task.names.pvc, "data"),
        "spec": spec,
    }


def get_admin_secret(task: TaskObject, token: str) -> Manifest:
    """The generated admin token, only when the spec names no Secret of its own."""
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "type": "Opaque",
        "metadata": metadata(task, task.admin_secret.name, "gateway"),
        "data": {"token": base64.b64encode(token.encode()).decode()},
    }


def _volumes(task: TaskObject) -> list[Manifest]:
    vols: list[Manifest] = [
        {"name": "config", "configMap": {"name": task.names.config_map}},
        {"name": "tmp", "emptyDir": {}},
        # Adapters live here for every profile: the trainer writes, the student loads.
        {"name": "data", "persistentVolumeClaim": {"claimName": task.names.pvc}},
    ]
    replay = task.spec.teacher.replay_from
    if task.spec.teacher.provider is ProviderKind.replay and replay is not None:
        vols.append({"name": "replay", "configMap": {"name": replay.name}})
    return vols


def _gateway_container(task: TaskObject, mounts: list[Manifest]) -> Manifest:
    spec = task.spec
    probe = {
        "httpGet": {"path": "/healthz", "port": "http"},
        "periodSeconds": 10,
        "timeoutSeconds": 5,
        "failureThreshold": 6,
    }
    ready = {
        "httpGet": {"path": "/readyz", "port": "http"},
        "periodSeconds": 5,
        "timeoutSeconds": 5,
        "failureThreshold": 3,
    }
    gpu = task.defaults.gpu_resource
    default: Manifest
    if not spec.student.in_process:  # another server answers: the gateway only routes
        default = {"requests": {"cpu": "250m", "memory": "512Mi"}, "limits": {"memory": "1Gi"}}
    elif spec.student.gpu:  # transformers on the node's GPU
        default = {
            "requests": {"cpu": "2", "memory": "16Gi", gpu: 1},
            "limits": {"memory": "32Gi", gpu: 1},
        }
    else:
        default = {"requests": {"cpu": "1", "memory": "2Gi"}, "limits": {"memory": "4Gi"}}
    return {
        "name": "gateway",
        "image": spec.gateway.image or task.defaults.gateway_image,
        "imagePullPolicy": task.defaults.pull_policy,
        "args": ["serve", "-c", CONFIG_FILE],
        "command": ["apprentice"],
        "ports": [{"name": "http", "containerPort": spec.gateway.port, "protocol": "TCP"}],
        "env": [*gateway_env(task), *traces_env(task)],
        "readinessProbe": ready,
        "livenessProbe": probe,
        "startupProbe": {**probe, "periodSeconds": 5, "failureThreshold": 120},
        "resources": resources(spec.gateway.resources, default),
        "securityContext": container_security_context(),
        "volumeMounts": mounts,
    }


def _vllm_container(task: TaskObject) -> Manifest:
    student = task.spec.student
    args = [
        "--model",
        student.base_model,
        "--host",
        "0.0.0.0",
        "--port",
        str(VLLM_PORT),
        "--enable-lora",
        "--max-lora-rank",
        str(student.max_lora_rank),
        "--max-loras",
        str(student.max_loras),
        "--gpu-memory-utilization",
        str(student.gpu_memory_utilization),
    ]
    if student.max_model_len:
        args += ["--max-model-len", str(student.max_model_len)]
    health = {"httpGet": {"path": "/health", "port": "vllm"}, "periodSeconds": 10}
    return {
        "name": "vllm",
        "image": student.image or task.defaults.vllm_image,
        "imagePullPolicy": task.defaults.pull_policy,
        "args": args + list(student.extra_args),
        "ports": [{"name": "vllm", "containerPort": VLLM_PORT, "protocol": "TCP"}],
        "env": [
            {"name": "VLLM_ALLOW_RUNTIME_LORA_UPDATING", "value": "True"},
            {"name": "HF_HOME", "value": f"{DATA_DIR}/hf-cache"},
            *unprivileged_env(),
            {"name": "XDG_CONFIG_HOME", "value": "/tmp/.config"},
            {"name": "TRITON_CACHE_DIR", "value": "/tmp/triton"},
            # The compile cache survives restarts on the task's volume.
            {"name": "VLLM_CACHE_ROOT", "value": f"{DATA_DIR}/vllm-cache"},
            {"name": "VLLM_CONFIG_ROOT", "value": "/tmp/.config/vllm"},
            {"name": "VLLM_NO_USAGE_STATS", "value": "1"},
            {"name": "DO_NOT_TRACK", "value": "1"},
            *hf_token_env(task),
        ],
        "startupProbe": {**health, "failureThreshold": 180},  # model download + load
        "readinessProbe": health,
        "livenessProbe": {**health, "failureThreshold": 6},
        "resources": resources(
            student.resources,
            {
                "requests": {"cpu": "2", "memory": "16Gi", task.defaults.gpu_resource: 1},
                "limits": {"memory": "32Gi", task.defaults.gpu_resource: 1},
            },
        ),
        "securityContext": container_security_context(),
        "volumeMounts": [
            {"name": "data", "mountPath": DATA_DIR},
            {"name": "tmp", "mountPath": "/tmp"},
            {"name": "shm", "mountPath": "/dev/shm"},
        ],
    }


def get_deployment(task: TaskObject, config_digest: str) -> Manifest:
    """The inference pod: vLLM + the gateway sidecar (gpu) or the gateway alone (cpu)."""
    spec = task.spec
    mounts: list[Manifest] = [
        {"name": "config", "mountPath": CONFIG_DIR, "readOnly": True},
        {"name": "tmp", "mountPath": "/tmp"},
        {"name": "data", "mountPath": DATA_DIR},
    ]
    volumes = _volumes(task)
    if any(v["name"] == "replay" for v in volumes):
        mounts.append({"name": "replay", "mountPath": REPLAY_DIR, "readOnly": True})
    containers = [_gateway_container(task, mounts)]
    if spec.student.runs_vllm:
        containers.append(_vllm_container(task))
        volumes.append({"name": "shm", "emptyDir": {"medium": "Memory", "sizeLimit": "2Gi"}})
    pod: Manifest = {
        **pull_secrets(task),
        "automountServiceAccountToken": False,
        "securityContext": pod_security_context(),
        "containers": containers,
        "volumes": volumes,
    }
    if spec.student.gpu:
        pod.update(task.gpu_placement(spec.student.node_selector, spec.student.tolerations))
    else:
        pod.update(placement(spec.student.node_selector, spec.student.tolerations))
    # One SQLite writer and (usually) one GPU: the old pod must stop before the new starts.
    single = task.postgres is None
    strategy = (
        {"type": "Recreate"}
        if single
        else {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 0, "maxUnavailable": 1}}
    )
    pod_labels = selector(task.name, "inference")
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": metadata(task, task.names.deployment, "inference"),
        "spec": {
            "replicas": spec.gateway.replicas,
            "selector": {"matchLabels": pod_labels},
            "strategy": strategy,
            "template": {
                "metadata": {
                    "labels": labels(task.name, "inference"),
                    "annotations": {
                        CONFIG_HASH_ANNOTATION: config_digest,
                        "prometheus.io/scrape": "true",
                        "prometheus.io/port": str(spec.gateway.port),
                        "prometheus.io/path": "/metrics",
                    },
                },
                "spec": pod,
            },
        },
    }


def get_service(task: TaskObject) -> Manifest:
    port = task.spec.gateway.port
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": metadata(task, task.names.service, "gateway"),
        "spec": {
            "type": "ClusterIP",
            "selector": selector(task.name, "inference"),
            "ports": [{"name": "http", "port": port, "targetPort": "http", "protocol": "TCP"}],
        },
    }


def build_children(task: TaskObject, generated_token: str = "") -> list[Manifest]:
    """Every child of a DistilledTask in apply order (the admin Secret is separate);
    ``generated_token`` is the derived admin token, if the operator generates one."""
    config_map = get_config_map(task)
    return [
        config_map,
        get_pvc(task),
        get_deployment(task, config_hash(config_map, generated_token)),
        get_service(task),
    ]
