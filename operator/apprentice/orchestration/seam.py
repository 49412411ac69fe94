"""The orchestration seam: how whoever trains talks to the gateway, and its shared types.

The seam both run modes use is the gateway's admin HTTP API (``/admin/tasks/{task}/...``):
training started and finished, the run's training data, register, validate, promote,
roll back, list versions. The kopf operator (``gateway.orchestrator: operator``) drives
it over HTTP and its trainer Job pulls the run's data from it
(``GET .../training/dataset``). The embedded default's
:class:`~apprentice.orchestration.local.LocalOrchestrator` runs in the gateway's own
process, so it calls the same operations in-process, through the narrow interface
:class:`GatewayHooks` (the methods behind those admin routes), and nothing else of the
gateway. Either way the gateway selects what a version trains on
(:mod:`apprentice.gateway.training_data`) and the engine hears of every run.

Version life cycle: ``candidate -> validating -> promoted | rejected``; a promoted
version becomes ``retired`` when a newer one is promoted and may be promoted again
by a rollback. With a task's canary on, a validated candidate stays ``candidate``
(its ``metrics.canary`` says so) while it is tried on live traffic, then is promoted
or rejected by the gateway's verdict.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass, field
from typing import Any, Protocol

from apprentice.engine.canary import Judgement
from apprentice.store.records import ModelVersionRecord
from apprentice.students.base import Student
from apprentice.training.corpus import Selection


@dataclass
class VersionInfo:
    """One model version as the admin API and ``apprentice versions`` show it."""

    version: str
    state: str
    path: str
    created_at: str
    heldout_score: float | None = None
    reason: str | None = None
    metrics: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def of(cls, rec: ModelVersionRecord) -> VersionInfo:
        """The stored version as the admin API shows it."""
        return cls(
            version=rec.version,
            state=rec.state,
            path=rec.path,
            created_at=rec.created_at.isoformat(),
            heldout_score=rec.heldout_score,
            reason=rec.reason,
            metrics=dict(rec.metrics),
        )

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class ValidationResult:
    """The held-out verdict on one version."""

    version: str
    heldout_score: float | None
    passed: bool
    reason: str | None

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True, slots=True)
class TrainingData:
    """One run's dataset, as the gateway selected it, and what it covered.

    ``covered_ids`` are the store ids of the covered train examples, which the run's
    registered version marks as trained. ``init_adapter`` is the adapter the run starts
    from (the active version's, a warm start), or None to train from the base; the
    Kubernetes trainer Job reads it from the dataset's ``X-Apprentice-Init-Adapter``.
    """

    selection: Selection
    covered: int | None  # the engine's count when the run became due; None: every example
    covered_ids: tuple[int, ...]
    init_adapter: str | None = None


CanaryVerdict = Callable[[str, str, Judgement], Awaitable[None]]
"""Carries out a canary's verdict: ``(task, version, judgement)`` (promote or roll back)."""


class OrchestrationError(Exception):
    """A seam step that cannot be done (unknown version, nothing to roll back to...)."""

    def __init__(self, message: str, *, kind: str = "conflict") -> None:
        super().__init__(message)
        self.kind = kind  # "not_found" | "conflict" | "bad_request"


class GatewayHooks(Protocol):
    """What the LocalOrchestrator needs of the gateway: the engine's side of a run.

    The gateway implements it (``LocalOrchestrator(hooks=gateway)``); each method is
    also an admin route, which is how the Kubernetes operator reaches the same step.
    """

    async def training_started(self, task: str) -> int | None:
        """Mark the run started; returns how many examples (oldest first) it covers.

        Admin route: ``POST /admin/tasks/{task}/training/started``.
        """
        ...

    async def training_data(self, task: str) -> TrainingData:
        """The run's data, selected by the gateway (``GET .../training/dataset``)."""
        ...

    async def version_registered(self, task: str, version: str) -> None:
        """A run's version is in the store: its covered examples are marked trained.

        Called by ``register_version``, which ``POST .../versions`` also reaches.
        """
        ...

    async def training_finished(self, task: str, ok: bool, reason: str | None) -> None:
        """The run ended (``POST .../training/finished``); ``reason`` says why it failed."""
        ...

    async def version_promoted(self, task: str, version: str) -> None:
        """``version`` now serves (``POST .../versions/{version}/promote`` or rollback)."""
        ...

    async def canary_started(
        self, task: str, version: str, student: Student, verdict: CanaryVerdict
    ) -> bool:
        """``version`` (loaded in ``student``, a second instance) is tried on live traffic
        (:mod:`apprentice.orchestration.canary`); the gateway calls ``verdict`` once it has
        one. False: this version's canary already runs (nothing new started). Reached by
        ``POST .../versions/{version}/promote`` with the task's canary on.
        """
        ...
