"""One group commit for request transactions and budget reservations: one fsync for both.

A paid request makes two durable writes: its budget reservation, before the teacher
call, and its request transaction (request row, example, spend line that settles the
reservation, engine state) after it. Under paced traffic each small batch of either
paid its own commit and fsync (about 400 us fixed plus 35 us a write on SQLite). The
gateway's writer (:mod:`apprentice.gateway.writer`) queues both kinds, and
:meth:`BatchRows.record_requests` runs everything queued meanwhile in ONE transaction.

The order inside that transaction, and why:

1. The budget lock (PostgreSQL's ``budget_lock`` row; SQLite's ``BEGIN IMMEDIATE``
   already holds the file), first, as in every budget transaction: no deadlock.
2. The request transactions, in the order they were queued (the writer's order of
   engine-state writes). Their spend lines settle reservations: a settle frees the
   difference between what was held and what was billed, so it goes first and the
   reservations after it are checked against the truth. (A settle never names a
   reservation of the same batch: its caller awaited that reservation's commit
   before the call it pays for.)
3. The reservations, in the order asked, each checked against the window spend and
   every reservation open in the transaction, including the ones admitted before it
   in this batch (:meth:`BudgetRows._reserve_all`).

Each request transaction stays atomic on its own: the batch is first tried without
savepoints (PostgreSQL slows down sharply past 64 subtransactions); if anything
fails, it is rolled back and run again with each request write, and the block of
reservations, in its own savepoint, so one failure is returned in its place and the
rest commit. A refused reservation is not a failure: its ``BudgetExhausted`` is
returned in its place. If the commit itself fails, nothing of the batch was kept and
the call raises: every caller hears it.

The first try writes in bulk (:mod:`apprentice.store.bulk`): each table's rows of all
the request transactions in a few multi-row statements, then every spend line, then
each task's last engine state (the writer's order makes it the newest), leaving exactly
the rows of each transaction in turn; the isolated retry writes each transaction on its
own. Either way the admitted reservations' rows go in together at the end of their
block, each ask still checked against those admitted before it.
"""

from __future__ import annotations

from collections.abc import Sequence

from apprentice.store import budget
from apprentice.store.base import StoreUnavailableError
from apprentice.store.budget import Ask, BudgetRows, BudgetTotals
from apprentice.store.records import RecordResult, RequestWrite
from apprentice.store.requests import RequestRows
from apprentice.store.sqlcore import Tx

Outcome = RecordResult | BudgetTotals | Exception
"""One item's outcome: a request's result, the totals a reservation saw, or its failure."""


class BatchRows(RequestRows, BudgetRows):
    """The group commit (see the module docstring)."""

    def record_requests(
        self, writes: Sequence[RequestWrite], reservations: Sequence[Ask] = ()
    ) -> list[Outcome]:
        """Request transactions and reservations, ONE durable commit.

        Returns the outcome of each write, then of each reservation, in their orders.
        """
        batch, asks = list(writes), list(reservations)
        if not batch and not asks:
            return []
        locked = bool(asks) or any(write.get("spend") for write in batch)
        try:
            return self._commit(batch, asks, locked, isolated=False)
        except StoreUnavailableError:
            raise  # the database failed, not a write: retrying would not help
        except Exception:
            pass  # some write failed and the whole batch rolled back: isolate it
        return self._commit(batch, asks, locked, isolated=True)

    def _commit(
        self, batch: list[RequestWrite], asks: list[Ask], locked: bool, *, isolated: bool
    ) -> list[Outcome]:
        with self._write() as tx:
            if locked:
                budget.lock(tx, self.dialect)
            done: list[Outcome] = []
            if batch:  # settles first: they free what they held beyond their cost
                done.extend(self._write_requests(tx, batch, isolated))
            if asks:
                done.extend(self._reserve_block(tx, asks, isolated))
            return done

    def _reserve_block(
        self, tx: Tx, asks: list[Ask], isolated: bool
    ) -> list[BudgetTotals | Exception]:
        """The reservations; isolated, in one savepoint: a failure is every asker's, alone."""
        if not isolated:
            return self._reserve_all(tx, asks)
        tx.execute("SAVEPOINT reservations")
        try:
            with self._translated():
                out = self._reserve_all(tx, asks)
        except Exception as error:
            tx.execute("ROLLBACK TO SAVEPOINT reservations")
            out = [error] * len(asks)
        tx.execute("RELEASE SAVEPOINT reservations")
        return out
