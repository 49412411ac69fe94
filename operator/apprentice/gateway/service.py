"""The request path, exactly as ARCHITECTURE.md's "One request" diagram.

::

    validate input (422; on PostgreSQL an unstorable NUL: 400, before paying)
      -> budget reserve worst case in the store (429 / student serves)
      -> engine route: remote_only | local_only | both
      -> teacher and/or student concurrently (timeouts; retries ask the budget first)
      -> validate outputs (an invalid student answer is a disagreement, score 0)
      -> both: reserve judge worst case, evaluator score -> engine observe
      -> store ONE transaction (request, example, comparison, spend lines that
         settle the reservations, engine state) -> same-shaped response

Whatever may have been billed is booked, also when the request fails (an invalid
answer, a 5xx, a timeout): the failed request is recorded with its cost
(:mod:`apprentice.gateway.settling`; the policy is :mod:`apprentice.engine.budget`'s).

Concurrency: engine state is a plain object mutated only by synchronous code on
the event loop (no ``await`` between a check and its update), so concurrent
requests cannot interleave inside an observation. Budget reservations are store
transactions under a lock (one cap across every gateway process), group-committed
like the request writes, which go through one ordered writer.

Durability: a request that produced something that must never be lost (an
example, a spend line, a comparison, an engine state change) answers only after
its transaction is durable. A pure local answer in steady state carries none of
these; it answers at once and its row commits with the next group.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from apprentice.gateway import errors, failures, glue, judging, settling, spending
from apprentice.gateway.runtime import Runtime
from apprentice.gateway.tasks import TaskRuntime
from apprentice.reporting import alerts as alerts_mod
from apprentice.reporting import snapshot
from apprentice.store import StoreError, records
from apprentice.students import base as students
from apprentice.teachers import billing
from apprentice.teachers import errors as teacher_errors

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Result:
    """What a caller gets: the validated output and the request id (never who answered)."""

    output: dict[str, Any]
    request_id: str


def _log_failure(future: asyncio.Future[Any]) -> None:
    if not future.cancelled() and future.exception() is not None:
        log.error("store write of a local-only request failed: %s", future.exception())


class Gateway(Runtime):
    """Executes the engine's per-request decisions; see the module docstring."""

    def check_task(self, name: str) -> TaskRuntime:
        rt = self.tasks.get(name)
        if rt is None:
            raise errors.UnknownTask(name, list(self.tasks))
        return rt

    async def run(self, task: str, task_input: Any) -> Result:
        rt = self.check_task(task)
        if not isinstance(task_input, dict):
            raise errors.InvalidInput(
                "input must be a JSON object",
                details=[{"path": "<root>", "message": f"{type(task_input).__name__} given"}],
            )
        problems = rt.schemas.input.errors(task_input)
        if problems:
            raise errors.InvalidInput(
                f"input does not match {task}'s input_schema: "
                + "; ".join(f"{p['path']}: {p['message']}" for p in problems[:5]),
                details=problems,
            )
        started = time.perf_counter()
        request_id = self.new_request_id()
        now = datetime.now(UTC)
        student_ready = rt.student_ready()
        decision = rt.engine.route(request_id, student_ready=student_ready)
        holds: list[spending.Hold] = []
        student_hold: spending.Hold | None = None
        student_estimate = rt.student_estimate(task_input) if decision.calls_student else None
        if student_estimate is not None:  # a paid student: reserved like a teacher
            student_hold = await self._reserve(rt, student_estimate, now, request_id, "student")
            if student_hold is None:  # no room: the student is not called
                student_ready = False
                decision = rt.engine.route(request_id, student_ready=False)
            else:
                holds.append(student_hold)
        route = decision.route.value
        token: spending.Hold | None = None
        try:
            if decision.calls_teacher:
                self._check_storable(task_input)
                estimate = self.teachers.estimate_cost(rt.cfg, task_input, request_id=request_id)
                token = await self._reserve(rt, estimate, now, request_id)
                if token is None:
                    route = self._over_budget(
                        rt, request_id, student_ready, estimate, now, student_estimate
                    )
                else:
                    rt.budget_flagged = False
                    holds.insert(0, token)
            return await self._execute(
                rt, task_input, request_id, route, holds, now, started, student_hold
            )
        finally:
            for hold in holds:  # cut off (cancelled, a bug): never silently free
                if not hold.done:
                    self.settler.abandon(hold)

    def _check_storable(self, task_input: dict[str, Any]) -> None:
        """Never pay for what cannot be stored: refuse such an input before the teacher."""
        problem = self.store.unstorable(task_input) if self.store is not None else None
        if problem:
            raise errors.BadRequest(problem, details=[{"path": "input", "message": problem}])

    def _over_budget(
        self,
        rt: TaskRuntime,
        rid: str,
        student_ready: bool,
        estimate: float,
        now: datetime,
        student_estimate: float | None,
    ) -> str:
        """A cap would be crossed: the student serves (flagged, alerted) or 429.

        A paid student whose own reservation was refused is not ready: 429 too.
        """
        allowed = student_ready and self.config.budget.pause_remote_when_exhausted
        decision = rt.engine.route(rid, student_ready=allowed, teacher_allowed=False)
        self.alerts.emit(
            alerts_mod.cap_reached(
                rt.name,
                snapshot.blocking_cap(self.budget.mirror.ledger, now, rt.name, estimate),
                currency=self.config.budget.currency,
                consequence="the student serves (flagged)"
                if decision.calls_student
                else "requests refused",
                estimate=estimate,
            )
        )
        if decision.calls_student:
            rt.budget_flagged = True
            return "local_only"
        self.metrics.record_error(rt.name, "budget_exhausted")
        raise errors.BudgetExhausted(
            f"the teacher budget for {rt.name} is exhausted and no student may answer instead "
            + (
                "(budget.pause_remote_when_exhausted is false)"
                if student_ready
                else "(the student's answers are paid and the budget has no room for them)"
                if student_estimate is not None
                else "(no model version is promoted yet)"
            )
            + "; raise the caps or wait for the window to roll over",
            details={
                "task": rt.name,
                "spend": self.budget.windows(rt.name, now),
                "caps": self.budget.caps(rt.name),
            },
        )

    async def _call_teacher(
        self, rt: TaskRuntime, task_input: dict[str, Any], rid: str, hold: spending.Hold
    ) -> Any:
        hold.called = True  # from here on the provider may bill: never released blindly
        cover = billing.current.set(spending.CallCover(self.budget, hold))
        try:
            async with asyncio.timeout(self.config.gateway.request_timeout_s):
                return await self.teachers.generate(rt.cfg, task_input, request_id=rid)
        finally:
            billing.current.reset(cover)

    async def _call_student(
        self, rt: TaskRuntime, task_input: dict[str, Any], hold: spending.Hold | None
    ) -> Any:
        assert rt.student is not None
        if hold is None:
            # asyncio.timeout, not wait_for: no extra task per request on the hot path.
            async with asyncio.timeout(self.config.local.timeout_s):
                return await rt.student.generate(rt.cfg, task_input)
        hold.called = True  # a paid student: its retries ask the budget first, as a teacher's
        cover = billing.current.set(spending.CallCover(self.budget, hold))
        try:
            async with asyncio.timeout(self.config.local.timeout_s):
                return await rt.student.generate(rt.cfg, task_input)
        finally:
            billing.current.reset(cover)

    @staticmethod
    async def _settled(call: Any) -> Any:
        try:
            return await call
        except Exception as exc:
            return exc

    async def _execute(
        self,
        rt: TaskRuntime,
        task_input: dict[str, Any],
        rid: str,
        route: str,
        holds: list[spending.Hold],
        now: datetime,
        started: float,
        student_hold: spending.Hold | None,
    ) -> Result:
        token = holds[0] if holds and holds[0] is not student_hold else None
        want_teacher = route != "local_only"
        want_student = route != "remote_only"
        teacher_res: Any = None
        student_res: Any = None
        if want_teacher and want_student:  # both at once: the slower one sets the latency
            assert token is not None
            teacher_res, student_res = await asyncio.gather(
                self._call_teacher(rt, task_input, rid, token),
                self._call_student(rt, task_input, student_hold),
                return_exceptions=True,
            )
        elif want_teacher:
            assert token is not None
            teacher_res = await self._settled(self._call_teacher(rt, task_input, rid, token))
        else:
            student_res = await self._settled(self._call_student(rt, task_input, student_hold))
        spend = []
        if want_student:  # a paid student's answer (or failure) is booked, as a teacher's
            line = settling.student_line(self.budget, rt, rid, student_hold, student_res, now)
            if line is not None:
                spend.append(line)

        student_answer = student_res if isinstance(student_res, students.StudentAnswer) else None
        student_output = None
        if (
            student_answer is not None
            and student_answer.output is not None
            and rt.schemas.output.is_valid(student_answer.output)
        ):
            student_output = student_answer.output

        # The student failed or answered nonsense on the local path: ask the teacher.
        if route == "local_only" and student_output is None:
            self._check_storable(task_input)
            fallback = await self._fallback_token(rt, task_input, rid, now)
            if fallback is None:
                await self.settler.failed(
                    rt, rid, route, student_res, None, 0.0, now, started, spend
                )
                raise self._student_error(rt, student_res)
            token = fallback
            holds.append(fallback)
            want_teacher = True
            try:
                teacher_res = await self._call_teacher(rt, task_input, rid, fallback)
            except Exception as exc:
                teacher_res = exc
            route = "both" if student_answer is not None else "remote_only"

        # What the teacher call may have cost, answer or not (the budget module's policy).
        teacher_cost = settling.charge(teacher_res, token) if want_teacher else 0.0
        teacher_answer = None
        if want_teacher and not isinstance(teacher_res, BaseException):
            if rt.schemas.output.is_valid(teacher_res.output):
                teacher_answer = teacher_res
            else:  # billed all the same: booked below, the request recorded as failed
                teacher_res = teacher_errors.InvalidOutput(
                    "teacher output failed the output schema", provider=teacher_res.provider
                )
                teacher_res.cost = teacher_cost
        # Served: the teacher's answer when it was called and answered, else the student's.
        if teacher_answer is not None:
            output, served = teacher_answer.output, "teacher"
        elif student_output is not None:
            output, served = student_output, "student"
        else:
            err = teacher_res if isinstance(teacher_res, BaseException) else student_res
            await self.settler.failed(
                rt, rid, route, err, token, teacher_cost, now, started, spend
            )
            if teacher_cost > 0:  # billed all the same: the spend metrics count it too
                who = settling.provider_of(teacher_res) or "unknown"
                self.metrics.record_teacher_call(rt.name, who, teacher_cost, 0.0)
            raise self._failure(rt, err, want_teacher)

        comparison = None
        evaluation = None
        judge_line = None
        if teacher_answer is not None and student_answer is not None:
            evaluation, judge_line = await judging.evaluate_reserved(
                self.budget, rt, student_output, teacher_answer.output, task_input, rid, now
            )
        if evaluation is not None and student_answer is not None:
            comparison = records.ComparisonRecord(
                task=rt.name,
                request_id=rid,
                at=now,
                score=evaluation.score,
                details=evaluation.details,
                student_version=student_answer.version,
                phase=rt.engine.phase_name(),
                sampling_rate=rt.engine.sampling_rate(),
            )
        if token is not None and want_teacher:
            spend.append(settling.teacher_line(self.budget, rt, rid, token, teacher_res,
                                               teacher_cost, now))  # fmt: skip
        if judge_line is not None:
            spend.append(judge_line)
        return await self._commit(
            rt,
            task_input,
            rid,
            route,
            served,
            output,
            teacher_res,
            teacher_answer,
            student_answer,
            comparison,
            teacher_cost,
            spend,
            now,
            started,
        )

    async def _fallback_token(
        self, rt: TaskRuntime, task_input: dict[str, Any], rid: str, now: datetime
    ) -> spending.Hold | None:
        estimate = self.teachers.estimate_cost(rt.cfg, task_input, request_id=rid)
        return await self._reserve(rt, estimate, now, rid)

    async def _reserve(
        self,
        rt: TaskRuntime,
        estimate: float,
        now: datetime,
        rid: str,
        kind: records.SpendKind = "teacher",
    ) -> spending.Hold | None:
        """A store reservation; a store that cannot answer is a 503 before any payment."""
        try:
            return await self.budget.reserve(rt.name, estimate, now, kind=kind, request_id=rid)
        except StoreError as exc:
            self.metrics.record_error(rt.name, "store_unavailable")
            raise settling.StoreUnavailable(
                f"the budget could not be checked ({exc}); the teacher was not called, retry later",
                details={"request_id": rid},
            ) from exc

    def _student_error(self, rt: TaskRuntime, res: Any) -> errors.GatewayError:
        self.metrics.record_error(rt.name, "student_unavailable")
        return failures.student_error(res)

    def _failure(self, rt: TaskRuntime, err: Any, teacher_called: bool) -> errors.GatewayError:
        if teacher_called and isinstance(err, BaseException):
            self.metrics.record_error(rt.name, "teacher_unavailable")
            return failures.teacher_error(err)
        return self._student_error(rt, err)

    async def _commit(
        self,
        rt: TaskRuntime,
        task_input: dict[str, Any],
        rid: str,
        route: str,
        served: str,
        output: dict[str, Any],
        teacher_res: Any,
        teacher_answer: Any,
        student_answer: Any,
        comparison: records.ComparisonRecord | None,
        cost: float,
        spend: list[records.SpendRecord],
        now: datetime,
        started: float,
    ) -> Result:
        paid = teacher_res is not None and not isinstance(teacher_res, BaseException)
        example = None
        if teacher_answer is not None:
            example = rt.make_example(task_input, teacher_answer, rid, now)
        # Engine update and the write are queued together, synchronously: order preserved.
        before = rt.engine.state
        new_alarms = rt.engine.record(
            score=None if comparison is None else comparison.score,
            example_added=example is not None,
            now=now,
        )
        latency_ms = (time.perf_counter() - started) * 1000
        request = records.RequestRecord(
            id=rid,
            task=rt.name,
            received_at=now,
            route=route,  # type: ignore[arg-type]
            served_by=served,  # type: ignore[arg-type]
            teacher_model=teacher_res.model if paid else None,
            teacher_provider=settling.provider_of(teacher_res),
            student_version=student_answer.version if student_answer is not None else None,
            latency_ms=latency_ms,
            error=None if paid or teacher_res is None else failures.reason(teacher_res),
            cost=cost,
        )
        # An unchanged engine state (a local-only answer in steady state) is not rewritten.
        state = None if rt.engine.state is before else rt.engine.to_json()
        future = self.writer.submit_request(
            request=request, example=example, comparison=comparison, spend=spend, task_state=state
        )
        if rt.engine.pending:  # phase changes and alarms: the events table, after the request
            self.write_events(rt)
        self._after_request(
            rt,
            route,
            served,
            cost,
            comparison,
            teacher_res,
            student_answer,
            new_alarms,
            started,
            now,
        )
        if example is None and not spend and comparison is None and state is None:
            # Nothing here may be lost (no example, spend, comparison or engine change):
            # answer without waiting for the fsync. The write stays queued in order and
            # commits within milliseconds; a crash can lose at most this request's row.
            future.add_done_callback(_log_failure)
            return Result(output, rid)
        try:
            result = await future
        except Exception as exc:  # paid, then the store refused: book it, keep the answer
            raise await self.settler.salvage(request, spend, output, exc) from exc
        if example is not None:
            # Counted before the write so the state saved in the same transaction includes
            # this example; a duplicate (the store collapsed it) is taken back here, and
            # start-up re-reads the store's counts anyway.
            if result.example_added:
                rt.count_example(example.split)
            else:
                rt.engine.add_example(-1)
        self.maybe_train(rt)
        return Result(output, rid)

    def _after_request(
        self,
        rt: TaskRuntime,
        route: str,
        served: str,
        cost: float,
        comparison: records.ComparisonRecord | None,
        teacher_res: Any,
        student_answer: Any,
        new_alarms: list[str],
        started: float,
        now: datetime,
    ) -> None:
        m = self.metrics
        m.record_request(rt.name, route, served, time.perf_counter() - started)
        if teacher_res is not None and not isinstance(teacher_res, BaseException):
            m.record_teacher_call(rt.name, teacher_res.provider, cost, teacher_res.latency_s)
            rt.note_teacher_cost(cost)
        elif cost > 0:  # a failed call that was billed all the same
            m.record_teacher_call(rt.name, settling.provider_of(teacher_res) or "unknown", cost, 0)
        if student_answer is not None:
            m.record_student_call(rt.name, student_answer.latency_s)
        if served == "student":
            m.record_savings(rt.name, rt.avg_teacher_cost())
        if comparison is not None:
            m.record_agreement(rt.name, comparison.score)
            view = rt.engine.view()
            m.set_task_state(
                rt.name,
                phase=view.phase,
                sampling_rate=view.sampling_rate,
                confidence=view.confidence,
                confidence_lower_bound=view.confidence_lower_bound,
            )
        for kind in new_alarms:
            self.alerts.emit(alerts_mod.alarm(kind, rt.name, rt.engine.view()))
        if cost > 0 or (student_answer is not None and student_answer.cost > 0):
            spend = self.budget.windows(rt.name, now)
            for alert in alerts_mod.budget_alerts(
                rt.name, spend=spend, caps=self.budget.caps(rt.name)
            ):
                self.alerts.emit(alert)


__all__ = ["Gateway", "Result", "glue"]
