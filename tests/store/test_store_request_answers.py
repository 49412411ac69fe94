"""A request row keeps what was asked and answered (``input``, ``output``; migration 10), on
both backends (SQLite and PostgreSQL): exact round trips, including what JSONB would refuse;
NULL for a request without an answer; listings leave them out; and a store written before
the migration upgrades in place, its old rows kept with no input."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from apprentice.prompts import canonical_json
from apprentice.store import RequestRecord, codec, open_store, schema
from apprentice.store.sql import SqlStore

T0 = datetime(2025, 3, 10, 12, 0, tzinfo=UTC)

ASKED: dict[str, Any] = {
    "text": "Ünïcødé ✓, a NUL \x00 and a lone surrogate \ud800",
    "items": [{"n": 1, "x": 2.5, "ok": True, "none": None}, []],
    "b": {"z": 1, "a": 2},
}
ANSWERED: dict[str, Any] = {"label": "refund", "why": "日本語 \x00"}


def _row(rid: str, **kw: Any) -> RequestRecord:
    fields: dict[str, Any] = {"route": "local_only", "served_by": "student", "received_at": T0}
    fields.update(kw)
    return RequestRecord(id=rid, task="t", **fields)


def test_the_input_and_answer_round_trip_and_stay_out_of_listings(store_url: str) -> None:
    with open_store(store_url) as store:
        store.record_request(_row("one", input=ASKED, output=ANSWERED, tags={"c": "acme"}))
        store.record_requests(  # the writer's group commit writes them the same way
            [
                {"request": _row("two", input={"text": "b"}, output={"label": "x"})},
                {"request": _row("failed", served_by=None, error="TeacherTimeout")},
            ]
        )
        one = store.request_record("one")
        assert one is not None
        assert (one.input, one.output) == (ASKED, ANSWERED)  # exactly, NUL and surrogate too
        assert one.tags == {"c": "acme"} and one.served_by == "student"
        two = store.request_record("two")
        assert two is not None and (two.input, two.output) == ({"text": "b"}, {"label": "x"})
        failed = store.request_record("failed")
        assert failed is not None and (failed.input, failed.output) == (None, None)
        listed = store.requests("t")
        assert sorted(r.id for r in listed) == ["failed", "one", "two"]
        assert all(r.input is None and r.output is None for r in listed)  # reports stay cheap
        assert isinstance(store, SqlStore)
        with store._read() as tx:  # canonical JSON: sorted keys, no spaces
            stored = tx.one("SELECT input, output FROM requests WHERE id = ?", ("two",))
        assert stored == ('{"text":"b"}', '{"label":"x"}')


def test_a_store_from_before_the_migration_upgrades_and_keeps_its_rows(
    store_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    before = [m for m in schema.MIGRATIONS if m[0] < 10]
    monkeypatch.setattr(schema, "MIGRATIONS", before)
    monkeypatch.setattr(schema, "LATEST_VERSION", before[-1][0])
    with open_store(store_url) as old:  # the schema an older Apprentice wrote (version 9)
        assert isinstance(old, SqlStore) and old.schema_version() == 9
        with old._write() as tx:
            tx.execute(
                "INSERT INTO requests (id, task, received_at, route, served_by, latency_ms,"
                " cost, caller) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                ("old", "t", 1_741_608_000_000_000, "local_only", "student", 2.5, 0.0, "k1"),
            )
    monkeypatch.undo()
    with open_store(store_url) as store:
        assert store.schema_version() == schema.LATEST_VERSION == 11
        old_row = store.request_record("old")
        assert old_row is not None
        assert (old_row.served_by, old_row.caller, old_row.latency_ms) == ("student", "k1", 2.5)
        assert (old_row.input, old_row.output) == (None, None)  # nothing to correct from
        later = _row("new", received_at=T0 + timedelta(seconds=1), input={"a": 1}, output={})
        store.record_request(later)
        new_row = store.request_record("new")
        assert new_row is not None and (new_row.input, new_row.output) == ({"a": 1}, {})


@pytest.mark.parametrize(
    "value",
    [
        {},
        {"b": 1, "a": [1, 2.5, -0.0, 1e300, True, False, None], "c": {"z": "ü", "y": "\x00\n"}},
        {"nan": float("nan"), "inf": float("inf"), "big": 2**70, "é": "日本語 ✓ \u2028"},
        {"deep": [[[{"k": [[]]}]]], "tab\t": '"quoted" \\ back'},
    ],
)
def test_the_row_json_is_canonical_json_exactly(value: dict[str, Any]) -> None:
    assert codec.answer_json(value) == canonical_json(value)


def test_rows_written_alone_share_one_statement_and_a_duplicate_stays_its_own_failure(
    store_url: str,
) -> None:
    with open_store(store_url) as store:
        store.record_request(_row("taken"))
        results = store.record_requests(  # request rows alone (written behind) and a full write
            [
                {"request": _row("a1", input={"text": "a"}, output={"label": "x"})},
                {"request": _row("b1", route="both", served_by="teacher"), "example": None},
                {"request": _row("taken", input={"text": "again"})},  # a duplicate id
                {"request": _row("a2", served_by="cache", input={"text": "c"})},
            ]
        )
        assert [type(r).__name__ for r in results] == [
            "RecordResult", "RecordResult", "DuplicateRequestError", "RecordResult",
        ]  # fmt: skip
        assert sorted(r.id for r in store.requests("t")) == ["a1", "a2", "b1", "taken"]
        taken = store.request_record("taken")
        assert taken is not None and taken.input is None  # the first row kept, not replaced
        counts = store.request_counts("t")
        assert (counts.requests, counts.student_answers, counts.cache_hits) == (4, 2, 1)
        results = store.record_requests([{"request": _row(f"n{i}")} for i in range(3)])
        assert all(not isinstance(r, Exception) and not r.example_added for r in results)
        assert store.request_counts("t").requests == 7
