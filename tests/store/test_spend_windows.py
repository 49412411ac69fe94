"""Window spend read from the UTC-day rollup plus edge buckets equals the plain sum of the
quarter-hour buckets, on both backends: for random spend lines at random times and random
windows (calendar windows in zones whose midnights are not UTC midnights, sub-day and
unaligned ones), and for a store written before the rollup existed, once it upgrades."""

from __future__ import annotations

import math
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from apprentice.engine.budget_limits import BudgetLimits, window_bounds
from apprentice.store import open_store, schema
from apprentice.store.budget import GLOBAL, KEY_PREFIX, _bucket
from apprentice.store.records import SpendRecord
from apprentice.store.spend_windows import plan
from apprentice.store.sql import SqlStore

T0 = datetime(2025, 1, 20, tzinfo=UTC)
SPAN_S = 70 * 86_400  # two month ends, a DST change in Europe
ZONES = ["UTC", "Asia/Kathmandu", "America/St_Johns", "Europe/Berlin", "Pacific/Chatham"]


def _bucket_sums(
    store: SqlStore, scopes: Sequence[str], windows: Sequence[tuple[float, float]]
) -> dict[str, tuple[float, ...]]:
    """The sum every ask read before the rollup: each window's quarter hours, one by one."""
    out: dict[str, tuple[float, ...]] = {}
    with store._read() as tx:
        for scope in scopes:
            sums = []
            for a, b in windows:
                rows = tx.all(
                    "SELECT amount FROM spend_buckets WHERE scope = ? AND bucket >= ?"
                    " AND bucket < ?",
                    (scope, _bucket(a), _bucket(b)),
                )
                sums.append(math.fsum(float(r[0]) for r in rows))
            out[scope] = tuple(sums)
    return out


def _assert_same(
    store: SqlStore, scopes: Sequence[str], windows: Sequence[tuple[float, float]]
) -> None:
    want = _bucket_sums(store, scopes, windows)
    got = store.budget_totals(scopes, windows).spent
    for scope in scopes:
        seen = got.get(scope, (0.0,) * len(windows))
        assert seen == pytest.approx(want[scope], abs=1e-9, rel=0), (scope, windows)


_lines = st.lists(
    st.tuples(
        st.integers(0, SPAN_S * 1_000_000 - 1),
        st.sampled_from([0.001, 0.1, 0.25, 1.0 / 3.0, 7.5, 1e-6]),
        st.booleans(),
    ),
    min_size=1,
    max_size=25,
)
_free_windows = st.lists(
    st.tuples(st.floats(0, SPAN_S), st.floats(0, 40 * 86_400)), min_size=1, max_size=4
)


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    lines=_lines,
    zone=st.sampled_from(ZONES),
    now_s=st.floats(0, SPAN_S),
    free=_free_windows,
)
def test_rollup_totals_equal_the_bucket_sums(
    store_url: str,
    lines: list[tuple[int, float, bool]],
    zone: str,
    now_s: float,
    free: list[tuple[float, float]],
) -> None:
    task, key = f"t-{uuid.uuid4().hex[:8]}", uuid.uuid4().hex[:12]
    base = T0.timestamp()
    with open_store(store_url) as store:
        assert isinstance(store, SqlStore)
        store.record_spend(
            [
                SpendRecord(
                    task=task,
                    at=T0 + timedelta(microseconds=at),
                    amount=amount,
                    caller=key if keyed else None,
                )
                for at, amount, keyed in lines
            ]
        )
        bounds = window_bounds(BudgetLimits(timezone=zone), base + now_s)
        calendar = list(bounds.values())
        unaligned = [(base + a, base + a + length) for a, length in free]
        scopes = [task, GLOBAL, KEY_PREFIX + key]
        _assert_same(store, scopes, calendar)
        _assert_same(store, scopes, unaligned)
        whole = [(base, base + SPAN_S)]  # every line: the ledger's own sum
        total = store.budget_totals([task], whole).spent[task][0]
        assert total == pytest.approx(math.fsum(a for _, a, _ in lines), abs=1e-9, rel=0)


@given(a=st.integers(0, 10**7), length=st.integers(0, 5_000))
def test_a_window_splits_into_days_hours_and_quarters_that_cover_it_once(
    a: int, length: int
) -> None:
    q1, q2, h1, h2, days = plan(a, a + length)
    hour, day = schema.HOUR_BUCKETS, schema.DAY_BUCKETS
    covered = [*range(*q1), *range(*q2)]
    covered += [b for h in (*range(*h1), *range(*h2)) for b in range(h * hour, (h + 1) * hour)]
    covered += [b for d in range(*days) for b in range(d * day, (d + 1) * day)]
    assert sorted(covered) == list(range(a, a + length))
    assert q1[1] - q1[0] + q2[1] - q2[0] < 2 * hour + (length < day) * day


def test_a_store_with_buckets_but_no_rollup_upgrades_to_the_same_totals(
    store_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    before = [m for m in schema.MIGRATIONS if m[0] < 11]
    monkeypatch.setattr(schema, "MIGRATIONS", before)
    monkeypatch.setattr(schema, "LATEST_VERSION", before[-1][0])
    buckets = [(b * 37) % 6_700 + 1_941_000 for b in range(400)]  # ~70 days of 2025
    with open_store(store_url) as old:  # what an older Apprentice wrote (version 10)
        assert isinstance(old, SqlStore) and old.schema_version() == 10
        with old._write() as tx:
            for i, bucket in enumerate(buckets):
                for scope in ("t", GLOBAL):
                    tx.execute(
                        "INSERT INTO spend_buckets (scope, bucket, amount) VALUES (?, ?, ?)"
                        " ON CONFLICT (scope, bucket) DO UPDATE SET"
                        " amount = spend_buckets.amount + excluded.amount",
                        (scope, bucket, 0.01 * (i % 7) + 1.0 / 3.0),
                    )
    monkeypatch.undo()
    start = 1_941_000 * 900.0
    windows = [(start + k * 40_000.0, start + k * 40_000.0 + 31 * 86_400.0) for k in range(4)]
    windows += [(start + 86_400.0 * 9, start + 86_400.0 * 10), (start, start + 70 * 86_400.0)]
    for _ in range(2):  # a second open changes nothing (the migration ran once)
        with open_store(store_url) as store:
            assert isinstance(store, SqlStore)
            assert store.schema_version() == schema.LATEST_VERSION == 11
            _assert_same(store, ["t", GLOBAL], windows)
            with store._read() as tx:
                days = tx.one("SELECT COUNT(*) FROM spend_days WHERE scope = 't'")
                hours = tx.one("SELECT COUNT(*) FROM spend_hours WHERE scope = 't'")
            want = (len({b // schema.DAY_BUCKETS for b in buckets}),)
            assert days == want and hours == (len({b // schema.HOUR_BUCKETS for b in buckets}),)
    with open_store(store_url) as store:  # new spend lands in both grains
        assert isinstance(store, SqlStore)
        store.record_spend([SpendRecord(task="t", at=datetime.fromtimestamp(start, UTC), amount=2)])
        _assert_same(store, ["t", GLOBAL], windows)
