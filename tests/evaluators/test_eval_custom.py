"""custom: a module:function entry point imported from a real module on sys.path."""

from __future__ import annotations

import itertools
import textwrap
from pathlib import Path

import pytest

from apprentice.config import TaskConfig
from apprentice.evaluators import (
    CustomEvaluatorError,
    EvaluatorConfigError,
    EvaluatorNotSync,
    build_evaluator,
    evaluate_sync,
)

_counter = itertools.count()

SOURCE = textwrap.dedent(
    """
    import math

    def two(student, teacher):
        return 1.0 if student["a"] == teacher["a"] else 0.25

    def three(task, student, teacher):
        return (0.5, {"task": task.name, "keys": sorted(student)})

    def defaults(student, teacher, extra=None):
        return 0.75

    async def later(student, teacher):
        return 0.6

    class Scorer:
        @staticmethod
        def score(student, teacher):
            return 1

    def too_big(student, teacher):
        return 1.5

    def nan(student, teacher):
        return math.nan

    def text(student, teacher):
        return "0.5"

    def boolean(student, teacher):
        return True

    def bad_tuple(student, teacher):
        return (0.5, "why")

    def opaque(student, teacher):
        return (0.5, {"when": object()})

    def raises(student, teacher):
        raise KeyError("category")

    def four(a, b, c, d):
        return 0.0

    NOT_CALLABLE = 3
    """
)


@pytest.fixture
def module(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """A fresh, uniquely named scoring module on sys.path."""
    name = f"eval_custom_scorers_{next(_counter)}"
    (tmp_path / f"{name}.py").write_text(SOURCE)
    monkeypatch.syspath_prepend(str(tmp_path))
    return name


def task_for(entry_point: str) -> TaskConfig:
    return TaskConfig.model_validate(
        {
            "name": "custom-task",
            "evaluator": "custom",
            "evaluator_options": {"function": entry_point},
        }
    )


def test_two_argument_function(module: str) -> None:
    task = task_for(f"{module}:two")
    assert evaluate_sync(task, {"a": 1}, {"a": 1}).score == 1.0
    result = evaluate_sync(task, {"a": 1}, {"a": 2})
    assert result.score == 0.25 and result.details == {"function": f"{module}:two"}


def test_three_argument_function_with_details(module: str) -> None:
    result = evaluate_sync(task_for(f"{module}:three"), {"b": 1, "a": 2}, {})
    assert result.score == 0.5
    assert result.details["task"] == "custom-task" and result.details["keys"] == ["a", "b"]


def test_optional_third_parameter_keeps_the_two_argument_form(module: str) -> None:
    assert evaluate_sync(task_for(f"{module}:defaults"), {}, {}).score == 0.75


def test_dotted_attribute_and_int_result(module: str) -> None:
    assert evaluate_sync(task_for(f"{module}:Scorer.score"), {}, {}).score == 1.0


async def test_async_function_is_awaited_but_not_sync(module: str) -> None:
    task = task_for(f"{module}:later")
    evaluator = build_evaluator(task)
    assert (await evaluator.evaluate(task, {}, {})).score == 0.6
    with pytest.raises(EvaluatorNotSync, match="async"):
        evaluate_sync(task, {}, {}, evaluator=evaluator)


def test_invalid_student_is_zero_without_calling(module: str) -> None:
    result = evaluate_sync(task_for(f"{module}:raises"), None, {"a": 1})
    assert result.score == 0.0 and result.details["invalid_student"] is True


@pytest.mark.parametrize(
    ("function", "message"),
    [
        ("too_big", r"returned 1\.5, outside \[0, 1\]"),
        ("nan", "outside"),
        ("text", "returned str"),
        ("boolean", "returned bool"),
        ("bad_tuple", r"not \(score, details: dict\)"),
        ("raises", "raised KeyError"),
        ("opaque", "not JSON"),
    ],
)
def test_bad_results_are_typed_errors_naming_the_function(
    module: str, function: str, message: str
) -> None:
    with pytest.raises(CustomEvaluatorError, match=message) as caught:
        evaluate_sync(task_for(f"{module}:{function}"), {"a": 1}, {"a": 1})
    assert f"{module}:{function}" in str(caught.value)


@pytest.mark.parametrize(
    ("entry_point", "message"),
    [
        ("no_such_module_xyz:score", "cannot import module 'no_such_module_xyz'"),
        ("{module}:missing", "has no attribute 'missing'"),
        ("{module}:NOT_CALLABLE", "not a function"),
        ("{module}:four", "takes 4 positional arguments"),
    ],
)
def test_load_errors_happen_at_build_time(module: str, entry_point: str, message: str) -> None:
    with pytest.raises(EvaluatorConfigError, match=message):
        build_evaluator(task_for(entry_point.format(module=module)))


def test_raised_error_keeps_its_cause(module: str) -> None:
    with pytest.raises(CustomEvaluatorError) as caught:
        evaluate_sync(task_for(f"{module}:raises"), {"a": 1}, {"a": 1})
    assert isinstance(caught.value.__cause__, KeyError)
