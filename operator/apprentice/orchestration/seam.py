"""The orchestration seam's shared types: versions, verdicts, and its error.

The seam itself is the gateway's admin HTTP API (start training, register,
validate, promote, roll back, list versions). Both run modes drive it:
:class:`~apprentice.orchestration.local.LocalOrchestrator` (the embedded default
trains in a subprocess on this machine) and the kopf operator
(``gateway.orchestrator: operator``).

Version life cycle: ``candidate -> validating -> promoted | rejected``; a promoted
version becomes ``retired`` when a newer one is promoted and may be promoted again
by a rollback.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

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
