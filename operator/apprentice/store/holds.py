"""What a batch of budget asks reads once in its transaction: open reservations, window
spend and API keys' caps (:class:`OpenHolds`, used by :func:`apprentice.store.budget.totals`).

Why apart from :mod:`apprentice.store.budget`: the reads a group commit shares between
its asks are their own concern, and kept here they leave the budget rows' module room.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

from apprentice.store import codec, spend_windows
from apprentice.store.records import ReservationRecord
from apprentice.store.sqlcore import Tx

GLOBAL = "*"
KEY_PREFIX = "key:"  # an API key's scope: engine.budget.key_scope

KeyCaps = tuple[float | None, float | None, float | None]
"""An API key's daily, weekly and monthly caps (``None``: uncapped)."""


_OPEN_BY_TASK = (
    "SELECT task, SUM(amount) FROM budget_reservations GROUP BY task"
    " UNION ALL SELECT NULL, MIN(expires_at) FROM budget_reservations"
)
"""The open sums per task, and a row of no task (``task`` is ``NOT NULL``): the earliest
expiry (:meth:`OpenHolds.expired`). A row of its own, not a ``MIN`` per task: the expiry
index answers it without a scan, and the sums are read exactly as alone (carrying
``expires_at`` through their sort cost ~20 us a paid request in bench/writer_bench.py)."""


class OpenHolds:
    """What a batch of asks (``_reserve_all``) reads once in its transaction.

    - The open reservations' sums per task and key, kept up to date with each one the
      batch admits (:meth:`add`; all are inserted together when the batch ends), so each
      ask sees those admitted before it without a rescan that grew with the calls in
      flight (~160 us an ask at 1,000 open, SQLite).
    - The window spend per scopes and windows, and API keys' caps, which reservations do
      not change (spend: whole days and edge buckets, :mod:`apprentice.store.spend_windows`).
    """

    def __init__(self, tx: Tx) -> None:
        self._tx = tx
        self._tasks: dict[str, list[float]] | None = None
        self._task_sums: dict[str, float] = {}  # math.fsum of each of _tasks' lists
        self._soonest: int | None = None  # the earliest expiry among the rows _tasks read
        self._pending: dict[str, float] | None = None  # by_task's answer until the next add
        self._keys: dict[str, list[float]] = {}
        self._caps: dict[str, KeyCaps | None] = {}  # None: the key has no budget (or no row)
        self._spent: dict[tuple[object, ...], Mapping[str, tuple[float, ...]]] = {}
        self.added: list[ReservationRecord] = []  # admitted, inserted when the batch ends

    def spent(
        self, scopes: tuple[str, ...], bounds: tuple[tuple[int, int], ...]
    ) -> Mapping[str, tuple[float, ...]]:
        """Spend per scope in each window's buckets (``bounds``), read once per pair: one
        mapping shared by its asks' totals (read-only, as every ``BudgetTotals`` field)."""
        found = self._spent.get((scopes, bounds))
        if found is None:
            found = self._spent[(scopes, bounds)] = spend_windows.spent(self._tx, scopes, bounds)
        return found

    def by_task(self) -> dict[str, float]:
        """Open amounts per task, and ``GLOBAL``: all of them (each task's ``fsum`` redone
        only when an ask adds to it: the same sums as summing afresh each ask)."""
        if self._tasks is None:
            rows = self._tx.all(_OPEN_BY_TASK)
            self._tasks = {str(task): [float(v)] for task, v in rows if task is not None}
            soonest = [v for task, v in rows if task is None and v is not None]  # none open: NULL
            self._soonest = int(soonest[0]) if soonest else None
            for r in self.added:
                self._tasks.setdefault(r.task, []).append(float(r.amount))
            self._task_sums = {task: math.fsum(parts) for task, parts in self._tasks.items()}
        if self._pending is None:
            pending = dict(self._task_sums)
            pending[GLOBAL] = math.fsum(self._task_sums.values())
            self._pending = pending
        return self._pending

    def expired(self, before: int) -> bool:
        """Whether a reservation open when :meth:`by_task` read them expires before
        ``before`` (Unix microseconds). Read with the sums, not by a statement of its own:
        a batch of asks first books expired reservations at their worst case
        (``BudgetRows._reserve_all``), and there rarely is one to book."""
        self.by_task()
        return self._soonest is not None and self._soonest < before

    def by_key(self, keys: Sequence[str]) -> dict[str, float]:
        """Open amounts of each of ``keys`` that holds any, as ``key:<id>`` scopes."""
        missing = [k for k in keys if KEY_PREFIX + k not in self._keys]
        if missing:
            found = _key_pending(self._tx, missing)
            for key in missing:
                scope = KEY_PREFIX + key
                self._keys[scope] = [found[scope]] if scope in found else []
                self._keys[scope] += [float(r.amount) for r in self.added if r.caller == key]
        scopes = (KEY_PREFIX + k for k in keys)
        return {s: math.fsum(self._keys[s]) for s in scopes if self._keys[s]}

    def caps(self, keys: Sequence[str]) -> dict[str, KeyCaps]:
        """The caps of each of ``keys`` with a budget, read once a batch (no ask writes them)."""
        if missing := [k for k in keys if KEY_PREFIX + k not in self._caps]:
            found = _caps(self._tx, missing)
            self._caps.update({KEY_PREFIX + k: found.get(KEY_PREFIX + k) for k in missing})
        scopes = (KEY_PREFIX + k for k in keys)
        return {scope: caps for scope in scopes if (caps := self._caps[scope]) is not None}

    def add(self, r: ReservationRecord) -> None:
        """Count ``r``, admitted in the same transaction (inserted with the others)."""
        self.added.append(r)
        if self._tasks is not None:
            parts = self._tasks.setdefault(r.task, [])
            parts.append(float(r.amount))
            self._task_sums[r.task] = math.fsum(parts)
            self._pending = None  # a new dict: the one answered before stays as it was
        if r.caller is not None and KEY_PREFIX + r.caller in self._keys:
            self._keys[KEY_PREFIX + r.caller].append(float(r.amount))


def _key_pending(tx: Tx, keys: Sequence[str]) -> dict[str, float]:
    rows = tx.all(
        "SELECT caller, SUM(amount) FROM budget_reservations"
        f" WHERE caller IN ({', '.join('?' * len(keys))}) GROUP BY caller",
        list(keys),
    )
    return {KEY_PREFIX + str(caller): float(amount) for caller, amount in rows}


def _caps(tx: Tx, keys: Sequence[str]) -> dict[str, KeyCaps]:
    marks = ", ".join("?" for _ in keys)
    rows = tx.all(f"SELECT id, budget FROM api_keys WHERE id IN ({marks})", list(keys))
    out: dict[str, KeyCaps] = {}
    for key_id, caps in ((k, codec.load_json(raw)) for k, raw in rows if raw is not None):
        out[KEY_PREFIX + str(key_id)] = (
            _cap(caps.get("daily")), _cap(caps.get("weekly")), _cap(caps.get("monthly"))
        )  # fmt: skip
    return out


def _cap(value: object) -> float | None:
    return None if value is None else float(str(value))
