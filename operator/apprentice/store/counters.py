"""Each task's request counters, bumped once per task a transaction.

Why apart: ``task_counters`` holds running totals that reports read in one row, and
a group commit of many requests (:mod:`apprentice.store.batches`) adds to each task's
row once, not once per request: one statement (a GIL hand-off on SQLite, a round trip
on PostgreSQL) per task.
"""

from __future__ import annotations

from apprentice.store.records import ComparisonRecord, RequestRecord
from apprentice.store.sqlcore import Tx

COUNTERS = ("requests", "teacher_calls", "student_answers", "errors", "comparisons", "cache_hits")
_BUMP = (
    f"INSERT INTO task_counters (task, {', '.join(COUNTERS)})"
    f" VALUES (?{', ?' * len(COUNTERS)}) ON CONFLICT (task) DO UPDATE SET "
    + ", ".join(f"{c} = task_counters.{c} + excluded.{c}" for c in COUNTERS)
)


def _counts(request: RequestRecord, comparison: ComparisonRecord | None) -> tuple[int, ...]:
    """What one request adds to its task's counters, in ``COUNTERS`` order."""
    served = request.served_by
    return (
        1,
        int(request.teacher_called),
        int(served == "student"),
        int(request.error is not None),
        int(comparison is not None),
        int(served == "cache"),
    )


def count(
    counts: dict[str, list[int]], request: RequestRecord, comparison: ComparisonRecord | None
) -> None:
    """Add one written request's counters to its task's totals in ``counts``."""
    totals = counts.setdefault(request.task, [0] * len(COUNTERS))
    for i, n in enumerate(_counts(request, comparison)):
        totals[i] += n


def bump(tx: Tx, counts: dict[str, list[int]]) -> None:
    """The counters of every request written in ``tx``: one upsert per task, not per request
    (a group commit of a hundred local answers updates the row once)."""
    for task, totals in counts.items():
        tx.execute(_BUMP, (task, *totals))
