"""Step 4, commit: settle, update the engine, write one transaction, answer.

The request's spend lines (teacher, paid student, judge: each settling its
reservation), its example, its comparison and the engine state go to the store in
ONE transaction through the ordered writer (group-committed with its
neighbours). Engine state is a plain object mutated only by synchronous code on
the event loop (no ``await`` between a check and its update), and the engine
update and the write are queued together, so their order is the same.

Durability: a request that produced something that must never be lost (an
example, a spend line, a comparison, an engine state change) answers only after
its transaction is durable. A pure local answer in steady state carries none of
these; it answers at once and its row commits with the next group.

A request nobody could answer is recorded with what its paid calls cost (the
caller gets the typed 502/503); whatever may have been billed is booked.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from apprentice.gateway import errors, failures, settling, tracing
from apprentice.gateway.canary import LiveCanary
from apprentice.gateway.parts import Parts
from apprentice.gateway.request import Request, Result
from apprentice.gateway.tasks import ServedTask
from apprentice.json_types import JsonObject
from apprentice.reporting import alerts as alerts_mod
from apprentice.store import records
from apprentice.vocabulary import stored_route


def _observe_canary(
    req: Request, live: LiveCanary, comparison: records.ComparisonRecord | None
) -> None:
    """Each live comparison goes to the tally of the version that produced the answer."""
    call = req.canary
    if call is not None and call.live is not live:
        return  # routed to a canary that has ended since
    if call is not None and live.shadow:
        if call.score is not None:
            live.observe(candidate=True, score=call.score)
        if comparison is not None:
            live.observe(candidate=False, score=comparison.score)
    elif comparison is not None:
        live.observe(candidate=call is not None, score=comparison.score)
    elif call is not None and req.student_failure is not None:
        live.observe(candidate=True, score=0.0)  # the candidate could not answer at all


def _compared(
    req: Request, score: float, details: JsonObject, version: str | None
) -> records.ComparisonRecord:
    """One scored student answer of ``req``, in the engine's phase and rate before it learns.

    ``details`` carries the student's whole answer (``student_output``; None: invalid)
    beside the score: DPO exports pair it with the example's (training.export.dpo_rows).
    """
    engine = req.task.engine
    return records.ComparisonRecord(
        task=req.task.name, request_id=req.id, at=req.received_at, score=score,
        details=details, student_version=version, phase=engine.phase_name(),
        sampling_rate=engine.sampling_rate(),
    )  # fmt: skip


def _comparison(req: Request) -> records.ComparisonRecord | None:
    """The request's sampled comparison: the student it called against the teacher."""
    if req.evaluation is None or req.student is None:
        return None
    details: JsonObject = {**req.evaluation.details, "student_output": req.student.output}
    return _compared(req, req.evaluation.score, details, req.student.version)


def _shadow_comparison(req: Request) -> records.ComparisonRecord | None:
    """A shadow candidate's scored answer, stored beside the request's own comparison (so
    ``apprentice status`` and a restarted gateway see the canary's evidence)."""
    call = req.canary
    if call is None or not call.live.shadow or call.score is None:
        return None
    answer = None if call.answer is None else call.answer.output
    details: JsonObject = {"source": "shadow", "student_output": answer}
    return _compared(req, call.score, details, call.live.version)


class Committer:
    """Writes a finished request and reports it (metrics, alerts, events, training)."""

    def __init__(
        self,
        parts: Parts,
        *,
        write_events: Callable[[ServedTask], None],
        maybe_train: Callable[[ServedTask], None],
    ) -> None:
        self.parts = parts
        self.write_events = write_events
        self.maybe_train = maybe_train

    async def commit(self, req: Request) -> Result:
        spend = settling.call_lines(self.parts.budget, req)  # the settle
        output = req.output
        if output is None:
            raise await self._failed(req, spend)
        task, now = req.task, req.received_at
        comparison, shadow = _comparison(req), _shadow_comparison(req)
        example = None if req.teacher is None else task.make_example(req.input, req.teacher,
                                                                      req.id, now)  # fmt: skip
        before = task.engine.state
        # A share-mode candidate's score is the canary's, not the active version's engine's.
        candidate = req.canary is not None and not req.canary.live.shadow
        alarms = task.engine.record(
            score=None if comparison is None or candidate else comparison.score,
            example_added=example is not None,
            now=now,
        )
        request = self._request_row(req, spend, output)
        # An unchanged engine state (a local-only answer in steady state) is not rewritten.
        state = None if task.engine.state is before else task.engine.to_json()
        # Nothing here may be lost (no example, spend, comparison, state change): the row is
        # written behind, and the answer goes without waiting for the fsync.
        behind = example is None and not spend and comparison is None and state is None
        if behind and shadow is None:
            self.parts.writer.write_behind("a local-only request", request)
            future = None  # it stays queued in order and commits within milliseconds
        else:
            future = self.parts.writer.submit_request(
                request=request, example=example, comparison=comparison, spend=spend,
                task_state=state, shadow=shadow,
            )  # fmt: skip
        if task.engine.pending:  # phase changes and alarms: the events table, after the request
            self.write_events(task)
        self._report(req, request, comparison, alarms)
        if task.canary is not None:
            _observe_canary(req, task.canary, comparison)
        usage = req.usage
        if future is None:
            return Result(output, req.id, usage)
        try:
            result = await tracing.store(req, future)
        except Exception as exc:  # paid, then the store refused: book it, keep the answer
            raise await self.parts.settler.salvage(request, spend, output, exc) from exc
        if example is not None:
            # Counted before the write so the state saved in the same transaction includes
            # this example; a duplicate (the store collapsed it) is taken back here.
            if result.example_added:
                task.count_example(example.split)
            else:
                task.engine.add_example(-1)
        self.maybe_train(task)
        return Result(output, req.id, usage)

    def _request_row(
        self, req: Request, spend: list[records.SpendRecord], output: JsonObject
    ) -> records.RequestRecord:
        """The row of an answered request, with what it was asked and answered (for
        feedback): two references, serialised by the store's writer off the event loop."""
        teacher, failure = req.teacher, req.teacher_failure
        return records.request_row(
            id=req.id, task=req.task.name, received_at=req.received_at,
            route=stored_route(req.route), served_by=req.served_by,
            teacher_model=None if teacher is None else teacher.model,
            teacher_provider=settling.provider_of(teacher or failure),
            student_version=None if req.student is None else req.student.version,
            latency_ms=(time.perf_counter() - req.started) * 1000,
            error=None if failure is None else failures.reason(failure),
            cost=settling.spent(spend),
            tags=dict(req.meta.tags), caller=req.meta.caller, input=req.input, output=output,
        )  # fmt: skip

    async def _failed(self, req: Request, spend: list[records.SpendRecord]) -> errors.GatewayError:
        """Nobody answered: record the request with its cost, return the typed error."""
        metrics, name = self.parts.metrics, req.task.name
        err = req.teacher_failure or req.student or req.student_failure
        await self.parts.settler.failed(req, err, spend)
        if req.teacher_cost > 0:  # billed all the same: the spend metrics count it too
            who = settling.provider_of(req.teacher_failure) or "unknown"
            metrics.record_teacher_call(name, who, req.teacher_cost, 0.0)
        if req.teacher_failure is not None:
            metrics.record_error(name, "teacher_unavailable")
            return failures.teacher_error(req.teacher_failure)
        metrics.record_error(name, "student_unavailable")
        return failures.student_error(req.student or req.student_failure)

    def _report(
        self,
        req: Request,
        row: records.RequestRecord,
        comparison: records.ComparisonRecord | None,
        alarms: list[str],
    ) -> None:
        """Metrics, alerts and the budget's 80% / 100% alerts after a settle that spent.
        The request's route, who served it and its latency are its ``row``'s."""
        m, task = self.parts.metrics, req.task
        name, served, cost = task.name, row.served_by or "", req.teacher_cost
        m.record_request(name, row.route, served, row.latency_ms / 1000)
        if req.teacher is not None:
            m.record_teacher_call(name, req.teacher.provider, cost, req.teacher.latency_s)
            task.note_teacher_cost(cost)
        elif cost > 0:  # a failed call that was billed all the same
            who = settling.provider_of(req.teacher_failure) or "unknown"
            m.record_teacher_call(name, who, cost, 0)
        if req.student is not None:
            m.record_student_call(name, req.student.latency_s)
        if served == "student":  # a paid student's own bill is taken off (a counter: >= 0)
            m.record_savings(name, max(0.0, task.avg_teacher_cost() - req.student_cost))
        if comparison is not None:
            m.record_agreement(name, comparison.score)
            view = task.engine.view()
            m.set_task_state(
                name, phase=view.phase, sampling_rate=view.sampling_rate,
                confidence=view.confidence, confidence_lower_bound=view.confidence_lower_bound,
            )  # fmt: skip
        for kind in alarms:
            self.parts.alerts.emit(alerts_mod.alarm(kind, name, task.engine.view()))
        if cost > 0 or req.student_cost > 0:
            budget = self.parts.budget
            spend = budget.windows(name, req.received_at)
            for alert in alerts_mod.budget_alerts(name, spend=spend, caps=budget.caps(name)):
                self.parts.alerts.emit(alert)
