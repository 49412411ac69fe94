"""A group commit's lookups ride on statements it runs anyway (store/bulk.py ``read``,
store/holds.py ``OpenHolds.expired``), with the same rows and outcomes on both backends:
the reservations a batch settles are looked up with its examples' read-back, and the
expired ones with the open sums. Covers what could break: a settle of a reservation
gone or named twice, a duplicate example in the batch and against the table, lookups
past one statement's value limit, an expired reservation booked before the asks, the
isolated retry with one failing write, and the statements a batch runs on SQLite."""

from __future__ import annotations

import random
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from apprentice.store import DuplicateRequestError, StoreUnavailableError, open_store, schema
from apprentice.store.budget import BudgetTotals, OpenHolds
from apprentice.store.bulk import IN_LIMIT, Query, read
from apprentice.store.records import (
    ExampleRecord,
    RecordResult,
    RequestRecord,
    ReservationRecord,
    SpendRecord,
)
from apprentice.store.sql import SqlStore, Tx

NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
DAY = [(NOW.replace(hour=0).timestamp(), NOW.replace(hour=0).timestamp() + 86_400)]


def _hold(hid: str, amount: float, expires: timedelta = timedelta(hours=1)) -> ReservationRecord:
    return ReservationRecord(
        id=hid, task="t", amount=amount, owner="gw", created_at=NOW - timedelta(hours=2),
        expires_at=NOW + expires, request_id=hid,
    )  # fmt: skip


def _ask(hid: str, amount: float) -> tuple[ReservationRecord, list[str], Any, Any]:
    hold = ReservationRecord(
        id=hid, task="t", amount=amount, owner="gw", created_at=NOW,
        expires_at=NOW + timedelta(hours=1), request_id=hid,
    )  # fmt: skip
    return hold, ["t", "*"], DAY, lambda _: None


def _write(rid: str, text: str | None, *lines: tuple[str | None, float]) -> dict[str, Any]:
    request = RequestRecord(
        id=rid, task="t", received_at=NOW, route="cold_start", served_by="teacher",
        teacher_model="gpt-4o", cost=0.01, input={"text": rid}, output={"label": "x"},
    )  # fmt: skip
    write: dict[str, Any] = {"request": request}
    if text is not None:
        write["example"] = _example(text, rid)
    write["spend"] = [
        SpendRecord(task="t", at=NOW, amount=amount, request_id=rid, provider="openai",
                    model="gpt-4o", reservation=hold)
        for hold, amount in lines
    ]  # fmt: skip
    return write


def _example(text: str, rid: str) -> ExampleRecord:
    return ExampleRecord(
        task="t", input={"text": text}, output={"label": "x"}, input_hash=f"h-{text}",
        split="train", teacher_provider="openai", teacher_model="gpt-4o", created_at=NOW,
        cost=0.01, request_id=rid,
    )  # fmt: skip


def _reserve(store: SqlStore, holds: Sequence[ReservationRecord]) -> None:
    out = store.budget_reserve_many([(h, ["t", "*"], [], lambda _: None) for h in holds])
    assert all(isinstance(o, BudgetTotals) for o in out)


def test_settles_looked_up_with_the_examples_past_one_statement(store_url: str) -> None:
    """460 examples and 460 settles: more values than one statement takes (IN_LIMIT), so the
    lookups go in two; with a gone reservation, one named twice, an input repeated in the
    batch (in another insert statement) and one stored before."""
    n = 460
    assert 2 * n + 5 > IN_LIMIT
    with open_store(store_url) as store:
        assert isinstance(store, SqlStore)
        store.add_examples([_example("old", "r-old")])
        old_id = store.examples("t")[0].id
        _reserve(store, [_hold(f"h{i}", 0.01) for i in range(n)])
        writes = [
            _write(f"r{i}", "old" if i == 0 else f"in{i % 400}", (f"h{i}", 0.001)) for i in range(n)
        ]
        writes[0]["spend"] += _write("x", None, ("gone", 0.5))["spend"]  # booked before
        writes[1]["spend"] += _write("x", None, ("h0", 0.7))["spend"]  # settled once
        out = store.record_requests(writes)
        assert all(isinstance(o, RecordResult) for o in out)
        results = [o for o in out if isinstance(o, RecordResult)]
        assert (results[0].example_id, results[0].example_added) == (old_id, False)
        assert all(r.example_added for r in results[1:401])
        for i in range(401, n):  # the same input as 400 writes before: not added, its id
            assert (results[i].example_id, results[i].example_added) == (
                results[i - 400].example_id,
                False,
            )
        assert len({r.example_id for r in results}) == 401  # in0..in399 and old
        assert store.reservations() == []
        spend = store.spend_entries("t")
        assert len(spend) == n and {s.amount for s in spend} == {0.001}
        assert store.example_counts("t")["train"] == 401


def test_read_packs_lookups_within_the_value_limit(store_url: str) -> None:
    with open_store(store_url) as store:
        assert isinstance(store, SqlStore)
        store.add_examples([_example("a", "ra"), _example("b", "rb")])
        agg = store.dialect.text_agg

        def lookup(hashes: Sequence[str]) -> Query:
            marks = ", ".join("?" * len(hashes))
            return (
                f"SELECT {agg}(input_hash, ',') FROM examples WHERE input_hash IN ({marks})",
                tuple(hashes),
            )

        queries = [
            lookup(["h-a", *(f"x{i}" for i in range(499))]),
            lookup([f"y{i}" for i in range(300)]),  # 800 values: still one statement
            lookup(["h-b", *(f"z{i}" for i in range(199))]),  # 1,000: a second one
            lookup(["h-a", "h-b"]),
        ]
        statements: list[str] = []
        with store._write() as tx:
            texts = read(_Counted(tx, statements), queries)
        assert texts == ["h-a", "", "h-b", "h-a,h-b"] or texts == ["h-a", "", "h-b", "h-b,h-a"]
        assert len(statements) == 2


class _Counted(Tx):
    """A real transaction that notes each statement it runs."""

    def __init__(self, tx: Tx, statements: list[str]) -> None:
        super().__init__(tx._cursor, tx._dialect)
        self._statements = statements

    def one(self, sql: str, params: Sequence[Any] = ()) -> tuple[Any, ...] | None:
        self._statements.append(sql)
        return super().one(sql, params)


def test_a_batch_of_asks_books_expired_reservations_first(store_url: str) -> None:
    with open_store(store_url) as store:
        assert isinstance(store, SqlStore)
        _reserve(store, [_hold("late", 0.4, expires=-timedelta(hours=1)), _hold("open", 0.2)])
        out = store.record_requests([], [_ask("new", 0.1)])
        seen = out[0]
        assert isinstance(seen, BudgetTotals)
        assert seen.pending["t"] == pytest.approx(0.2)  # the expired one no longer held
        assert seen.spent["t"][0] == pytest.approx(0.4)  # but booked at its worst case
        assert sorted(r.id for r in store.reservations()) == ["new", "open"]
        assert [(s.amount, s.provider) for s in store.spend_entries("t")] == [(0.4, "unrecorded")]


def test_open_sums_read_with_the_soonest_expiry_are_the_plain_sums(store_url: str) -> None:
    rng = random.Random(12)
    with open_store(store_url) as store:
        assert isinstance(store, SqlStore)
        holds = [
            ReservationRecord(
                id=f"h{i}",
                task=f"t{i % 3}",
                amount=rng.uniform(0.0001, 0.3),
                owner="gw",
                created_at=NOW,
                expires_at=NOW + timedelta(seconds=rng.randint(1, 900)),
            )
            for i in range(300)
        ]
        store.budget_reserve_many([(h, [h.task, "*"], [], lambda _: None) for h in holds])
        with store._write() as tx:
            plain = dict(tx.all("SELECT task, SUM(amount) FROM budget_reservations GROUP BY task"))
            held = OpenHolds(tx)
            sums = held.by_task()
            soonest = min(h.expires_at for h in holds)
            assert held.expired(int(soonest.timestamp() * 1e6) + 1)
            assert not held.expired(int(soonest.timestamp() * 1e6))
        assert {t: sums[t] for t in plain} == {t: float(v) for t, v in plain.items()}


def test_the_isolated_retry_keeps_settles_and_examples_of_the_writes_that_pass(
    store_url: str,
) -> None:
    with open_store(store_url) as store:
        assert isinstance(store, SqlStore)
        store.record_request(_write("taken", None)["request"])
        _reserve(store, [_hold("h1", 0.3), _hold("h2", 0.3), _hold("h3", 0.3)])
        writes = [
            _write("a", "same", ("h1", 0.1)),
            _write("taken", "other", ("h2", 0.2)),  # a duplicate request id: fails alone
            _write("b", "same", ("h3", 0.05), ("gone", 0.5)),
        ]
        out = store.record_requests(writes, [_ask("new", 0.1)])
        a, failed, b, seen = out
        assert isinstance(a, RecordResult) and isinstance(b, RecordResult)
        assert isinstance(failed, DuplicateRequestError)
        assert isinstance(seen, BudgetTotals)
        assert a.example_added and not b.example_added and a.example_id == b.example_id
        assert sorted(r.id for r in store.reservations()) == ["h2", "new"]
        assert sorted(s.amount for s in store.spend_entries("t")) == [0.05, 0.1]
        assert [e.input for e in store.examples("t")] == [{"text": "same"}]


def test_a_group_commit_runs_fourteen_statements_on_sqlite(sqlite_url: str) -> None:
    """Three paid writes (example, settle) and three asks: no statement of its own for the
    settled reservations (read with the examples) nor for expired ones (with the sums)."""
    with open_store(sqlite_url) as store:
        assert isinstance(store, SqlStore) and store.dialect is schema.SQLITE
        _reserve(store, [_hold(f"h{i}", 0.01) for i in range(3)])
        writes = [_write(f"r{i}", f"in{i}", (f"h{i}", 0.001)) for i in range(3)]
        statements: list[str] = []
        store._conn.set_trace_callback(statements.append)  # type: ignore[attr-defined]
        out = store.record_requests(writes, [_ask(f"n{i}", 0.01) for i in range(3)])
        store._conn.set_trace_callback(None)  # type: ignore[attr-defined]
        assert not any(isinstance(o, Exception) for o in out)
        heads = [" ".join(s.split()[:3]) for s in statements]
        assert heads == [
            "BEGIN IMMEDIATE",  # executescript: one GIL release (sqlite.py _begin)
            "INSERT INTO requests",
            "INSERT INTO examples",
            "SELECT (SELECT group_concat(input_hash",  # the read-back and the settles
            "DELETE FROM budget_reservations",
            "INSERT INTO spend",
            "INSERT INTO spend_buckets",
            "INSERT INTO spend_hours",
            "INSERT INTO spend_days",
            "INSERT INTO task_counters",
            "SELECT task, SUM(amount)",  # the open sums and the soonest expiry
            "SELECT scope, SUM(CASE",
            "INSERT INTO budget_reservations",
            "COMMIT",
        ]


def test_a_nested_write_on_sqlite_fails_and_commits_nothing_of_the_outer(sqlite_url: str) -> None:
    """``BEGIN IMMEDIATE`` through ``executescript`` would first COMMIT an open transaction:
    a write opened inside another (same thread) still fails, and the outer rolls back whole."""
    with open_store(sqlite_url) as store:
        assert isinstance(store, SqlStore)
        with pytest.raises(RuntimeError), store._write() as tx:
            tx.execute("INSERT INTO task_state (task, state, updated_at) VALUES ('t', '{}', 1)")
            nested = pytest.raises(StoreUnavailableError, match="within a transaction")
            with nested, store._write():
                pass
            raise RuntimeError("roll the outer back")
        assert store.load_task_state("t") is None


def test_writes_through_executemany_count_rows_and_fail_as_before(store_url: str) -> None:
    """SQLite runs each write through ``executemany`` with one set of values (sqlcore.Tx._dml:
    one GIL release fewer); the row counts and a duplicate key's error are as ``execute``'s."""
    with open_store(store_url) as store:
        assert isinstance(store, SqlStore)
        store.record_request(_write("r1", None)["request"])
        with pytest.raises(DuplicateRequestError):
            store.record_request(_write("r1", None)["request"])
        _reserve(store, [_hold("h1", 0.1), _hold("h2", 0.1)])
        assert store.budget_release(["h1", "gone"]) == 1
        with store._write() as tx:
            assert tx.execute("UPDATE budget_reservations SET amount = 0.2") == 1
            assert tx.execute("DELETE FROM budget_reservations WHERE id = 'gone'") == 0
            assert tx.execute("SAVEPOINT s") in (-1, 0)  # not a write: plain execute
            tx.execute("RELEASE SAVEPOINT s")
        assert [(r.id, r.amount) for r in store.reservations()] == [("h2", 0.2)]
