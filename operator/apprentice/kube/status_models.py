"""Status models of the three custom resources (their CRD status schemas are generated).

Status mirrors the gateway's ``TaskStatus`` JSON and kstatus conditions, so ``kubectl
wait --for=condition=Ready``, Argo CD and Flux read health without plugins. Conditions
have the shape of ``metav1.Condition`` and are a list-map keyed by ``type``.
"""

from __future__ import annotations

import enum
from typing import Any, Literal

from pydantic import Field

from apprentice.config import Model
from apprentice.vocabulary import PhaseName, VersionState

__all__ = [
    "CONDITION_TYPES",
    "CanaryTally",
    "Condition",
    "DistilledTaskStatus",
    "ExampleCounts",
    "ModelVersionState",
    "ModelVersionStatus",
    "Spend",
    "TaskCanary",
    "TrainingJobState",
    "TrainingJobStatus",
]

ConditionStatus = Literal["True", "False", "Unknown"]
CONDITION_TYPES: tuple[str, ...] = (
    "Ready",
    "Reconciling",
    "Stalled",
    "Training",
    "Degraded",
    "BudgetExhausted",
    "Canary",
)


class Condition(Model):
    """A kstatus condition (the shape of ``metav1.Condition``)."""

    type: str = Field(
        min_length=1, max_length=316, description="Ready, Reconciling, Stalled, Training, ..."
    )
    status: ConditionStatus
    reason: str = Field(
        min_length=1, max_length=1024, description="CamelCase machine-readable reason."
    )
    message: str = Field(default="", max_length=32768, description="Human-readable detail.")
    last_transition_time: str = Field(
        description="When status last changed (RFC 3339).",
        json_schema_extra={"format": "date-time"},
    )
    observed_generation: int | None = Field(default=None, ge=0)


def _conditions() -> Any:
    """The ``conditions`` field: a list-map keyed by type, so patches merge per condition."""
    return Field(
        default_factory=list,
        description="kstatus conditions, one per type.",
        json_schema_extra={
            "x-kubernetes-list-type": "map",
            "x-kubernetes-list-map-keys": ["type"],
        },
    )


class ExampleCounts(Model):
    train: int = Field(default=0, ge=0)
    heldout: int = Field(default=0, ge=0)


class Spend(Model):
    today: float = Field(default=0.0, ge=0)
    week: float = Field(default=0.0, ge=0)
    month: float = Field(default=0.0, ge=0)
    currency: str = Field(default="USD")


class CanaryTally(Model):
    """One version's live comparisons since the canary started."""

    comparisons: int = Field(default=0, ge=0, description="Sampled comparisons scored.")
    agreement: float = Field(default=0.0, description="Mean agreement with the teacher.")


class TaskCanary(Model):
    """A candidate version on live traffic before promotion (the gateway's ``canary``)."""

    version: str = Field(description="The candidate ModelVersion's version.")
    active_version: str | None = Field(
        default=None, description="The version it is judged against."
    )
    mode: str | None = Field(default=None, description="share | shadow")
    share: float | None = Field(default=None, description="Share of live requests routed to it.")
    margin: float | None = Field(default=None, description="Agreement over the active's needed.")
    since: str | None = Field(default=None, description="When it started (RFC 3339).")
    candidate: CanaryTally = Field(default_factory=CanaryTally)
    active: CanaryTally = Field(default_factory=CanaryTally)


Phase = PhaseName


class DistilledTaskStatus(Model):
    """What the operator last read from the gateway, plus kstatus conditions."""

    phase: Phase | None = None
    phase_number: int | None = Field(default=None, ge=1, le=3)
    confidence: float | None = None
    confidence_lower_bound: float | None = None
    sampling_rate: float | None = None
    trend: float | None = None
    drift: bool | None = None
    shift: bool | None = None
    coaching: bool | None = None
    emergency: bool | None = None
    examples: ExampleCounts | None = None
    spend: Spend | None = None
    estimated_savings: float | None = None
    active_model_version: str | None = None
    canary: TaskCanary | None = Field(
        default=None, description="The canary while one runs (absent otherwise)."
    )
    endpoint: str | None = Field(default=None, description="In-cluster gateway URL.")
    observed_generation: int | None = None
    last_alarm_index: int | None = Field(default=None, description="Last alarm evented.")
    last_training_failure: str | None = Field(
        default=None, description="Why the last training failed; cleared by a promotion."
    )
    conditions: list[Condition] = _conditions()


class TrainingJobState(enum.StrEnum):
    pending = "Pending"
    running = "Running"
    succeeded = "Succeeded"
    failed = "Failed"


class TrainingJobStatus(Model):
    state: TrainingJobState | None = None
    job_name: str | None = None
    start_time: str | None = None
    completion_time: str | None = None
    duration: str | None = Field(default=None, description="e.g. 12m3s")
    message: str | None = None
    model_version: str | None = None
    observed_generation: int | None = None
    conditions: list[Condition] = _conditions()


ModelVersionState = VersionState


class ModelVersionStatus(Model):
    state: ModelVersionState | None = None
    heldout_score: float | None = None
    passed: bool | None = None
    reason: str | None = None
    promoted_at: str | None = None
    observed_generation: int | None = None
    conditions: list[Condition] = _conditions()
