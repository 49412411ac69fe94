"""Booking what a request may have cost when it did not simply succeed.

The request pipeline (:mod:`apprentice.gateway.pipeline`) calls in here for the three
ways money can be lost: a failed teacher call that was billed all the same
(:meth:`Settler.failed`), a store write that fails after the teacher was paid
(:meth:`Settler.salvage`: 503 ``store_unavailable`` with the answer, never a
500 that throws a paid answer away), and a request cut off while its call was in
flight (:meth:`Settler.abandon`).

What is booked (the policy; "booked" means a spend line in the store):

- **An answer** (valid, schema-invalid, or its repair attempt): its priced usage.
  An invalid answer is a billed answer: it is booked and the request is recorded
  as failed (``task_counters.errors``), with its route, error and cost.
- **An answer without usage**, or with negative or absurd token counts: the
  provider ran the model but did not say for how much. Booked at the worst case
  of that attempt (prompt estimate plus ``max_output_tokens``), never as free and
  never as a refund; odd numbers are a ``ProviderError`` naming the provider.
- **An attempt that may have been billed without an answer**: a read or write
  timeout, a connection dropped after the request was sent, a 5xx. Booked at the
  worst case of that attempt. Before each retry the call's reservation must cover
  what it may have cost so far plus the retry's worst case; when the cap has no
  room for that, the call stops retrying and fails.
- **A call cut off by the gateway's own timeout or a crash**: booked at its whole
  reservation (the reserved worst case), since nothing tells what it cost.
- **Released, nothing booked**, only when nothing can have been billed: the
  connection was refused (or timed out while connecting), or the provider
  answered 4xx before the model ran (auth, rate limit, bad request, quota).
- **Judge calls** (live comparisons and held-out validation) and **teacher
  embeddings**: the same rules; each is reserved before it runs.
- **A paid student** (the ``openai`` fine-tune, spend kind ``student``): the same
  rules; reserved before it runs. With no room for it, it is not called: the
  teacher answers if the cap has room for the teacher, else 429 ``budget_exhausted``.
- **A crash**: reservations are rows. On restart a gateway settles the rows it
  owned at their reserved worst case; any gateway settles rows whose lease
  expired. A row whose answer was recorded no longer exists, so nothing is
  booked twice.
- **A failed store write after payment**: the spend line is written again on
  its own; if that fails too it goes to a small append-only journal file that
  is replayed at start; and if even that fails, the reservation row books the
  worst case. The caller gets 503 ``store_unavailable`` with the paid answer.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import math
import time
from datetime import UTC, datetime

from apprentice.gateway import errors, failures
from apprentice.gateway.journal import SpendJournal
from apprentice.gateway.request import Request
from apprentice.gateway.spending import Hold, SharedBudget
from apprentice.gateway.writer import StoreWriter
from apprentice.json_types import JsonObject
from apprentice.store import Store, records
from apprentice.students import base as students
from apprentice.teachers import errors as teacher_errors

log = logging.getLogger(__name__)


class StoreUnavailable(errors.GatewayError):
    """503: the teacher answered (and was paid) but the store could not record it.

    ``details.output`` carries the answer, ``details.request_id`` the request; the
    spend is booked (retried alone, else journaled and replayed at start).
    """

    status = 503
    type = "store_unavailable"


def charge(res: object, hold: Hold | None) -> float:
    """What a teacher call may have cost (see the budget module's policy)."""
    if isinstance(res, teacher_errors.TeacherError):
        return float(res.cost or 0.0)  # known cost plus worst case of unknown attempts
    if isinstance(res, BaseException):  # cut off by our timeout, or a bug: unknown
        return hold.amount if hold is not None and hold.called else 0.0
    return float(getattr(res, "cost", 0.0) or 0.0)


def provider_of(res: object) -> str | None:
    provider = getattr(res, "provider", None) if res is not None else None
    return provider if isinstance(provider, str) else None


def student_charge(res: object, hold: Hold | None) -> float:
    """What a student call may have cost: 0 for a local model, the bill of a paid one.

    A paid student's failure carries the teacher-side error that billed (its cause);
    one cut off by our timeout is booked at its reservation, as a teacher's.
    """
    if isinstance(res, students.StudentAnswer):
        return float(res.cost or 0.0)
    if isinstance(res, BaseException):
        if isinstance(res.__cause__, teacher_errors.TeacherError):
            return float(res.__cause__.cost or 0.0)
        if isinstance(res, students.StudentError):
            return 0.0  # refused before any model ran (no version, down)
        return hold.amount if hold is not None and hold.called else 0.0
    return 0.0


def spent(spend: list[records.SpendRecord]) -> float:
    """A request's ``cost``: the sum of its spend lines (teacher, paid student, judge)."""
    return math.fsum(line.amount for line in spend) if spend else 0.0


def call_lines(budget: SharedBudget, req: Request) -> list[records.SpendRecord]:
    """The settle: one spend line per reserved (or billed) call of ``req``, then the judge's.

    Each line names its reservation and is written in the request's own transaction;
    an amount of 0 just releases the hold.
    """
    name, now, lines = req.task.name, req.received_at, []
    if req.student_hold is not None or req.student_cost > 0:  # a paid student
        lines.append(
            budget.line(req.student_hold, name, req.student_cost, now, kind="student",
                        request_id=req.id, caller=req.meta.caller)
        )  # fmt: skip
    hold = req.teacher_hold
    if hold is not None:
        res = req.teacher or req.teacher_failure
        usage = req.teacher.usage if req.teacher is not None else None
        lines.append(
            budget.line(
                hold, name, req.teacher_cost, now, request_id=req.id, provider=provider_of(res),
                model=getattr(res, "model", None),
                input_tokens=usage.input_tokens if usage is not None else 0,
                output_tokens=usage.output_tokens if usage is not None else 0,
            )
        )  # fmt: skip
    return lines + req.spend


class Settler:
    """Failed requests, failed writes and abandoned calls, booked once."""

    def __init__(
        self, budget: SharedBudget, writer: StoreWriter, store: Store | None, journal: SpendJournal
    ) -> None:
        self.budget = budget
        self.writer = writer
        self.store = store
        self.journal = journal
        self._pending: set[asyncio.Task[None]] = set()

    async def failed(
        self, req: Request, err: object, spend: list[records.SpendRecord]
    ) -> records.RequestRecord:
        """Record a request nobody could answer, with what its paid calls cost."""
        reason = failures.reason(err) if isinstance(err, BaseException) else "InvalidOutput"
        request = records.RequestRecord(
            id=req.id, task=req.task.name, received_at=req.received_at, route=req.stored_route,
            served_by=None, teacher_provider=provider_of(err),
            latency_ms=(time.perf_counter() - req.started) * 1000, error=reason,
            cost=spent(spend),
        )  # fmt: skip
        try:
            await self.writer.submit_request(request=request, spend=spend)
        except Exception as exc:
            if spend:  # the caller gets the teacher's error; the spend is still booked
                await self._book(request, spend, exc)
        return request

    async def salvage(
        self,
        request: records.RequestRecord,
        spend: list[records.SpendRecord],
        output: JsonObject,
        exc: Exception,
    ) -> StoreUnavailable:
        """The request write failed after payment: book the spend, answer 503 with the output."""
        await self._book(request, spend, exc)
        return StoreUnavailable(
            "the answer was produced (and paid for) but the store could not record it "
            f"({type(exc).__name__}); its spend is booked. The answer is in details.output; "
            "retrying the request would pay again",
            details={"request_id": request.id, "output": output},
        )

    async def _book(
        self, request: records.RequestRecord, spend: list[records.SpendRecord], exc: Exception
    ) -> None:
        log.error("store write of paid request %s failed: %s", request.id, exc)
        if not spend:
            return
        bare = dataclasses.replace(request, error="store_write_failed")
        store = self.store
        assert store is not None, "requests are written only once the store is open"
        try:  # the request row and its spend alone (no example, comparison or state)
            await asyncio.to_thread(store.record_request, bare, spend=spend)
            return
        except Exception as again:
            log.error("request %s: spend alone not stored either: %s", request.id, again)
        try:
            await asyncio.to_thread(store.record_spend, spend)
            return
        except Exception as again:
            log.error("request %s: spend line not stored: %s; journaled", request.id, again)
        try:
            await asyncio.to_thread(self.journal.append, spend)
        except OSError as lost:  # the reservation row still books the worst case
            log.error("request %s: spend journal failed too: %s", request.id, lost)

    def release_all(self, holds: list[Hold]) -> None:
        """Holds a request ended with, unsettled: released, or their worst case if called."""
        for hold in holds:
            if not hold.done:
                self.abandon(hold)

    def abandon(self, hold: Hold) -> None:
        """A request ended without settling ``hold``: book its worst case (or release)."""
        hold.done = True
        task = asyncio.get_running_loop().create_task(self._abandon(hold))
        self._pending.add(task)
        task.add_done_callback(self._pending.discard)

    async def _abandon(self, hold: Hold) -> None:
        try:
            if hold.called:
                await self.budget.worst_case(hold, datetime.now(UTC))
            else:
                await self.budget.release(hold)
        except Exception as exc:  # the row stays: restart or lease expiry books it
            log.error("reservation %s not settled now (%s); its lease will book it", hold.id, exc)

    async def drain(self) -> None:
        if self._pending:
            await asyncio.gather(*list(self._pending), return_exceptions=True)
