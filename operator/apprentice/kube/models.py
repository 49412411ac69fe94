"""Spec and status models of the three custom resources; the CRD schemas are generated from them.

A ``DistilledTask`` spec *is* one task of ``apprentice.yaml`` (:class:`TaskConfig`, camelCase
in the cluster) plus the parts a single process never needed: where the teacher's key lives
(a Secret reference, never the key), which student server and image to run, how to train on
a GPU node, and where to keep adapters and examples. Reusing the config models means the
gateway inside the pod validates exactly what the API server validated.

Status models mirror the gateway's ``TaskStatus`` JSON and kstatus conditions, so
``kubectl wait --for=condition=Ready``, Argo CD and Flux read health without plugins.
"""

from __future__ import annotations

import enum
from typing import Any, Literal

from pydantic import Field, model_validator

from apprentice.config import (
    BudgetConfig,
    FineTuneBackend,
    LocalConfig,
    Model,
    ProviderConfig,
    ProviderEndpoint,
    ProviderKind,
    StudentBackend,
    TaskConfig,
    TrainingConfig,
)
from apprentice.config.errors import RuleError
from apprentice.kube.status_models import (
    CONDITION_TYPES,
    Condition,
    DistilledTaskStatus,
    ExampleCounts,
    ModelVersionState,
    ModelVersionStatus,
    Spend,
    TrainingJobState,
    TrainingJobStatus,
)

__all__ = [
    "CONDITION_TYPES",
    "MAX_TASK_NAME",
    "Condition",
    "DistilledTaskSpec",
    "DistilledTaskStatus",
    "ExampleCounts",
    "GatewaySpec",
    "KeyRef",
    "ModelVersionSpec",
    "ModelVersionState",
    "ModelVersionStatus",
    "PostgresSpec",
    "Profile",
    "Quantity",
    "Resources",
    "Spend",
    "StorageSpec",
    "StudentSpec",
    "TeacherSpec",
    "Toleration",
    "TrainingJobSpec",
    "TrainingJobState",
    "TrainingJobStatus",
    "TrainingSpec",
]

#: A Kubernetes quantity: ``1``, ``"500m"``, ``"16Gi"`` (int-or-string in the CRD).
Quantity = int | str
#: Where the gateway finds the teacher's key: an env var filled from the Secret, never a value.
TEACHER_KEY_ENV = "APPRENTICE_TEACHER_API_KEY"
#: Where an openai student (and its fine-tunes) finds its key: the OpenAI client's own
#: variable, filled from ``student.apiKeySecretRef``.
STUDENT_KEY_ENV = "OPENAI_API_KEY"
#: Student backends whose server the operator never runs: the spec names it (baseUrl).
SERVER_BACKENDS = frozenset({StudentBackend.ollama, StudentBackend.llama_cpp})
_NO_SERVER = "the operator runs no such server; point baseUrl at yours"
_VLLM_ON_GPU = "the operator runs vLLM on a GPU node only; point baseUrl at a server, or use gpu"

K8S_NAME = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"
#: Longest DistilledTask name: its longest child name, ``<name>-gateway-config`` (15 more),
#: and its training Job, ``<name>-v<N>-train`` (12 more up to v9999), stay within the 63
#: characters of a DNS-1123 label (a Job's name becomes a label value of its pods).
MAX_TASK_NAME = 48
DNS_SUBDOMAIN = r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$"


class Profile(enum.StrEnum):
    """gpu: vLLM serves the student beside the gateway; cpu: the gateway runs transformers."""

    gpu = "gpu"
    cpu = "cpu"


class KeyRef(Model):
    """One key of a Secret (or ConfigMap) in the task's namespace."""

    name: str = Field(pattern=DNS_SUBDOMAIN, max_length=253, description="Object name.")
    key: str = Field(pattern=r"^[-._a-zA-Z0-9]+$", max_length=253, description="Key inside it.")


class Toleration(Model):
    """A pod toleration, as in the core API (only the fields schedulers read)."""

    key: str | None = Field(default=None, description="Taint key; empty matches all keys.")
    operator: Literal["Exists", "Equal"] | None = Field(default=None, description="Match rule.")
    value: str | None = Field(default=None, description="Taint value for operator Equal.")
    effect: Literal["NoSchedule", "PreferNoSchedule", "NoExecute"] | None = Field(default=None)
    toleration_seconds: int | None = Field(default=None, ge=0, description="NoExecute grace.")


class Resources(Model):
    """Container resource requests and limits (quantities, e.g. ``nvidia.com/gpu: 1``)."""

    requests: dict[str, Quantity] = Field(default_factory=dict, description="Requests.")
    limits: dict[str, Quantity] = Field(default_factory=dict, description="Limits.")


# Every endpoint field is the config's own (ProviderEndpoint); only where the key and the
# replay answers live differs: references, never values. (One docstring line: it is the
# CRD's description of spec.teacher.)
class TeacherSpec(ProviderEndpoint):
    """The remote teacher; like ``remote:`` in apprentice.yaml, with the key in a Secret."""

    secret_ref: KeyRef | None = Field(
        default=None, description="Secret key holding the API key (not needed for replay)."
    )
    replay_from: KeyRef | None = Field(
        default=None, description="replay only: ConfigMap key holding the answers JSONL."
    )

    @model_validator(mode="after")
    def _teacher_rules(self) -> TeacherSpec:
        keyless = {ProviderKind.replay, ProviderKind.openai_compatible}
        if self.provider not in keyless and self.secret_ref is None:
            raise RuleError(
                "secret_ref", f"provider {self.provider.value} needs secretRef: {{name, key}}"
            )
        if self.provider is ProviderKind.replay and self.replay_from is None:
            raise RuleError("replay_from", "the replay teacher needs replayFrom: {name, key}")
        self.provider_config()  # the config model's own rules (model name, base_url, ...)
        return self

    def provider_config(
        self, replay_path: str = "/etc/apprentice/replay/answers.jsonl"
    ) -> ProviderConfig:
        """The gateway's ``remote:`` block: the key comes from an env var, never inline."""
        data = self.model_dump(exclude={"secret_ref", "replay_from"}, exclude_none=True)
        if self.secret_ref is not None:
            data["api_key_env"] = TEACHER_KEY_ENV
        if self.provider is ProviderKind.replay:
            data["path"] = replay_path
        return ProviderConfig.model_validate(data)


class StudentSpec(Model):
    """The student: its server (any backend of the config) and where the pod runs."""

    profile: Profile = Field(
        default=Profile.gpu, description="gpu: a GPU node (vLLM by default); cpu: no GPU."
    )
    base_model: str = Field(description="Hugging Face id or path of the base model.")
    backend: StudentBackend | None = Field(
        default=None,
        description=(
            "Server that answers as the student (local.backend); unset: vllm on gpu, "
            "transformers on cpu."
        ),
    )
    base_url: str | None = Field(
        default=None,
        description=(
            "A student server the operator does not run: needed for ollama and llama_cpp, "
            "and for vllm on profile cpu; openai defaults to api.openai.com."
        ),
    )
    api_key_secret_ref: KeyRef | None = Field(
        default=None,
        description=f"openai only: Secret key holding the API key ({STUDENT_KEY_ENV}).",
    )
    image: str | None = Field(default=None, description="vLLM image; operator default if unset.")
    resources: Resources | None = Field(default=None, description="Student container resources.")
    node_selector: dict[str, str] = Field(default_factory=dict, description="Pod node selector.")
    tolerations: list[Toleration] = Field(default_factory=list, description="Pod tolerations.")
    max_lora_rank: int = Field(default=64, ge=1, le=512, description="vLLM --max-lora-rank.")
    max_loras: int = Field(default=2, ge=1, le=64, description="Adapters loaded at once.")
    gpu_memory_utilization: float = Field(default=0.9, gt=0, le=1, description="vLLM share.")
    max_model_len: int | None = Field(default=None, gt=0, description="vLLM context cap.")
    extra_args: list[str] = Field(default_factory=list, description="More vLLM arguments.")
    max_new_tokens: int = Field(default=256, gt=0, description="Generation cap per answer.")
    timeout_s: float = Field(default=60.0, gt=0, description="Student call timeout, seconds.")
    hf_token_secret_ref: KeyRef | None = Field(
        default=None,
        description=(
            "Secret key with a Hugging Face token, for gated base models: HF_TOKEN of the "
            "vLLM and trainer containers (a secretKeyRef; the operator never reads it)."
        ),
    )

    @model_validator(mode="after")
    def _backend_rules(self) -> StudentSpec:
        backend = self.effective_backend
        if backend in SERVER_BACKENDS and self.base_url is None:
            raise RuleError("base_url", f"backend {backend.value} needs baseUrl: {_NO_SERVER}")
        if backend is StudentBackend.vllm and self.base_url is None and not self.gpu:
            raise RuleError("base_url", f"vllm on profile cpu needs baseUrl: {_VLLM_ON_GPU}")
        if backend is StudentBackend.openai and self.api_key_secret_ref is None:
            raise RuleError("api_key_secret_ref", "backend openai needs apiKeySecretRef")
        return self

    @property
    def gpu(self) -> bool:
        return self.profile is Profile.gpu

    @property
    def effective_backend(self) -> StudentBackend:
        """The backend named, else the profile's default: vllm on gpu, transformers on cpu."""
        if self.backend is not None:
            return self.backend
        return StudentBackend.vllm if self.gpu else StudentBackend.transformers

    @property
    def runs_vllm(self) -> bool:
        """Whether the operator runs vLLM beside the gateway (no other server is named)."""
        return self.effective_backend is StudentBackend.vllm and self.base_url is None

    @property
    def in_process(self) -> bool:
        """Whether the gateway itself loads the model (transformers)."""
        return self.effective_backend is StudentBackend.transformers


class TrainingSpec(Model):
    """How a TrainingJob runs: backend, hyper-parameters, GPU, image and Job limits."""

    fine_tune_backend: FineTuneBackend = Field(default=FineTuneBackend.huggingface)
    fine_tune_batch_size: int | None = Field(
        default=None, gt=0, description="New examples that make a run due (default 100)."
    )
    hyperparameters: TrainingConfig = Field(default_factory=TrainingConfig)
    image: str | None = Field(default=None, description="Trainer image; operator default if unset.")
    resources: Resources | None = Field(default=None, description="Trainer resources.")
    node_selector: dict[str, str] = Field(default_factory=dict, description="Job node selector.")
    tolerations: list[Toleration] = Field(default_factory=list, description="Job tolerations.")
    backoff_limit: int = Field(default=1, ge=0, le=10, description="Job retries before Failed.")
    active_deadline_seconds: int = Field(default=6 * 3600, ge=60, description="Job deadline.")
    ttl_seconds_after_finished: int | None = Field(
        default=None, ge=0, description="Delete finished Jobs after this long (None: keep)."
    )


class PostgresSpec(Model):
    """A shared PostgreSQL store, needed for more than one gateway replica."""

    dsn_secret_ref: KeyRef = Field(description="Secret key holding postgresql://... DSN.")


class StorageSpec(Model):
    """Adapters and (with SQLite) the store live on one volume the trainer shares."""

    size: str = Field(
        default="10Gi", pattern=r"^[0-9]+(\.[0-9]+)?([EPTGMK]i?)?$", description="PVC size."
    )
    storage_class_name: str | None = Field(default=None, description="PVC storage class.")
    access_mode: Literal["ReadWriteOnce", "ReadWriteMany"] = Field(
        default="ReadWriteOnce",
        description="ReadWriteMany lets the trainer run on another node than the student.",
    )
    postgres: PostgresSpec | None = Field(default=None, description="Store in PostgreSQL.")
    request_retention_days: float | None = Field(
        default=30.0,
        ge=0,
        description="Days a request row (input and answer, for feedback) is kept; 0 or null: "
        "forever (store.request_retention_days). Examples and spend are never pruned.",
    )


class GatewaySpec(Model):
    """The routing sidecar: image, replicas and the admin token's Secret."""

    image: str | None = Field(default=None, description="Gateway image; operator default.")
    replicas: int = Field(default=1, ge=0, le=50, description="Inference pods (>1: PostgreSQL).")
    port: int = Field(default=8080, ge=1, le=65535, description="Gateway HTTP port.")
    admin_token_secret_ref: KeyRef | None = Field(
        default=None, description="Admin token Secret; the operator creates one when unset."
    )
    resources: Resources | None = Field(default=None, description="Gateway resources.")
    require_api_keys: bool | None = Field(
        default=None,
        description="API keys on the task and chat APIs (gateway.require_api_keys); unset: "
        "the operator's default, the chart's gateway.requireApiKeys.",
    )


#: Paths for a ``local:`` block built only for its rules (no rule reads them).
_RULES_ONLY = {"model_dir": "/models/", "sidecar_url": "http://127.0.0.1/v1"}


class DistilledTaskSpec(TaskConfig):
    """One task of apprentice.yaml, camelCase, plus teacher, student, training and storage."""

    teacher: TeacherSpec
    student: StudentSpec
    training: TrainingSpec = Field(default_factory=TrainingSpec)
    storage: StorageSpec = Field(default_factory=StorageSpec)
    gateway: GatewaySpec = Field(default_factory=GatewaySpec)
    budget: BudgetConfig = Field(default_factory=BudgetConfig)  # type: ignore[assignment]

    @model_validator(mode="after")
    def _cluster_rules(self) -> DistilledTaskSpec:
        if self.gateway.replicas > 1 and self.storage.postgres is None:
            raise RuleError("gateway", "replicas > 1 need storage.postgres (SQLite is one writer)")
        if self.gateway.replicas > 1 and self.storage.access_mode != "ReadWriteMany":
            raise RuleError(
                "gateway",
                "replicas > 1 need storage.accessMode ReadWriteMany "
                "(every replica mounts the task's volume, maybe on another node)",
            )
        rank = self.training.hyperparameters.lora_rank
        if rank > self.student.max_lora_rank:
            raise RuleError(
                "training",
                f"loraRank {rank} exceeds student.maxLoraRank "
                f"{self.student.max_lora_rank}; raise maxLoraRank or lower loraRank",
            )
        if self.fine_tune_batch_size is not None and self.training.fine_tune_batch_size:
            raise RuleError("fine_tune_batch_size", "set training.fineTuneBatchSize only")
        # The student's own rules (an OpenAI fine-tune is served by OpenAI only, the LoRA
        # ranks vLLM serves, Ollama tags, ...): the gateway validates this same block.
        self.local_config(**_RULES_ONLY)
        return self

    @property
    def training_base(self) -> str:
        """What the trainer loads: an Ollama tag's Hugging Face id, else the base model."""
        return self.local_config(**_RULES_ONLY).training_base()

    def local_config(self, *, model_dir: str, sidecar_url: str) -> LocalConfig:
        """The gateway's ``local:`` block; ``sidecar_url`` is the vLLM the operator runs."""
        student = self.student
        data: dict[str, Any] = {
            "backend": student.effective_backend,
            "base_model": student.base_model,
            "fine_tune_backend": self.training.fine_tune_backend,
            "fine_tune_batch_size": self.effective_fine_tune_batch_size,
            "model_dir": model_dir,
            "training": self.training.hyperparameters,
            "max_new_tokens": student.max_new_tokens,
            "timeout_s": student.timeout_s,
            "device": "auto" if student.gpu else "cpu",
        }
        base_url = sidecar_url if student.runs_vllm else student.base_url
        if base_url is not None:
            data["base_url"] = base_url
        if student.api_key_secret_ref is not None:
            data["api_key_env"] = STUDENT_KEY_ENV
        return LocalConfig.model_validate(data)

    @property
    def effective_fine_tune_batch_size(self) -> int:
        return self.training.fine_tune_batch_size or self.fine_tune_batch_size or 100


class TrainingJobSpec(Model):
    """One fine-tuning run of a DistilledTask."""

    task_ref: str = Field(pattern=K8S_NAME, description="The DistilledTask's metadata.name.")
    task: str = Field(description="The task name (spec.name of the DistilledTask).")
    version: str = Field(pattern=r"^v[0-9]+$", description="Version the adapter becomes.")
    reason: str | None = Field(default=None, description="Why the engine asked for it.")
    examples: int | None = Field(default=None, ge=0, description="Train examples at start.")


class ModelVersionSpec(Model):
    """One trained adapter on the task's volume."""

    task_ref: str = Field(pattern=K8S_NAME, description="The DistilledTask's metadata.name.")
    task: str = Field(description="The task name.")
    version: str = Field(pattern=r"^v[0-9]+$", description="Version name, e.g. v4.")
    path: str = Field(description="Adapter directory on the model volume.")
    training_job: str | None = Field(default=None, description="The TrainingJob that made it.")
    metrics: dict[str, Any] = Field(default_factory=dict, description="Trainer metrics.")
