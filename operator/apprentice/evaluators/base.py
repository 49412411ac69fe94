"""What every evaluator returns, the protocol they share, and their errors.

A comparison scores a student's answer against the teacher's answer for the same
input: an agreement score in [0, 1] that the engine turns into confidence. The
task's ``evaluator`` picks the scorer (``apprentice.evaluators.build_evaluator``
builds it once per task), and the gateway awaits :meth:`Evaluator.evaluate` for
every comparison.

An invalid student answer (no JSON, or JSON that fails the output schema) is
passed as ``None``: it is a disagreement (score 0), never a crash, and the
details say why so reports can tell "wrong" from "unparseable".

Errors::

    EvaluatorError                   base of everything raised here
    ├── EvaluatorConfigError         the task's evaluator cannot be built (fix the config)
    ├── EvaluatorNotSync             evaluate_sync on an evaluator that needs the network
    ├── CustomEvaluatorError         a custom function failed or returned a bad score
    └── JudgeError                   no judge produced a usable grade

Teacher failures inside a judge call (rate limits, auth) are the teachers'
typed errors, kept as ``__cause__`` of the :class:`JudgeError`.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

from apprentice.config import EvaluatorKind, ProviderConfig, TaskConfig
from apprentice.teachers.base import Teacher

__all__ = [
    "CustomEvaluatorError",
    "Embedder",
    "Evaluation",
    "Evaluator",
    "EvaluatorConfigError",
    "EvaluatorError",
    "EvaluatorNotSync",
    "JudgeError",
    "JudgeFactory",
    "JudgeTeacher",
    "PureEvaluator",
    "ScoredEvaluator",
    "estimate_cost",
    "invalid_student",
]


class EvaluatorError(Exception):
    """Base of the evaluator errors."""


class EvaluatorConfigError(EvaluatorError):
    """The task's evaluator settings cannot work; the message says which key to fix."""


class EvaluatorNotSync(EvaluatorError):
    """A synchronous evaluation was asked of an evaluator that must call a model over the wire."""


class CustomEvaluatorError(EvaluatorError):
    """A ``custom`` entry point could not be loaded, raised, or returned a bad score."""


class JudgeError(EvaluatorError):
    """Every judge asked failed or answered something that is not a grade.

    ``cost`` is what the failed attempt still spent (billed calls whose reply was
    unusable); the gateway settles it against the budget like any judge cost.
    """

    cost: float = 0.0


@dataclass(frozen=True)
class Evaluation:
    """One comparison's result.

    ``score`` is the agreement in [0, 1]; ``details`` explains it (which fields
    differed, the judge's reason); ``cost`` is what producing the score spent in
    the budget currency (judge calls), so the gateway can settle it;
    ``judge_confidence`` is only set by an ensemble of judges: 1 minus their
    normalised disagreement (see :mod:`apprentice.evaluators.judge`).
    """

    score: float
    details: dict[str, Any] = field(default_factory=dict)
    cost: float = 0.0
    judge_confidence: float | None = None

    def __post_init__(self) -> None:
        # A score outside [0, 1] would silently corrupt the confidence engine.
        if not (isinstance(self.score, int | float) and math.isfinite(self.score)):
            raise ValueError(f"score must be a finite number, got {self.score!r}")
        if not 0.0 <= self.score <= 1.0:
            raise ValueError(f"score must be in [0, 1], got {self.score}")
        if not (math.isfinite(self.cost) and self.cost >= 0):
            raise ValueError(f"cost must be a finite number >= 0, got {self.cost!r}")
        conf = self.judge_confidence
        if conf is not None and not (math.isfinite(conf) and 0.0 <= conf <= 1.0):
            raise ValueError(f"judge_confidence must be in [0, 1], got {conf!r}")


def invalid_student(reason: str = "student output was invalid") -> Evaluation:
    """The score of an answer that could not be parsed or validated: total disagreement."""
    return Evaluation(0.0, {"invalid_student": True, "reason": reason})


JudgeTeacher = Teacher
"""The teacher client a judge grades with (any :class:`apprentice.teachers.Teacher`)."""


@runtime_checkable
class Embedder(Protocol):
    """Sentence embeddings: the packaged MiniLM model, or a teacher's embeddings endpoint."""

    async def embed(self, texts: list[str]) -> list[list[float]]: ...


JudgeFactory = Callable[[ProviderConfig], Teacher]
"""Builds a teacher client from a provider block (default: ``teachers.build_teacher``)."""


@runtime_checkable
class Evaluator(Protocol):
    """Scores a student's answer against the teacher's answer for one task."""

    kind: EvaluatorKind

    async def evaluate(
        self,
        task: TaskConfig,
        student_output: dict[str, Any] | None,
        teacher_output: dict[str, Any],
        *,
        task_input: dict[str, Any] | None = None,
    ) -> Evaluation:
        """Agreement in [0, 1]; ``student_output`` None (invalid answer) scores 0.

        ``task_input`` is optional context; only the judge shows it to the model.
        """
        ...

    async def aclose(self) -> None:
        """Release clients the evaluator opened (judge teachers); idempotent."""
        ...


def estimate_cost(
    evaluator: Evaluator,
    task: TaskConfig,
    student_output: dict[str, Any] | None,
    teacher_output: dict[str, Any],
    *,
    task_input: dict[str, Any] | None = None,
) -> float:
    """Worst-case budget cost of one :meth:`Evaluator.evaluate` call, for reservation.

    Evaluators that call a model (``llm_judge``) define ``estimate_cost`` with
    the same arguments; any other evaluator (exact, structured, custom, a
    third-party one written before the method existed) spends nothing: 0.0.
    Kept outside the :class:`Evaluator` protocol so older evaluators still match it.
    """
    method = getattr(evaluator, "estimate_cost", None)
    if method is None:
        return 0.0
    value = float(method(task, student_output, teacher_output, task_input=task_input))
    if not (math.isfinite(value) and value >= 0):
        raise ValueError(f"estimate_cost must be a finite number >= 0, got {value!r}")
    return value


@runtime_checkable
class PureEvaluator(Evaluator, Protocol):
    """An evaluator that needs no network or model call, usable from plain functions."""

    def score(
        self,
        task: TaskConfig,
        student_output: dict[str, Any] | None,
        teacher_output: dict[str, Any],
    ) -> Evaluation:
        """Same result as :meth:`evaluate`, synchronously."""
        ...


class ScoredEvaluator:
    """``evaluate`` and ``aclose`` for an evaluator whose ``score`` needs no I/O.

    Such an evaluator awaits nothing and holds no client, so both methods are the
    same for every one of them (exact and structured match) and live here.
    """

    def score(
        self,
        task: TaskConfig,
        student_output: dict[str, Any] | None,
        teacher_output: dict[str, Any],
    ) -> Evaluation:
        raise NotImplementedError

    async def evaluate(
        self,
        task: TaskConfig,
        student_output: dict[str, Any] | None,
        teacher_output: dict[str, Any],
        *,
        task_input: dict[str, Any] | None = None,
    ) -> Evaluation:
        return self.score(task, student_output, teacher_output)

    def estimate_cost(
        self,
        task: TaskConfig,
        student_output: dict[str, Any] | None,
        teacher_output: dict[str, Any],
        *,
        task_input: dict[str, Any] | None = None,
    ) -> float:
        """Scoring locally spends nothing from the budget."""
        return 0.0

    async def aclose(self) -> None:
        return None
