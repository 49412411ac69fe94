"""``exact_match``: the whole answer must be the same JSON after normalisation.

Both outputs are rendered as canonical JSON (sorted keys, compact) after
normalising strings as the task asks (``normalize_whitespace``,
``case_insensitive``) and integral floats to ints, so key order, ``2.0`` versus
``2`` and stray spaces never count as disagreement, while any other difference does.
"""

from __future__ import annotations

from typing import Any

from apprentice.config import EvaluatorKind, TaskConfig
from apprentice.evaluators.base import Evaluation, ScoredEvaluator, invalid_student
from apprentice.evaluators.values import Comparison, normalize
from apprentice.prompts import canonical_json

__all__ = ["ExactMatch"]

_SHOWN = 500  # characters of each answer kept in details: enough to see, bounded for the store


class ExactMatch(ScoredEvaluator):
    """Score 1 when the normalised canonical JSON is identical, else 0."""

    kind = EvaluatorKind.exact_match

    def __init__(self, task: TaskConfig) -> None:
        self._how = Comparison.from_options(task.evaluator_options)

    def score(
        self,
        task: TaskConfig,
        student_output: dict[str, Any] | None,
        teacher_output: dict[str, Any],
    ) -> Evaluation:
        if student_output is None:
            return invalid_student()
        student = canonical_json(normalize(student_output, self._how))
        teacher = canonical_json(normalize(teacher_output, self._how))
        if student == teacher:
            return Evaluation(1.0, {"match": True})
        details: dict[str, Any] = {
            "match": False,
            "student": student[:_SHOWN],
            "teacher": teacher[:_SHOWN],
        }
        if isinstance(student_output, dict) and isinstance(teacher_output, dict):
            keys = sorted(set(student_output) | set(teacher_output))
            details["differing_keys"] = [
                key
                for key in keys
                if canonical_json(normalize(student_output.get(key), self._how))
                != canonical_json(normalize(teacher_output.get(key), self._how))
                or (key in student_output) != (key in teacher_output)
            ]
        return Evaluation(0.0, details)
