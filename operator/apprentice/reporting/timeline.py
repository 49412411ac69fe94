"""The report's data: what happened to a task, as series a plot or a script can use.

Pure functions over store records (requests, comparisons, versions, events), so
``apprentice report --json`` and the HTML plots show exactly the same numbers and
tests build them without a database. :func:`collect` is the thin part that asks
a :class:`~apprentice.store.Store` for the records.

The x axis of the lifecycle series is the request's position in the task's
stream (its *index*), the same index the engine's alarms carry. Spend is also
bucketed by wall time (minute, hour or day, whichever gives a readable number
of bars for the span).
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from apprentice.store import Store
from apprentice.store.records import (
    ComparisonRecord,
    EventRecord,
    ModelVersionRecord,
    RequestRecord,
)
from apprentice.vocabulary import Phase

__all__ = [
    "ALARM_KINDS",
    "PhaseSpan",
    "SpendBucket",
    "TaskTimeline",
    "VersionMark",
    "build_timeline",
    "collect",
    "wilson_lower",
]

ALARM_KINDS = frozenset(
    {"drift", "shift", "coaching", "emergency", "anti_correlation", "budget_80", "budget_100"}
)
_Z95 = 1.959963984540054
MAX_REQUESTS = 200_000
"""Most recent requests a report reads per task (keeps memory bounded on big stores)."""


def wilson_lower(mean: float, n: int, z: float = _Z95) -> float:
    """Wilson score lower bound of a mean agreement over ``n`` comparisons."""
    if n <= 0:
        return 0.0
    denom = 1 + z * z / n
    centre = mean + z * z / (2 * n)
    margin = z * math.sqrt(max(mean * (1 - mean), 0.0) / n + z * z / (4 * n * n))
    return max(0.0, (centre - margin) / denom)


@dataclass(frozen=True)
class SpendBucket:
    """Spend in one wall-time bucket (``teacher_spend``: everything the requests spent,
    a paid student's and the judge's too), and what all-teacher would have cost."""

    start: str
    requests: int
    teacher_calls: int
    teacher_spend: float
    all_teacher_estimate: float


@dataclass(frozen=True)
class PhaseSpan:
    phase: str
    start_index: int
    end_index: int  # exclusive


@dataclass(frozen=True)
class VersionMark:
    version: str
    state: str
    heldout_score: float | None
    created_at: str
    promoted_at: str | None
    promoted_index: int | None
    reason: str | None
    metrics: dict[str, Any] = field(default_factory=dict)


@dataclass
class TaskTimeline:
    """Everything the report shows for one task."""

    task: str
    window_size: int
    requests: int = 0
    teacher_calls: int = 0
    teacher_spend: float = 0.0
    avg_teacher_cost: float = 0.0
    all_teacher_estimate: float = 0.0
    spend_reduction: float | None = None
    bucket: str = "hour"
    spend_buckets: list[SpendBucket] = field(default_factory=list)
    # Per request, by index.
    cumulative_spend: list[float] = field(default_factory=list)
    cumulative_all_teacher: list[float] = field(default_factory=list)
    teacher_share: list[float] = field(default_factory=list)
    # Per comparison.
    comparison_index: list[int] = field(default_factory=list)
    agreement: list[float] = field(default_factory=list)
    confidence: list[float] = field(default_factory=list)
    confidence_lower_bound: list[float] = field(default_factory=list)
    sampling_rate: list[float | None] = field(default_factory=list)
    phases: list[PhaseSpan] = field(default_factory=list)
    versions: list[VersionMark] = field(default_factory=list)
    alarms: list[dict[str, Any]] = field(default_factory=list)
    # Every event of the events table, oldest first (the report's timeline).
    events: list[dict[str, Any]] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def _iso(at: datetime | None) -> str | None:
    return None if at is None else at.astimezone(UTC).isoformat(timespec="seconds")


def _bucket_size(span: timedelta) -> tuple[str, timedelta]:
    if span <= timedelta(hours=3):
        return "minute", timedelta(minutes=1)
    if span <= timedelta(days=4):
        return "hour", timedelta(hours=1)
    return "day", timedelta(days=1)


def _floor(at: datetime, size: timedelta) -> datetime:
    at = at.astimezone(UTC)
    if size >= timedelta(days=1):
        return at.replace(hour=0, minute=0, second=0, microsecond=0)
    if size >= timedelta(hours=1):
        return at.replace(minute=0, second=0, microsecond=0)
    return at.replace(second=0, microsecond=0)


def _spend_buckets(
    requests: Sequence[RequestRecord], avg_cost: float
) -> tuple[str, list[SpendBucket]]:
    if not requests:
        return "hour", []
    name, size = _bucket_size(requests[-1].received_at - requests[0].received_at)
    rows: dict[datetime, list[float]] = {}
    for r in requests:
        row = rows.setdefault(_floor(r.received_at, size), [0, 0, 0.0, 0.0])
        row[0] += 1
        row[1] += 1 if r.teacher_called else 0
        row[2] += r.cost
        row[3] += _all_teacher(r, avg_cost)
    # Fill empty buckets so bars sit on a true time axis.
    out: list[SpendBucket] = []
    cursor, last = min(rows), max(rows)
    while cursor <= last:
        n, calls, spend, estimate = rows.get(cursor, [0, 0, 0.0, 0.0])
        out.append(
            SpendBucket(_iso(cursor) or "", int(n), int(calls), round(spend, 6), round(estimate, 6))
        )
        cursor += size
    return name, out


def _all_teacher(r: RequestRecord, avg_cost: float) -> float:
    """What ``r`` would have cost had the teacher alone answered every request.

    A request's ``cost`` is all it spent (teacher, paid student, judge); only a
    remote-only one spent on the teacher alone, so the others count at the
    average teacher-alone cost.
    """
    return r.cost if r.route == "remote_only" else avg_cost


def _phase_spans(
    n_requests: int, comparison_index: Sequence[int], comparison_phase: Sequence[str | None]
) -> list[PhaseSpan]:
    """Phase per request: the phase of the latest comparison at or before it.

    Phase changes happen when a comparison is observed (graduation, demotion),
    so this is exact at every change; requests before the first comparison are
    cold start.
    """
    spans: list[PhaseSpan] = []
    current, start = Phase.cold_start.value, 0
    for index, phase in zip(comparison_index, comparison_phase, strict=True):
        if phase and phase != current:
            if index > start:
                spans.append(PhaseSpan(current, start, index))
            current, start = phase, index
    if n_requests > start or not spans:
        spans.append(PhaseSpan(current, start, max(n_requests, start)))
    return spans


def build_timeline(
    task: str,
    *,
    requests: Sequence[RequestRecord],
    comparisons: Sequence[ComparisonRecord],
    versions: Sequence[ModelVersionRecord] = (),
    events: Sequence[EventRecord] = (),
    window_size: int = 100,
    share_window: int = 100,
) -> TaskTimeline:
    """Series for one task from its records (requests and comparisons in time order)."""
    t = TaskTimeline(task=task, window_size=window_size)
    t.requests = len(requests)
    calls = [r for r in requests if r.teacher_called and r.error is None]
    alone = [r for r in calls if r.route == "remote_only"]  # the teacher's cost and nothing else
    t.teacher_calls = sum(1 for r in requests if r.teacher_called)
    t.teacher_spend = round(sum(r.cost for r in requests), 6)
    base = alone or calls
    t.avg_teacher_cost = sum(r.cost for r in base) / len(base) if base else 0.0
    t.bucket, t.spend_buckets = _spend_buckets(requests, t.avg_teacher_cost)
    _add_spend_series(t, requests, share_window)
    _add_comparisons(t, comparisons, {r.id: i for i, r in enumerate(requests)})
    times = [r.received_at for r in requests]
    t.versions = [_version_mark(v, times) for v in versions]
    _add_events(t, events)
    return t


def _add_spend_series(
    t: TaskTimeline, requests: Sequence[RequestRecord], share_window: int
) -> None:
    """Cumulative spend against the all-teacher estimate, and the teacher's recent share."""
    spend = estimate = 0.0
    recent: deque[int] = deque()
    in_recent = 0
    for r in requests:
        spend += r.cost
        estimate += _all_teacher(r, t.avg_teacher_cost)
        t.cumulative_spend.append(round(spend, 6))
        t.cumulative_all_teacher.append(round(estimate, 6))
        called = 1 if r.teacher_called else 0
        recent.append(called)
        in_recent += called
        if len(recent) > share_window:
            in_recent -= recent.popleft()
        t.teacher_share.append(round(in_recent / len(recent), 4))
    t.all_teacher_estimate = round(estimate, 6)
    if estimate > 0:
        t.spend_reduction = round(1 - spend / estimate, 6)


def _add_comparisons(
    t: TaskTimeline, comparisons: Sequence[ComparisonRecord], index_of: dict[str, int]
) -> None:
    """Agreement, the rolling confidence and its bound, and the phases they imply."""
    window: deque[float] = deque()
    total = 0.0
    phases: list[str | None] = []
    for c in comparisons:
        index = index_of.get(c.request_id)
        if index is None:  # older than the requests read
            continue
        window.append(c.score)
        total += c.score
        if len(window) > t.window_size:
            total -= window.popleft()
        mean = min(1.0, max(0.0, total / len(window)))
        t.comparison_index.append(index)
        t.agreement.append(c.score)
        t.confidence.append(round(mean, 6))
        t.confidence_lower_bound.append(round(wilson_lower(mean, len(window)), 6))
        t.sampling_rate.append(c.sampling_rate)
        phases.append(c.phase)
    t.phases = _phase_spans(t.requests, t.comparison_index, phases)


def _version_mark(v: ModelVersionRecord, times: Sequence[datetime]) -> VersionMark:
    promoted_index = None
    if v.promoted_at is not None:
        promoted_index = next((i for i, at in enumerate(times) if at >= v.promoted_at), len(times))
    return VersionMark(
        version=v.version,
        state=v.state,
        heldout_score=v.heldout_score,
        created_at=_iso(v.created_at) or "",
        promoted_at=_iso(v.promoted_at),
        promoted_index=promoted_index,
        reason=v.reason,
        metrics=dict(v.metrics),
    )


def _add_events(t: TaskTimeline, events: Sequence[EventRecord]) -> None:
    for e in events:
        t.events.append(
            {"at": _iso(e.at), "kind": e.kind, "message": e.message, "index": e.data.get("index")}
        )
        if e.kind not in ALARM_KINDS:
            continue
        t.alarms.append(
            {
                "kind": e.kind,
                "index": e.data.get("index"),
                "comparisons": e.data.get("comparisons"),
                "at": _iso(e.at),
                "message": e.message,
            }
        )


def collect(store: Store, task: str, *, window_size: int = 100) -> TaskTimeline:
    """Read a task's records from ``store`` and build its timeline."""
    requests = store.requests(task, limit=MAX_REQUESTS)
    since = requests[0].received_at if requests else None
    return build_timeline(
        task,
        requests=requests,
        comparisons=store.comparisons(task, since=since),
        versions=store.versions(task),
        events=store.events(task),
        window_size=window_size,
    )
