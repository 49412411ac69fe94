"""The budget check: would a reservation cross a cap (pure; times are Unix seconds).

Shared by :func:`apprentice.engine.budget.reserve` (on a ledger value) and the store's
reservations (:func:`check`, on the totals a locked store transaction reads), so the
two can never disagree on a refusal. Why apart: the store admits a reservation at
every paid call on its busy writer thread, and needs only the verdict, not a ledger.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

from apprentice.engine.budget_limits import (
    GLOBAL,
    WINDOWS,
    BudgetLimits,
    Caps,
    Window,
    capped_windows,
)

__all__ = ["KEY_PREFIX", "BudgetExhausted", "KeyCaps", "amount_of", "check", "key_scope"]


KEY_PREFIX = "key:"  # an API key's scope (task names never contain ':')


def key_scope(key_id: str) -> str:
    """The budget scope of an API key's own caps (its spend across every task)."""
    return KEY_PREFIX + key_id


KeyCaps = tuple[str, Caps]
"""An API key's scope (:func:`key_scope`) and its caps, checked with the task's and global."""


class BudgetExhausted(Exception):
    """A reservation would cross a cap; the teacher must not be called."""

    def __init__(
        self,
        scope: str,
        window: Window,
        cap: float,
        committed: float,
        asked: float,
        now: float = 0.0,
    ):
        who = (
            "global"
            if scope == GLOBAL
            else f"API key {scope.removeprefix(KEY_PREFIX)!r}"
            if scope.startswith(KEY_PREFIX)
            else f"task {scope!r}"
        )
        super().__init__(
            f"{who} {window.value} cap {cap:.4f} reached: {committed:.4f} spent or reserved, "
            f"{asked:.4f} more asked; the student serves or the request is refused until the "
            f"window rolls over (raise budget caps to spend more)"
        )
        self.scope, self.window, self.cap = scope, window, cap
        self.committed, self.asked = committed, asked
        self.now = now  # when it was refused (Unix seconds): the window is the one of then


Capped = tuple[tuple[int, Window, float], ...]
"""``(position in WINDOWS, window, cap)`` of each capped window of a scope."""


def capped_scopes(limits: BudgetLimits, task: str, key: KeyCaps | None) -> list[tuple[str, Capped]]:
    """The scopes a reservation of ``task`` is checked in, each with its capped windows."""
    scopes = [(task, limits.capped(task)), (GLOBAL, limits.capped(GLOBAL))]
    if key is not None:
        scopes.append((key[0], capped_windows(key[1])))
    return scopes


def refuse_over(
    scope: str,
    capped: Capped,
    pending: float,
    current: Sequence[float] | None,
    amount: float,
    now: float,
) -> None:
    """Raise at the first capped window where spent + pending + ``amount`` crosses its cap
    (``current``: the scope's current-window spend in :data:`WINDOWS` order; None: none)."""
    for i, w, cap in capped:
        committed = pending + (current[i] if current is not None else 0.0)
        if committed + amount > cap:
            raise BudgetExhausted(scope, w, cap, committed, amount, now)


def amount_of(value: float, what: str) -> float:
    """``value`` as a float, or a ValueError naming ``what`` (negative, NaN, infinite)."""
    amount = float(value)
    if not (amount >= 0.0 and math.isfinite(amount)):
        raise ValueError(f"{what} must be a finite non-negative amount, got {value!r}")
    return amount


def check(
    limits: BudgetLimits,
    now: float,
    spent: Mapping[str, Sequence[float]],
    pending: Mapping[str, float],
    task: str,
    estimate: float,
    key: KeyCaps | None = None,
) -> float:
    """Raise :class:`BudgetExhausted` where :func:`reserve` would refuse ``estimate`` on
    ``from_window_totals(limits, now, spent, pending)``; else return the amount.

    The same check on the totals as the store reads them (current-window spend per scope
    in :data:`WINDOWS` order; open reservations per scope), without building the ledger
    nor the reserved one: a reservation admitted in the store needs only the verdict.
    """
    amount = amount_of(estimate, "estimate")
    for scope, capped in capped_scopes(limits, task, key):
        current = spent.get(scope)
        if current is not None and len(current) != len(WINDOWS):
            raise ValueError(f"spend of {scope!r} must have one amount per window: {current!r}")
        refuse_over(scope, capped, float(pending.get(scope, 0.0)), current, amount, now)
    return amount
