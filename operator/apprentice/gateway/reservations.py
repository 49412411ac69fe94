"""Group commit for budget reservations: every reservation asked meanwhile, one transaction.

A reservation is a store transaction that locks the budget and checks every cap
(:mod:`apprentice.store.budget`); one per request would be one fsync per request.
:class:`Batcher` queues what :class:`~apprentice.gateway.spending.SharedBudget` asks
for and hands the whole queue to ``Store.budget_reserve_many`` in one hop to a
thread: one commit, each reservation still checked against the totals including the
ones before it. Its caller awaits its own outcome (the hold, the cap it would cross,
or the store's failure).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable

from apprentice.store import Store, records
from apprentice.store.budget import BudgetTotals

__all__ = ["Admit", "Ask", "Batcher"]

Admit = Callable[[BudgetTotals], None]
"""The pure cap check a reservation's store transaction runs on the totals it sees."""
Ask = tuple[records.ReservationRecord, list[str], list[tuple[float, float]], Admit]
"""One reservation as the store takes it: ``(row, scopes, windows, admit)``."""


class Batcher:
    """Group commit for reservations: everything asked meanwhile, one store transaction."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self._queue: list[tuple[Ask, asyncio.Future[object]]] = []
        self._wakeup = asyncio.Event()
        self._worker = asyncio.get_running_loop().create_task(self._run(), name="budget-batcher")

    def submit(self, ask: Ask) -> asyncio.Future[object]:
        future: asyncio.Future[object] = asyncio.get_running_loop().create_future()
        self._queue.append((ask, future))
        self._wakeup.set()
        return future

    async def _run(self) -> None:
        while True:
            await self._wakeup.wait()
            self._wakeup.clear()
            while self._queue:
                batch, self._queue = self._queue, []
                try:
                    outcomes = await asyncio.to_thread(
                        self.store.budget_reserve_many, [ask for ask, _ in batch]
                    )
                except Exception as exc:  # the store failed: every asker hears it
                    outcomes = [exc] * len(batch)
                for (_, future), outcome in zip(batch, outcomes, strict=True):
                    if not future.done():
                        future.set_result(outcome)

    async def close(self) -> None:
        self._worker.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._worker
        for _, future in self._queue:
            if not future.done():
                future.set_result(RuntimeError("the budget is closed"))
