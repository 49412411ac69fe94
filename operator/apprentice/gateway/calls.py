"""Step 2, call: the teacher and/or the student, concurrently, each under its timeout.

Timeouts are :class:`~apprentice.gateway.deadlines.Deadlines`, one timer for all
calls in flight (``asyncio.timeout`` per call was the path's largest CPU cost).

Answers are validated once, by whoever produced them, with the task's validators
compiled at start (:mod:`apprentice.schema_checks`): a teacher answers valid
output or raises ``InvalidOutput`` (after its one repair), a student answers
``output=None`` for invalid text. This step only records the outcome and what
each call may have cost (:mod:`apprentice.gateway.settling`'s policy).

Fallback: on the local-only route, a student that failed or answered nonsense is
replaced by the teacher, reserved first (no room: 503 ``student_unavailable``).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import TypeVar

from apprentice.gateway import judging, settling, tracing
from apprentice.gateway.admit import Admission
from apprentice.gateway.canary import CanaryCall
from apprentice.gateway.deadlines import Deadlines
from apprentice.gateway.parts import Parts
from apprentice.gateway.request import Request
from apprentice.gateway.spending import CallCover
from apprentice.json_types import JsonObject
from apprentice.students.base import StreamingStudent, StudentAnswer
from apprentice.teachers import billing
from apprentice.teachers.base import TeacherAnswer
from apprentice.vocabulary import Route

T = TypeVar("T")


class Caller:
    """Fills ``teacher``/``student`` (or their failures) and their costs into a request."""

    def __init__(self, parts: Parts, admission: Admission) -> None:
        self.parts = parts
        self.admission = admission  # the fallback's reservation goes through admission
        self.deadlines = Deadlines()  # one sweep timer for every call's timeout

    async def call(self, req: Request) -> None:
        canary, shadow = req.canary, None
        if canary is not None and canary.live.shadow:  # the candidate answers alongside
            shadow = asyncio.ensure_future(self._shadow(req, canary))
        calls_teacher, calls_student = req.route.calls_teacher, req.route.calls_student
        if calls_teacher and calls_student:  # the slower one sets the latency
            teacher, student = await asyncio.gather(
                self._teacher(req), self._student(req), return_exceptions=True
            )
        elif calls_teacher:
            teacher, student = await _settled(self._teacher(req)), None
        else:
            teacher, student = None, await _settled(self._student(req))
        if calls_student:
            self._note_student(req, student)
        if req.route is Route.local_only and req.student_output is None:
            teacher = await self._fall_back(req)  # None: no room; the commit step fails it
        if teacher is not None:
            self._note_teacher(req, teacher)
        if shadow is not None:
            await shadow
            if req.teacher is not None and canary is not None:
                await self._score_shadow(req, canary, req.teacher.output)

    async def _shadow(self, req: Request, canary: CanaryCall) -> None:
        """Shadow mode: the candidate's answer, scored once the teacher's is in (when the
        teacher was asked), never served."""
        call = canary.live.student.generate(req.task.cfg, req.input)
        got = await _settled(self.deadlines.run(call, self.parts.config.local.timeout_s))
        canary.answer = got if isinstance(got, StudentAnswer) else None

    async def _score_shadow(
        self, req: Request, canary: CanaryCall, teacher_output: JsonObject
    ) -> None:
        """The shadow answer's agreement with the teacher's; an ``llm_judge``'s call is
        reserved and its spend settled with the request, as the judge step does."""
        out = None if canary.answer is None else canary.answer.output
        graded, line = await judging.evaluate_reserved(
            self.parts.budget, req.task, out, teacher_output, req.input, req.id,
            req.received_at, caller=req.meta.caller,
        )  # fmt: skip
        if graded is not None:
            canary.score = graded.score
        if line is not None:
            req.spend.append(line)

    async def _teacher(self, req: Request) -> TeacherAnswer:
        hold = req.teacher_hold
        assert hold is not None, "admission reserves every teacher call"
        hold.called = True  # from here on the provider may bill: never released blindly
        cover = billing.current.set(CallCover(self.parts.budget, hold))
        try:
            pool, stream = self.parts.pool(), req.meta.stream
            generate = (
                pool.generate(req.task.cfg, req.input, request_id=req.id)
                if stream is None  # else its text goes to the client as it arrives
                else pool.generate_stream(
                    req.task.cfg, req.input, sink=stream(req.id), request_id=req.id
                )
            )
            call = tracing.teacher(req, generate)  # a span when tracing is on, else the call
            return await self.deadlines.run(call, self.parts.config.gateway.request_timeout_s)
        finally:
            billing.current.reset(cover)

    async def _student(self, req: Request) -> StudentAnswer:
        canary = req.canary  # share mode: the candidate answers the requests routed to it
        student = req.task.student if canary is None or canary.live.shadow else canary.live.student
        assert student is not None, "the engine routes to a student only when one is ready"
        hold = req.student_hold
        timeout = self.parts.config.local.timeout_s
        stream = req.meta.stream if req.route is Route.local_only else None  # it serves
        if stream is not None and isinstance(student, StreamingStudent):
            generate = student.generate_stream(req.task.cfg, req.input, sink=stream(req.id))
        else:
            generate = student.generate(req.task.cfg, req.input)
        call = tracing.student(req, generate)
        if hold is None:  # a local model: nothing to cover
            return await self.deadlines.run(call, timeout)
        hold.called = True  # a paid student: its retries ask the budget first, as a teacher's
        cover = billing.current.set(CallCover(self.parts.budget, hold))
        try:
            return await self.deadlines.run(call, timeout)
        finally:
            billing.current.reset(cover)

    def _note_student(self, req: Request, res: StudentAnswer | BaseException | None) -> None:
        if isinstance(res, StudentAnswer):
            req.student = res
        elif isinstance(res, BaseException):
            req.student_failure = res
        req.student_cost = settling.student_charge(res, req.student_hold)

    def _note_teacher(self, req: Request, res: TeacherAnswer | BaseException) -> None:
        req.teacher_cost = settling.charge(res, req.teacher_hold)
        if isinstance(res, TeacherAnswer):
            req.teacher = res
        else:
            req.teacher_failure = res

    async def _fall_back(self, req: Request) -> TeacherAnswer | BaseException | None:
        """The student could not answer on the local-only path: ask the teacher instead."""
        self.admission.check_storable(req.input)
        estimate = self.parts.pool().estimate_cost(req.task.cfg, req.input, request_id=req.id)
        req.teacher_hold = await self.admission.reserve(req, estimate)
        if req.teacher_hold is None:
            return None
        req.route = Route.both if req.student is not None else Route.remote_only
        return await _settled(self._teacher(req))


async def _settled(call: Awaitable[T]) -> T | Exception:
    try:
        return await call
    except Exception as exc:
        return exc
