"""The store's budget check agrees with reserve() on the ledger the totals make.

``check`` is what a store reservation runs (on its writer thread) instead of building
the ledger and reserving on it; ``from_window_totals`` is the mirror's ledger of the
same totals. Both must be the exact same verdict and value, or a cap could differ
between the mirror, the engine and the store.
"""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from apprentice.engine import budget
from apprentice.engine.budget import BudgetExhausted, BudgetLimits, Caps, Window

NOW = 1_764_547_200.0 + 3_600 * 13.5  # 2025-12-01 13:30 UTC
SCOPES = ("t", "u", budget.GLOBAL, budget.key_scope("k"))

money = st.floats(min_value=0.0, max_value=50.0, allow_nan=False)
cap = st.one_of(st.none(), st.floats(min_value=0.0, max_value=60.0, allow_nan=False))
caps = st.builds(Caps, cap, cap, cap)
windows = st.tuples(money, money, money)


@st.composite
def cases(draw: st.DrawFn) -> tuple[object, ...]:
    limits = BudgetLimits(
        global_caps=draw(caps),
        task_caps={"t": draw(caps), "u": draw(caps)},
        timezone=draw(st.sampled_from(["UTC", "America/New_York", "Asia/Kathmandu"])),
    )
    spent = draw(st.dictionaries(st.sampled_from(SCOPES), windows, max_size=4))
    pending = draw(st.dictionaries(st.sampled_from(SCOPES), money, max_size=4))
    key = draw(st.one_of(st.none(), caps.map(lambda c: (budget.key_scope("k"), c))))
    task = draw(st.sampled_from(["t", "u", "v"]))
    estimate = draw(money)
    now = NOW + draw(st.floats(min_value=-40 * 86_400, max_value=40 * 86_400))
    return limits, now, spent, pending, task, estimate, key


def _ledger_way(
    limits: BudgetLimits,
    now: float,
    spent: dict[str, tuple[float, float, float]],
    pending: dict[str, float],
) -> budget.Ledger:
    by_window = {s: dict(zip(budget.WINDOWS, v, strict=True)) for s, v in spent.items()}
    return budget.from_totals(limits, now, by_window, pending)


@settings(max_examples=400, deadline=None)
@given(cases())
def test_check_refuses_exactly_where_reserve_refuses(case: tuple[object, ...]) -> None:
    limits, now, spent, pending, task, estimate, key = case
    ledger = _ledger_way(limits, now, spent, pending)  # type: ignore[arg-type]
    try:
        budget.reserve(ledger, task, estimate, now, key)  # type: ignore[arg-type]
    except BudgetExhausted as expected:
        with pytest.raises(BudgetExhausted) as got:
            budget.check(limits, now, spent, pending, task, estimate, key)  # type: ignore[arg-type]
        assert (got.value.scope, got.value.window, got.value.cap) == (
            expected.scope, expected.window, expected.cap,
        )  # fmt: skip
        assert (got.value.committed, got.value.asked, got.value.now) == (
            expected.committed, expected.asked, expected.now,
        )  # fmt: skip
        assert str(got.value) == str(expected)
    else:
        amount = budget.check(limits, now, spent, pending, task, estimate, key)  # type: ignore[arg-type]
        assert amount == float(estimate)  # type: ignore[arg-type]


@settings(max_examples=200, deadline=None)
@given(cases())
def test_from_window_totals_is_from_totals(case: tuple[object, ...]) -> None:
    limits, now, spent, pending, *_ = case
    assert budget.from_window_totals(limits, now, spent, pending) == _ledger_way(  # type: ignore[arg-type]
        limits,
        now,
        spent,
        pending,  # type: ignore[arg-type]
    )


def test_check_at_the_cap_edge() -> None:
    """Exactly at the cap is admitted; a cent more is refused, naming the window."""
    limits = BudgetLimits(global_caps=Caps(daily=10.0))
    spent = {budget.GLOBAL: (6.0, 6.0, 6.0)}
    assert budget.check(limits, NOW, spent, {budget.GLOBAL: 3.0}, "t", 1.0) == 1.0
    with pytest.raises(BudgetExhausted) as refused:
        budget.check(limits, NOW, spent, {budget.GLOBAL: 3.0}, "t", 1.01)
    assert (refused.value.scope, refused.value.window) == (budget.GLOBAL, Window.day)
    assert refused.value.committed == 9.0


@pytest.mark.parametrize("bad", [-0.01, math.nan, math.inf])
def test_check_refuses_a_bad_estimate_as_reserve_does(bad: float) -> None:
    with pytest.raises(ValueError, match="estimate must be a finite non-negative amount"):
        budget.check(BudgetLimits(), NOW, {}, {}, "t", bad)
    with pytest.raises(ValueError, match="estimate must be a finite non-negative amount"):
        budget.reserve(budget.empty(BudgetLimits()), "t", bad, NOW)


def test_check_names_a_scope_with_the_wrong_number_of_windows() -> None:
    limits = BudgetLimits(global_caps=Caps(daily=10.0))
    with pytest.raises(ValueError, match="one amount per window"):
        budget.check(limits, NOW, {budget.GLOBAL: (1.0, 2.0)}, {}, "t", 1.0)
