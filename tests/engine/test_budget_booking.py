"""Booking spend builds the same ledger as ``dataclasses.replace`` over the old per-scope
copies did: the gateway's mirror books every paid request, so that path was rewritten
for speed (engine/budget.py ``_with_spend``), and these tests hold it to the original."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping

from hypothesis import given, settings
from hypothesis import strategies as st

from apprentice.engine import budget
from apprentice.engine.budget import Caps, Window

T0 = 1_741_384_800.0  # 2025-03-07 22:00 UTC, a Friday: days, a week and a month roll by
LIMITS = budget.BudgetLimits(global_caps=Caps(daily=100.0), task_caps={"a": Caps(daily=50.0)})


def _reference(ledger: budget.Ledger, scopes: tuple[str, ...], amount: float, now: float,
               **changes: object) -> budget.Ledger:  # fmt: skip
    """The booking as it was written before: one copy of ``spent`` per scope, then
    ``dataclasses.replace``."""
    keys = budget.window_keys(ledger.limits, now)
    spent: Mapping[tuple[str, Window], tuple[str, float]] = ledger.spent
    totals = dict(ledger.totals)
    for scope in scopes:
        out = dict(spent)
        for w in budget.WINDOWS:
            entry = out.get((scope, w))
            if entry is None or entry[0] < keys[w]:
                out[(scope, w)] = (keys[w], amount)
            elif entry[0] == keys[w]:
                out[(scope, w)] = (keys[w], entry[1] + amount)
        spent = out
        totals[scope] = totals.get(scope, 0.0) + amount
    return dataclasses.replace(ledger, spent=spent, totals=totals, **changes)  # type: ignore[arg-type]


def _spend(ledger: budget.Ledger, scope: str, now: float) -> dict[Window, float]:
    """``budget.spend`` as it was written before (``window_keys``' dict)."""
    keys = budget.window_keys(ledger.limits, now)
    out = {}
    for w in budget.WINDOWS:
        entry = ledger.spent.get((scope, w))
        out[w] = entry[1] if entry is not None and entry[0] == keys[w] else 0.0
    return out


bookings = st.lists(
    st.tuples(
        st.sampled_from(["a", "b", budget.GLOBAL]),
        st.floats(0.0, 5.0),
        st.floats(-40 * 86400.0, 40 * 86400.0),  # back in time too: past windows are ignored
    ),
    max_size=40,
)


@settings(max_examples=200, deadline=None)
@given(bookings)
def test_record_books_what_the_reference_booked(steps: list[tuple[str, float, float]]) -> None:
    got = want = budget.empty(LIMITS)
    for task, amount, offset in steps:
        got = budget.record(got, task, amount, T0 + offset)
        want = _reference(want, (task, budget.GLOBAL), amount, T0 + offset)
        assert got == want
        assert budget.spend(got, T0 + offset, task) == _spend(want, task, T0 + offset)


def test_settle_carries_every_other_field_of_the_ledger() -> None:
    """A field added to Ledger and not carried over by the booking fails here."""
    ledger, res = budget.reserve(budget.empty(LIMITS), "a", 2.0, T0)
    ledger, _ = budget.reserve(ledger, "b", 1.0, T0)
    settled = budget.settle(ledger, res.id, 1.5, T0 + 60)
    want = _reference(
        ledger, ("a", budget.GLOBAL), 1.5, T0 + 60,
        open={k: v for k, v in ledger.open.items() if k != res.id},
        pending={"a": 0.0, budget.GLOBAL: 1.0, "b": 1.0},
    )  # fmt: skip
    for f in dataclasses.fields(budget.Ledger):
        assert getattr(settled, f.name) == getattr(want, f.name), f.name
    recorded = budget.record(ledger, "a", 0.5, T0)
    for f in dataclasses.fields(budget.Ledger):
        if f.name not in ("spent", "totals"):
            assert getattr(recorded, f.name) is getattr(ledger, f.name), f.name
