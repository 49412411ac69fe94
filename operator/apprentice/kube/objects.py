"""Shared parts of every manifest: operator defaults, the parsed task, names, labels,
owner references, security contexts, and Secret-backed environment variables.

Security defaults for every pod: non-root, read-only root filesystem, all capabilities
dropped, ``RuntimeDefault`` seccomp; writable paths are explicit volumes. Secrets are
referenced by name and key, never copied.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from apprentice.config import TracesConfig
from apprentice.kube import API_VERSION, TASK_LABEL, cel
from apprentice.kube.models import (
    STUDENT_KEY_ENV,
    TEACHER_KEY_ENV,
    DistilledTaskSpec,
    KeyRef,
    Resources,
)

__all__ = [
    "ADMIN_TOKEN_ENV",
    "CONFIG_DIR",
    "CONFIG_FILE",
    "DATA_DIR",
    "MODELS_DIR",
    "REPLAY_DIR",
    "STORE_URL_ENV",
    "TRACES_HEADERS_ENV",
    "Defaults",
    "InvalidTaskName",
    "Manifest",
    "Names",
    "TaskObject",
    "container_security_context",
    "gateway_env",
    "hf_token_env",
    "inference_affinity",
    "labels",
    "metadata",
    "owner_reference",
    "placement",
    "pod_security_context",
    "pull_secrets",
    "resources",
    "secret_env",
    "selector",
    "traces_env",
    "unprivileged_env",
]

Manifest = dict[str, Any]

ADMIN_TOKEN_ENV = "APPRENTICE_ADMIN_TOKEN"
STORE_URL_ENV = "APPRENTICE_STORE_URL"
# OpenTelemetry's OTLP exporter reads its headers (a collector's token) from this itself.
TRACES_HEADERS_ENV = "OTEL_EXPORTER_OTLP_TRACES_HEADERS"
CONFIG_DIR = "/etc/apprentice"
CONFIG_FILE = f"{CONFIG_DIR}/apprentice.yaml"
REPLAY_DIR = f"{CONFIG_DIR}/replay"
DATA_DIR = "/var/lib/apprentice"
MODELS_DIR = f"{DATA_DIR}/models"
RUN_AS = 10001


class InvalidTaskName(ValueError):
    """A DistilledTask name that would make invalid child names (admission rejects it too)."""


@dataclass(frozen=True)
class Defaults:
    """Operator-wide defaults (from the chart's values); a DistilledTask may override each."""

    gateway_image: str = "ghcr.io/apprentice-dev/apprentice-gateway:0.1.0"
    vllm_image: str = "vllm/vllm-openai:v0.11.0"
    trainer_image: str = "ghcr.io/apprentice-dev/apprentice-trainer:0.1.0"
    pull_policy: str = "IfNotPresent"
    pull_secrets: tuple[str, ...] = ()
    gpu_resource: str = "nvidia.com/gpu"
    gpu_node_selector: dict[str, str] = field(default_factory=dict)
    gpu_tolerations: list[dict[str, Any]] = field(default_factory=list)
    postgres: KeyRef | None = None  # the store of tasks that name none
    # APPRENTICE_ADMIN_TOKEN_KEY: generated admin tokens are HMAC(key, namespace/name/uid),
    # so the operator knows them without reading a Secret. None: random, read back.
    admin_token_key: str | None = field(default=None, repr=False)
    # APPRENTICE_REQUIRE_API_KEYS (the chart's gateway.requireApiKeys, on by default there):
    # gateways need an API key on the task and chat APIs unless a task's spec says otherwise.
    # repr=False: not a secret, but reprs are searched for leaked key values and this
    # field's name must not be what such a search finds.
    require_api_keys: bool = field(default=False, repr=False)
    # APPRENTICE_TRACES_* (the chart's gateway.tracing): every gateway's telemetry.traces.
    # None: tracing off, and the gateway config has no telemetry block (as before).
    traces: TracesConfig | None = None
    # The Secret key (in each task's namespace) holding the span exporter's headers, set as
    # TRACES_HEADERS_ENV in the gateway container: a reference, never a value.
    traces_headers: KeyRef | None = None


@dataclass(frozen=True)
class TaskObject:
    """The parts of a DistilledTask object the builders read."""

    name: str
    namespace: str
    uid: str
    spec: DistilledTaskSpec
    defaults: Defaults = field(default_factory=Defaults)

    @classmethod
    def from_body(cls, body: Mapping[str, Any], defaults: Defaults | None = None) -> TaskObject:
        """Parse a DistilledTask body (raises pydantic's ValidationError on a bad spec, and
        :class:`InvalidTaskName` on a name the CRD's admission rules would reject)."""
        meta = body["metadata"]
        problem = cel.name_problem("DistilledTask", str(meta["name"]))
        if problem is not None:
            raise InvalidTaskName(problem)
        spec = DistilledTaskSpec.model_validate(dict(body["spec"]))
        uid = meta.get("uid", "")
        return cls(meta["name"], meta["namespace"], uid, spec, defaults or Defaults())

    @property
    def postgres(self) -> KeyRef | None:
        """The Secret key with the store DSN, or None for SQLite on the volume."""
        if self.spec.storage.postgres is not None:
            return self.spec.storage.postgres.dsn_secret_ref
        return self.defaults.postgres

    def gpu_placement(self, node_selector: dict[str, str], tolerations: list[Any]) -> Manifest:
        """nodeSelector/tolerations for a GPU pod: the spec's, else the operator's defaults."""
        out: Manifest = {}
        selector = dict(node_selector) or dict(self.defaults.gpu_node_selector)
        if selector:
            out["nodeSelector"] = selector
        tols = [t.model_dump(by_alias=True, exclude_none=True) for t in tolerations]
        tols = tols or list(self.defaults.gpu_tolerations)
        if tols:
            out["tolerations"] = tols
        return out

    @property
    def require_api_keys(self) -> bool:
        """``spec.gateway.requireApiKeys`` when set, else the operator's default."""
        own = self.spec.gateway.require_api_keys
        return self.defaults.require_api_keys if own is None else own

    @property
    def names(self) -> Names:
        return Names(self.name)

    @property
    def admin_secret(self) -> KeyRef:
        """The admin token's Secret: the spec's, else the generated one. With a token key
        its name carries a fingerprint of the key, so a new key means a new Secret (the
        operator only ever creates it: it cannot read, and need not replace, the old one)."""
        ref = self.spec.gateway.admin_token_secret_ref
        if ref is not None:
            return ref
        key = self.defaults.admin_token_key
        if key is None:
            return KeyRef(name=self.names.admin_secret, key="token")
        fingerprint = hashlib.sha256(b"apprentice-admin-token-key:" + key.encode()).hexdigest()
        return KeyRef(name=f"{self.names.admin_secret}-{fingerprint[:8]}", key="token")

    @property
    def generated_token(self) -> str | None:
        """The derived admin token of a task that names no Secret of its own, when the
        operator has a token key (None otherwise)."""
        key = self.defaults.admin_token_key
        if key is None or self.spec.gateway.admin_token_secret_ref is not None:
            return None
        message = f"{self.namespace}/{self.name}/{self.uid}".encode()
        digest = hmac.new(key.encode(), message, hashlib.sha256).digest()
        return base64.urlsafe_b64encode(digest).decode().rstrip("=")

    @property
    def endpoint(self) -> str:
        svc = self.names.service
        return f"http://{svc}.{self.namespace}.svc:{self.spec.gateway.port}"


@dataclass(frozen=True)
class Names:
    """Child object names, derived from the DistilledTask's name."""

    task: str

    @property
    def config_map(self) -> str:
        return f"{self.task}-gateway-config"

    @property
    def pvc(self) -> str:
        return f"{self.task}-data"

    @property
    def deployment(self) -> str:
        return f"{self.task}-inference"

    @property
    def service(self) -> str:
        return f"{self.task}-gateway"

    @property
    def admin_secret(self) -> str:
        return f"{self.task}-admin-token"


def labels(task: str, component: str) -> dict[str, str]:
    """Standard labels plus the task label the operator selects children by."""
    return {
        "app.kubernetes.io/name": "apprentice",
        "app.kubernetes.io/instance": task,
        "app.kubernetes.io/component": component,
        "app.kubernetes.io/managed-by": "apprentice-operator",
        TASK_LABEL: task,
    }


def selector(task: str, component: str) -> dict[str, str]:
    return {k: v for k, v in labels(task, component).items() if "managed-by" not in k}


def owner_reference(kind: str, name: str, uid: str, api_version: str = API_VERSION) -> Manifest:
    return {
        "apiVersion": api_version,
        "kind": kind,
        "name": name,
        "uid": uid,
        "controller": True,
        "blockOwnerDeletion": True,
    }


def metadata(task: TaskObject, name: str, component: str) -> Manifest:
    return {
        "name": name,
        "namespace": task.namespace,
        "labels": labels(task.name, component),
        "ownerReferences": [owner_reference("DistilledTask", task.name, task.uid)],
    }


def pod_security_context() -> Manifest:
    return {
        "runAsNonRoot": True,
        "runAsUser": RUN_AS,
        "runAsGroup": RUN_AS,
        "fsGroup": RUN_AS,
        "seccompProfile": {"type": "RuntimeDefault"},
    }


def container_security_context() -> Manifest:
    return {
        "allowPrivilegeEscalation": False,
        "readOnlyRootFilesystem": True,
        "runAsNonRoot": True,
        "capabilities": {"drop": ["ALL"]},
        "seccompProfile": {"type": "RuntimeDefault"},
    }


def resources(given: Resources | None, default: Manifest) -> Manifest:
    if given is None:
        return default
    out: Manifest = {}
    if given.requests:
        out["requests"] = dict(given.requests)
    if given.limits:
        out["limits"] = dict(given.limits)
    return out


def pull_secrets(task: TaskObject) -> Manifest:
    names = task.defaults.pull_secrets
    return {"imagePullSecrets": [{"name": n} for n in names]} if names else {}


def placement(node_selector: dict[str, str], tolerations: list[Any]) -> Manifest:
    out: Manifest = {}
    if node_selector:
        out["nodeSelector"] = dict(node_selector)
    if tolerations:
        out["tolerations"] = [t.model_dump(by_alias=True, exclude_none=True) for t in tolerations]
    return out


def secret_env(name: str, ref: KeyRef) -> Manifest:
    return {"name": name, "valueFrom": {"secretKeyRef": {"name": ref.name, "key": ref.key}}}


def traces_env(task: TaskObject) -> list[Manifest]:
    """The span exporter's headers from their Secret, when tracing is on and names one."""
    ref = task.defaults.traces_headers
    if task.defaults.traces is None or ref is None:
        return []
    return [secret_env(TRACES_HEADERS_ENV, ref)]


def unprivileged_env() -> list[Manifest]:
    """Env that lets torch run as UID 10001, which has no passwd entry in the vLLM image.

    torch's compile step asks ``getpass.getuser()``, which reads ``LOGNAME``/``USER``
    before the passwd database, and writes caches under ``$HOME`` and its own cache dir:
    all point at the writable ``/tmp`` volume (the root filesystem is read-only).
    """
    return [
        {"name": "HOME", "value": "/tmp"},
        {"name": "USER", "value": "apprentice"},
        {"name": "LOGNAME", "value": "apprentice"},
        {"name": "XDG_CACHE_HOME", "value": "/tmp/.cache"},
        {"name": "TORCHINDUCTOR_CACHE_DIR", "value": "/tmp/torchinductor"},
    ]


def hf_token_env(task: TaskObject) -> list[Manifest]:
    """``HF_TOKEN`` from the task's Secret, for gated base models (a reference, never read)."""
    ref = task.spec.student.hf_token_secret_ref
    return [secret_env("HF_TOKEN", ref)] if ref is not None else []


def inference_affinity(task: TaskObject) -> Manifest:
    """Required co-location with the task's inference pod (a ReadWriteOnce volume is per node)."""
    return {
        "podAffinity": {
            "requiredDuringSchedulingIgnoredDuringExecution": [
                {
                    "labelSelector": {"matchLabels": selector(task.name, "inference")},
                    "topologyKey": "kubernetes.io/hostname",
                }
            ]
        }
    }


def gateway_env(task: TaskObject) -> list[Manifest]:
    """Secret-backed env vars of the gateway (and the trainer): references, never values."""
    spec = task.spec
    env = [secret_env(ADMIN_TOKEN_ENV, task.admin_secret), {"name": "HOME", "value": "/tmp"}]
    if spec.teacher.secret_ref is not None:
        env.append(secret_env(TEACHER_KEY_ENV, spec.teacher.secret_ref))
    if spec.student.api_key_secret_ref is not None:  # an openai student and its fine-tunes
        env.append(secret_env(STUDENT_KEY_ENV, spec.student.api_key_secret_ref))
    if task.postgres is not None:
        env.append(secret_env(STORE_URL_ENV, task.postgres))
    return env
