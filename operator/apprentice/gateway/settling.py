"""Booking what a request may have cost when it did not simply succeed.

The request path (:mod:`apprentice.gateway.service`) calls in here for the three
ways money can be lost: a failed teacher call that was billed all the same
(:meth:`Settler.failed`), a store write that fails after the teacher was paid
(:meth:`Settler.salvage`: 503 ``store_unavailable`` with the answer, never a
500 that throws a paid answer away), and a request cut off while its call was in
flight (:meth:`Settler.abandon`). The policy is the budget module's docstring.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
from datetime import UTC, datetime
from typing import Any

from apprentice.gateway import errors, failures
from apprentice.gateway.journal import SpendJournal
from apprentice.gateway.spending import Hold, SharedBudget
from apprentice.gateway.tasks import TaskRuntime
from apprentice.gateway.writer import StoreWriter
from apprentice.store import records
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


def charge(res: Any, hold: Hold | None) -> float:
    """What a teacher call may have cost (see the budget module's policy)."""
    if isinstance(res, teacher_errors.TeacherError):
        return float(res.cost or 0.0)  # known cost plus worst case of unknown attempts
    if isinstance(res, BaseException):  # cut off by our timeout, or a bug: unknown
        return hold.amount if hold is not None and hold.called else 0.0
    return float(getattr(res, "cost", 0.0) or 0.0)


def provider_of(res: Any) -> str | None:
    return getattr(res, "provider", None) if res is not None else None


def teacher_line(
    budget: SharedBudget,
    rt: TaskRuntime,
    rid: str,
    hold: Hold,
    res: Any,
    cost: float,
    now: datetime,
) -> records.SpendRecord:
    """The spend line settling the teacher reservation (an amount of 0 just releases it)."""
    usage = getattr(res, "usage", None)
    return budget.line(
        hold, rt.name, cost, now, request_id=rid, provider=provider_of(res),
        model=getattr(res, "model", None),
        input_tokens=usage.input_tokens if usage is not None else 0,
        output_tokens=usage.output_tokens if usage is not None else 0,
    )  # fmt: skip


def student_charge(res: Any, hold: Hold | None) -> float:
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


def student_line(
    budget: SharedBudget, rt: TaskRuntime, rid: str, hold: Hold | None, res: Any, now: datetime
) -> records.SpendRecord | None:
    """The ``student`` spend line of a paid student's call (settles its hold), or ``None``."""
    cost = student_charge(res, hold)
    if hold is None and cost <= 0:
        return None  # a local student: nothing billed, nothing reserved
    return budget.line(hold, rt.name, cost, now, kind="student", request_id=rid)


class Settler:
    """Failed requests, failed writes and abandoned calls, booked once."""

    def __init__(
        self, budget: SharedBudget, writer: StoreWriter, store: Any, journal: SpendJournal
    ) -> None:
        self.budget = budget
        self.writer = writer
        self.store = store
        self.journal = journal
        self._pending: set[asyncio.Task[None]] = set()

    async def failed(
        self,
        rt: TaskRuntime,
        rid: str,
        route: str,
        err: Any,
        hold: Hold | None,
        cost: float,
        now: datetime,
        started: float,
        spend: list[records.SpendRecord],
    ) -> None:
        """Record a request nobody could answer, with what its paid calls cost."""
        spend = list(spend)
        if hold is not None:
            spend.append(teacher_line(self.budget, rt, rid, hold, err, cost, now))
        reason = failures.reason(err) if isinstance(err, BaseException) else "InvalidOutput"
        request = records.RequestRecord(
            id=rid, task=rt.name, received_at=now, route=route,  # type: ignore[arg-type]
            served_by=None, teacher_provider=provider_of(err),
            latency_ms=(time.perf_counter() - started) * 1000, error=reason, cost=cost,
        )  # fmt: skip
        try:
            await self.writer.submit_request(request=request, spend=spend)
        except Exception as exc:
            if spend:  # the caller gets the teacher's error; the spend is still booked
                await self._book(request, spend, exc)

    async def salvage(
        self,
        request: records.RequestRecord,
        spend: list[records.SpendRecord],
        output: dict[str, Any],
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
        try:  # the request row and its spend alone (no example, comparison or state)
            await asyncio.to_thread(self.store.record_request, bare, spend=spend)
            return
        except Exception as again:
            log.error("request %s: spend alone not stored either: %s", request.id, again)
        try:
            await asyncio.to_thread(self.store.record_spend, spend)
            return
        except Exception as again:
            log.error("request %s: spend line not stored: %s; journaled", request.id, again)
        try:
            await asyncio.to_thread(self.journal.append, spend)
        except OSError as lost:  # the reservation row still books the worst case
            log.error("request %s: spend journal failed too: %s", request.id, lost)

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
