"""The group commit's bulk statements (store/bulk.py) leave exactly the rows that writing
each request transaction in turn leaves, on both backends: the same results (example
ids, added or not, comparison ids) and the same tables, including every awkward case
one by one handles (an input repeated in the batch, an input stored before, a
reservation settled twice, one already gone, a zero release, two tasks' states)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import psycopg
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from apprentice.store import open_store
from apprentice.store.budget import BudgetTotals
from apprentice.store.records import (
    ComparisonRecord,
    ExampleRecord,
    RequestRecord,
    ReservationRecord,
    SpendRecord,
)
from apprentice.store.sql import SqlStore
from apprentice.store.sqlcore import _chunk

NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
TABLES = {
    "requests": "id",
    "examples": "id",
    "comparisons": "id",
    "spend": "id",
    "budget_reservations": "id",
    "task_state": "task",
    "task_counters": "task",
    "spend_buckets": "scope, bucket",
    "spend_hours": "scope, hour",
    "spend_days": "scope, day",
}


@pytest.fixture(params=["sqlite", "postgresql"])
def twin_urls(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[str, str]]:
    """Two empty stores of one backend: one written in bulk, one a write at a time."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path}/bulk.db", f"sqlite:///{tmp_path}/each.db"
        return
    dsn = str(request.getfixturevalue("pg_server_dsn"))
    names = [f"apprentice_test_{uuid.uuid4().hex[:12]}" for _ in range(2)]
    with psycopg.connect(dsn, autocommit=True) as admin:
        for name in names:
            admin.execute(f'CREATE SCHEMA "{name}"')
    parts = urlsplit(dsn)
    urls = [
        parts._replace(
            query="&".join(filter(None, [parts.query, f"options=-csearch_path%3D{n}"]))
        ).geturl()
        for n in names
    ]
    yield urls[0], urls[1]
    with psycopg.connect(dsn, autocommit=True) as admin:
        for name in names:
            admin.execute(f'DROP SCHEMA IF EXISTS "{name}" CASCADE')


def _example(task: str, text: str, rid: str | None) -> ExampleRecord:
    return ExampleRecord(
        task=task, input={"text": text}, output={"label": text.upper()}, input_hash=f"h-{text}",
        split="train", teacher_provider="openai", teacher_model="gpt-4o", created_at=NOW,
        cost=0.01, request_id=rid,
    )  # fmt: skip


def _hold(rid: str, amount: float, task: str = "t", caller: str | None = None) -> ReservationRecord:
    return ReservationRecord(
        id=rid, task=task, amount=amount, owner="gw", created_at=NOW,
        expires_at=NOW + timedelta(hours=1), request_id=rid, caller=caller,
    )  # fmt: skip


def _line(
    rid: str, amount: float, hold: str | None, task: str = "t", caller: str | None = None
) -> SpendRecord:
    return SpendRecord(
        task=task, at=NOW + timedelta(minutes=len(rid)), amount=amount, request_id=rid,
        provider="openai", model="gpt-4o", input_tokens=10, output_tokens=2, reservation=hold,
        caller=caller,
    )  # fmt: skip


def _write(rid: str, task: str = "t", **parts: Any) -> dict[str, Any]:
    request = RequestRecord(
        id=rid, task=task, received_at=NOW, route="cold_start", served_by="teacher",
        teacher_model="gpt-4o", cost=0.01, input={"text": rid}, output={"label": "x"},
    )  # fmt: skip
    return {"request": request, **parts}


def _before(store: SqlStore) -> None:
    """What both stores hold first: a stored input and four open reservations."""
    store.add_examples([_example("t", "old", "r-old")])
    for hold in (
        _hold("h1", 0.3),
        _hold("h2", 0.2),
        _hold("h4", 0.5),
        _hold("h5", 0.25, caller="k1"),
    ):
        store.budget_reserve(hold, scopes=["t", "*"], windows=[], admit=lambda _: None)


def _tables(store: SqlStore) -> dict[str, list[tuple[Any, ...]]]:
    with store._read() as tx:
        return {
            table: [
                tuple(round(v, 9) if isinstance(v, float) else v for v in row)
                for row in tx.all(f"SELECT * FROM {table} ORDER BY {order}")
            ]
            for table, order in TABLES.items()
        }


def _same_in_bulk_and_each(urls: tuple[str, str], writes: Sequence[dict[str, Any]]) -> None:
    with open_store(urls[0]) as bulk, open_store(urls[1]) as each:
        assert isinstance(bulk, SqlStore) and isinstance(each, SqlStore)
        _before(bulk)
        _before(each)
        together = bulk.record_requests(list(writes))
        one_by_one = []
        for w in writes:  # each spend line alone: the line-at-a-time rules, as they were
            rest = {k: v for k, v in w.items() if k not in ("request", "spend")}
            one_by_one.append(each.record_request(w["request"], **rest))
            for line in w.get("spend", ()):
                each.record_spend([line])
        assert together == one_by_one
        assert _tables(bulk) == _tables(each)


def test_a_batch_in_bulk_leaves_the_rows_of_each_write_in_turn(twin_urls: tuple[str, str]) -> None:
    comparison = ComparisonRecord(task="t", request_id="r3", at=NOW, score=0.5, details={"f": 1})
    shadow = ComparisonRecord(task="t", request_id="r5", at=NOW, score=1.0, student_version="v2")
    writes = [
        _write("r1", example=_example("t", "a", "r1"), spend=[_line("r1", 0.1, "h1")],
               task_state={"phase": "cold_start", "n": 1}),
        _write("r2", example=_example("t", "a", "r2"), spend=[_line("r2", 0.1, None, caller="k1")]),
        _write("r3", example=_example("t", "old", "r3"), comparison=comparison,
               task_state={"phase": "cold_start", "n": 2}),
        _write("r4"),  # a row alone, as written behind
        _write("r5", spend=[_line("r5", 0.15, "h2"), _line("r5", 0.2, "h2")], shadow=shadow),
        _write("r6", task="u", example=_example("u", "a", "r6"),
               spend=[_line("r6", 0.4, "h3", task="u"), _line("r6", 0.0, "h4")],
               task_state={"phase": "distilling"}),
        _write("r7", spend=[_line("r7", 0.05, "h5", caller="k1")]),
    ]  # fmt: skip
    _same_in_bulk_and_each(twin_urls, writes)


def test_a_batch_larger_than_one_statement_is_written_whole(twin_urls: tuple[str, str]) -> None:
    """150 paid writes: more rows than one multi-row statement takes (64, then 999 values)."""
    writes = [
        _write(f"r{i}", example=_example("t", f"in{i % 120}", f"r{i}"),
               spend=[_line(f"r{i}", 0.001 * i, None, caller=f"k{i % 3}")])
        for i in range(150)
    ]  # fmt: skip
    _same_in_bulk_and_each(twin_urls, writes)


def test_examples_not_their_requests_own_are_added_as_one_by_one(
    twin_urls: tuple[str, str],
) -> None:
    """An example without a request id, or naming another request, is still added only
    when its input is new (the bulk read-back tells "added" by the request id)."""
    writes = [
        _write("r1", example=_example("t", "a", None)),
        _write("r2", example=_example("t", "a", None)),
        _write("r3", example=_example("t", "old", "r-old")),
        _write("r4", example=_example("t", "b", "r9")),
        _write("r5", example=_example("t", "b", "r9")),
    ]
    _same_in_bulk_and_each(twin_urls, writes)


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    st.lists(
        st.tuples(
            st.sampled_from(["t", "u"]),
            st.one_of(st.none(), st.sampled_from(["a", "b", "old"])),
            st.one_of(st.none(), st.sampled_from(["h1", "h2", "h4", "h5", "gone"])),
            st.sampled_from([0.0, 0.05, 0.1]),
            st.booleans(),
        ),
        min_size=1,
        max_size=12,
    )
)
def test_any_batch_in_bulk_equals_each_write_in_turn(
    sqlite_twins: tuple[str, str], plan: list[tuple[str, str | None, str | None, float, bool]]
) -> None:
    urls = tuple(f"{u}-{uuid.uuid4().hex[:8]}" for u in sqlite_twins)
    writes = []
    for i, (task, text, hold, amount, state) in enumerate(plan):
        rid = f"r{i}"
        parts: dict[str, Any] = {}
        if text is not None:
            parts["example"] = _example(task, text, rid)
        if hold is not None:
            parts["spend"] = [_line(rid, amount, hold, task=task)]
        if state:
            parts["task_state"] = {"n": i}
        writes.append(_write(rid, task=task, **parts))
    _same_in_bulk_and_each((urls[0], urls[1]), writes)


@pytest.fixture
def sqlite_twins(tmp_path: Path) -> tuple[str, str]:
    return f"sqlite:///{tmp_path}/bulk", f"sqlite:///{tmp_path}/each"


def test_a_batch_of_reservations_counts_its_own_for_a_key_read_late(sqlite_url: str) -> None:
    """An ask whose key is first read after the batch admitted a hold of that key still
    counts it, though the batch inserts its holds only at the end."""
    with open_store(sqlite_url) as store:
        assert isinstance(store, SqlStore)
        seen: list[BudgetTotals] = []
        asks = [
            (_hold("a1", 0.3, caller="k"), ["t", "*"], [], seen.append),
            (_hold("a2", 0.2, caller="k"), ["t", "*", "key:k"], [], seen.append),
        ]
        out = store.budget_reserve_many(asks)
        assert all(isinstance(o, BudgetTotals) for o in out)
        assert seen[1].pending["key:k"] == pytest.approx(0.3)
        assert seen[1].pending["t"] == pytest.approx(0.3)
        with store._read() as tx:
            assert tx.all("SELECT id FROM budget_reservations ORDER BY id") == [("a1",), ("a2",)]


@pytest.mark.parametrize(
    ("left", "width", "size"),
    [(1, 15, 1), (5, 15, 5), (64, 15, 64), (200, 15, 64), (200, 16, 62), (3, 999, 1), (3, 2000, 1)],
)
def test_a_statement_takes_up_to_64_rows_within_999_values(
    left: int, width: int, size: int
) -> None:
    assert _chunk(left, width) == size
