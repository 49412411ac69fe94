"""The words every layer shares, defined once: phases, routes, who answered, version states.

The engine, the store, the gateway, reporting and the Kubernetes status all speak
of the same three phases, the same routes and the same version life cycle. Each
used to spell them out itself, and a new word had to be added in up to five places.
This module imports nothing of the project, so any layer may use it. The gateway's
error codes live with the error tree (:func:`apprentice.gateway.errors.error_types`).
"""

from __future__ import annotations

import enum
from typing import Literal

__all__ = [
    "PHASES",
    "PHASE_NUMBERS",
    "ROUTES",
    "VERSION_STATES",
    "Phase",
    "PhaseName",
    "Route",
    "ServedBy",
    "StoredRoute",
    "StoredServedBy",
    "VersionState",
    "VersionStateName",
    "stored_route",
]


class Phase(enum.StrEnum):
    """Where a task stands: 1 the teacher answers, 2 both answer, 3 the student answers."""

    cold_start = "cold_start"
    reinforcement = "reinforcement"
    steady_state = "steady_state"

    @property
    def number(self) -> int:
        return PHASE_NUMBERS[self.value]

    @property
    def label(self) -> str:
        """How reports print it: ``2 reinforcement``."""
        return f"{self.number} {self.value.replace('_', ' ')}"


PhaseName = Literal["cold_start", "reinforcement", "steady_state"]
PHASES: tuple[PhaseName, ...] = ("cold_start", "reinforcement", "steady_state")
PHASE_NUMBERS: dict[str, int] = {name: i + 1 for i, name in enumerate(PHASES)}


class Route(enum.StrEnum):
    """Who answers one request (the engine's decision)."""

    remote_only = "remote_only"
    local_only = "local_only"
    both = "both"
    rejected = "rejected"  # nobody may answer: the gateway answers 429 budget_exhausted

    @property
    def calls_teacher(self) -> bool:
        return self in _CALLS_TEACHER  # a set: an enum member's class lookup is slow

    @property
    def calls_student(self) -> bool:
        return self in _CALLS_STUDENT


_CALLS_TEACHER = frozenset({Route.remote_only, Route.both})
_CALLS_STUDENT = frozenset({Route.local_only, Route.both})


StoredRoute = Literal["remote_only", "local_only", "both"]
"""The routes a stored request can have taken (a rejected one is never stored)."""
ROUTES: tuple[StoredRoute, ...] = ("remote_only", "local_only", "both")


_STORED: dict[Route, StoredRoute] = {Route(name): name for name in ROUTES}


def stored_route(route: Route) -> StoredRoute:
    """``route`` as the store keeps it; a ``rejected`` request is never stored."""
    name = _STORED.get(route)
    if name is None:
        raise ValueError(f"a {route.value} request is never stored; stored routes: {list(ROUTES)}")
    return name


ServedBy = Literal["teacher", "student"]
"""Who produced the answer the caller got (the engine's choice, the store's column)."""

StoredServedBy = Literal["teacher", "student", "cache"]
"""The store's ``served_by``: also ``cache``, a repeat answered from the task's answer cache
(:mod:`apprentice.gateway.cache`) without calling anyone; the engine never routes to it."""


# A model version's life cycle: candidate -> validating -> promoted | rejected. A
# promoted version becomes retired when a newer one is promoted, and may be promoted
# again by a rollback. (No docstring: pydantic would put it into the CRD schemas.)
class VersionState(enum.StrEnum):
    candidate = "candidate"
    validating = "validating"
    promoted = "promoted"
    rejected = "rejected"
    retired = "retired"


VersionStateName = Literal["candidate", "validating", "promoted", "rejected", "retired"]
VERSION_STATES: tuple[VersionStateName, ...] = (
    "candidate",
    "validating",
    "promoted",
    "rejected",
    "retired",
)
