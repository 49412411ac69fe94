"""Request-row retention: delete ``requests`` rows older than a cut-off, a batch at a time.

A request row keeps what the caller asked and was answered (so feedback works on any
replica, after any restart); kept forever, it would hold every caller's input. The
gateway prunes rows older than ``store.request_retention_days``
(:mod:`apprentice.gateway.retention`). Only ``requests`` rows go: examples (the teacher's
and people's corrections), comparisons, spend, feedback and the task counters are never
touched, so training, the engine, budgets and reports do not change; feedback on a
pruned request answers 404 ``unknown_request`` naming the retention.

Each call deletes at most ``limit`` rows of one task, oldest first, found through the
``(task, received_at)`` index, in one short transaction: the SQLite write lock (and
PostgreSQL's row locks) are held for one batch only, so request writes go on between.
"""

from __future__ import annotations

from datetime import datetime

from apprentice.store import codec
from apprentice.store.sqlcore import SqlCore

__all__ = ["RetentionRows"]

_OLDEST = "SELECT id FROM requests WHERE task = ? AND received_at < ? ORDER BY received_at LIMIT ?"
_DELETE = f"DELETE FROM requests WHERE id IN ({_OLDEST})"


class RetentionRows(SqlCore):
    """The retention verb of :class:`apprentice.store.feedback.FeedbackStore`, in SQL."""

    def prune_requests(self, task: str, before: datetime, limit: int) -> int:
        if limit <= 0:
            raise ValueError(f"prune_requests: limit must be positive, got {limit}")
        with self._write() as tx:
            return tx.execute(_DELETE, (task, codec.to_micros(before), int(limit)))
