"""Step 3, judge: one comparison scored with its judge spend reserved first.

Judge calls (``llm_judge``) are spend like teacher calls: the evaluator's
worst-case estimate is reserved before it runs and the reservation is settled
with what it billed, so concurrent comparisons can never push spend past a cap.
When the budget has no room for the judge the comparison is skipped: the caller
still gets its answer, the engine just learns nothing from this request.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Protocol, runtime_checkable

from apprentice import teachers as teacher_registry
from apprentice.config import ProviderConfig, TaskConfig
from apprentice.evaluators import base as evaluators_base
from apprentice.evaluators.base import Evaluation, Evaluator, EvaluatorError, JudgeFactory
from apprentice.gateway.request import Request
from apprentice.gateway.spending import CallCover, Hold, SharedBudget
from apprentice.gateway.tasks import ServedTask
from apprentice.json_types import JsonObject
from apprentice.store import records
from apprentice.teachers import billing
from apprentice.teachers.base import Teacher

log = logging.getLogger(__name__)


async def judge(budget: SharedBudget, req: Request) -> None:
    """Step 3: score the student against the teacher (``req.evaluation``); the pipeline
    runs it only when both answered."""
    assert req.teacher is not None and req.student is not None  # the pipeline's check
    evaluation, line = await evaluate_reserved(
        budget, req.task, req.student.output, req.teacher.output, req.input, req.id,
        req.received_at, caller=req.meta.caller,
    )  # fmt: skip
    req.evaluation = evaluation
    if line is not None:
        req.spend.append(line)


async def evaluate_reserved(
    budget: SharedBudget,
    rt: ServedTask,
    student_output: JsonObject | None,
    teacher_output: JsonObject,
    task_input: JsonObject,
    rid: str,
    now: datetime,
    *,
    caller: str | None = None,
) -> tuple[Evaluation | None, records.SpendRecord | None]:
    """The evaluation (None: no comparison) and the spend line settling the judge's hold.

    With ``caller`` (the request's API key) the judge is charged to the key too.
    """
    evaluator = rt.evaluator
    if evaluator is None:  # not serving: nothing to score with
        return None, None
    try:
        estimate = evaluators_base.estimate_cost(
            evaluator, rt.cfg, student_output, teacher_output, task_input=task_input
        )
    except Exception as exc:  # an estimate bug must not fail the caller's request
        log.warning("task %s: no judge cost estimate, no comparison: %s", rt.name, exc)
        return None, None
    hold = None
    if estimate > 0:
        hold = await budget.reserve(
            rt.name, estimate, now, kind="judge", request_id=rid, caller=caller
        )
        if hold is None:
            log.info(
                "task %s: request %s not compared: the budget has no room for the "
                "judge's worst case (%.6f)",
                rt.name,
                rid,
                estimate,
            )
            return None, None
        hold.called = True
    evaluation = None
    cover = billing.current.set(None if hold is None else CallCover(budget, hold))
    try:
        evaluation = await rt.evaluate(student_output, teacher_output, task_input)
        actual = evaluation.cost
    except Exception as exc:  # a judge outage must not fail the caller's request
        log.warning("task %s: evaluator failed, no comparison: %s", rt.name, exc)
        actual = float(getattr(exc, "cost", 0.0) or 0.0)  # JudgeError: what it still billed
    finally:
        billing.current.reset(cover)
    if actual > 0 and hold is None:  # an evaluator that spends without an estimate: a bug
        log.warning("task %s: evaluator spent %.6f with no estimate", rt.name, actual)
        return evaluation, budget.line(
            None, rt.name, actual, now, kind="judge", request_id=rid, caller=caller
        )
    if hold is None:
        return evaluation, None
    overrun(rt.name, hold, actual)
    line = budget.line(hold, rt.name, actual, now, kind="judge", request_id=rid)
    return evaluation, line


def overrun(task: str, hold: Hold, actual: float) -> None:
    if actual > hold.amount:  # the estimate is a worst case: going past it is a bug to report
        log.warning(
            "task %s: judge cost %.6f exceeded its reservation %.6f; booking it all",
            task,
            actual,
            hold.amount,
        )


class BudgetedEvaluator:
    """An evaluator whose model calls are reserved and booked: held-out validation's judge.

    The orchestrator scores a candidate on held-out examples with the task's
    evaluator; with ``llm_judge`` (or teacher embeddings) each of those calls is
    spend like any other, so it goes through the same reserve-then-book steps.
    When a cap has no room the validation fails with a clear error.
    """

    def __init__(self, inner: Evaluator, budget: SharedBudget, task: str) -> None:
        self.inner = inner
        self.kind = inner.kind
        self.budget = budget
        self.task = task

    def __getattr__(self, name: str) -> object:
        return getattr(self.inner, name)  # the rest is the evaluator's own

    async def aclose(self) -> None:
        await self.inner.aclose()

    async def evaluate(
        self,
        task: TaskConfig,
        student_output: JsonObject | None,
        teacher_output: JsonObject,
        *,
        task_input: JsonObject | None = None,
    ) -> Evaluation:
        estimate = evaluators_base.estimate_cost(
            self.inner, task, student_output, teacher_output, task_input=task_input
        )
        if estimate <= 0:
            return await self.inner.evaluate(
                task, student_output, teacher_output, task_input=task_input
            )
        now = datetime.now(UTC)
        hold = await self.budget.reserve(self.task, estimate, now, kind="judge")
        if hold is None:
            raise EvaluatorError(
                f"task {self.task}: the budget has no room for a validation judge call "
                f"({estimate:.6f}); raise the caps or wait for the window to roll over"
            )
        hold.called = True
        cover = billing.current.set(CallCover(self.budget, hold))  # judge retries ask first
        try:
            evaluation = await self.inner.evaluate(
                task, student_output, teacher_output, task_input=task_input
            )
        except Exception as exc:
            await self.budget.settle(hold, float(getattr(exc, "cost", 0.0) or 0.0), now)
            raise
        except BaseException:
            await self.budget.worst_case(hold, now)
            raise
        finally:
            billing.current.reset(cover)
        overrun(self.task, hold, evaluation.cost)
        await self.budget.settle(hold, evaluation.cost, now)
        return evaluation


@runtime_checkable
class BillsEmbeddings(Protocol):
    """A teacher that can say what its embeddings cost (the remote ones)."""

    async def embed_billed(self, texts: list[str]) -> tuple[list[list[float]], float]: ...

    def estimate_embed_cost(self, texts: list[str]) -> float: ...


class BilledEmbeddings:
    """A judge teacher whose ``embed`` is reserved and booked (``embedding: teacher``).

    ``semantic_similarity`` embeds through a teacher's endpoint, whose interface
    returns vectors only; this wrapper reserves the worst case first, asks the
    teacher for vectors *and* their cost, and books it as ``embedding`` spend.
    Every other method is the teacher's own (judges' ``complete`` is booked by
    the comparison that asked for it).
    """

    def __init__(self, inner: Teacher, budget: SharedBudget, task: str) -> None:
        self.inner = inner
        self.name, self.provider, self.model = inner.name, inner.provider, inner.model
        self.generate, self.complete = inner.generate, inner.complete
        self.estimate_cost = inner.estimate_cost
        self.budget = budget
        self.task = task

    def __getattr__(self, name: str) -> object:
        return getattr(self.inner, name)  # the rest is the teacher's own

    async def embed(self, texts: list[str]) -> list[list[float]]:
        inner = self.inner
        if not isinstance(inner, BillsEmbeddings):  # it cannot say what they cost: not ours
            return await inner.embed(texts)
        now = datetime.now(UTC)
        estimate = float(inner.estimate_embed_cost(texts))
        hold = await self.budget.reserve(self.task, estimate, now, kind="embedding")
        if hold is None:
            raise EvaluatorError(
                f"task {self.task}: the budget has no room for teacher embeddings "
                f"({estimate:.6f}); no comparison"
            )
        hold.called = True
        try:
            vectors, cost = await inner.embed_billed(texts)
        except Exception as exc:
            await self.budget.settle(hold, float(getattr(exc, "cost", 0.0) or 0.0), now)
            raise
        except BaseException:
            await self.budget.worst_case(hold, now)
            raise
        await self.budget.settle(hold, float(cost), now)
        return list(vectors)

    async def aclose(self) -> None:
        await self.inner.aclose()


def billed_judges(budget: SharedBudget, task: str) -> JudgeFactory:
    """A ``judge_factory`` whose teachers book their embeddings against ``task``."""

    def factory(provider: ProviderConfig) -> Teacher:
        return BilledEmbeddings(teacher_registry.build_teacher(provider), budget, task)

    return factory
