"""Events: the durable history of a task, derived from engine state changes.

The engine keeps only its last 50 alarms; the store's events table keeps
everything an operator may ask about later: phase changes, alarms, coaching and
emergency starting and ending, training runs starting and ending (with why),
promotions, rejections, rollbacks, pauses and budget caps. :func:`transitions`
is pure: it compares the state before and after one engine step, so whoever
holds the engine (the gateway's per-task engine cell) derives the same events for
the same step, and tests need no database.

Kinds (``EVENT_KINDS``): ``phase``, the alarm kinds (``drift``, ``shift``,
``coaching``, ``emergency``, ``anti_correlation``), ``coaching_end``,
``training_started``, ``training_finished``, ``training_failed``,
``training_interrupted``, ``promoted``, ``rejected``, ``rollback``, ``canary_started``,
``canary_promoted``, ``canary_rolled_back``, ``paused``, ``resumed``, ``budget_80``,
``budget_100``.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any

from apprentice.engine.lifecycle import Alarm, TaskState
from apprentice.store.records import EventRecord

__all__ = [
    "EVENT_KINDS",
    "alert_event",
    "event",
    "training_event",
    "transitions",
]

EVENT_KINDS = (
    "phase",
    "drift",
    "shift",
    "coaching",
    "emergency",
    "anti_correlation",
    "coaching_end",
    "training_started",
    "training_finished",
    "training_failed",
    "training_interrupted",
    "promoted",
    "rejected",
    "rollback",
    "paused",
    "resumed",
    "budget_80",
    "budget_100",
)


def event(task: str | None, kind: str, message: str, at: datetime, **data: Any) -> EventRecord:
    """One event; ``data`` must be JSON-safe."""
    return EventRecord(task=task, at=at, kind=kind, message=message, data=dict(data))


def transitions(
    before: TaskState, after: TaskState, alarms: Iterable[Alarm], at: datetime, *, index: int
) -> list[EventRecord]:
    """What changed between two engine states, plus the alarms the step raised."""
    return [
        *_alarm_events(after, alarms, at),
        *_phase_events(before, after, at, index),
        *_run_events(before, after, at),
    ]


def _shown(mean: float | None) -> str:
    return "-" if mean is None else f"{mean:.3f}"


def _alarm_events(after: TaskState, alarms: Iterable[Alarm], at: datetime) -> list[EventRecord]:
    conf = after.confidence
    return [
        event(
            after.params.task,
            alarm.kind.value,
            f"{alarm.kind.value} alarm at request {alarm.index:,} "
            f"(agreement {_shown(conf.mean)} over {conf.n} comparisons)",
            at,
            index=alarm.index,
            comparisons=alarm.comparisons,
            confidence=conf.mean,
        )
        for alarm in alarms
    ]


def _phase_events(
    before: TaskState, after: TaskState, at: datetime, index: int
) -> list[EventRecord]:
    """A phase change, and the end of coaching (which changes no phase)."""
    task, mean = after.params.task, after.confidence.mean
    out: list[EventRecord] = []
    if after.phase is not before.phase:
        why = " (emergency)" if after.emergency and not before.emergency else ""
        out.append(
            event(
                task,
                "phase",
                f"phase {before.phase.value} -> {after.phase.value}{why} at request {index:,}",
                at,
                index=index,
                comparisons=after.comparisons,
                before=before.phase.value,
                after=after.phase.value,
                confidence=mean,
                sampling_rate=after.sampling_rate,
            )
        )
    if before.coaching and not after.coaching and not after.emergency:
        text = f"coaching ended at request {index:,} (agreement {_shown(mean)})"
        out.append(event(task, "coaching_end", text, at, index=index, confidence=mean))
    return out


def _run_events(before: TaskState, after: TaskState, at: datetime) -> list[EventRecord]:
    """Training started, a version promoted or rejected, the task paused or resumed."""
    task = after.params.task
    out: list[EventRecord] = []
    if after.training_in_progress and not before.training_in_progress:
        text = f"training started on {after.examples:,} examples"
        out.append(event(task, "training_started", text, at, examples=after.examples))
    if after.active_version != before.active_version and after.active_version is not None:
        was = f" (was {before.active_version})" if before.active_version else ""
        out.append(
            event(
                task,
                "promoted",
                f"version {after.active_version} promoted{was}",
                at,
                version=after.active_version,
                previous=before.active_version,
            )
        )
    if after.last_rejected != before.last_rejected and after.last_rejected is not None:
        keeps = after.active_version or "no version"
        text = f"version {after.last_rejected} rejected; {keeps} keeps serving"
        out.append(event(task, "rejected", text, at, version=after.last_rejected))
    if after.paused != before.paused:
        kind = "paused" if after.paused else "resumed"
        out.append(event(task, kind, f"task {kind}", at))
    return out


def training_event(
    task: str, *, ok: bool, reason: str | None, at: datetime, next_retry: str | None = None
) -> EventRecord:
    """The end of a training run: finished, or failed with its reason and next retry."""
    if ok:
        return event(task, "training_finished", "training finished", at)
    text = f"training failed: {reason or 'no reason given'}"
    if next_retry:
        text += f"; next retry {next_retry}"
    return event(task, "training_failed", text, at, reason=reason, next_retry=next_retry)


def alert_event(
    kind: str, task: str | None, message: str, at: datetime, **data: Any
) -> EventRecord:
    """An alert worth keeping (budget caps, rejected versions) as an event."""
    return event(task, kind, message, at, **data)
