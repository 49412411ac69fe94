"""One suite, both backends: every test runs on SQLite and on a real PostgreSQL."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from apprentice.store import (
    ComparisonRecord,
    DuplicateRequestError,
    EventRecord,
    ExampleRecord,
    InvalidTransitionError,
    MigrationError,
    ModelVersionRecord,
    RequestRecord,
    SpendRecord,
    Store,
    StoreError,
    UnknownVersionError,
    UnsupportedStoreUrl,
    VersionExistsError,
    assign_split,
    input_hash,
    open_store,
    schema,
)
from apprentice.store.sql import SqlStore

T0 = datetime(2025, 3, 10, 12, 0, tzinfo=UTC)


@pytest.fixture
def store(store_url: str) -> Iterator[Store]:
    with open_store(store_url) as opened:
        yield opened


def request(rid: str, *, task: str = "classify", at: datetime = T0, **kw: Any) -> RequestRecord:
    fields: dict[str, Any] = {"route": "both", "served_by": "teacher", "cost": 0.01}
    fields.update(kw)
    return RequestRecord(id=rid, task=task, received_at=at, **fields)


def example(text: str, *, task: str = "classify", rid: str | None = None) -> ExampleRecord:
    task_input = {"text": text}
    digest = input_hash(task_input)
    return ExampleRecord(
        task=task,
        input=task_input,
        output={"label": text.upper()},
        input_hash=digest,
        split=assign_split(digest, 0.2),
        teacher_provider="anthropic",
        teacher_model="claude",
        created_at=T0,
        cost=0.01,
        request_id=rid,
    )


def spend(amount: float, *, task: str | None = "classify", at: datetime = T0) -> SpendRecord:
    return SpendRecord(task=task, at=at, amount=amount, provider="anthropic", model="claude")


def comparison(rid: str, score: float, *, at: datetime = T0, **details: Any) -> ComparisonRecord:
    return ComparisonRecord(task="classify", request_id=rid, at=at, score=score, details=details)


def full_request(store: Store, rid: str, text: str, **kw: Any) -> Any:
    return store.record_request(
        request(rid, **kw),
        example=example(text, rid=rid),
        comparison=comparison(rid, 0.9),
        spend=[spend(0.01)],
        task_state={"phase": "reinforcement", "last": rid},
    )


# -- opening and migrations -------------------------------------------------------------------


def test_migrations_are_idempotent_and_recorded_once(store_url: str) -> None:
    for _ in range(3):
        with open_store(store_url) as opened:
            assert isinstance(opened, SqlStore)
            assert opened.schema_version() == schema.LATEST_VERSION
            with opened._read() as tx:
                rows = tx.all("SELECT version FROM schema_version ORDER BY version")
            assert [r[0] for r in rows] == [v for v, _ in schema.MIGRATIONS]


def test_concurrent_opens_migrate_once(store_url: str) -> None:
    failures: list[BaseException] = []
    barrier = threading.Barrier(6)

    def opener() -> None:
        barrier.wait()
        try:
            open_store(store_url).close()
        except BaseException as error:  # collected and asserted below
            failures.append(error)

    threads = [threading.Thread(target=opener) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert failures == []
    with open_store(store_url) as opened, opened._read() as tx:  # type: ignore[attr-defined]
        assert tx.one("SELECT COUNT(*) FROM schema_version") == (len(schema.MIGRATIONS),)


def test_a_newer_schema_is_refused(store_url: str) -> None:
    with open_store(store_url) as opened, opened._write() as tx:  # type: ignore[attr-defined]
        tx.execute("INSERT INTO schema_version (version, applied_at) VALUES (?, 0)", (999,))
    with pytest.raises(MigrationError, match="upgrade Apprentice"):
        open_store(store_url)


def test_unknown_scheme_and_closed_store_are_typed_errors(store: Store) -> None:
    with pytest.raises(UnsupportedStoreUrl, match="sqlite:///"):
        open_store("mysql://localhost/db")
    store.close()
    with pytest.raises(StoreError, match="closed"):
        store.request_counts("classify")


# -- the request transaction ------------------------------------------------------------------


def test_a_request_stores_everything_in_one_go(store: Store) -> None:
    result = full_request(store, "r1", "refund")
    assert result.example_added and result.example_id is not None
    assert result.comparison_id is not None
    [kept] = store.examples("classify")
    assert kept.id == result.example_id
    assert kept.input == {"text": "refund"} and kept.output == {"label": "REFUND"}
    assert (kept.request_id, kept.teacher_model, kept.created_at) == ("r1", "claude", T0)
    assert store.requests("classify") == [request("r1")]
    [compared] = store.comparisons("classify")
    assert (compared.request_id, compared.score, compared.at) == ("r1", 0.9, T0)
    assert [s.amount for s in store.spend_entries("classify")] == [0.01]
    assert store.load_task_state("classify") == {"phase": "reinforcement", "last": "r1"}
    counts = store.request_counts("classify")
    assert (counts.requests, counts.teacher_calls, counts.student_answers) == (1, 1, 0)
    assert counts.comparisons == 1 and counts.errors == 0
    assert store.tasks() == ["classify"]


def test_a_failure_inside_the_transaction_keeps_nothing(store: Store) -> None:
    full_request(store, "r0", "before")
    # The comparison's details cannot be serialised: it fails after the request,
    # the example and the counters were written, so all of them must roll back.
    bad = comparison("r1", 0.5, unserialisable={1, 2})
    with pytest.raises(TypeError):
        store.record_request(
            request("r1"),
            example=example("lost"),
            comparison=bad,
            spend=[spend(5.0)],
            task_state={"phase": "lost"},
        )
    # A naive time in the last spend line fails at the very end.
    with pytest.raises(ValueError, match="timezone-aware"):
        store.record_request(
            request("r2"),
            example=example("lost too"),
            spend=[spend(1.0), SpendRecord(task="classify", at=datetime(2025, 1, 1), amount=1)],
        )
    assert [r.id for r in store.requests("classify")] == ["r0"]
    assert [e.input["text"] for e in store.examples("classify")] == ["before"]
    assert store.spend_total(T0 - timedelta(days=1), T0 + timedelta(days=1)) == pytest.approx(0.01)
    assert store.request_counts("classify").requests == 1
    assert store.load_task_state("classify") == {"phase": "reinforcement", "last": "r0"}
    # The store is still usable after the rollbacks.
    full_request(store, "r3", "after")
    assert store.request_counts("classify").requests == 2


def test_a_request_id_twice_is_refused_and_keeps_nothing_of_the_second(store: Store) -> None:
    full_request(store, "r1", "one")
    with pytest.raises(DuplicateRequestError, match="r1"):
        store.record_request(request("r1"), example=example("two"), spend=[spend(3.0)])
    assert len(store.examples("classify")) == 1
    assert len(store.spend_entries()) == 1


def test_duplicate_examples_collapse_without_double_counting(store: Store) -> None:
    first = full_request(store, "r1", "same")
    second = full_request(store, "r2", "same")
    assert first.example_added and not second.example_added
    assert second.example_id == first.example_id
    [kept] = store.examples("classify")
    assert kept.request_id == "r1"  # provenance of the first teacher answer stays
    counts = store.example_counts("classify")
    assert counts["train"] + counts["heldout"] == 1
    # The request and its spend are still recorded: the teacher was paid twice.
    assert store.request_counts("classify").requests == 2
    assert len(store.spend_entries("classify")) == 2
    # Same input in another task is another example.
    store.record_request(request("r3", task="other"), example=example("same", task="other"))
    assert len(store.examples("other")) == 1


def test_examples_by_split_with_paging_and_training_marks(store: Store) -> None:
    for i in range(40):
        store.record_request(request(f"r{i}"), example=example(f"text {i}"))
    counts = store.example_counts("classify")
    train, heldout = store.examples("classify", "train"), store.examples("classify", "heldout")
    assert (len(train), len(heldout)) == (counts["train"], counts["heldout"])
    assert counts["train"] + counts["heldout"] == 40 and counts["heldout"] > 0
    assert all(e.split == assign_split(e.input_hash, 0.2) for e in train + heldout)
    paged = list(store.iter_examples("classify", "train", page=7))
    assert [e.id for e in paged] == [e.id for e in train]
    assert store.examples("classify", limit=5, after_id=train[0].id)[0].id > (train[0].id or 0)
    ids = [e.id for e in train[:10] if e.id is not None]
    assert store.mark_trained("classify", ids, "v1") == 10
    assert store.mark_trained("classify", ids, "v2") == 0  # the first version keeps the mark
    marked = [e for e in store.examples("classify") if e.trained_in_version]
    assert {e.trained_in_version for e in marked} == {"v1"} and len(marked) == 10
    assert store.example_counts("nothing") == {"train": 0, "heldout": 0}


def test_counters_follow_routes_errors_and_students(store: Store) -> None:
    store.record_request(request("a", route="local_only", served_by="student", cost=0.0))
    store.record_request(request("b", route="remote_only", served_by="teacher"))
    store.record_request(request("c", route="remote_only", served_by=None, error="RateLimited"))
    store.record_request(
        request("d", route="both", served_by="student"), comparison=comparison("d", 1)
    )
    counts = store.request_counts("classify")
    assert counts.requests == 4 and counts.teacher_calls == 3
    assert counts.student_answers == 2 and counts.errors == 1 and counts.comparisons == 1
    assert store.request_counts("never").requests == 0


# -- spend ------------------------------------------------------------------------------------


def test_spend_sums_per_calendar_window(store: Store) -> None:
    day = datetime(2025, 3, 10, tzinfo=UTC)
    last_micro = day + timedelta(days=1) - timedelta(microseconds=1)
    store.record_spend(
        [
            spend(1.0, at=day),
            spend(2.0, at=last_micro),
            spend(4.0, at=day + timedelta(days=1)),  # the next day, exactly at midnight
            spend(8.0, task="other", at=day + timedelta(hours=3)),
            spend(16.0, task=None, at=day + timedelta(hours=4)),
            SpendRecord(task="classify", at=day, amount=32.0, kind="judge"),
        ]
    )
    tomorrow = day + timedelta(days=1)
    assert store.spend_total(day, tomorrow, task="classify") == pytest.approx(35.0)
    assert store.spend_total(day, tomorrow, task="classify", kind="teacher") == pytest.approx(3.0)
    assert store.spend_total(day, tomorrow) == pytest.approx(59.0)  # global
    assert store.spend_total(tomorrow, tomorrow + timedelta(days=1)) == pytest.approx(4.0)
    assert store.spend_by_task(day, tomorrow) == pytest.approx({"classify": 35.0, "other": 8.0})
    # A window in another time zone: New York's 10 March is 04:00Z 10th .. 04:00Z 11th.
    ny = ZoneInfo("America/New_York")
    ny_day = datetime(2025, 3, 10, tzinfo=ny)
    total = store.spend_total(ny_day, ny_day + timedelta(days=1), task="classify")
    assert total == pytest.approx(2.0 + 4.0)
    assert [s.amount for s in store.spend_entries(since=tomorrow)] == [4.0]


# -- model versions ---------------------------------------------------------------------------


def version(name: str, state: Any = "candidate", at: datetime = T0) -> ModelVersionRecord:
    return ModelVersionRecord(
        task="classify",
        version=name,
        state=state,
        path=f"/models/classify/{name}",
        base_model="apprentice/tiny",
        created_at=at,
        updated_at=at,
        metrics={"loss": [1.0, 0.5]},
    )


def test_version_lifecycle_promotion_retires_and_rollback_restores(store: Store) -> None:
    assert store.next_version_name("classify") == "v1"
    assert store.active_version("classify") is None
    assert store.rollback("classify") is None
    for i in (1, 2, 3):
        name = store.next_version_name("classify")
        assert name == f"v{i}"
        store.add_version(version(name, at=T0 + timedelta(hours=i)))
        store.update_version("classify", name, state="validating")
        store.update_version(
            "classify",
            name,
            state="promoted",
            heldout_score=0.9 + i / 100,
            at=T0 + timedelta(hours=i, minutes=30),
        )
    states = {v.version: v.state for v in store.versions("classify")}
    assert states == {"v1": "retired", "v2": "retired", "v3": "promoted"}
    active = store.active_version("classify")
    assert active is not None and active.version == "v3" and active.heldout_score == 0.93
    assert active.metrics == {"loss": [1.0, 0.5]}

    restored = store.rollback("classify", reason="worse in production")
    assert restored is not None and restored.version == "v2"
    v3 = store.version("classify", "v3")
    assert (v3.state, v3.reason) == ("rejected", "worse in production")
    restored = store.rollback("classify")
    assert restored is not None and restored.version == "v1"
    assert store.rollback("classify") is None  # nothing older: nothing changes
    assert store.active_version("classify") == store.version("classify", "v1")


def test_versions_refuse_bad_transitions_duplicates_and_unknowns(store: Store) -> None:
    store.add_version(version("v1"))
    with pytest.raises(VersionExistsError, match="next_version_name"):
        store.add_version(version("v1"))
    store.update_version("classify", "v1", state="rejected", reason="score 0.5 < 0.8")
    with pytest.raises(InvalidTransitionError, match="rejected"):
        store.update_version("classify", "v1", state="promoted")
    with pytest.raises(UnknownVersionError, match="v9"):
        store.update_version("classify", "v9", state="promoted")
    with pytest.raises(UnknownVersionError):
        store.version("classify", "v9")
    updated = store.update_version("classify", "v1", metrics={"heldout": 0.5})
    assert updated.metrics == {"heldout": 0.5} and updated.reason == "score 0.5 < 0.8"
    assert store.next_version_name("classify") == "v2"


# -- events, task state, reports --------------------------------------------------------------


def test_task_state_round_trips_and_is_replaced(store: Store) -> None:
    assert store.load_task_state("classify") is None
    state = {"phase": "steady_state", "window": [1.0, 0.5, 0.75], "spend": {"day": 1.25}, "n": 3}
    store.save_task_state("classify", state)
    assert store.load_task_state("classify") == state
    store.save_task_state("classify", {"phase": "cold_start"})
    assert store.load_task_state("classify") == {"phase": "cold_start"}


def test_events_filter_by_task_time_and_kind(store: Store) -> None:
    for i, kind in enumerate(["phase", "drift", "phase", "promotion"]):
        store.add_event(
            EventRecord(
                task="classify",
                at=T0 + timedelta(minutes=i),
                kind=kind,
                message=f"{kind} {i}",
                data={"i": i},
            )
        )
    store.add_event(EventRecord(task=None, at=T0, kind="budget", message="global cap 80%"))
    assert [e.message for e in store.events("classify", kinds=["phase"])] == ["phase 0", "phase 2"]
    since = store.events("classify", since=T0 + timedelta(minutes=2))
    assert [e.data["i"] for e in since] == [2, 3]
    assert [e.kind for e in store.events("classify", limit=2)] == ["phase", "promotion"]
    assert len(store.events()) == 5 and store.events(kinds=[]) == []


def test_hourly_buckets_and_comparison_stream(store: Store) -> None:
    hour = T0.replace(minute=0)
    for i in range(6):
        at = hour + timedelta(minutes=25 * i)  # 0, 25, 50 | 75, 100 | 125
        route = "local_only" if i % 2 else "both"
        served = "student" if i % 2 else "teacher"
        store.record_request(
            request(f"r{i}", at=at, route=route, served_by=served),
            comparison=None if i % 2 else comparison(f"r{i}", i / 10, at=at),
            spend=[] if i % 2 else [spend(0.5, at=at)],
        )
    buckets = store.hourly("classify")
    assert [b.start for b in buckets] == [hour + timedelta(hours=h) for h in range(3)]
    assert [b.requests for b in buckets] == [3, 2, 1]
    assert [b.teacher_calls for b in buckets] == [2, 1, 0]
    assert [b.student_answers for b in buckets] == [1, 1, 1]
    assert [b.spend for b in buckets] == pytest.approx([1.0, 0.5, 0.0])
    assert buckets[0].mean_score == pytest.approx(0.1) and buckets[2].mean_score is None
    windowed = store.hourly(since=hour + timedelta(hours=1), until=hour + timedelta(hours=2))
    assert [b.requests for b in windowed] == [2]
    stream = store.comparisons("classify")
    assert [(c.score, c.at) for c in stream] == [
        (i / 10, hour + timedelta(minutes=25 * i)) for i in (0, 2, 4)
    ]
    assert [c.request_id for c in store.comparisons("classify", limit=2)] == ["r2", "r4"]
    assert [r.id for r in store.requests("classify", since=hour + timedelta(minutes=100))] == [
        "r4",
        "r5",
    ]


# -- concurrency and durability ---------------------------------------------------------------


def test_threads_writing_at_once_lose_nothing(store: Store) -> None:
    threads, per_thread = 8, 40
    failures: list[BaseException] = []
    barrier = threading.Barrier(threads)

    def writer(n: int) -> None:
        barrier.wait()
        try:
            for i in range(per_thread):
                rid = f"t{n}-{i}"
                # Every thread also writes one shared input: it must collapse to one example.
                text = "shared" if i == 0 else rid
                full_request(store, rid, text)
                store.add_event(EventRecord(task="classify", at=T0, kind="k", message=rid))
        except BaseException as error:  # collected and asserted below
            failures.append(error)

    pool = [threading.Thread(target=writer, args=(n,)) for n in range(threads)]
    for t in pool:
        t.start()
    for t in pool:
        t.join()
    assert failures == []
    total = threads * per_thread
    assert store.request_counts("classify").requests == total
    assert len(store.requests("classify")) == total
    assert len(store.examples("classify")) == total - threads + 1
    assert len(store.spend_entries()) == total
    assert store.spend_total(T0, T0 + timedelta(seconds=1)) == pytest.approx(0.01 * total)
    assert len(store.events("classify")) == total


def test_everything_survives_a_reopen(store_url: str) -> None:
    with open_store(store_url) as first:
        full_request(first, "r1", "kept")
        first.add_version(version("v1", state="promoted"))
        first.save_task_state("classify", {"phase": "steady_state"})
    with open_store(store_url) as second:
        assert [e.input for e in second.examples("classify")] == [{"text": "kept"}]
        active = second.active_version("classify")
        assert active is not None and active.version == "v1"
        assert second.load_task_state("classify") == {"phase": "steady_state"}
        assert second.request_counts("classify").requests == 1
        assert second.spend_total(T0, T0 + timedelta(hours=1)) == pytest.approx(0.01)


def test_readers_do_not_wait_for_an_open_write_transaction(store: Store) -> None:
    assert isinstance(store, SqlStore)
    full_request(store, "r0", "committed")
    inside, release = threading.Event(), threading.Event()

    def slow_writer() -> None:
        with store._write() as tx:
            tx.execute(
                "INSERT INTO task_state (task, state, updated_at) VALUES (?, ?, 0)",
                ("uncommitted", "{}"),
            )
            inside.set()
            release.wait()

    writer = threading.Thread(target=slow_writer)
    writer.start()
    assert inside.wait(timeout=30)
    seen: list[Any] = []
    reader = threading.Thread(
        target=lambda: seen.append((store.request_counts("classify").requests, store.tasks()))
    )
    reader.start()
    reader.join(timeout=30)  # a guard against a hang, not a synchronisation
    finished_while_writing = not reader.is_alive()
    release.set()
    writer.join()
    reader.join()
    assert finished_while_writing
    assert seen == [(1, ["classify"])]  # the uncommitted row is invisible
    assert store.tasks() == ["classify", "uncommitted"]


def test_group_commit_keeps_each_write_atomic(store: Store) -> None:
    full_request(store, "r0", "earlier")
    writes: list[dict[str, Any]] = [
        {"request": request("g1"), "example": example("a"), "spend": [spend(1.0)]},
        # Duplicate request id: refused alone.
        {"request": request("r0"), "example": example("lost"), "spend": [spend(100.0)]},
        # Fails after its request row and example were written: rolled back alone.
        {
            "request": request("g2"),
            "example": example("lost too"),
            "comparison": comparison("g2", 0.5, bad={1}),
        },
        # Same input as g1 inside the same commit: collapses.
        {"request": request("g3"), "example": example("a"), "task_state": {"last": "g3"}},
    ]
    results = store.record_requests(writes)
    assert isinstance(results[1], DuplicateRequestError)
    assert isinstance(results[2], TypeError)
    first, last = results[0], results[3]
    assert not isinstance(first, Exception) and not isinstance(last, Exception)
    assert first.example_added and not last.example_added
    assert last.example_id == first.example_id
    assert sorted(r.id for r in store.requests("classify")) == ["g1", "g3", "r0"]
    assert sorted(e.input["text"] for e in store.examples("classify")) == ["a", "earlier"]
    assert store.spend_total(T0, T0 + timedelta(seconds=1)) == pytest.approx(1.01)
    assert store.request_counts("classify").requests == 3
    assert store.load_task_state("classify") == {"last": "g3"}
    assert store.record_requests([]) == []
