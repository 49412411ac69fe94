"""``custom``: the user's own scoring function, named ``module:function`` in config.

The function is imported once, when the evaluator is built, so a typo fails at
start-up rather than on the first comparison. It takes ``(student_output,
teacher_output)`` or ``(task, student_output, teacher_output)`` and returns a
score in [0, 1], or ``(score, details)``. It may be ``async``. Anything else
(an exception, a non-number, NaN, a score outside [0, 1]) is a
:class:`CustomEvaluatorError` naming the function, because a silently clipped
score would hide a bug in the user's code from the confidence engine.
"""

from __future__ import annotations

import importlib
import inspect
import json
import math
from collections.abc import Callable
from typing import Any

from apprentice.config import EvaluatorKind, TaskConfig
from apprentice.evaluators.base import (
    CustomEvaluatorError,
    Evaluation,
    EvaluatorConfigError,
    EvaluatorNotSync,
    invalid_student,
)

__all__ = ["CustomEvaluator", "load_function"]


def load_function(entry_point: str) -> Callable[..., object]:
    """Import ``module:function`` (the function part may be dotted, e.g. ``Scorer.score``)."""
    module_name, sep, attr_path = entry_point.partition(":")
    if not sep or not module_name or not attr_path:
        raise EvaluatorConfigError(
            f"custom evaluator {entry_point!r} is not 'module:function', e.g. mypkg.scoring:score"
        )
    try:
        target: object = importlib.import_module(module_name)
    except ImportError as exc:
        raise EvaluatorConfigError(
            f"custom evaluator {entry_point!r}: cannot import module {module_name!r} ({exc}); "
            "install the package or put it on PYTHONPATH"
        ) from exc
    for part in attr_path.split("."):
        try:
            target = getattr(target, part)
        except AttributeError as exc:
            raise EvaluatorConfigError(
                f"custom evaluator {entry_point!r}: {module_name!r} has no attribute "
                f"{attr_path!r}; check the name after the colon"
            ) from exc
    if not callable(target):
        raise EvaluatorConfigError(
            f"custom evaluator {entry_point!r} is a {type(target).__name__}, not a function"
        )
    return target


def _arity(function: Callable[..., object], entry_point: str) -> int:
    """2 for (student, teacher), 3 for (task, student, teacher)."""
    try:
        signature = inspect.signature(function)
    except (TypeError, ValueError):
        return 2  # builtins without a signature: the simple form
    params = list(signature.parameters.values())
    if any(p.kind is p.VAR_POSITIONAL for p in params):
        return 3
    positional = [p for p in params if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    required = [p for p in positional if p.default is p.empty]
    if len(required) <= 3 <= len(positional):
        return 3
    if len(required) <= 2 <= len(positional):
        return 2
    raise EvaluatorConfigError(
        f"custom evaluator {entry_point!r} takes {len(positional)} positional arguments; "
        "it must take (student_output, teacher_output) or (task, student_output, teacher_output)"
    )


def _as_evaluation(result: object, entry_point: str) -> Evaluation:
    details: dict[str, Any] = {}
    score = result
    if isinstance(result, tuple):
        extra = result[1] if len(result) == 2 else None
        if not isinstance(extra, dict):
            raise CustomEvaluatorError(
                f"custom evaluator {entry_point!r} returned a tuple that is not "
                f"(score, details: dict): {result!r:.200}"
            )
        score, details = result[0], extra
        try:
            # Details are stored with the comparison; catch the problem here, named.
            json.dumps(details)
        except (TypeError, ValueError) as exc:
            raise CustomEvaluatorError(
                f"custom evaluator {entry_point!r} returned details that are not JSON ({exc}); "
                "return plain dicts, lists, strings and numbers"
            ) from exc
    if isinstance(score, bool) or not isinstance(score, int | float):
        raise CustomEvaluatorError(
            f"custom evaluator {entry_point!r} returned {type(score).__name__} {score!r:.100}; "
            "return a float in [0, 1] or (float, details)"
        )
    if not math.isfinite(score) or not 0.0 <= score <= 1.0:
        raise CustomEvaluatorError(
            f"custom evaluator {entry_point!r} returned {score!r}, outside [0, 1]; "
            "scale the score into [0, 1]"
        )
    return Evaluation(float(score), {"function": entry_point, **details})


class CustomEvaluator:
    """Calls the configured function; errors carry the entry point's name."""

    kind = EvaluatorKind.custom

    def __init__(self, task: TaskConfig) -> None:
        entry_point = task.evaluator_options.function
        if not entry_point:
            raise EvaluatorConfigError(
                f"task {task.name}: custom needs evaluator_options.function: 'module:function'"
            )
        self.entry_point = entry_point
        self._function = load_function(entry_point)
        self._arity = _arity(self._function, entry_point)
        self.is_async = inspect.iscoroutinefunction(self._function)

    def _call(
        self, task: TaskConfig, student_output: dict[str, Any], teacher_output: dict[str, Any]
    ) -> object:
        args: tuple[object, ...] = (student_output, teacher_output)
        if self._arity == 3:
            args = (task, *args)
        try:
            return self._function(*args)
        except Exception as exc:
            raise CustomEvaluatorError(
                f"custom evaluator {self.entry_point!r} raised {type(exc).__name__}: {exc}"
            ) from exc

    def score(
        self,
        task: TaskConfig,
        student_output: dict[str, Any] | None,
        teacher_output: dict[str, Any],
    ) -> Evaluation:
        if self.is_async:
            raise EvaluatorNotSync(
                f"custom evaluator {self.entry_point!r} is async; await evaluate(...) instead"
            )
        if student_output is None:
            return invalid_student()
        return _as_evaluation(self._call(task, student_output, teacher_output), self.entry_point)

    async def evaluate(
        self,
        task: TaskConfig,
        student_output: dict[str, Any] | None,
        teacher_output: dict[str, Any],
        *,
        task_input: dict[str, Any] | None = None,
    ) -> Evaluation:
        if student_output is None:
            return invalid_student()
        result = self._call(task, student_output, teacher_output)
        if inspect.isawaitable(result):
            try:
                result = await result
            except Exception as exc:
                raise CustomEvaluatorError(
                    f"custom evaluator {self.entry_point!r} raised {type(exc).__name__}: {exc}"
                ) from exc
        return _as_evaluation(result, self.entry_point)

    async def aclose(self) -> None:
        return None
