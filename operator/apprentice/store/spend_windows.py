"""Window spend from three grains: UTC days, UTC hours and quarter hours.

Why: a budget check sums each scope's spend over its day, week and month windows.
Summed from the 15-minute ``spend_buckets`` alone, a month is ~2,900 rows a scope
(~1.7 ms an ask on SQLite once a month is stored, growing through the month). So
:func:`add` keeps per-UTC-hour and per-UTC-day rollups (``spend_hours``,
``spend_days``) in the same transaction as the bucket, and :func:`spent` reads each
window ``[a, b)`` (in buckets) as its whole days, then the whole hours left either
side, then the quarter hours left at each end: at most ~31 day, 46 hour and 6 bucket
rows a scope, whatever the zone (windows need not start at a UTC midnight, nor on a
UTC hour: Asia/Kathmandu is +05:45; a window shorter than a day is hours and quarters).

The totals are the bucket sums regrouped: equal up to float rounding of the order
(tests/store/test_spend_windows.py checks 1e-9 against the plain bucket sum).
Buckets, hours and days are floors of non-negative microsecond times (1970 on), which
the SQL integer division of migration 11 (``bucket / 4``, ``bucket / 96``) computes too.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache

from apprentice.store import schema
from apprentice.store.sqlcore import Tx

__all__ = ["add", "plan", "spent"]

HOUR, DAY = schema.HOUR_BUCKETS, schema.DAY_BUCKETS

_GRAINS = (("spend_buckets", "bucket"), ("spend_hours", "hour"), ("spend_days", "day"))


_ADDS = tuple(
    (
        f"INSERT INTO {table} (scope, {col}, amount)",
        f" ON CONFLICT (scope, {col}) DO UPDATE SET amount = {table}.amount + excluded.amount",
    )
    for table, col in _GRAINS
)
"""Per grain, the head and tail of one upsert of many rows (distinct keys: PostgreSQL
refuses a row twice in one statement)."""


_READ = tuple(
    f"SELECT scope, {k} AS k, {col} AS b, amount FROM {table}"
    " WHERE scope IN ({marks}) AND " + col + " >= ? AND " + col + " < ?"
    for k, table, col in (
        (0, "spend_buckets", "bucket"), (1, "spend_hours", "hour"), (2, "spend_days", "day")
    )
)  # fmt: skip
_WINDOW_SUM = (
    "SUM(CASE WHEN k = 0 AND (b >= ? AND b < ? OR b >= ? AND b < ?)"
    " OR k = 1 AND (b >= ? AND b < ? OR b >= ? AND b < ?)"
    " OR k = 2 AND b >= ? AND b < ? THEN amount ELSE 0 END)"
)

Range = tuple[int, int]
Plan = tuple[Range, Range, Range, Range, Range]
"""One window read: two quarter-hour ranges, two hour ranges, one day range (each
``[start, end)`` in its own unit; empty ones are ``(0, 0)``)."""


def add(tx: Tx, lines: Sequence[tuple[Sequence[str], int, float]]) -> None:
    """Add each line's amount to each of its scopes' quarter hour, hour and UTC day.

    ``lines``: ``(scopes, at_micros, amount)``. Three statements whatever the lines and
    scopes: on PostgreSQL each is a round trip, on SQLite a hand-off of the GIL (see
    :meth:`~apprentice.store.sqlcore.Tx.insert_rows`). Lines of one row are summed
    here first, in order, so each row is added once.
    """
    for grain, (head, tail) in enumerate(_ADDS):
        sums: dict[tuple[str, int], float] = {}
        for scopes, at_micros, amount in lines:
            unit = at_micros // schema.BUCKET_MICROS // (1, HOUR, DAY)[grain]
            for scope in scopes:
                sums[(scope, unit)] = sums.get((scope, unit), 0.0) + amount
        tx.insert_rows(head, [(scope, unit, v) for (scope, unit), v in sums.items()], tail)


def _split(a: int, b: int, size: int) -> tuple[Range, Range, Range]:
    """``[a, b)`` as the whole units of ``size`` inside it and what is left either side."""
    first, last = -(-a // size), b // size
    if first >= last:
        return (0, 0), (a, b), (b, b)
    return (first, last), (a, first * size), (last * size, b)


@lru_cache(maxsize=256)
def plan(a: int, b: int) -> Plan:
    """Split the bucket window ``[a, b)`` into whole days, then hours, then quarter hours."""
    days, low, high = _split(a, b, DAY)
    hours: list[Range] = []
    quarters: list[Range] = []
    for piece in (low, high) if days[0] < days[1] else ((a, b),):
        whole, before, after = _split(*piece, HOUR)
        hours.append(whole)
        quarters += [r for r in (before, after) if r[0] < r[1]]
    hours.append((0, 0))
    quarters += [(0, 0), (0, 0)]  # at most two are not empty: one at each end
    return (quarters[0], quarters[1], hours[0], hours[1], days)


def _merged(ranges: Sequence[Range]) -> list[Range]:
    """Non-empty ``ranges`` merged, so no row is read twice."""
    merged: list[Range] = []
    for start, end in sorted(r for r in ranges if r[0] < r[1]):
        if merged and start <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], end))
        else:
            merged.append((start, end))
    return merged


def spent(
    tx: Tx, scopes: Sequence[str], bounds: Sequence[tuple[int, int]]
) -> dict[str, tuple[float, ...]]:
    """Spend of each scope in each ``[a, b)`` of ``bounds`` (buckets), in one statement.

    A scope with no row read in any grain is absent (the engine reads it as 0).
    """
    shape = _statement(len(scopes), tuple(bounds))
    if shape is None:
        return {}
    sql, head, reads = shape
    params: list[object] = list(head)
    for start, end in reads:
        params += [*scopes, start, end]
    rows = tx.all(sql, params)
    return {str(r[0]): tuple(float(v or 0.0) for v in r[1:]) for r in rows}


@lru_cache(maxsize=64)
def _statement(
    scopes: int, bounds: tuple[tuple[int, int], ...]
) -> tuple[str, tuple[int, ...], tuple[Range, ...]] | None:
    """:func:`spent`'s statement for ``scopes`` scopes: its SQL, the window sums' values,
    and the ``[start, end)`` of each grain read (each after the scopes). None: no read.
    The same every ask of a day: built once, not per batch on the store's writer thread."""
    plans = [plan(a, b) for a, b in bounds]
    marks = ", ".join("?" for _ in range(scopes))
    head = tuple(v for p in plans for r in p for v in r)
    parts: list[str] = []
    reads: list[Range] = []
    for level, read in enumerate(_READ):
        ranges = [r for p in plans for r in (p[0:2], p[2:4], p[4:5])[level]]
        for start, end in _merged(ranges):
            parts.append(read.format(marks=marks))
            reads.append((start, end))
    if not parts:
        return None
    sums = ", ".join(_WINDOW_SUM for _ in plans)
    sql = f"SELECT scope, {sums} FROM ({' UNION ALL '.join(parts)}) AS u GROUP BY scope"
    return sql, head, tuple(reads)
