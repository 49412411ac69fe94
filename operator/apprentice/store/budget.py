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
from apprentice.store.holds import GLOBAL as GLOBAL
from apprentice.store.holds import KEY_PREFIX as KEY_PREFIX
from apprentice.store.holds import KeyCaps as KeyCaps
from apprentice.store.holds import OpenHolds as OpenHolds
from apprentice.store.records import ReservationRecord, SpendKind, SpendRecord
from apprentice.store.sqlcore import SqlCore, Tx

_RESERVATION_COLUMNS = "id, task, amount, owner, created_at, expires_at, kind, request_id, caller"

Windows = Sequence[tuple[float, float]]
"""``[start, end)`` Unix seconds of each budget window (day, week, month), in order."""


Admit = Callable[["BudgetTotals"], None]
"""The caller's pure check: raises to refuse a reservation."""

Ask = tuple[ReservationRecord, Sequence[str], Windows, Admit]
"""One reservation of a group commit: ``(row, scopes, windows, admit)``."""


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


def insert_spend(
    tx: Tx,
    dialect: schema.Dialect,
    entries: Sequence[SpendRecord],
    open_ids: set[str] | None = None,
) -> int:
    """Insert ledger lines, add them to the window buckets, settle their reservations.

    A line naming a reservation that no longer exists is skipped: that
    reservation was already booked at its worst case (lease expiry, restart).
    A zero line with a reservation just releases it. Returns how many lines were written.
    A few statements however many lines (a group commit's: :mod:`apprentice.store.bulk`).
    ``open_ids``: which of the reservations named are open, if the caller read it in
    ``tx`` with another lookup (:func:`~apprentice.store.bulk.read`); consumed.
    """
    if not entries:
        return 0
    lock(tx, dialect)
    held = [s.reservation for s in entries if s.reservation is not None]
    if open_ids is None:
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
        held = OpenHolds(tx)
        if held.expired(codec.to_micros(first)):  # booked first, then everything read again
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
