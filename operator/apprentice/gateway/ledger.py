"""The read side of the budget: a pure ledger mirroring the store's window totals.

Caps are enforced in the store (:mod:`apprentice.gateway.spending`, one cap across
every gateway); this mirror only answers reads without a store round trip: the
spend windows of status, metrics and alerts, and which cap blocks a call. It is
refreshed from the store at every reservation and by ``SharedBudget.refresh``.
It is also the process-local baseline the gateway benchmark compares against.
"""

from __future__ import annotations

from datetime import datetime

from apprentice.config import ApprenticeConfig
from apprentice.engine import budget as budget_mod
from apprentice.reporting import status as status_mod
from apprentice.store import records

WINDOW_NAMES = {
    budget_mod.Window.day: "daily",
    budget_mod.Window.week: "weekly",
    budget_mod.Window.month: "monthly",
}


class LedgerMirror:
    """A :class:`~apprentice.engine.budget.Ledger` value held for reads (see module doc)."""

    def __init__(
        self, cfg: ApprenticeConfig, entries: list[records.SpendRecord] | None = None
    ) -> None:
        self.limits = budget_mod.BudgetLimits.from_config(cfg)
        rows = [
            (e.at.timestamp(), e.task or budget_mod.GLOBAL, e.amount)
            for e in entries or []
            if e.task is not None
        ]
        self.ledger = budget_mod.from_entries(self.limits, rows)
        self.cfg = cfg
        self._caps: dict[str, dict[str, float | None]] = {}  # per task: the config is frozen

    def reserve(self, task: str, estimate: float, now: datetime) -> int | None:
        """A reservation id, or ``None`` when the call would cross a cap (process-local)."""
        try:
            self.ledger, res = budget_mod.reserve(self.ledger, task, estimate, now.timestamp())
        except budget_mod.BudgetExhausted:
            return None
        return res.id

    def settle(self, token: int, actual: float, now: datetime) -> None:
        self.ledger = budget_mod.settle(self.ledger, token, actual, now.timestamp())

    def record(self, task: str, amount: float, now: datetime) -> None:
        """Spend settled in the store: mirrored at once, before the next refresh."""
        self.ledger = budget_mod.record(self.ledger, task, amount, now.timestamp())

    def exhausted(self, task: str, now: datetime, typical_cost: float = 0.0) -> bool:
        """No room left for a typical teacher call (``typical_cost``: recent average)."""
        return bool(budget_mod.exhausted_caps(self.ledger, now.timestamp(), task, typical_cost))

    def windows(self, task: str, now: datetime) -> dict[str, float]:
        got = budget_mod.spend(self.ledger, now.timestamp(), task)
        return {WINDOW_NAMES[w]: v for w, v in got.items()}

    def caps(self, task: str) -> dict[str, float | None]:
        """The task's caps per window (its own or the global one, the tighter): asked after
        every paid request (the budget alerts), worked out once per task."""
        found = self._caps.get(task)
        if found is None:
            caps = status_mod.effective_caps(self.cfg.task(task).budget, self.cfg.budget)
            found = {"daily": caps.daily, "weekly": caps.weekly, "monthly": caps.monthly}
            self._caps[task] = found
        return dict(found)  # the caller's own copy
