"""The per-hour series a report draws: requests, teacher calls, spend, comparisons."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from apprentice.store import codec, schema
from apprentice.store.records import HourBucket
from apprentice.store.sqlcore import SqlCore, time_filter

__all__ = ["SeriesRows"]


class SeriesRows(SqlCore):
    """Per-hour buckets over the requests, spend and comparisons tables."""

    def hourly(
        self,
        task: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
    ) -> list[HourBucket]:
        def window(column: str) -> tuple[str, list[Any]]:
            where, params = time_filter(column, task, since, until)
            return (" WHERE " + " AND ".join(where) if where else ""), params

        hour = schema.MICROS_PER_HOUR
        buckets: dict[int, dict[str, Any]] = {}
        with self._read() as tx:
            where, params = window("received_at")
            for h, n, teacher, student, errors in tx.all(
                f"SELECT received_at / {hour} AS h, COUNT(*),"
                " SUM(CASE WHEN route <> 'local_only' THEN 1 ELSE 0 END),"
                " SUM(CASE WHEN served_by = 'student' THEN 1 ELSE 0 END),"
                " SUM(CASE WHEN error IS NOT NULL THEN 1 ELSE 0 END)"
                f" FROM requests{where} GROUP BY h",
                params,
            ):
                buckets.setdefault(int(h), {}).update(
                    requests=int(n),
                    teacher_calls=int(teacher),
                    student_answers=int(student),
                    errors=int(errors),
                )
            where, params = window("at")
            for h, total in tx.all(
                f"SELECT at / {hour} AS h, SUM(amount) FROM spend{where} GROUP BY h", params
            ):
                buckets.setdefault(int(h), {})["spend"] = float(total)
            for h, n, mean in tx.all(
                f"SELECT at / {hour} AS h, COUNT(*), AVG(score) FROM comparisons{where} GROUP BY h",
                params,
            ):
                buckets.setdefault(int(h), {}).update(comparisons=int(n), mean_score=float(mean))
        return [
            HourBucket(start=codec.from_micros(h * hour), **fields)
            for h, fields in sorted(buckets.items())
        ]
