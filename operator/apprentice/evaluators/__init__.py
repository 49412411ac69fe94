"""Evaluators: score a student's answer against the teacher's, in [0, 1].

``build_evaluator(task, ...)`` gives the task's evaluator; ``await
evaluator.evaluate(task, student_output, teacher_output)`` gives an
:class:`Evaluation`. Kinds: ``exact``, ``structured``, ``semantic``, ``judge``,
``custom`` (one module each); :mod:`apprentice.evaluators.base` holds the shared types.
"""

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
    build_evaluator,
    evaluate_sync,
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
