"""Budget rows: reservations and window totals, written under one lock across processes.

Why in the store: a cap held in one process's memory is a cap per process, and
two gateways on one store spend twice. So every budget change is a store
transaction that first takes the budget lock (SQLite: the ``BEGIN IMMEDIATE``
every write starts with already serialises writers of the file across
processes; PostgreSQL: ``SELECT ... FOR UPDATE`` of the single ``budget_lock``
row), reads spend of the current windows plus open reservations, asks the
caller's pure check (:func:`apprentice.engine.budget.reserve`) and writes.
Spend lines that settle a reservation delete its row in the same transaction,
so "spent + reserved" never drops a cent between two steps.

Lock order, to never deadlock on PostgreSQL: ``budget_lock`` first, then
reservation and bucket rows. :func:`insert_spend` takes the lock itself.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from functools import lru_cache

from apprentice.store import bulk, codec, schema, spend_windows
from apprentice.store.records import ReservationRecord, SpendKind, SpendRecord
from apprentice.store.sqlcore import SqlCore, Tx

GLOBAL = "*"
KEY_PREFIX = "key:"  # an API key's scope: engine.budget.key_scope
_RESERVATION_COLUMNS = "id, task, amount, owner, created_at, expires_at, kind, request_id, caller"

Windows = Sequence[tuple[float, float]]
"""``[start, end)`` Unix seconds of each budget window (day, week, month), in order."""


Admit = Callable[["BudgetTotals"], None]
"""The caller's pure check: raises to refuse a reservation."""

Ask = tuple[ReservationRecord, Sequence[str], Windows, Admit]
"""One reservation of a group commit: ``(row, scopes, windows, admit)``."""


KeyCaps = tuple[float | None, float | None, float | None]
"""An API key's daily, weekly and monthly caps (``None``: uncapped)."""


@dataclass(frozen=True)
class BudgetTotals:
    """Spend per scope per window (in the order of the windows asked) and open reservations.

    ``key_caps``: for each API key scope asked (``key:<id>``), the key's caps as
    its ``api_keys`` row holds them in this transaction (absent: no budget).
    """

    spent: Mapping[str, tuple[float, ...]] = field(default_factory=dict)
    pending: Mapping[str, float] = field(default_factory=dict)
    key_caps: Mapping[str, KeyCaps] = field(default_factory=dict)


def lock(tx: Tx, dialect: schema.Dialect) -> None:
    """Take the budget lock for the rest of ``tx`` (a no-op on SQLite: already held)."""
    if dialect.name == "postgresql":
        tx.one("SELECT touched FROM budget_lock WHERE id = 1 FOR UPDATE")


def _bucket(seconds: float) -> int:
    return math.floor(round(seconds * 1_000_000) / schema.BUCKET_MICROS)


@lru_cache(maxsize=64)
def _bounds(windows: tuple[tuple[float, float], ...]) -> tuple[tuple[int, int], ...]:
    """Each window's ``[start, end)`` in buckets. Memoised: every ask of a day has the same
    windows, and this ran six roundings an ask on the store's busy writer thread."""
    return tuple((_bucket(a), _bucket(b)) for a, b in windows)


def totals(
    tx: Tx, scopes: Sequence[str], windows: Windows, held: OpenHolds | None = None
) -> BudgetTotals:
    """Current-window spend of each scope and the open reservations, as ``tx`` sees them.

    ``held``: what a batch of asks already read in ``tx`` (see :class:`OpenHolds`);
    without it everything is read here.
    """
    bounds = _bounds(tuple(windows))
    if held is None:
        held = OpenHolds(tx)
    spent = held.spent(tuple(scopes), bounds)
    pending = held.by_task()
    keys = [scope.removeprefix(KEY_PREFIX) for scope in scopes if scope.startswith(KEY_PREFIX)]
    if not keys:
        return BudgetTotals(spent=spent, pending=pending)
    return BudgetTotals(spent=spent, pending=pending | held.by_key(keys), key_caps=held.caps(keys))


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
            rows = self._tx.all("SELECT task, SUM(amount) FROM budget_reservations GROUP BY task")
            self._tasks = {str(task): [float(amount)] for task, amount in rows}
            for r in self.added:
                self._tasks.setdefault(r.task, []).append(float(r.amount))
            self._task_sums = {task: math.fsum(parts) for task, parts in self._tasks.items()}
        if self._pending is None:
            pending = dict(self._task_sums)
            pending[GLOBAL] = math.fsum(self._task_sums.values())
            self._pending = pending
        return self._pending

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


def insert_spend(tx: Tx, dialect: schema.Dialect, entries: Sequence[SpendRecord]) -> int:
    """Insert ledger lines, add them to the window buckets, settle their reservations.

    A line naming a reservation that no longer exists is skipped: that
    reservation was already booked at its worst case (lease expiry, restart).
    A zero line with a reservation just releases it. Returns how many lines were written.
    A few statements however many lines (a group commit's: :mod:`apprentice.store.bulk`).
    """
    if not entries:
        return 0
    lock(tx, dialect)
    held = [s.reservation for s in entries if s.reservation is not None]
    open_ids = bulk.existing(tx, dialect, "budget_reservations", "id", held)
    bulk.delete(tx, "budget_reservations", "id", sorted(open_ids))
    lines: list[SpendRecord] = []
    for s in entries:
        if s.reservation is not None:
            if s.reservation not in open_ids:
                continue  # already booked at its worst case (or named twice: settled once)
            open_ids.discard(s.reservation)
            if s.amount == 0:
                continue  # a release
        lines.append(s)
    if not lines:
        return 0
    rows = [
        (s.task, codec.to_micros(s.at), float(s.amount), s.kind, s.request_id, s.provider,
         s.model, int(s.input_tokens), int(s.output_tokens), s.caller)
        for s in lines
    ]  # fmt: skip
    tx.insert_rows(
        "INSERT INTO spend (task, at, amount, kind, request_id, provider, model,"
        " input_tokens, output_tokens, caller)",
        rows,
    )
    spend_windows.add(tx, [(_scopes(s), r[1], r[2]) for s, r in zip(lines, rows, strict=True)])
    return len(lines)


def _scopes(s: SpendRecord) -> list[str]:
    scopes = [GLOBAL] if s.task is None else [s.task, GLOBAL]
    if s.caller is not None:
        scopes.append(KEY_PREFIX + s.caller)
    return scopes


def _insert_reservations(tx: Tx, rows: Sequence[ReservationRecord]) -> None:
    tx.insert_rows(
        f"INSERT INTO budget_reservations ({_RESERVATION_COLUMNS})",
        [
            (r.id, r.task, float(r.amount), r.owner, codec.to_micros(r.created_at),
             codec.to_micros(r.expires_at), r.kind, r.request_id, r.caller)
            for r in rows
        ],
    )  # fmt: skip


def _reservation(row: tuple[object, ...]) -> ReservationRecord:
    kind: SpendKind = row[6]  # type: ignore[assignment]
    return ReservationRecord(
        id=str(row[0]),
        task=str(row[1]),
        amount=float(row[2]),  # type: ignore[arg-type]
        owner=str(row[3]),
        created_at=codec.from_micros(int(row[4])),  # type: ignore[call-overload]
        expires_at=codec.from_micros(int(row[5])),  # type: ignore[call-overload]
        kind=kind,
        request_id=None if row[7] is None else str(row[7]),
        caller=None if row[8] is None else str(row[8]),
    )


def _worst_case(r: ReservationRecord, at: datetime) -> SpendRecord:
    return SpendRecord(
        task=r.task, at=at, amount=r.amount, kind=r.kind, request_id=r.request_id,
        provider="unrecorded", reservation=r.id, caller=r.caller,
    )  # fmt: skip


class BudgetRows(SqlCore):
    """The store's budget methods (see the module docstring)."""

    def budget_reserve(
        self,
        reservation: ReservationRecord,
        *,
        scopes: Sequence[str],
        windows: Windows,
        admit: Callable[[BudgetTotals], None],
    ) -> BudgetTotals:
        """Insert ``reservation`` if ``admit(totals)`` does not raise, in one locked transaction.

        Expired reservations of any gateway are settled at their worst case first.
        Returns the totals the check saw (before this reservation).
        """
        refused: Exception | None = None
        with self._write() as tx:
            lock(tx, self.dialect)
            self._settle_rows(
                tx,
                "expires_at < ?",
                (codec.to_micros(reservation.created_at),),
                reservation.created_at,
            )
            seen = totals(tx, scopes, windows)
            try:
                admit(seen)
            except Exception as exc:  # refused: still commit the expired rows booked above
                refused = exc
            if refused is None:
                _insert_reservations(tx, [reservation])
        if refused is not None:
            raise refused
        return seen

    def _reserve_all(self, tx: Tx, asks: Sequence[Ask]) -> list[BudgetTotals | Exception]:
        """:meth:`budget_reserve` for each ask, in order, in ``tx`` (a group commit's:
        :mod:`apprentice.store.batches`), which already holds the budget lock.

        Each ask sees the reservations admitted before it in the same transaction
        (counted by :class:`OpenHolds`), so the batch is exactly the asks applied one by
        one. A refused ask gets its exception in its place; the others are inserted
        together at the end, in multi-row statements (:mod:`apprentice.store.bulk`).
        """
        first = asks[0][0].created_at
        self._settle_rows(tx, "expires_at < ?", (codec.to_micros(first),), first)
        held = OpenHolds(tx)
        out: list[BudgetTotals | Exception] = []
        for reservation, scopes, windows, admit in asks:
            seen = totals(tx, scopes, windows, held)
            try:
                admit(seen)
            except Exception as exc:
                out.append(exc)
                continue
            held.add(reservation)
            out.append(seen)
        _insert_reservations(tx, held.added)  # in one go: see apprentice.store.bulk
        return out

    def budget_extend(
        self,
        reservation_id: str,
        more: float,
        *,
        scopes: Sequence[str],
        windows: Windows,
        admit: Callable[[BudgetTotals], None],
    ) -> bool:
        """Grow an open reservation by ``more`` if ``admit`` allows; False if it is gone."""
        with self._write() as tx:
            lock(tx, self.dialect)
            if tx.one("SELECT id FROM budget_reservations WHERE id = ?", (reservation_id,)) is None:
                return False
            admit(totals(tx, scopes, windows))
            tx.execute(
                "UPDATE budget_reservations SET amount = amount + ? WHERE id = ?",
                (float(more), reservation_id),
            )
        return True

    def budget_release(self, reservation_ids: Sequence[str]) -> int:
        """Drop reservations whose calls cannot have been billed; returns how many existed."""
        if not reservation_ids:
            return 0
        with self._write() as tx:
            lock(tx, self.dialect)
            return sum(
                tx.execute("DELETE FROM budget_reservations WHERE id = ?", (rid,))
                for rid in reservation_ids
            )

    def budget_recover(self, *, owner: str | None, now: datetime) -> list[ReservationRecord]:
        """Book at their worst case the reservations of ``owner`` and every expired one."""
        with self._write() as tx:
            lock(tx, self.dialect)
            done = self._settle_rows(tx, "expires_at < ?", (codec.to_micros(now),), now)
            if owner is not None:
                done += self._settle_rows(tx, "owner = ?", (owner,), now)
        return done

    def budget_totals(self, scopes: Sequence[str], windows: Windows) -> BudgetTotals:
        with self._read() as tx:
            return totals(tx, scopes, windows)

    def reservations(self) -> list[ReservationRecord]:
        """Open reservations, oldest first (diagnostics and tests)."""
        with self._read() as tx:
            rows = tx.all(
                f"SELECT {_RESERVATION_COLUMNS} FROM budget_reservations ORDER BY created_at, id"
            )
        return [_reservation(r) for r in rows]

    def _settle_rows(
        self, tx: Tx, where: str, params: Sequence[object], at: datetime
    ) -> list[ReservationRecord]:
        rows = tx.all(
            f"SELECT {_RESERVATION_COLUMNS} FROM budget_reservations WHERE {where}", params
        )
        found = [_reservation(r) for r in rows]
        insert_spend(tx, self.dialect, [_worst_case(r, at) for r in found])
        return found
