"""What one ask's window spend read costs with a month of spend stored: buckets vs rollup.

Each budget reservation reads each scope's spend in its day, week and month windows
(:func:`apprentice.store.budget.totals`). Read from the 15-minute ``spend_buckets``
alone, a month window sums ~2,900 rows a scope; read as whole UTC days from
``spend_days``, whole hours from ``spend_hours`` and the quarter hours left at the
ends (:mod:`apprentice.store.spend_windows`), at most ~31 + 46 + 6 rows. This fills a SQLite store with one spend line every
15 minutes for 31 days (scopes ``t`` and ``*``), then times one ask's ``totals`` (the
window spend, the open holds) at the month's end, in UTC (windows on UTC midnights) and
in America/New_York (every window edge is mid-day in UTC), alternating ``--rounds``
rounds of the pre-rollup read ("before", the exact statement it ran) and the rollup
read ("after"), CPU µs per call (the process's own time; timeit-style repeats in one
read transaction). Also the write side: a spend line's window upserts for 3 scopes,
one bucket upsert a scope (before) vs one multi-row upsert a grain (after).

Writes bench/results/budget_window.json and budget_window.md.
Run: ``.venv/bin/python bench/budget_window_bench.py [--calls 300] [--rounds 5]``;
``--url postgresql://... --name budget_window_pg`` for an empty PostgreSQL store.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path

from apprentice.engine.budget_limits import BudgetLimits, window_bounds
from apprentice.store import open_store, spend_windows
from apprentice.store.budget import OpenHolds, totals
from apprentice.store.records import SpendRecord
from apprentice.store.sql import SqlStore
from apprentice.store.sqlcore import Tx

RESULTS = Path(__file__).resolve().parent / "results"
MONTH = datetime(2025, 3, 1, tzinfo=UTC)
NOW = MONTH + timedelta(days=30, hours=23)  # late in the month: the whole month is stored
SCOPES = ("t", "*")
Sums = tuple[tuple[float, ...], ...]


def before(
    tx: Tx, scopes: Sequence[str], bounds: Sequence[tuple[int, int]]
) -> dict[str, tuple[float, ...]]:
    """The read every ask made before the rollup (store/budget.py ``_spent`` at 972944c)."""
    lowest = min(a for a, _ in bounds)
    highest = max(b for _, b in bounds)
    sums = ", ".join(
        "SUM(CASE WHEN bucket >= ? AND bucket < ? THEN amount ELSE 0 END)" for _ in bounds
    )
    marks = ", ".join("?" for _ in scopes)
    params: list[object] = [v for pair in bounds for v in pair]
    rows = tx.all(
        f"SELECT scope, {sums} FROM spend_buckets WHERE scope IN ({marks})"
        " AND bucket >= ? AND bucket < ? GROUP BY scope",
        [*params, *scopes, lowest, highest],
    )
    return {str(r[0]): tuple(float(v or 0.0) for v in r[1:]) for r in rows}


class BeforeHolds(OpenHolds):
    """What ``totals`` reads, with the window spend read as before the rollup."""

    def spent(
        self, scopes: tuple[str, ...], bounds: tuple[tuple[int, int], ...]
    ) -> dict[str, tuple[float, ...]]:
        return before(self._tx, scopes, bounds)


def _before_holds(tx: Tx) -> OpenHolds | None:
    return BeforeHolds(tx)


def _after_holds(_: Tx) -> OpenHolds | None:
    return None  # totals() builds its own OpenHolds: the rollup read


def fill(store: SqlStore) -> int:
    """One spend line per quarter hour of the month up to ``NOW``: 2,972 lines."""
    lines, at = [], MONTH
    while at < NOW:
        lines.append(SpendRecord(task="t", at=at + timedelta(minutes=7), amount=0.0125))
        at += timedelta(minutes=15)
    store.record_spend(lines)
    return len(lines)


def time_totals(
    store: SqlStore, zone: str, holds: Callable[[Tx], OpenHolds | None], calls: int
) -> tuple[tuple[float, float], Sums]:
    """(CPU µs, wall µs) per ``totals`` call and the spend it read, each call afresh."""
    bounds = window_bounds(BudgetLimits(timezone=zone), NOW.timestamp())
    windows = list(bounds.values())
    with store._read() as tx:
        seen = totals(tx, SCOPES, windows, holds(tx)).spent
        cpu, wall = time.process_time(), time.perf_counter()
        for _ in range(calls):
            totals(tx, SCOPES, windows, holds(tx))
        used = (time.process_time() - cpu, time.perf_counter() - wall)
    return (used[0] / calls * 1e6, used[1] / calls * 1e6), tuple(seen[s] for s in SCOPES)


_BUCKET_UPSERT = (
    "INSERT INTO spend_buckets (scope, bucket, amount) VALUES (?, ?, ?)"
    " ON CONFLICT (scope, bucket) DO UPDATE SET amount = spend_buckets.amount + excluded.amount"
)
WRITE_SCOPES = ("w", "*w", "key:w")  # a keyed line: its task, the global scope, its key


def time_writes(store: SqlStore, calls: int) -> dict[str, float]:
    """CPU µs per spend line (3 scopes) of its window upserts: before (one bucket upsert
    a scope, as insert_spend did) vs after (:func:`spend_windows.add`: one a grain)."""
    out: dict[str, list[float]] = {"before": [], "after": []}
    at = int(NOW.timestamp() * 1e6)
    for _ in range(3):
        with store._write() as tx:
            cpu = time.process_time()
            for i in range(calls):
                for scope in WRITE_SCOPES:
                    tx.execute(_BUCKET_UPSERT, (scope, at // 900_000_000 + i % 4, 0.001))
            out["before"].append(time.process_time() - cpu)
            cpu = time.process_time()
            for i in range(calls):
                spend_windows.add(tx, WRITE_SCOPES, at + (i % 4) * 900_000_000, 0.001)
            out["after"].append(time.process_time() - cpu)
    return {k: round(statistics.median(v) / calls * 1e6, 2) for k, v in out.items()}


def measure(store: SqlStore, calls: int, rounds: int) -> dict[str, object]:
    found: dict[str, list[tuple[float, float]]] = {}
    sums: dict[str, Sums] = {}
    for _ in range(rounds):
        for zone in ("UTC", "America/New_York"):
            for name, holds in (("before", _before_holds), ("after", _after_holds)):
                cpu, seen = time_totals(store, zone, holds, calls)
                found.setdefault(f"{zone} {name}", []).append(cpu)
                sums[f"{zone} {name}"] = seen
    for zone in ("UTC", "America/New_York"):
        a, b = sums[f"{zone} before"], sums[f"{zone} after"]
        gap = max(abs(x - y) for p, q in zip(a, b, strict=True) for x, y in zip(p, q, strict=True))
        assert gap < 1e-9, f"{zone}: the rollup read {b}, the buckets {a}"
    out: dict[str, object] = {
        name: {
            "cpu_us_median": round(statistics.median(c for c, _ in v), 1),
            "wall_us_median": round(statistics.median(w for _, w in v), 1),
            "cpu_runs": [round(c, 1) for c, _ in v],
        }
        for name, v in found.items()
    }
    out["window_spend_utc"] = sums["UTC after"]
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=300)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--url", help="an EMPTY store to fill (default: a temp SQLite file)")
    parser.add_argument("--name", default="budget_window", help="bench/results/<name>.json|md")
    args = parser.parse_args()
    with (
        tempfile.TemporaryDirectory() as tmp,
        open_store(args.url or f"sqlite:///{tmp}/b.db") as store,
    ):
        assert isinstance(store, SqlStore)
        lines = fill(store)
        results = measure(store, args.calls, args.rounds)
        results["write_us_per_line"] = time_writes(store, args.calls * 3)
    results["spend_lines"] = lines
    results["backend"] = store.dialect.name
    results["load_average_1m"] = round(os.getloadavg()[0], 2)
    print(json.dumps(results, indent=2))
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / f"{args.name}.json").write_text(json.dumps(results, indent=2) + "\n")
    (RESULTS / f"{args.name}.md").write_text(_markdown(results, args.calls, args.rounds))


def _markdown(r: dict[str, object], calls: int, rounds: int) -> str:
    def cpu(name: str) -> str:
        found: dict[str, float] = r[name]  # type: ignore[assignment]
        return f"{found['cpu_us_median']} ({found['wall_us_median']} wall)"

    w = r["write_us_per_line"]
    return (
        "# Budget window spend: one ask's `totals` with a month stored\n\n"
        f"`bench/budget_window_bench.py`: {r['backend']}, {r['spend_lines']} spend lines (one per "
        "15 minutes of March 2025, scopes `t` and `*`), `totals` at March 31 23:00 UTC, "
        f"{calls} calls a round, {rounds} alternating rounds, median CPU µs per call of "
        "this process (PostgreSQL: the client only, so read wall µs there; wall is "
        "noisy on a shared machine).\n\n"
        "| zone of the windows | before (quarter hours) | after (days, hours, quarters) |\n"
        "|---|---|---|\n"
        f"| UTC | {cpu('UTC before')} | {cpu('UTC after')} |\n"
        f"| America/New_York | {cpu('America/New_York before')} "
        f"| {cpu('America/New_York after')} |\n\n"
        f"Write side, CPU µs per spend line with 3 scopes (task, `*`, key): 3 bucket upserts {w['before']} "  # type: ignore[index]
        f"(before), 3 multi-row upserts (bucket, hour, day) {w['after']} (after).\n\n"  # type: ignore[index]
        f"Both reads give the same totals (checked within 1e-9). "
        f"1-minute load average {r['load_average_1m']} at the end.\n"
    )


if __name__ == "__main__":
    main()
