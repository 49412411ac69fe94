"""What a per-key budget costs: one reservation and its settle, with and without a key.

The key's caps, window spend and open holds are read in the same locked store
transaction as the task's and global caps (:mod:`apprentice.store.budget`), so only
paid calls pay for it (a local-only answer reserves nothing). This measures that
transaction pair (``budget_reserve_many`` with one ask, then the settling spend line)
on a SQLite file, in process, without a key and with a capped key, alternating
``--rounds`` times so both see the same machine load. CPU µs is the process's own
time (the fsyncs dominate wall time and are the same for both).

Writes bench/results/key_budget.json and key_budget.md.
Run: ``.venv/bin/python bench/key_budget_bench.py [--calls 400] [--rounds 5]``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

from apprentice.store import Store, open_store
from apprentice.store.api_keys import ApiKeyRecord
from apprentice.store.budget import BudgetTotals
from apprentice.store.records import ReservationRecord, SpendRecord

RESULTS = Path(__file__).resolve().parent / "results"
KEY = "0123456789ab"


def _admit(_: BudgetTotals) -> None:
    """The pure check is the engine's (benchmarked in engine_bench); here it admits."""


def one_round(store: Store, caller: str | None, calls: int) -> tuple[float, float]:
    """(CPU µs, wall µs) per reservation plus its settle."""
    now = datetime.now(UTC)
    windows = [(now.timestamp() - 3600, now.timestamp() + 3600)] * 3
    scopes = ["t", "*"] if caller is None else ["t", "*", f"key:{caller}"]
    cpu, wall = time.process_time(), time.perf_counter()
    for _ in range(calls):
        hold = ReservationRecord(
            id=uuid.uuid4().hex, task="t", amount=0.001, owner="bench", created_at=now,
            expires_at=now + timedelta(minutes=10), caller=caller,
        )  # fmt: skip
        store.budget_reserve_many([(hold, scopes, windows, _admit)])
        store.record_spend(
            [SpendRecord(task="t", at=now, amount=0.001, reservation=hold.id, caller=caller)]
        )
    return (
        (time.process_time() - cpu) / calls * 1e6,
        (time.perf_counter() - wall) / calls * 1e6,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=400)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    found: dict[str, list[tuple[float, float]]] = {"no_key": [], "key": []}
    with tempfile.TemporaryDirectory() as tmp, open_store(f"sqlite:///{tmp}/b.db") as store:
        created = datetime.now(UTC)
        store.add_api_key(ApiKeyRecord(KEY, "f" * 64, ("t",), None, created, budget={"daily": 1e9}))
        one_round(store, None, 50)  # warm up: schema, caches, first pages
        for _ in range(args.rounds):
            found["no_key"].append(one_round(store, None, args.calls))
            found["key"].append(one_round(store, KEY, args.calls))
    results = {
        name: {
            "cpu_us_median": round(statistics.median(c for c, _ in runs), 1),
            "wall_us_median": round(statistics.median(w for _, w in runs), 1),
        }
        for name, runs in found.items()
    }
    results["load_average_1m"] = {"value": round(os.getloadavg()[0], 2)}
    print(json.dumps(results, indent=2))
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "key_budget.json").write_text(json.dumps(results, indent=2) + "\n")
    a, b = results["no_key"], results["key"]
    (RESULTS / "key_budget.md").write_text(
        "# Per-key budget: the reservation transaction\n\n"
        f"`bench/key_budget_bench.py`: {args.calls} reservations and settles per round, "
        f"{args.rounds} alternating rounds, SQLite, medians.\n\n"
        "| | CPU µs | wall µs |\n|---|---|---|\n"
        f"| no key | {a['cpu_us_median']} | {a['wall_us_median']} |\n"
        f"| key with a budget | {b['cpu_us_median']} | {b['wall_us_median']} |\n\n"
        f"1-minute load average {results['load_average_1m']['value']} at the end. Only paid "
        "calls reserve: the local-only path is unchanged.\n"
    )


if __name__ == "__main__":
    main()
