"""TaskStatus from the engine's state object, or straight from a store with no gateway running.

``apprentice status`` and ``apprentice report`` read the store the gateway writes
(the saved engine state, counters, the spend ledger, versions), so they work on a
stopped deployment, a copied SQLite file or next to a running gateway alike,
without loading any model.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from apprentice.config import ApprenticeConfig
from apprentice.engine import budget as budget_mod
from apprentice.engine import canary as canary_rule
from apprentice.engine import lifecycle
from apprentice.reporting import status as status_mod
from apprentice.store import Store

__all__ = [
    "TRAINING_END_KINDS",
    "blocking_cap",
    "engine_view",
    "last_training",
    "local_compute_cost",
    "next_retry",
    "status_from_store",
    "statuses_from_store",
]

TRAINING_END_KINDS = ("training_finished", "training_failed", "training_interrupted")
_WINDOW_NAMES = {
    budget_mod.Window.day: "daily",
    budget_mod.Window.week: "weekly",
    budget_mod.Window.month: "monthly",
}

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


def next_retry(state: lifecycle.TaskState) -> str:
    """When the engine will train again, in words ("now", "after 37 more teacher examples")."""
    if state.paused:
        return "when the task is resumed"
    if lifecycle.training_due(state).due:
        return "now"
    for extra in range(1, state.params.fine_tune_batch_size + 1):
        if lifecycle.training_due(dataclasses.replace(state, examples=state.examples + extra)).due:
            return f"after {extra} more teacher examples"
    return "at the next batch"


def blocking_cap(
    ledger: budget_mod.Ledger, now: datetime, task: str, typical_cost: float = 0.0
) -> status_mod.BudgetCap | None:
    """The first cap with no room for a typical teacher call, and when it resets."""
    found = budget_mod.exhausted_caps(ledger, now.timestamp(), task, typical_cost)
    if not found:
        return None
    scope, window, resets = found[0]
    cap = ledger.limits.caps(scope).get(window) or 0.0
    used = budget_mod.spend(ledger, now.timestamp(), None if scope == budget_mod.GLOBAL else scope)
    return status_mod.BudgetCap(
        scope="global" if scope == budget_mod.GLOBAL else scope,
        window=_WINDOW_NAMES[window],
        cap=cap,
        spend=round(used[window], 6),
        resets_at=datetime.fromtimestamp(resets, UTC).isoformat(),
    )


def last_training(store: Store, task: str) -> status_mod.TrainingOutcome | None:
    """The last training run's end from the events table (None: no run has ended)."""
    found = store.events(task, kinds=TRAINING_END_KINDS, limit=1)
    if not found:
        return None
    e = found[-1]
    return status_mod.TrainingOutcome(
        ok=e.kind == "training_finished",
        at=e.at.isoformat(),
        reason=e.data.get("reason") or (e.message if e.kind != "training_finished" else None),
        next_retry=e.data.get("next_retry"),
    )


def local_compute_cost(cfg: ApprenticeConfig, store: Store, task: str, now: datetime) -> float:
    """``local.cost_per_hour`` times the hours a student has been serving the task.

    The local model costs its hourly rate from the first promotion on, whether
    it answers or idles, so that is the span savings must pay for.
    """
    rate = cfg.local.cost_per_hour
    if rate <= 0:
        return 0.0
    promoted = [v.promoted_at for v in store.versions(task) if v.promoted_at is not None]
    if not promoted:
        return 0.0
    hours = max(0.0, (now - min(promoted)).total_seconds() / 3600.0)
    return rate * hours


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
    typical = total_spend / counts.teacher_calls if counts.teacher_calls else 0.0
    local = local_compute_cost(cfg, store, task, moment)
    answered_free = counts.student_answers + counts.cache_hits  # no teacher call either way
    # A paid student's answers are not free: what they cost is taken off the savings.
    student_spend = store.spend_total(_EPOCH, moment, task=task, kind="student")
    savings = budget_mod.savings(
        answered_free, counts.teacher_calls, total_spend, local + student_spend
    )
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
        estimated_savings=savings,
        active_version=None if active is None else active.version,
        training_in_progress=state.training_in_progress,
        budget_exhausted=view.exhausted,
        budget_cap=blocking_cap(book, moment, task, typical),
        last_training=last_training(store, task),
    ).model_copy(update={"canary": canary_from_store(cfg, store, task)})


def canary_from_store(
    cfg: ApprenticeConfig, store: Store, task: str
) -> status_mod.CanaryStatus | None:
    """A canary still running, rebuilt from the store: the newest version a validated
    candidate marked ``metrics.canary``, and the comparisons each version produced since
    it started (a shadow candidate's are stored beside its requests' own)."""
    versions = store.versions(task)
    newest = versions[-1] if versions else None
    mark = {} if newest is None else newest.metrics.get("canary")
    if newest is None or newest.state != "candidate" or not mark or "ended_at" in mark:
        return None
    active = next((v.version for v in versions if v.state == "promoted"), None)
    since = datetime.fromisoformat(str(mark.get("started_at")))
    tallies = canary_tallies(store, task, since, [newest.version, active])
    rules = cfg.task(task).canary
    judged = canary_rule.judge(
        tallies[newest.version], tallies[active], margin=rules.margin,
        min_comparisons=rules.min_comparisons, max_comparisons=rules.max_comparisons,
    )  # fmt: skip
    return status_mod.CanaryStatus(
        version=newest.version, active_version=active, mode=str(mark.get("mode")),
        share=float(mark.get("share") or rules.share), margin=rules.margin,
        started_at=since.isoformat(),
        candidate=_tally(tallies[newest.version]), active=_tally(tallies[active]),
        verdict=judged.verdict.value, reason=judged.reason,
    )  # fmt: skip


def canary_tallies(
    store: Store, task: str, since: datetime, versions: Sequence[str | None]
) -> dict[str | None, canary_rule.Tally]:
    """Each version's stored comparisons since ``since`` (a canary's evidence)."""
    tallies: dict[str | None, canary_rule.Tally] = {v: canary_rule.Tally() for v in versions}
    for c in store.comparisons(task, since=since):
        if c.student_version in tallies:
            tallies[c.student_version] = tallies[c.student_version].add(c.score)
    return tallies


def _tally(t: canary_rule.Tally) -> status_mod.CanaryTally:
    return status_mod.CanaryTally(comparisons=t.n, agreement=round(t.mean, 4))


def statuses_from_store(
    cfg: ApprenticeConfig, store: Store, *, now: datetime | None = None
) -> status_mod.StatusReport:
    """Every configured task's status (one ledger replay for all of them)."""
    moment = now or datetime.now(UTC)
    book = _ledger(cfg, store, moment)
    return status_mod.StatusReport.of(
        status_from_store(cfg, store, t.name, now=moment, ledger=book) for t in cfg.tasks
    )
