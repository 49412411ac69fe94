"""``structured_match``: the weighted fraction of ``match_fields`` that agree.

Each field is a dotted path into the output (``category``, ``address.city``,
``items.0.name``) with a weight from ``evaluator_options.weights`` (default 1).
Values agree under the task's comparison rules: absolute ``numeric_tolerance``,
strings compared ignoring case and whitespace when asked, lists optionally as
sets. A field present on one side only is a mismatch; a field absent on both
sides agrees (neither model produced it), so identical answers always score 1.
"""

from __future__ import annotations

from typing import Any

from apprentice.config import EvaluatorKind, TaskConfig
from apprentice.evaluators.base import (
    Evaluation,
    EvaluatorConfigError,
    ScoredEvaluator,
    invalid_student,
)
from apprentice.evaluators.values import MISSING, Comparison, lookup, values_equal

__all__ = ["StructuredMatch"]


def _shown(value: Any) -> Any:
    """A value for details: JSON-ready, ``None`` for a missing field plus a flag elsewhere."""
    return None if value is MISSING else value


class StructuredMatch(ScoredEvaluator):
    """Weighted per-field agreement; details name every field that differed."""

    kind = EvaluatorKind.structured_match

    def __init__(self, task: TaskConfig) -> None:
        if not task.match_fields:
            raise EvaluatorConfigError(
                f"task {task.name}: structured_match needs match_fields: [field, ...]"
            )
        options = task.evaluator_options
        unknown = sorted(set(options.weights) - set(task.match_fields))
        if unknown:
            raise EvaluatorConfigError(
                f"task {task.name}: evaluator_options.weights names {unknown}, which are not in "
                f"match_fields {task.match_fields}; weight only compared fields"
            )
        negative = sorted(name for name, weight in options.weights.items() if weight < 0)
        if negative:
            raise EvaluatorConfigError(
                f"task {task.name}: evaluator_options.weights {negative} are negative; "
                "use weights >= 0"
            )
        self._fields = list(dict.fromkeys(task.match_fields))
        self._weights = {name: float(options.weights.get(name, 1.0)) for name in self._fields}
        if sum(self._weights.values()) <= 0:
            raise EvaluatorConfigError(
                f"task {task.name}: every match field has weight 0; give one a positive weight"
            )
        self._how = Comparison.from_options(options)

    def score(
        self,
        task: TaskConfig,
        student_output: dict[str, Any] | None,
        teacher_output: dict[str, Any],
    ) -> Evaluation:
        if student_output is None:
            return invalid_student()
        total = sum(self._weights.values())
        matched_weight = 0.0
        matched: list[str] = []
        differences: dict[str, dict[str, Any]] = {}
        for path in self._fields:
            student = lookup(student_output, path)
            teacher = lookup(teacher_output, path)
            if student is MISSING and teacher is MISSING:
                agree = True
            elif student is MISSING or teacher is MISSING:
                agree = False
            else:
                agree = values_equal(student, teacher, self._how)
            if agree:
                matched.append(path)
                matched_weight += self._weights[path]
            else:
                differences[path] = {
                    "student": _shown(student),
                    "teacher": _shown(teacher),
                    "weight": self._weights[path],
                    "missing_in": (
                        "student"
                        if student is MISSING
                        else "teacher"
                        if teacher is MISSING
                        else None
                    ),
                }
        score = min(1.0, max(0.0, matched_weight / total))
        return Evaluation(score, {"matched": matched, "differences": differences})
