"""TaskStatus from the engine's state object, or straight from a store with no gateway running.

``apprentice status`` and ``apprentice report`` read the store the gateway writes
(the saved engine state, counters, the spend ledger, versions), so they work on a
stopped deployment, a copied SQLite file or next to a running gateway alike,
without loading any model.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from apprentice.config import ApprenticeConfig
from apprentice.engine import budget as budget_mod
from apprentice.engine import lifecycle
from apprentice.reporting import status as status_mod
from apprentice.store import Store

__all__ = ["engine_view", "status_from_store", "statuses_from_store"]

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
# Ledger rows older than this cannot fall in the current day, ISO week or month.
_LEDGER_LOOKBACK_DAYS = 40


def engine_view(
    state: lifecycle.TaskState, *, requests: int = 0, paused: bool | None = None
) -> status_mod.EngineView:
    """The status's view of one engine ``TaskState``."""
    c = state.confidence
    due = lifecycle.training_due(state)
    return status_mod.EngineView(
        phase=state.phase.value,
        coaching=state.coaching,
        emergency=state.emergency,
        paused=state.paused if paused is None else paused,
        confidence=c.mean,
        confidence_lower_bound=c.lower_bound,
        sampling_rate=state.sampling_rate,
        trend=c.trend,
        drift_at=c.drift_at if state.drift else None,
        shift_at=c.shift_at if state.shift else None,
        anti_correlation=c.anti_correlation,
        comparisons=state.comparisons,
        requests=requests,
        training_due=due.due,
        training_reason=due.reason,
        alarms=[
            {
                "kind": a.kind.value,
                "index": a.index,
                "comparisons": a.comparisons,
                "at": datetime.fromtimestamp(a.at, UTC).isoformat() if a.at else None,
            }
            for a in state.alarms
        ],
    )


def _ledger(cfg: ApprenticeConfig, store: Store, now: datetime) -> budget_mod.Ledger:
    since = now.timestamp() - _LEDGER_LOOKBACK_DAYS * 86400
    rows = [
        (e.at.timestamp(), e.task, e.amount)
        for e in store.spend_entries(since=datetime.fromtimestamp(since, UTC))
        if e.task is not None
    ]
    return budget_mod.from_entries(budget_mod.BudgetLimits.from_config(cfg), rows)


def status_from_store(
    cfg: ApprenticeConfig,
    store: Store,
    task: str,
    *,
    now: datetime | None = None,
    ledger: budget_mod.Ledger | None = None,
) -> status_mod.TaskStatus:
    """Rebuild the TaskStatus the gateway would report, from durable state only."""
    moment = now or datetime.now(UTC)
    params = lifecycle.TaskParams.from_config(cfg, task)
    saved: dict[str, Any] | None = store.load_task_state(task)
    state = lifecycle.TaskState.from_dict(saved, params) if saved else lifecycle.initial(params)
    counts = store.request_counts(task)
    examples = store.example_counts(task)
    active = store.active_version(task)
    book = ledger if ledger is not None else _ledger(cfg, store, moment)
    view = budget_mod.view(book, moment.timestamp(), task)
    total_spend = store.spend_total(_EPOCH, moment, task=task, kind="teacher")
    savings = budget_mod.savings(counts.student_answers, counts.teacher_calls, total_spend)
    return status_mod.build_task_status(
        task,
        engine=engine_view(state, requests=counts.requests),
        counters=status_mod.StoreCounters(
            train_examples=examples.get("train", 0),
            heldout_examples=examples.get("heldout", 0),
            teacher_calls=counts.teacher_calls,
            student_answers=counts.student_answers,
            requests=counts.requests,
        ),
        spend=status_mod.SpendWindows(view.today, view.week, view.month, view.currency),
        caps=status_mod.effective_caps(cfg.task(task).budget, cfg.budget),
        estimated_savings=max(0.0, savings),
        active_version=None if active is None else active.version,
        training_in_progress=state.training_in_progress,
        budget_exhausted=view.exhausted,
    )


def statuses_from_store(
    cfg: ApprenticeConfig, store: Store, *, now: datetime | None = None
) -> status_mod.StatusReport:
    """Every configured task's status (one ledger replay for all of them)."""
    moment = now or datetime.now(UTC)
    book = _ledger(cfg, store, moment)
    return status_mod.StatusReport.of(
        status_from_store(cfg, store, t.name, now=moment, ledger=book) for t in cfg.tasks
    )
