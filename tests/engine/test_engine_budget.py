"""Budget: caps hold under any interleaving; windows roll over; replay rebuilds."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from apprentice.engine import budget
from apprentice.engine.budget import Caps, Window

T0 = datetime(2025, 3, 7, 22, 0, tzinfo=UTC).timestamp()  # a Friday, 22:00 UTC
LIMITS = budget.BudgetLimits(
    global_caps=Caps(daily=10.0, weekly=30.0, monthly=60.0),
    task_caps={"a": Caps(daily=4.0), "b": Caps(weekly=12.0)},
)
TASKS = ("a", "b", "c")

ops = st.lists(
    st.one_of(
        st.tuples(st.just("reserve"), st.sampled_from(TASKS), st.floats(0.0, 3.0)),
        st.tuples(st.just("settle"), st.integers(0, 20), st.floats(0.0, 1.0)),
        st.tuples(st.just("release"), st.integers(0, 20), st.just(0.0)),
        st.tuples(st.just("tick"), st.just(""), st.floats(0.0, 3 * 86400.0)),
    ),
    max_size=80,
)


def _assert_within_caps(ledger: budget.Ledger, now: float) -> None:
    keys = budget.window_keys(ledger.limits, now)
    for scope in (*TASKS, budget.GLOBAL):
        caps = ledger.limits.caps(scope)
        pending = ledger.pending.get(scope, 0.0)
        for w in budget.WINDOWS:
            cap = caps.get(w)
            if cap is None:
                continue
            entry = ledger.spent.get((scope, w))
            spent = entry[1] if entry and entry[0] == keys[w] else 0.0
            assert spent + pending <= cap + 1e-9, (scope, w, spent, pending, cap)


@settings(max_examples=300, deadline=None)
@given(ops)
def test_spend_never_exceeds_any_cap_under_any_interleaving(operations):
    ledger = budget.empty(LIMITS)
    now = T0
    open_ids: list[int] = []
    for op, arg, value in operations:
        if op == "tick":
            now += value
        elif op == "reserve":
            try:
                ledger, res = budget.reserve(ledger, arg, value, now)
                open_ids.append(res.id)
            except budget.BudgetExhausted:
                assert budget.exhausted_caps(ledger, now, arg, value)
        elif open_ids:
            rid = open_ids.pop(arg % len(open_ids))
            if op == "settle":
                amount = ledger.open[rid].amount * value  # actual <= reserved
                ledger = budget.settle(ledger, rid, amount, now)
            else:
                ledger = budget.release(ledger, rid)
        _assert_within_caps(ledger, now)
    # Every settled cent is in the all-time totals, per task and globally.
    assert ledger.totals.get(budget.GLOBAL, 0.0) == pytest.approx(
        sum(v for k, v in ledger.totals.items() if k != budget.GLOBAL)
    )


def test_a_reservation_that_would_cross_a_cap_is_refused():
    ledger, res = budget.reserve(budget.empty(LIMITS), "a", 3.0, T0)
    with pytest.raises(budget.BudgetExhausted, match="task 'a' day cap") as info:
        budget.reserve(ledger, "a", 1.5, T0)
    assert info.value.window is Window.day
    ledger = budget.settle(ledger, res.id, 2.0, T0)
    ledger, _ = budget.reserve(ledger, "a", 1.5, T0)  # 2.0 spent + 1.5 fits under 4.0


def test_the_day_rolls_over_in_the_configured_zone():
    tokyo = budget.BudgetLimits(global_caps=Caps(daily=1.0), timezone="Asia/Tokyo")
    ledger = budget.record(budget.empty(tokyo), "a", 1.0, T0)  # 07:00 Saturday in Tokyo
    assert budget.exhausted_caps(ledger, T0, "a")
    # 14:59 UTC is 23:59 in Tokyo: same day; 15:00 UTC is the next day there.
    assert budget.exhausted_caps(ledger, T0 + 16 * 3600 + 59 * 60, "a")
    assert not budget.exhausted_caps(ledger, T0 + 17 * 3600, "a")
    utc = budget.BudgetLimits(global_caps=Caps(daily=1.0))
    assert not budget.exhausted_caps(
        budget.record(budget.empty(utc), "a", 1.0, T0), T0 + 2 * 3600, "a"
    )


def test_week_keys_are_iso_weeks():
    keys = budget.window_keys(LIMITS, datetime(2024, 12, 30, 12, tzinfo=UTC).timestamp())
    assert keys == {Window.day: "2024-12-30", Window.week: "2025-W01", Window.month: "2024-12"}


def test_replay_of_the_spend_ledger_rebuilds_the_current_windows():
    entries = [(T0 - 40 * 86400, "a", 5.0), (T0, "b", 2.0), (T0 - 3600, "a", 1.0)]
    ledger = budget.from_entries(LIMITS, reversed(entries))
    assert budget.spend(ledger, T0) == {Window.day: 3.0, Window.week: 3.0, Window.month: 3.0}
    assert budget.spend(ledger, T0, "a")[Window.day] == 1.0


def test_view_reports_fractions_for_alerts():
    ledger = budget.record(budget.empty(LIMITS), "a", 3.2, T0)
    view = budget.view(ledger, T0, "a")
    assert view.fraction_used == pytest.approx(0.8)
    assert not view.exhausted
    view = budget.view(budget.record(ledger, "a", 0.8, T0), T0, "a")
    assert view.exhausted and view.today == pytest.approx(4.0)
    assert view.to_dict()["caps"] == {"daily": 4.0, "weekly": None, "monthly": None}


def test_settling_twice_is_an_error():
    ledger, res = budget.reserve(budget.empty(LIMITS), "a", 1.0, T0)
    ledger = budget.settle(ledger, res.id, 0.5, T0)
    with pytest.raises(budget.UnknownReservation):
        budget.settle(ledger, res.id, 0.5, T0)
    with pytest.raises(ValueError, match="non-negative"):
        budget.reserve(ledger, "a", -1.0, T0)


def test_savings_estimate():
    assert budget.savings(900, 100, 5.0, local_cost=10.0) == pytest.approx(35.0)
    assert budget.savings(10, 0, 0.0, local_cost=1.0) == -1.0


def test_window_bounds_follow_the_zone_across_a_dst_change() -> None:
    limits = budget.BudgetLimits(timezone="Europe/Berlin")
    # 2025-03-30: clocks go forward at 02:00 local, so that day is 23 hours long.
    noon = datetime(2025, 3, 30, 10, 0, tzinfo=UTC).timestamp()
    bounds = budget.window_bounds(limits, noon)
    start, end = bounds[Window.day]
    assert end - start == 23 * 3600
    assert datetime.fromtimestamp(start, UTC) == datetime(2025, 3, 29, 23, 0, tzinfo=UTC)
    week_start, week_end = bounds[Window.week]
    assert datetime.fromtimestamp(week_start, UTC) == datetime(2025, 3, 23, 23, 0, tzinfo=UTC)
    assert week_end == end  # the ISO week ends with that Sunday
    month_start, month_end = bounds[Window.month]
    assert datetime.fromtimestamp(month_end, UTC) == datetime(2025, 3, 31, 22, 0, tzinfo=UTC)
    assert month_start < week_start


def test_exhausted_caps_name_the_scope_the_window_and_when_it_resets() -> None:
    spent = {"a": {Window.day: 3.5}, budget.GLOBAL: {Window.day: 3.5, Window.week: 29.5}}
    ledger = budget.from_totals(LIMITS, T0, spent, {"a": 0.5, budget.GLOBAL: 0.5})
    found = budget.exhausted_caps(ledger, T0, "a")
    bounds = budget.window_bounds(LIMITS, T0)
    assert found == [
        ("a", Window.day, bounds[Window.day][1]),  # 3.5 spent + 0.5 held = the 4.0 cap
        (budget.GLOBAL, Window.week, bounds[Window.week][1]),  # 30.0 with the hold
    ]
    assert budget.exhausted_caps(ledger, T0, "b", typical_cost=0.1) == [
        (budget.GLOBAL, Window.week, bounds[Window.week][1])
    ]
    assert budget.exhausted_caps(budget.empty(LIMITS), T0, "a") == []
