"""Request retention in the store, on SQLite and PostgreSQL: ``prune_requests`` deletes only
request rows older than the cut-off, one task and one batch per transaction, oldest first;
examples (the teacher's and people's corrections), comparisons, spend, feedback and the
task counters stay. The gateway's pruner, with a clock passed in, prunes every task the
store knows, batch after batch, and nothing when retention is off (0 or null)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from apprentice.gateway.retention import RequestPruner
from apprentice.store import (
    ComparisonRecord,
    ExampleRecord,
    RequestRecord,
    SpendRecord,
    Store,
    input_hash,
    open_store,
)
from apprentice.store.feedback import FeedbackRecord

NOW = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)
DAY = timedelta(days=1)
# (task, request id, age in days); the window is 30 days
ROWS = [
    ("t", "t-45", 45),
    ("t", "t-40", 40),
    ("t", "t-31", 31),
    ("t", "t-29", 29),
    ("t", "t-0", 0),
    ("u", "u-60", 60),
    ("u", "u-1", 1),
]
OLD = {rid for _, rid, age in ROWS if age > 30}


def _fill(store: Store) -> None:
    for task, rid, age in ROWS:
        at = NOW - age * DAY
        inp = {"text": rid}
        store.record_request(
            RequestRecord(
                id=rid,
                task=task,
                received_at=at,
                route="both",
                served_by="teacher",
                input=inp,
                output={"label": "x"},
            ),
            example=ExampleRecord(
                task=task,
                input=inp,
                output={"label": "x"},
                input_hash=input_hash(inp),
                split="train",
                teacher_provider="replay",
                teacher_model="replay",
                created_at=at,
                request_id=rid,
            ),
            comparison=ComparisonRecord(task=task, request_id=rid, at=at, score=1.0),
            spend=[SpendRecord(task=task, at=at, amount=0.01, request_id=rid)],
        )
    # A person's correction of an old answer: its example and feedback row stay.
    store.add_feedback(
        FeedbackRecord(task="t", request_id="t-45", at=NOW - 44 * DAY, output={"label": "y"})
    )


def _kept(store: Store) -> dict[str, object]:
    """Everything but the request rows, as the report and training read it."""
    return {
        task: (
            sorted((e.request_id, e.output["label"]) for e in store.examples(task)),
            len(store.comparisons(task)),
            len(store.spend_entries(task)),
            [f.request_id for f in store.feedback(task)],
            store.request_counts(task),
        )
        for task in ("t", "u")
    }


def _ids(store: Store) -> set[str]:
    return {r.id for task in ("t", "u") for r in store.requests(task)}


def test_only_request_rows_older_than_the_cutoff_go_a_batch_at_a_time(store_url: str) -> None:
    with open_store(store_url) as store:
        _fill(store)
        before = _kept(store)
        cutoff = NOW - 30 * DAY
        # Oldest first, at most `limit` per call: t-45 and t-40, then t-31, then none.
        assert store.prune_requests("t", cutoff, 2) == 2
        assert store.request_record("t-45") is None and store.request_record("t-40") is None
        assert store.request_record("t-31") is not None
        assert store.prune_requests("t", cutoff, 2) == 1
        assert store.prune_requests("t", cutoff, 2) == 0
        assert _ids(store) == {rid for _, rid, _ in ROWS} - {"t-45", "t-40", "t-31"}
        assert store.prune_requests("u", cutoff, 1000) == 1  # one task per call
        assert _ids(store) == {rid for _, rid, _ in ROWS} - OLD
        kept = store.request_record("t-29")
        assert kept is not None and kept.input == {"text": "t-29"}  # the window is untouched
        assert _kept(store) == before  # examples, comparisons, spend, feedback, counters
        with pytest.raises(ValueError, match="limit must be positive"):
            store.prune_requests("t", cutoff, 0)


async def test_the_pruner_clears_every_task_past_the_window_by_its_clock(
    store_url: str,
) -> None:
    with open_store(store_url) as store:
        _fill(store)
        before = _kept(store)
        pruned: list[tuple[str, int]] = []
        pruner = RequestPruner(
            store, 30, clock=lambda: NOW, batch=1, pause_s=0,
            on_pruned=lambda task, rows: pruned.append((task, rows)),
        )  # fmt: skip
        assert pruner.cutoff() == NOW - 30 * DAY
        assert await pruner.prune() == len(OLD)  # one row per batch: every batch ran
        assert sum(rows for _, rows in pruned) == len(OLD)  # what the metric counts
        assert {task for task, _ in pruned} == {"t", "u"}
        assert _ids(store) == {rid for _, rid, _ in ROWS} - OLD
        assert await pruner.prune() == 0
        # Two days later, by the clock it was given: t-29 is now 31 days old.
        pruner.clock = lambda: NOW + 2 * DAY
        assert await pruner.prune() == 1 and store.request_record("t-29") is None
        assert _kept(store) == before


@pytest.mark.parametrize("days", [0, None])
async def test_retention_off_keeps_every_request(sqlite_url: str, days: float | None) -> None:
    with open_store(sqlite_url) as store:
        _fill(store)
        pruner = RequestPruner(store, days, clock=lambda: NOW + 3650 * DAY)
        assert pruner.cutoff() is None
        assert await pruner.prune() == 0
        assert _ids(store) == {rid for _, rid, _ in ROWS}
