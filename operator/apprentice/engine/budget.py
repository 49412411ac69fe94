"""Budget: a pure ledger of teacher spend against per-task and global caps.

Scopes are each task and the global scope; windows are the calendar day, ISO
week and calendar month in the configured IANA time zone (default UTC). Times
are Unix seconds passed in by the caller (the clock is never read here).

Operations return a new :class:`Ledger`:

- :func:`reserve` holds a worst-case estimate before a teacher call, or raises
  :class:`BudgetExhausted` if it would cross any applicable cap;
- :func:`settle` replaces a reservation with the actual cost, booked in the
  windows of the settle time (this is what the store's spend ledger records);
- :func:`release` drops a reservation (the call never happened);
- :func:`record` books spend without a reservation (replaying the store's
  ledger on start: :func:`from_entries`).

Why spend never exceeds a cap under any interleaving (the gateway applies these
functions one at a time behind one lock). For every scope ``s`` and window
``w`` with a cap, let ``I = spent[s, w, current] + pending[s]`` where pending
sums every open reservation of that scope, whatever window it was made in.

- :func:`reserve` admits ``e`` only if ``I + e <= cap`` for all applicable
  ``(s, w)``, so ``I <= cap`` holds after it.
- :func:`settle` with ``actual <= reserved`` adds ``actual`` to spent and removes
  ``reserved`` from pending: ``I`` does not grow.
- :func:`release` removes pending: ``I`` shrinks.
- A window roll-over starts ``spent`` at 0: ``I`` shrinks.

So ``spent <= I <= cap`` always. The premise ``actual <= reserved`` is the
caller's part (it reserves the worst case: prompt tokens plus ``max_output_tokens``);
a larger actual is still booked (spend is a fact, never clipped), and further
reservations are refused until the window rolls over.

One cap across processes. The ledger above is a value; the gateway does not keep
its own copy of the truth. Every reservation is a row in the store, written in a
transaction that first locks the budget (SQLite: ``BEGIN IMMEDIATE`` on the one
file; PostgreSQL: ``SELECT ... FOR UPDATE`` of the budget lock row), reads the
store's window totals and open reservations and applies :func:`check` to them: the
check :func:`reserve` makes, on the ledger they make (:func:`from_totals`). Settling
deletes the reservation row in the same transaction that inserts the spend line, so
spend plus open reservations, summed over every process, is exactly the ``I`` above.

The policy of what is booked when (answers, failures that may have billed, crashes,
a failed store write) is where it is executed: :mod:`apprentice.gateway.settling`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from apprentice.engine.budget_check import (
    KEY_PREFIX,
    BudgetExhausted,
    KeyCaps,
    amount_of,
    capped_scopes,
    check,
    key_scope,
    refuse_over,
)
from apprentice.engine.budget_limits import (
    GLOBAL,
    WINDOWS,
    BudgetLimits,
    Caps,
    Window,
    key_tuple,
    window_bounds,
    window_keys,
)

__all__ = [
    "GLOBAL",
    "KEY_PREFIX",
    "WINDOWS",
    "BudgetExhausted",
    "BudgetLimits",
    "BudgetView",
    "Caps",
    "KeyCaps",
    "Ledger",
    "Reservation",
    "UnknownReservation",
    "Window",
    "check",
    "empty",
    "exhausted_caps",
    "from_entries",
    "from_totals",
    "from_window_totals",
    "key_scope",
    "record",
    "release",
    "reserve",
    "savings",
    "settle",
    "spend",
    "view",
    "window_bounds",
    "window_keys",
]


@dataclass(frozen=True, slots=True)
class Reservation:
    id: int
    task: str
    amount: float
    key: str | None = None  # the API key's scope, when the call is charged to a key


class UnknownReservation(KeyError):
    """Settle or release of a reservation that is not open (settled twice?)."""


@dataclass(frozen=True, slots=True)
class Ledger:
    """Spend in the current windows plus open reservations. Treat as immutable."""

    limits: BudgetLimits = field(default_factory=BudgetLimits)
    # (scope, window) -> (window key, amount); a stale key reads as 0.
    spent: Mapping[tuple[str, Window], tuple[str, float]] = field(default_factory=dict)
    open: Mapping[int, Reservation] = field(default_factory=dict)
    pending: Mapping[str, float] = field(default_factory=dict)  # scope -> reserved total
    next_id: int = 1
    totals: Mapping[str, float] = field(default_factory=dict)  # scope -> all-time spend


def empty(limits: BudgetLimits) -> Ledger:
    return Ledger(limits=limits)


def from_totals(
    limits: BudgetLimits,
    now: float,
    spent: Mapping[str, Mapping[Window, float]],
    pending: Mapping[str, float],
) -> Ledger:
    """The ledger a store transaction sees: current-window totals and open reservations.

    ``spent[scope][window]`` is the spend of the window containing ``now``;
    ``pending[scope]`` sums the open reservations of the scope (``GLOBAL``: all).
    :func:`reserve` applied to it is exact, whatever other processes did before.
    A window a scope lacks is read as 0.
    """
    by_window = {scope: tuple(w.get(x, 0.0) for x in WINDOWS) for scope, w in spent.items()}
    return from_window_totals(limits, now, by_window, pending)


def from_window_totals(
    limits: BudgetLimits,
    now: float,
    spent: Mapping[str, Sequence[float]],
    pending: Mapping[str, float],
) -> Ledger:
    """The ledger of the store's own shape of totals: ``spent[scope]`` holds the day, week
    and month spend in :data:`WINDOWS` order (``BudgetTotals.spent``); see
    :func:`from_totals`. Built without a dict per scope in between: the gateway builds
    one for its mirror at every reservation, on the store's busy writer thread.
    """
    keys = key_tuple(limits, now)
    table: dict[tuple[str, Window], tuple[str, float]] = {}
    for scope, values in spent.items():
        day, week, month = values
        table[(scope, Window.day)] = (keys[0], float(day))
        table[(scope, Window.week)] = (keys[1], float(week))
        table[(scope, Window.month)] = (keys[2], float(month))
    return Ledger(limits=limits, spent=table, pending={k: float(v) for k, v in pending.items()})


def exhausted_caps(
    ledger: Ledger, now: float, task: str | None = None, typical_cost: float = 0.0
) -> list[tuple[str, Window, float]]:
    """``(scope, window, resets_at)`` for each cap with no room for ``typical_cost``.

    For status: which cap stops the teacher (the task's or the global one, daily,
    weekly or monthly) and when it resets (Unix seconds). With ``task`` the
    task's and the global caps are checked, without it only the global ones.
    """
    keys = window_keys(ledger.limits, now)
    bounds = window_bounds(ledger.limits, now)
    out: list[tuple[str, Window, float]] = []
    scopes = (GLOBAL,) if task is None else (task, GLOBAL)
    for scope in scopes:
        pending = ledger.pending.get(scope, 0.0)
        for _, w, cap in ledger.limits.capped(scope):
            committed = pending + _current(ledger, scope, w, keys[w])
            if committed >= cap or committed + typical_cost > cap:
                out.append((scope, w, bounds[w][1]))
    return out


def _current(ledger: Ledger, scope: str, window: Window, key: str) -> float:
    entry = ledger.spent.get((scope, window))
    return entry[1] if entry is not None and entry[0] == key else 0.0


def spend(ledger: Ledger, now: float, task: str | None = None) -> dict[Window, float]:
    """Settled spend per current window, for one task or (``None``) globally."""
    scope = GLOBAL if task is None else task
    keys = key_tuple(ledger.limits, now)
    return {w: _current(ledger, scope, w, key) for w, key in zip(WINDOWS, keys, strict=True)}


def _check(
    ledger: Ledger, task: str, amount: float, now: float, key: KeyCaps | None = None
) -> None:
    keys = key_tuple(ledger.limits, now)
    spent = ledger.spent
    for scope, capped in capped_scopes(ledger.limits, task, key):
        if not capped:
            continue
        current = [0.0, 0.0, 0.0]
        for i, w, _ in capped:
            entry = spent.get((scope, w))
            if entry is not None and entry[0] == keys[i]:
                current[i] = entry[1]
        refuse_over(scope, capped, ledger.pending.get(scope, 0.0), current, amount, now)


def reserve(
    ledger: Ledger, task: str, estimate: float, now: float, key: KeyCaps | None = None
) -> tuple[Ledger, Reservation]:
    """Hold ``estimate`` for a paid call of ``task``, or raise :class:`BudgetExhausted`.

    With ``key`` the call is also charged to that API key's scope and checked
    against its caps (the same invariant holds per key: spent + pending <= cap).
    """
    amount = amount_of(estimate, "estimate")
    _check(ledger, task, amount, now, key)
    res = Reservation(ledger.next_id, task, amount, None if key is None else key[0])
    pending = dict(ledger.pending)
    for scope in _scopes(res):
        pending[scope] = pending.get(scope, 0.0) + amount
    opened = dict(ledger.open)
    opened[res.id] = res
    return replace(ledger, open=opened, pending=pending, next_id=res.id + 1), res


def _unreserve(
    ledger: Ledger, reservation_id: int
) -> tuple[Reservation, dict[int, Reservation], dict[str, float]]:
    res = ledger.open.get(reservation_id)
    if res is None:
        raise UnknownReservation(f"reservation {reservation_id} is not open (settled twice?)")
    opened = dict(ledger.open)
    del opened[reservation_id]
    if not opened:  # float subtraction leaves dust; nothing open means exactly 0
        return res, opened, {}
    pending = dict(ledger.pending)
    for scope in _scopes(res):
        pending[scope] = max(0.0, pending.get(scope, 0.0) - res.amount)
    return res, opened, pending


def _scopes(res: Reservation) -> tuple[str, ...]:
    return (res.task, GLOBAL) if res.key is None else (res.task, GLOBAL, res.key)


def _book(
    spent: dict[tuple[str, Window], tuple[str, float]],
    scope: str,
    keys: tuple[str, str, str],
    amount: float,
) -> None:
    """Add ``amount`` to ``scope``'s windows of ``keys`` (day, week, month) in ``spent``,
    the caller's own copy."""
    for w, key in zip(WINDOWS, keys, strict=True):
        entry = spent.get((scope, w))
        if entry is None or entry[0] < key:
            spent[(scope, w)] = (key, amount)
        elif entry[0] == key:
            spent[(scope, w)] = (key, entry[1] + amount)
        # An older window than the one held: spend of a past window, ignore.


def _with_spend(
    ledger: Ledger,
    scopes: tuple[str, ...],
    amount: float,
    now: float,
    opened: Mapping[int, Reservation] | None = None,
    pending: Mapping[str, float] | None = None,
) -> Ledger:
    """``ledger`` with ``amount`` booked to each of ``scopes`` (and ``opened``/``pending``
    when given). The gateway's mirror books every paid request here, on the event loop:
    one copy of each table, and the new ledger built field by field rather than through
    ``dataclasses.replace`` (the mirror's record 4.9 -> 4.1 us a paid request; a test
    fails if a field of :class:`Ledger` is not carried over)."""
    keys = key_tuple(ledger.limits, now)
    spent = dict(ledger.spent)
    totals = dict(ledger.totals)
    for scope in scopes:
        _book(spent, scope, keys, amount)
        totals[scope] = totals.get(scope, 0.0) + amount
    return Ledger(
        limits=ledger.limits,
        spent=spent,
        open=ledger.open if opened is None else opened,
        pending=ledger.pending if pending is None else pending,
        next_id=ledger.next_id,
        totals=totals,
    )


def settle(ledger: Ledger, reservation_id: int, actual: float, now: float) -> Ledger:
    """Replace a reservation with the actual cost, booked in the windows of ``now``."""
    amount = amount_of(actual, "actual cost")
    res, opened, pending = _unreserve(ledger, reservation_id)
    return _with_spend(ledger, _scopes(res), amount, now, opened, pending)


def release(ledger: Ledger, reservation_id: int) -> Ledger:
    """Drop a reservation whose teacher call never happened."""
    _, opened, pending = _unreserve(ledger, reservation_id)
    return replace(ledger, open=opened, pending=pending)


def record(ledger: Ledger, task: str, amount: float, at: float) -> Ledger:
    """Book spend that needed no reservation (ledger replay)."""
    return _with_spend(ledger, (task, GLOBAL), amount_of(amount, "amount"), at)


def from_entries(limits: BudgetLimits, entries: Iterable[tuple[float, str, float]]) -> Ledger:
    """Rebuild from the store's spend ledger rows ``(time, task, amount)``, any order."""
    ledger = empty(limits)
    for at, task, amount in sorted(entries, key=lambda e: e[0]):
        ledger = record(ledger, task, amount, at)
    return ledger


@dataclass(frozen=True, slots=True)
class BudgetView:
    """Spend of one scope in the current windows, for status, metrics and alerts."""

    today: float
    week: float
    month: float
    caps: Caps
    currency: str
    exhausted: bool
    fraction_used: float  # the largest spent/cap over capped windows (task and global); 0 if none

    def to_dict(self) -> dict[str, Any]:
        return {
            "today": self.today,
            "week": self.week,
            "month": self.month,
            "currency": self.currency,
            "caps": {
                "daily": self.caps.daily,
                "weekly": self.caps.weekly,
                "monthly": self.caps.monthly,
            },
        }


def view(ledger: Ledger, now: float, task: str | None = None) -> BudgetView:
    """Spend, caps and headroom; ``fraction_used`` >= 0.8 and >= 1.0 are the alert levels."""
    scope = GLOBAL if task is None else task
    keys = window_keys(ledger.limits, now)
    fraction = 0.0
    for s in {scope, GLOBAL}:
        caps = ledger.limits.caps(s)
        for w in WINDOWS:
            cap = caps.get(w)
            if cap:
                fraction = max(fraction, _current(ledger, s, w, keys[w]) / cap)
    mine = spend(ledger, now, task)
    return BudgetView(
        today=mine[Window.day],
        week=mine[Window.week],
        month=mine[Window.month],
        caps=ledger.limits.caps(scope),
        currency=ledger.limits.currency,
        exhausted=bool(exhausted_caps(ledger, now, task)),
        fraction_used=fraction,
    )


def savings(
    student_answers: int, teacher_calls: int, teacher_spend: float, local_cost: float = 0.0
) -> float:
    """Estimated savings: student answers x average teacher cost - local compute cost."""
    if teacher_calls <= 0:
        return -local_cost
    return student_answers * (teacher_spend / teacher_calls) - local_cost
