"""The gateway's budget: every reservation a store row, one cap across every gateway.

A cap held in memory is a cap per process; two gateways on one store spent twice
the cap. So :class:`SharedBudget` reserves in the store (one locked transaction:
see :mod:`apprentice.store.budget`), with the pure check of
:func:`apprentice.engine.budget.reserve` applied to the totals the transaction
sees. Settling is a spend line naming the reservation, written in the request's
own transaction (the writer's group commit), so the booking and the request are
one commit. The policy of what is booked when is in :mod:`apprentice.gateway.settling`.

Reads (status, metrics, alerts) use :attr:`SharedBudget.mirror`, a pure ledger
refreshed from the store at every reservation and by :meth:`refresh`: it may lag
other gateways by a moment, which only affects what is displayed, never a cap.

Crashes: a reservation row outlives its process. :meth:`recover` (at start)
books the rows this gateway (``owner``: ``APPRENTICE_INSTANCE_ID``, else the host
name, which a restarted container keeps) left behind at their worst case, after
replaying the spend journal (:mod:`apprentice.gateway.journal`) at exact cost.
Any gateway books reservations whose lease expired (``ttl_s``) the same way.
"""

from __future__ import annotations

import asyncio
import math
import os
import socket
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from apprentice.config import ApprenticeConfig
from apprentice.engine import budget as budget_mod
from apprentice.gateway.ids import random_request_id
from apprentice.gateway.ledger import LedgerMirror
from apprentice.gateway.writer import StoreWriter
from apprentice.store import Store, records
from apprentice.store.budget import Admit, Ask, BudgetTotals
from apprentice.teachers.billing import Bill

GLOBAL = budget_mod.GLOBAL


def instance_id() -> str:
    """Who owns this gateway's reservations across its restarts."""
    return os.environ.get("APPRENTICE_INSTANCE_ID") or socket.gethostname() or "apprentice"


@dataclass
class Hold:
    """One open reservation: what the call may cost at most (``amount`` grows on retries)."""

    id: str
    task: str
    amount: float
    kind: records.SpendKind = "teacher"
    request_id: str | None = None
    caller: str | None = None  # the API key charged: its caps are checked, its spend kept
    called: bool = False  # the paid call started: from now on it may have been billed
    done: bool = False  # settled or released (a spend line written or queued)


class CallCover:
    """The :class:`apprentice.teachers.billing.Cover` of one hold: grows it on retry.

    Every bill (one per model call under this hold: a teacher call, or each judge
    of a panel running concurrently) may reach what it asks for; the hold must
    cover their sum, so the sum is what is compared and extended.
    """

    def __init__(self, budget: SharedBudget, hold: Hold) -> None:
        self.budget = budget
        self.hold = hold
        self._asked: dict[int, float] = {}
        self._lock = asyncio.Lock()  # concurrent judges extend one at a time

    async def cover(self, bill: Bill, total: float) -> bool:
        async with self._lock:
            asked = dict(self._asked)
            asked[id(bill)] = max(total, asked.get(id(bill), 0.0))
            need = math.fsum(asked.values())
            if need > self.hold.amount and not await self.budget.extend(
                self.hold, need - self.hold.amount
            ):
                return False
            self._asked = asked
            return True


class SharedBudget:
    """Reserve, extend and release in the store; settle with spend lines; read the mirror."""

    def __init__(
        self,
        cfg: ApprenticeConfig,
        store: Store | None = None,
        *,
        owner: str | None = None,
        ttl_s: float | None = None,
        writer: StoreWriter | None = None,
    ) -> None:
        self.cfg = cfg
        self.store = store
        self.limits = budget_mod.BudgetLimits.from_config(cfg)
        self._bounds: list[tuple[float, float]] = []  # see _windows (day first)
        self.owner = owner or instance_id()
        # A lease outlives any call it covers: the request timeout, the judge, slack.
        self.ttl_s = ttl_s if ttl_s is not None else max(600.0, 3 * cfg.gateway.request_timeout_s)
        self.mirror = LedgerMirror(cfg)
        # Reservations queue in the gateway's writer, sharing its group commits; while
        # it is not serving (or without one), in a writer of the budget's own.
        self._writer = writer
        self._own: StoreWriter | None = None
        self._returns: set[asyncio.Task[None]] = set()

    async def close(self) -> None:
        if self._returns:
            await asyncio.gather(*list(self._returns), return_exceptions=True)
        if self._own is not None:
            await self._own.close()  # finishes what is queued
            self._own = None

    def _queue(self) -> StoreWriter:
        if self._writer is not None and self._writer.running:
            return self._writer
        if self._own is None:
            self._own = StoreWriter(self._opened())
            self._own.start()
        return self._own

    # -- writes (each one store transaction, off the event loop) ------------------------

    def _opened(self) -> Store:
        assert self.store is not None, "the budget needs the open store (start() first)"
        return self.store

    def _admit(self, task: str, amount: float, now: float, caller: str | None = None) -> Admit:
        limits = self.limits

        def admit(totals: BudgetTotals) -> None:
            key = None
            if caller is not None:  # the key's caps as its row says in this transaction
                scope = budget_mod.key_scope(caller)
                caps = totals.key_caps.get(scope)
                key = None if caps is None else (scope, budget_mod.Caps(*caps))
            # reserve()'s own check on these totals (raises BudgetExhausted), without the
            # ledger it would return: this runs on the store's busy writer thread.
            budget_mod.check(limits, now, totals.spent, totals.pending, task, amount, key)
            self.mirror.ledger = self._ledger(totals, now)

        return admit

    @staticmethod
    def _scopes(task: str, caller: str | None) -> list[str]:
        if caller is None:
            return [task, GLOBAL]
        return [task, GLOBAL, budget_mod.key_scope(caller)]

    def _ledger(self, totals: BudgetTotals, now: float) -> budget_mod.Ledger:
        return budget_mod.from_window_totals(self.limits, now, totals.spent, totals.pending)

    def _windows(self, now: float) -> list[tuple[float, float]]:
        """The day, week and month around ``now`` (recomputed only when the day changes)."""
        last = self._bounds
        if last and last[0][0] <= now < last[0][1]:  # within the same day: same windows
            return last
        bounds = budget_mod.window_bounds(self.limits, now)
        self._bounds = [bounds[w] for w in budget_mod.WINDOWS]
        return self._bounds

    async def reserve(
        self,
        task: str,
        estimate: float,
        now: datetime,
        *,
        kind: records.SpendKind = "teacher",
        request_id: str | None = None,
        caller: str | None = None,
    ) -> Hold | None:
        """A hold of ``estimate`` for ``task``, or ``None`` when a cap would be crossed."""
        got = await self.hold(task, estimate, now, kind=kind, request_id=request_id, caller=caller)
        return None if isinstance(got, budget_mod.BudgetExhausted) else got

    async def hold(
        self,
        task: str,
        estimate: float,
        now: datetime,
        *,
        kind: records.SpendKind = "teacher",
        request_id: str | None = None,
        caller: str | None = None,
    ) -> Hold | budget_mod.BudgetExhausted:
        """A hold of ``estimate``, or the cap it would cross (task, global or ``caller``'s key).

        Reservations and request transactions queued meanwhile share one store
        transaction (one fsync: :mod:`apprentice.gateway.writer`); each reservation is
        still checked against the totals including those before it. It is durable
        when this returns, before the call it covers starts.
        """
        hold, ask = self._ask(task, estimate, now, kind, request_id, caller)
        future = self._queue().submit_reservation(ask)
        try:
            await asyncio.shield(future)
        except budget_mod.BudgetExhausted as refused:
            return refused
        except asyncio.CancelledError:  # the caller left; a hold admitted later is given back
            future.add_done_callback(lambda f: self._give_back(hold, f))
            raise
        return hold

    def _give_back(self, hold: Hold, future: asyncio.Future[BudgetTotals]) -> None:
        if not future.cancelled() and future.exception() is None:
            task = asyncio.get_running_loop().create_task(self.release(hold))
            self._returns.add(task)
            task.add_done_callback(self._returns.discard)

    def _ask(
        self,
        task: str,
        estimate: float,
        now: datetime,
        kind: records.SpendKind,
        request_id: str | None,
        caller: str | None = None,
    ) -> tuple[Hold, Ask]:
        amount = float(estimate)
        if not (math.isfinite(amount) and amount >= 0):
            raise ValueError(f"estimate must be a finite amount >= 0, got {estimate!r}")
        hold = Hold(random_request_id(), task, amount, kind, request_id, caller)
        t = now.timestamp()
        row = records.ReservationRecord(
            id=hold.id, task=task, amount=amount, owner=self.owner, created_at=now,
            expires_at=now + timedelta(seconds=self.ttl_s), kind=kind, request_id=request_id,
            caller=caller,
        )  # fmt: skip
        admit = self._admit(task, amount, t, caller)
        return hold, (row, self._scopes(task, caller), self._windows(t), admit)

    def reserve_now(
        self,
        task: str,
        estimate: float,
        now: datetime,
        *,
        kind: records.SpendKind = "teacher",
        request_id: str | None = None,
    ) -> Hold | None:
        """:meth:`reserve`, blocking (one store transaction on this thread)."""
        hold, (row, scopes, windows, admit) = self._ask(task, estimate, now, kind, request_id)
        try:
            self._opened().budget_reserve(row, scopes=scopes, windows=windows, admit=admit)
        except budget_mod.BudgetExhausted:
            return None
        return hold

    async def extend(self, hold: Hold, more: float) -> bool:
        """Grow ``hold`` by ``more`` if every cap has room (a retry that may be billed)."""
        return await asyncio.to_thread(self.extend_now, hold, more, datetime.now(UTC))

    def extend_now(self, hold: Hold, more: float, now: datetime) -> bool:
        t = now.timestamp()
        try:
            ok = self._opened().budget_extend(
                hold.id, more, scopes=self._scopes(hold.task, hold.caller),
                windows=self._windows(t), admit=self._admit(hold.task, more, t, hold.caller),
            )  # fmt: skip
        except budget_mod.BudgetExhausted:
            return False
        if ok:
            hold.amount += more
        return bool(ok)

    async def release(self, hold: Hold) -> None:
        """Nothing can have been billed: give the amount back."""
        await asyncio.to_thread(self.release_now, hold)

    def release_now(self, hold: Hold) -> None:
        hold.done = True
        self._opened().budget_release([hold.id])

    def line(
        self,
        hold: Hold | None,
        task: str,
        amount: float,
        now: datetime,
        *,
        kind: records.SpendKind = "teacher",
        request_id: str | None = None,
        provider: str | None = None,
        model: str | None = None,
        input_tokens: int = 0,
        output_tokens: int = 0,
        caller: str | None = None,
    ) -> records.SpendRecord:
        """The spend line that settles ``hold`` at ``amount`` (write it with the request).

        It is charged to the hold's API key (``caller`` when there is no hold).
        """
        if hold is not None:
            hold.done = True
            caller = hold.caller
        if amount > 0:
            self.mirror.record(task, amount, now)
        return records.SpendRecord(
            task=task, at=now, amount=amount, kind=kind, request_id=request_id,
            provider=provider, model=model, input_tokens=max(0, input_tokens),
            output_tokens=max(0, output_tokens), reservation=None if hold is None else hold.id,
            caller=caller,
        )  # fmt: skip

    async def settle(
        self, hold: Hold, amount: float, now: datetime, *, request_id: str | None = None
    ) -> None:
        """Book ``amount`` against ``hold`` now, outside a request write (0: release)."""
        await asyncio.to_thread(self.settle_now, hold, amount, now, request_id=request_id)

    def settle_now(
        self, hold: Hold, amount: float, now: datetime, *, request_id: str | None = None
    ) -> None:
        if amount <= 0 and not hold.called:
            self.release_now(hold)
            return
        entry = self.line(hold, hold.task, amount, now, kind=hold.kind, request_id=request_id)
        self._opened().record_spend([entry])

    async def worst_case(self, hold: Hold, now: datetime) -> None:
        """The call's cost is unknown (cut off, crashed): book the whole reservation."""
        await self.settle(hold, hold.amount, now, request_id=hold.request_id)

    async def recover(self, now: datetime) -> list[records.ReservationRecord]:
        """At start: book what this gateway (before its restart) and expired leases held."""
        return await asyncio.to_thread(self.recover_now, now)

    def recover_now(self, now: datetime) -> list[records.ReservationRecord]:
        return list(self._opened().budget_recover(owner=self.owner, now=now))

    async def refresh(self, now: datetime) -> None:
        """Re-read the window totals of every scope (status, metrics)."""
        await asyncio.to_thread(self.refresh_now, now)

    def refresh_now(self, now: datetime) -> None:
        t = now.timestamp()
        scopes = [*self.limits.task_caps, GLOBAL]
        totals = self._opened().budget_totals(scopes, self._windows(t))
        self.mirror.ledger = self._ledger(totals, t)

    # -- reads (the mirror) -------------------------------------------------------------

    def windows(self, task: str, now: datetime) -> dict[str, float]:
        return self.mirror.windows(task, now)

    def caps(self, task: str) -> dict[str, float | None]:
        return self.mirror.caps(task)

    def exhausted(self, task: str, now: datetime, typical_cost: float = 0.0) -> bool:
        return self.mirror.exhausted(task, now, typical_cost)

    def exhausted_caps(
        self, task: str | None, now: datetime, typical_cost: float = 0.0
    ) -> list[tuple[str, budget_mod.Window, datetime]]:
        """``(scope, window, resets_at)`` of each cap that stops the teacher (for status)."""
        found = budget_mod.exhausted_caps(self.mirror.ledger, now.timestamp(), task, typical_cost)
        return [(s, w, datetime.fromtimestamp(at, UTC)) for s, w, at in found]
