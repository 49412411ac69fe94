"""One task as the gateway serves it: its engine, compiled schemas, student and evaluator."""

from __future__ import annotations

import asyncio
from collections import deque
from datetime import datetime
from typing import Any, Protocol, runtime_checkable

from apprentice import schema_checks
from apprentice.config import TaskConfig
from apprentice.evaluators.base import Evaluation, Evaluator
from apprentice.gateway.canary import LiveCanary
from apprentice.gateway.task_engine import TaskEngine
from apprentice.store import records
from apprentice.students import base as students
from apprentice.teachers.base import TeacherAnswer


@runtime_checkable
class PaidStudent(Protocol):
    """A student whose answers are billed (the ``openai`` fine-tune): reserved like a teacher."""

    def estimate_cost(self, task: TaskConfig, task_input: dict[str, Any]) -> float: ...


class ServedTask:
    """One task's live state: engine, compiled schemas, student, evaluator, counters.

    Whether the task is paused is the engine state's flag (``engine.paused``), the
    one place it lives, saved with the state.
    """

    def __init__(self, cfg: TaskConfig, engine: TaskEngine, heldout_fraction: float) -> None:
        self.cfg = cfg
        self.name = cfg.name
        self.schemas = schema_checks.for_task(cfg)  # the same validators teachers use
        self.engine = engine
        self.heldout_fraction = heldout_fraction
        self.student: students.Student | None = None
        self.paid: PaidStudent | None = None  # the student again, when its answers are billed
        self.student_error: str | None = None
        self.evaluator: Evaluator | None = None
        self.examples = {"train": 0, "heldout": 0}
        self.training: asyncio.Task[None] | None = None
        self.canary: LiveCanary | None = None  # a candidate on live traffic (gateway/canary.py)
        self._costs: deque[float] = deque(maxlen=200)
        self._cost_sum = 0.0

    def attach_student(self, student: students.Student) -> None:
        """Serve with ``student``; whether it is paid is decided here, once, not per request."""
        self.student = student
        self.paid = student if isinstance(student, PaidStudent) else None

    def student_ready(self) -> bool:
        return self.student is not None and self.student.active_version() is not None

    def student_estimate(self, task_input: dict[str, Any]) -> float | None:
        """The worst case a paid student's answer may bill; ``None`` for a free student."""
        if self.paid is None:
            return None
        return float(self.paid.estimate_cost(self.cfg, task_input))

    async def evaluate(
        self,
        student_output: dict[str, Any] | None,
        teacher_output: dict[str, Any],
        task_input: dict[str, Any],
    ) -> Evaluation:
        assert self.evaluator is not None, "no evaluator: the gateway is not serving"
        return await self.evaluator.evaluate(
            self.cfg, student_output, teacher_output, task_input=task_input
        )

    def make_example(
        self, task_input: dict[str, Any], answer: TeacherAnswer, rid: str, now: datetime
    ) -> records.ExampleRecord:
        digest = records.input_hash(task_input)
        return records.ExampleRecord(
            task=self.name,
            input=task_input,
            output=answer.output,
            input_hash=digest,
            split=records.assign_split(digest, self.heldout_fraction),
            teacher_provider=answer.provider,
            teacher_model=answer.model,
            created_at=now,
            cost=answer.cost,
            request_id=rid,
        )

    def count_example(self, split: str) -> None:
        self.examples[split] = self.examples.get(split, 0) + 1

    def note_teacher_cost(self, cost: float) -> None:
        if len(self._costs) == self._costs.maxlen:
            self._cost_sum -= self._costs[0]
        self._costs.append(cost)
        self._cost_sum += cost

    def avg_teacher_cost(self) -> float:
        """The mean of the last 200 teacher costs (O(1): read on every student answer)."""
        return max(0.0, self._cost_sum / len(self._costs)) if self._costs else 0.0

    def training_in_progress(self) -> bool:
        return self.training is not None and not self.training.done()
