"""One task's live state inside the gateway."""

from __future__ import annotations

import asyncio
from collections import deque
from datetime import datetime
from typing import Any, Protocol, runtime_checkable

from apprentice.config import TaskConfig
from apprentice.gateway import glue
from apprentice.gateway.validation import TaskSchemas
from apprentice.store import records
from apprentice.students import base as students


@runtime_checkable
class PaidStudent(Protocol):
    """A student whose answers are billed (the ``openai`` fine-tune): reserved like a teacher."""

    def estimate_cost(self, task: TaskConfig, task_input: dict[str, Any]) -> float: ...


class TaskRuntime:
    """One task's live state: engine, compiled schemas, student, evaluator, counters."""

    def __init__(self, cfg: TaskConfig, engine: glue.TaskEngine, heldout_fraction: float) -> None:
        self.cfg = cfg
        self.name = cfg.name
        self.schemas = TaskSchemas.for_task(cfg)
        self.engine = engine
        self.heldout_fraction = heldout_fraction
        self.student: students.Student | None = None
        self.student_error: str | None = None
        self.evaluator: Any = None
        self.paused = False
        self.budget_flagged = False
        self.examples = {"train": 0, "heldout": 0}
        self.training: asyncio.Task[Any] | None = None
        self._costs: deque[float] = deque(maxlen=200)

    def student_estimate(self, task_input: dict[str, Any]) -> float | None:
        """The worst case a paid student's answer may bill; ``None`` for a free student."""
        if isinstance(self.student, PaidStudent):
            return float(self.student.estimate_cost(self.cfg, task_input))
        return None

    def student_ready(self) -> bool:
        return self.student is not None and self.student.active_version() is not None

    async def evaluate(
        self,
        student_output: dict[str, Any] | None,
        teacher_output: dict[str, Any],
        task_input: dict[str, Any],
    ) -> Any:
        return await self.evaluator.evaluate(
            self.cfg, student_output, teacher_output, task_input=task_input
        )

    def make_example(
        self, task_input: dict[str, Any], answer: Any, rid: str, now: datetime
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
        self._costs.append(cost)

    def avg_teacher_cost(self) -> float:
        return sum(self._costs) / len(self._costs) if self._costs else 0.0

    def training_in_progress(self) -> bool:
        return self.training is not None and not self.training.done()
