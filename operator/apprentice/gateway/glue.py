"""The gateway's hold on the pure engine: one mutable cell per task, one for the budget.

The engine is functional (every step returns a new state); the gateway keeps the
current value here and swaps it in place. All methods are synchronous and never
await, so on the event loop each one is atomic with respect to other requests.
The budget cell is only a mirror for reads (status, metrics, alerts): caps are
enforced in the store by :mod:`apprentice.gateway.spending`, across processes.
"""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime
from typing import Any

from apprentice.config import ApprenticeConfig, TaskConfig
from apprentice.engine import budget as budget_mod
from apprentice.engine import lifecycle
from apprentice.reporting import events as events_mod
from apprentice.reporting import snapshot
from apprentice.reporting import status as status_mod
from apprentice.store import records

_WINDOW_NAMES = {
    budget_mod.Window.day: "daily",
    budget_mod.Window.week: "weekly",
    budget_mod.Window.month: "monthly",
}


class TaskEngine:
    """One task's engine state (``lifecycle.TaskState``) behind small verbs."""

    def __init__(
        self, cfg: ApprenticeConfig, task: TaskConfig, saved: dict[str, Any] | None
    ) -> None:
        self.params = lifecycle.TaskParams.from_config(cfg, task)
        state = (
            lifecycle.TaskState.from_dict(saved, self.params)
            if saved
            else lifecycle.initial(self.params)
        )
        self.pending: list[records.EventRecord] = []  # for the store's events table
        if state.training_in_progress:
            # The process died mid-run: that run produced nothing; it is due again now.
            state = lifecycle.training_interrupted(state)
            self.pending.append(
                events_mod.event(
                    task.name,
                    "training_interrupted",
                    "training was interrupted by a restart; it runs again now",
                    datetime.now(UTC),
                )
            )
        self.state = state
        self.requests = 0  # the request index alarms carry (set from the store on start)

    # -- reads -------------------------------------------------------------------------------

    @property
    def paused(self) -> bool:
        return self.state.paused

    @property
    def active_version(self) -> str | None:
        return self.state.active_version

    def phase_name(self) -> str:
        return self.state.phase.value

    def sampling_rate(self) -> float:
        return self.state.sampling_rate

    def training_due(self) -> tuple[bool, str | None]:
        due = lifecycle.training_due(self.state)
        return due.due, due.reason

    def to_json(self) -> dict[str, Any]:
        return self.state.to_dict()

    def view(self, *, paused: bool | None = None) -> status_mod.EngineView:
        """The same view ``apprentice status`` builds from the store, by construction."""
        return snapshot.engine_view(self.state, requests=self.requests, paused=paused)

    # -- decisions and updates -------------------------------------------------------------

    def route(
        self, request_id: str, *, student_ready: bool, teacher_allowed: bool = True
    ) -> lifecycle.Decision:
        return lifecycle.route(
            self.state, request_id, student_available=student_ready, teacher_allowed=teacher_allowed
        )

    def record(self, *, score: float | None, example_added: bool, now: datetime) -> list[str]:
        """Account one finished request; returns the kinds of alarms it raised."""
        self.requests += 1
        raised: list[str] = []
        if score is not None:
            before = self.state
            self.state, alarms = lifecycle.observe(
                self.state, score, index=self.requests - 1, now=now.timestamp()
            )
            raised = [a.kind.value for a in alarms]
            after = self.state
            if alarms or after.phase is not before.phase or after.coaching != before.coaching:
                self.pending += events_mod.transitions(
                    before, after, alarms, now, index=self.requests - 1
                )
        if example_added:
            self.state = lifecycle.record_example(self.state)
        return raised

    def drain_events(self) -> list[records.EventRecord]:
        """Events since the last drain, oldest first (the caller writes them)."""
        out, self.pending = self.pending, []
        return out

    def _step(self, state: lifecycle.TaskState) -> None:
        self.pending += events_mod.transitions(
            self.state, state, (), datetime.now(UTC), index=max(0, self.requests - 1)
        )
        self.state = state

    def add_example(self, count: int = 1) -> None:
        self.state = lifecycle.record_example(self.state, count)

    def sync_examples(self, total: int) -> None:
        """Start-up: the store's example count is the truth (a crash can lose one update)."""
        self.state = dataclasses.replace(self.state, examples=total)

    def sync_version(self, active: str | None) -> None:
        """Start-up: the store's promoted version is the truth."""
        if active != self.state.active_version:
            if active is None:
                self.state = dataclasses.replace(self.state, active_version=None)
            else:
                self.state = lifecycle.version_promoted(self.state, active)

    def set_paused(self, paused: bool) -> None:
        self._step(lifecycle.pause(self.state) if paused else lifecycle.resume(self.state))

    def training_started(self) -> None:
        self._step(lifecycle.training_started(self.state))

    def training_finished(self, ok: bool, reason: str | None = None) -> None:
        self.state = lifecycle.training_finished(self.state, ok=ok)
        retry = None if ok else snapshot.next_retry(self.state)
        self.pending.append(
            events_mod.training_event(
                self.params.task, ok=ok, reason=reason, at=datetime.now(UTC), next_retry=retry
            )
        )

    def version_promoted(self, version: str) -> None:
        self._step(lifecycle.version_promoted(self.state, version))

    def version_rejected(self, version: str) -> None:
        self._step(lifecycle.version_rejected(self.state, version))


class Budget:
    """A pure ledger in memory: the mirror :class:`~apprentice.gateway.spending.SharedBudget`
    keeps of the store's totals for reads; the benchmark's process-local baseline."""

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

    def reserve(self, task: str, estimate: float, now: datetime) -> int | None:
        """A reservation id, or ``None`` when the call would cross a cap."""
        try:
            self.ledger, res = budget_mod.reserve(self.ledger, task, estimate, now.timestamp())
        except budget_mod.BudgetExhausted:
            return None
        return res.id

    def settle(self, token: int, actual: float, now: datetime) -> None:
        self.ledger = budget_mod.settle(self.ledger, token, actual, now.timestamp())

    def record(self, task: str, amount: float, now: datetime) -> None:
        """Spend that had no reservation (judge calls)."""
        self.ledger = budget_mod.record(self.ledger, task, amount, now.timestamp())

    def release(self, token: int) -> None:
        if token in self.ledger.open:
            self.ledger = budget_mod.release(self.ledger, token)

    def exhausted(self, task: str, now: datetime, typical_cost: float = 0.0) -> bool:
        """No room left for a typical teacher call (``typical_cost``: recent average)."""
        return not budget_mod.may_call(self.ledger, task, now.timestamp(), typical_cost)

    def windows(self, task: str, now: datetime) -> dict[str, float]:
        got = budget_mod.spend(self.ledger, now.timestamp(), task)
        return {_WINDOW_NAMES[w]: v for w, v in got.items()}

    def caps(self, task: str) -> dict[str, float | None]:
        caps = status_mod.effective_caps(self.cfg.task(task).budget, self.cfg.budget)
        return {"daily": caps.daily, "weekly": caps.weekly, "monthly": caps.monthly}
