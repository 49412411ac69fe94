"""The collaborators every step of the gateway shares, in one place.

The request pipeline (:mod:`apprentice.gateway.pipeline`), the engine control
(:mod:`apprentice.gateway.control`) and the read side
(:mod:`apprentice.gateway.admin`) each hold this one object instead of a base
class: start-up fills in the store and the teachers, and a step reads what it
needs when it runs (so a benchmark that swaps the budget swaps it for all).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from apprentice.config import ApprenticeConfig
from apprentice.gateway.ids import random_request_id
from apprentice.gateway.settling import Settler
from apprentice.gateway.spending import SharedBudget
from apprentice.gateway.tasks import ServedTask
from apprentice.gateway.writer import StoreWriter
from apprentice.reporting.alerts import Alerter
from apprentice.reporting.metrics import Metrics
from apprentice.store import Store
from apprentice.teachers.base import TeacherPool


@dataclass(eq=False)
class Parts:
    """Config, store, clients, budget, writer and per-task state (see the module doc)."""

    config: ApprenticeConfig
    metrics: Metrics
    alerts: Alerter
    writer: StoreWriter
    budget: SharedBudget
    settler: Settler
    tasks: dict[str, ServedTask] = field(default_factory=dict)
    store: Store | None = None
    teachers: TeacherPool | None = None
    serving: bool = False
    # Request ids feed the sampling draw; a reproducible run (the demo) sets a
    # deterministic source, production keeps random ones.
    new_request_id: Callable[[], str] = random_request_id

    def opened(self) -> Store:
        """The store, which every caller after start-up may rely on."""
        assert self.store is not None, "start() first"
        return self.store

    def pool(self) -> TeacherPool:
        assert self.teachers is not None, "start(serving=True) first"
        return self.teachers
