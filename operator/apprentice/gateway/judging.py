"""One comparison scored with its judge spend reserved first (ARCHITECTURE "Budget").

Judge calls (``llm_judge``) are spend like teacher calls: the evaluator's
worst-case estimate is reserved before it runs and the reservation is settled
with what it billed, so concurrent comparisons can never push spend past a cap.
When the budget has no room for the judge the comparison is skipped: the caller
still gets its answer, the engine just learns nothing from this request.
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any

from apprentice.evaluators import base as evaluators_base
from apprentice.gateway import glue
from apprentice.gateway.tasks import TaskRuntime

log = logging.getLogger(__name__)


async def evaluate_reserved(
    budget: glue.Budget,
    rt: TaskRuntime,
    student_output: dict[str, Any] | None,
    teacher_output: dict[str, Any],
    task_input: dict[str, Any],
    rid: str,
    now: datetime,
) -> tuple[Any, float]:
    """The evaluation (None: no comparison) and the judge cost settled, for the ledger."""
    try:
        estimate = evaluators_base.estimate_cost(
            rt.evaluator, rt.cfg, student_output, teacher_output, task_input=task_input
        )
    except Exception as exc:  # an estimate bug must not fail the caller's request
        log.warning("task %s: no judge cost estimate, no comparison: %s", rt.name, exc)
        return None, 0.0
    token = None
    if estimate > 0:
        token = budget.reserve(rt.name, estimate, now)
        if token is None:
            log.info(
                "task %s: request %s not compared: the budget has no room for the "
                "judge's worst case (%.6f)",
                rt.name,
                rid,
                estimate,
            )
            return None, 0.0
    evaluation = None
    try:
        evaluation = await rt.evaluate(student_output, teacher_output, task_input)
        actual = evaluation.cost
    except Exception as exc:  # a judge outage must not fail the caller's request
        log.warning("task %s: evaluator failed, no comparison: %s", rt.name, exc)
        actual = float(getattr(exc, "cost", 0.0) or 0.0)  # JudgeError: what it still billed
    except BaseException:
        if token is not None:
            budget.release(token)
        raise
    settle(budget, rt.name, token, estimate, actual, now)
    return evaluation, actual


def settle(
    budget: glue.Budget,
    task: str,
    token: int | None,
    reserved: float,
    actual: float,
    now: datetime,
) -> None:
    """Book ``actual`` against the judge reservation; never settle more than reserved."""
    if token is not None:
        if actual <= 0:
            budget.release(token)
            return
        budget.settle(token, min(actual, reserved), now)
    if actual > reserved:  # the estimate is a worst case: going past it is a bug to report
        log.warning(
            "task %s: judge cost %.6f exceeded its reservation %.6f; booking the difference",
            task,
            actual,
            reserved,
        )
        budget.record(task, actual - reserved, now)
