"""Evaluators: score a student's answer against the teacher's, in [0, 1].

``build_evaluator(task, ...)`` gives the task's evaluator; ``await
evaluator.evaluate(task, student_output, teacher_output)`` gives an
:class:`Evaluation`. Kinds: ``exact``, ``structured``, ``semantic``, ``judge``,
``custom`` (one module each); :mod:`apprentice.evaluators.base` holds the shared types.

:data:`REGISTRY` maps each :class:`~apprentice.config.EvaluatorKind` to its
factory. It lives here, above every evaluator module, so none imports it back.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from apprentice.config import EvaluatorKind, ProviderConfig, TaskConfig
from apprentice.evaluators import custom, exact, judge, semantic, structured
from apprentice.evaluators.base import (
    CustomEvaluatorError,
    Embedder,
    Evaluation,
    Evaluator,
    EvaluatorConfigError,
    EvaluatorError,
    EvaluatorNotSync,
    JudgeError,
    JudgeFactory,
    JudgeTeacher,
    PureEvaluator,
    invalid_student,
)

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
    "build_evaluator",
    "evaluate_sync",
    "invalid_student",
]


@dataclass(frozen=True)
class EvaluatorDeps:
    """What a factory gets besides the task (see :func:`build_evaluator`)."""

    judge_factory: JudgeFactory | None
    embedder: Embedder | None
    default_judge: ProviderConfig | None


EvaluatorFactory = Callable[[TaskConfig, EvaluatorDeps], Evaluator]
"""Builds one task's evaluator; raises :class:`EvaluatorConfigError` for options it cannot use."""


def _semantic(task: TaskConfig, wiring: EvaluatorDeps) -> Evaluator:
    return semantic.SemanticSimilarity(
        task,
        embedder=wiring.embedder,
        judge_factory=wiring.judge_factory,
        default_judge=wiring.default_judge,
    )


def _judge(task: TaskConfig, wiring: EvaluatorDeps) -> Evaluator:
    return judge.LLMJudge(
        task, judge_factory=wiring.judge_factory, default_judge=wiring.default_judge
    )


REGISTRY: dict[EvaluatorKind, EvaluatorFactory] = {
    EvaluatorKind.exact_match: lambda task, _: exact.ExactMatch(task),
    EvaluatorKind.structured_match: lambda task, _: structured.StructuredMatch(task),
    EvaluatorKind.semantic_similarity: _semantic,
    EvaluatorKind.llm_judge: _judge,
    EvaluatorKind.custom: lambda task, _: custom.CustomEvaluator(task),
}

_PURE_KINDS = frozenset(
    {EvaluatorKind.exact_match, EvaluatorKind.structured_match, EvaluatorKind.custom}
)
"""The kinds that score without a model call (``evaluate_sync`` may build them)."""


def build_evaluator(
    task: TaskConfig,
    *,
    judge_factory: JudgeFactory | None = None,
    embedder: Embedder | None = None,
    default_judge: ProviderConfig | None = None,
) -> Evaluator:
    """The evaluator the task's config asks for.

    ``judge_factory`` turns a judge's ``ProviderConfig`` into a teacher client
    (default ``apprentice.teachers.build_teacher``; tests pass one with a
    transport or environment); ``llm_judge`` uses it, and ``semantic_similarity``
    with ``embedding: teacher`` uses it when no ``embedder`` is given.
    ``embedder`` replaces the packaged MiniLM model (or, for ``embedding:
    teacher``, is the teacher whose embeddings endpoint to use).
    ``default_judge`` is the judge when ``evaluator_options.judges`` is empty
    (the gateway passes its primary teacher's config).
    """
    factory = REGISTRY.get(task.evaluator)
    if factory is None:
        known = ", ".join(kind.value for kind in REGISTRY)
        raise EvaluatorConfigError(
            f"task {task.name}: unknown evaluator {task.evaluator.value!r}; known: {known}"
        )
    return factory(task, EvaluatorDeps(judge_factory, embedder, default_judge))


def evaluate_sync(
    task: TaskConfig,
    student_output: dict[str, Any] | None,
    teacher_output: dict[str, Any],
    *,
    evaluator: Evaluator | None = None,
) -> Evaluation:
    """Score without an event loop, for offline scoring (held-out validation, reports).

    Works for ``exact_match``, ``structured_match`` and (synchronous) ``custom``;
    pass a prebuilt ``evaluator`` to avoid rebuilding it per example. The others
    must call a model and raise :class:`EvaluatorNotSync`: await ``evaluate``.
    """
    if evaluator is None and task.evaluator not in _PURE_KINDS:
        evaluator_kind = task.evaluator.value
        raise EvaluatorNotSync(
            f"task {task.name}: the {evaluator_kind} evaluator calls a model; "
            "await Evaluator.evaluate(...) instead of evaluate_sync"
        )
    chosen = evaluator if evaluator is not None else build_evaluator(task)
    if not isinstance(chosen, PureEvaluator):
        raise EvaluatorNotSync(
            f"task {task.name}: the {task.evaluator.value} evaluator calls a model; "
            "await Evaluator.evaluate(...) instead of evaluate_sync"
        )
    return chosen.score(task, student_output, teacher_output)
