"""The orchestration seam: who acts on the engine's training decisions.

Two implementations share this protocol: :class:`~apprentice.orchestration.local.
LocalOrchestrator` (the embedded default trains in a subprocess on this machine)
and the kopf operator (``gateway.orchestrator: operator``; it drives the same
steps through the gateway's admin endpoints).

Version life cycle: ``candidate -> validating -> promoted | rejected``; a promoted
version becomes ``retired`` when a newer one is promoted and may be promoted again
by a rollback.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Protocol

from apprentice.vocabulary import VERSION_STATES, VersionState

CANDIDATE = VersionState.candidate.value
VALIDATING = VersionState.validating.value
PROMOTED = VersionState.promoted.value
REJECTED = VersionState.rejected.value
RETIRED = VersionState.retired.value
STATES = VERSION_STATES


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


class OrchestrationError(Exception):
    """A seam step that cannot be done (unknown version, nothing to roll back to...)."""

    def __init__(self, message: str, *, kind: str = "conflict") -> None:
        super().__init__(message)
        self.kind = kind  # "not_found" | "conflict" | "bad_request"


class Orchestrator(Protocol):
    """Start training, register a version, validate, promote, roll back."""

    async def start_training(self, task: str, reason: str | None) -> None:
        """Begin a run in the background; returns at once."""

    async def register_version(
        self, task: str, path: str, metrics: dict[str, Any], version: str | None = None
    ) -> VersionInfo:
        """Record an adapter written by a trainer as a ``candidate``."""

    async def validate(self, task: str, version: str) -> ValidationResult:
        """Score a version on the held-out split against the teacher's answers."""

    async def promote(self, task: str, version: str) -> str:
        """Load the version into the student and serve it; returns the active version."""

    async def rollback(self, task: str) -> str:
        """Serve the previous promoted version again; returns it."""

    async def versions(self, task: str) -> tuple[list[VersionInfo], str | None]:
        """All versions of a task (oldest first) and the active one."""
