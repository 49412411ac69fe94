"""exact_match and structured_match: normalisation, weights, paths, tolerance, details."""

from __future__ import annotations

from typing import Any

import pytest

from apprentice.config import TaskConfig
from apprentice.evaluators import EvaluatorConfigError, build_evaluator, evaluate_sync


def exact_task(**options: Any) -> TaskConfig:
    return TaskConfig.model_validate(
        {"name": "t", "evaluator": "exact_match", "evaluator_options": options}
    )


def structured_task(
    fields: list[str], schema: dict[str, Any] | None = None, **options: Any
) -> TaskConfig:
    return TaskConfig.model_validate(
        {
            "name": "t",
            "evaluator": "structured_match",
            "match_fields": fields,
            "output_schema": schema,
            "evaluator_options": options,
        }
    )


class TestExactMatch:
    def test_key_order_whitespace_case_and_integral_floats_do_not_matter(self) -> None:
        task = exact_task()
        student = {"b": 2.0, "a": "  Billing\n issue ", "c": [1, {"d": "X"}]}
        teacher = {"a": "billing issue", "c": [1.0, {"d": "x"}], "b": 2}
        result = evaluate_sync(task, student, teacher)
        assert result.score == 1.0 and result.details == {"match": True}

    def test_normalisation_can_be_turned_off(self) -> None:
        strict = exact_task(case_insensitive=False, normalize_whitespace=False)
        assert evaluate_sync(strict, {"a": "Billing"}, {"a": "billing"}).score == 0.0
        assert evaluate_sync(strict, {"a": "a  b"}, {"a": "a b"}).score == 0.0
        case_only = exact_task(case_insensitive=True, normalize_whitespace=False)
        assert evaluate_sync(case_only, {"a": "A b"}, {"a": "a b"}).score == 1.0
        assert evaluate_sync(case_only, {"a": "a  b"}, {"a": "a b"}).score == 0.0

    def test_any_real_difference_is_a_mismatch_with_details(self) -> None:
        task = exact_task()
        result = evaluate_sync(
            task, {"category": "billing", "priority": 2}, {"category": "billing", "priority": 3}
        )
        assert result.score == 0.0
        assert result.details["differing_keys"] == ["priority"]
        assert '"priority":2' in result.details["student"]
        assert '"priority":3' in result.details["teacher"]

    def test_extra_key_and_bool_versus_number_differ(self) -> None:
        task = exact_task()
        extra = evaluate_sync(task, {"a": 1, "b": None}, {"a": 1})
        assert extra.score == 0.0 and extra.details["differing_keys"] == ["b"]
        assert evaluate_sync(task, {"a": True}, {"a": 1}).score == 0.0
        assert evaluate_sync(task, {"a": [1, 2]}, {"a": [2, 1]}).score == 0.0

    async def test_async_and_sync_agree(self) -> None:
        task = exact_task()
        evaluator = build_evaluator(task)
        result = await evaluator.evaluate(task, {"a": "X"}, {"a": "x"})
        assert result == evaluate_sync(task, {"a": "X"}, {"a": "x"})
        await evaluator.aclose()


class TestStructuredMatch:
    def test_weighted_fraction_of_matching_fields(self) -> None:
        task = structured_task(
            ["category", "priority"],
            {"category": "str", "priority": "int", "confidence": "float"},
            weights={"category": 2, "priority": 1},
        )
        teacher = {"category": "billing", "priority": 2, "confidence": 0.9}
        both = evaluate_sync(
            task, {"category": "Billing", "priority": 2, "confidence": 0.1}, teacher
        )
        assert both.score == 1.0  # confidence is not a match field
        only_category = evaluate_sync(task, {"category": "billing", "priority": 1}, teacher)
        assert only_category.score == pytest.approx(2 / 3)
        assert only_category.details["differences"] == {
            "priority": {"student": 1, "teacher": 2, "weight": 1.0, "missing_in": None}
        }
        assert only_category.details["matched"] == ["category"]
        only_priority = evaluate_sync(task, {"category": "shipping", "priority": 2}, teacher)
        assert only_priority.score == pytest.approx(1 / 3)

    def test_nested_paths_and_list_indices(self) -> None:
        task = structured_task(["customer.address.city", "items.0.name", "items.-1.qty"])
        teacher = {
            "customer": {"address": {"city": "Paris"}},
            "items": [{"name": "pen", "qty": 1}, {"name": "ink", "qty": 3}],
        }
        student = {
            "customer": {"address": {"city": "paris"}},
            "items": [{"name": "Pen", "qty": 1}, {"name": "ink", "qty": 4}],
        }
        result = evaluate_sync(task, student, teacher)
        assert result.score == pytest.approx(2 / 3)
        assert list(result.details["differences"]) == ["items.-1.qty"]

    def test_missing_on_one_side_is_a_mismatch_on_both_sides_agrees(self) -> None:
        task = structured_task(["a", "b.c"])
        result = evaluate_sync(task, {"a": 1}, {"a": 1, "b": {"c": 5}})
        assert result.score == pytest.approx(0.5)
        assert result.details["differences"]["b.c"] == {
            "student": None,
            "teacher": 5,
            "weight": 1.0,
            "missing_in": "student",
        }
        assert (
            evaluate_sync(task, {"a": 1, "b": {"c": 5}}, {"a": 1}).details["differences"]["b.c"][
                "missing_in"
            ]
            == "teacher"
        )
        assert evaluate_sync(task, {"a": 1}, {"a": 1}).score == 1.0
        # null is a value, not a missing field
        assert evaluate_sync(task, {"a": 1, "b": {"c": None}}, {"a": 1}).score == pytest.approx(0.5)
        # an index past the end is missing
        listed = structured_task(["xs.3"])
        assert evaluate_sync(listed, {"xs": [1]}, {"xs": [1, 2, 3, 4]}).score == 0.0

    def test_numeric_tolerance_is_absolute(self) -> None:
        task = structured_task(["price"], numeric_tolerance=0.05)
        assert evaluate_sync(task, {"price": 10.04}, {"price": 10.0}).score == 1.0
        assert evaluate_sync(task, {"price": 9.96}, {"price": 10.0}).score == 1.0
        assert evaluate_sync(task, {"price": 10.06}, {"price": 10.0}).score == 0.0
        exact = structured_task(["price"])
        assert evaluate_sync(exact, {"price": 10.0}, {"price": 10}).score == 1.0
        assert evaluate_sync(exact, {"price": 10.001}, {"price": 10}).score == 0.0
        # booleans are not numbers, even within tolerance
        assert evaluate_sync(task, {"price": True}, {"price": 1}).score == 0.0

    def test_string_case_and_whitespace_follow_options(self) -> None:
        lenient = structured_task(["name"])
        assert evaluate_sync(lenient, {"name": " ACME  Corp"}, {"name": "acme corp"}).score == 1.0
        strict = structured_task(["name"], case_insensitive=False, normalize_whitespace=False)
        assert evaluate_sync(strict, {"name": "ACME Corp"}, {"name": "acme corp"}).score == 0.0
        assert evaluate_sync(strict, {"name": "acme  corp"}, {"name": "acme corp"}).score == 0.0

    def test_lists_in_order_or_as_sets(self) -> None:
        ordered = structured_task(["tags"])
        as_sets = structured_task(["tags"], lists_as_sets=True, numeric_tolerance=0.1)
        student, teacher = {"tags": ["b", "A", "a"]}, {"tags": ["a", "b"]}
        assert evaluate_sync(ordered, student, teacher).score == 0.0
        assert evaluate_sync(as_sets, student, teacher).score == 1.0
        assert evaluate_sync(as_sets, {"tags": ["a", "c"]}, teacher).score == 0.0
        assert evaluate_sync(as_sets, {"tags": [1.05, 2]}, {"tags": [2, 1]}).score == 1.0
        assert evaluate_sync(ordered, {"tags": ["a", "b"]}, {"tags": ["A", "b"]}).score == 1.0

    def test_whole_objects_compare_recursively(self) -> None:
        task = structured_task(["address"], numeric_tolerance=0.5)
        teacher = {"address": {"city": "Oslo", "zip": 150}}
        assert evaluate_sync(task, {"address": {"city": "oslo", "zip": 150.2}}, teacher).score == 1
        assert evaluate_sync(task, {"address": {"city": "oslo"}}, teacher).score == 0.0
        assert evaluate_sync(task, {"address": "Oslo 150"}, teacher).score == 0.0

    def test_weight_zero_field_is_ignored(self) -> None:
        task = structured_task(["a", "b"], weights={"b": 0})
        assert evaluate_sync(task, {"a": 1, "b": 1}, {"a": 1, "b": 2}).score == 1.0

    @pytest.mark.parametrize(
        ("options", "message"),
        [
            ({"weights": {"nope": 2}}, "not in match_fields"),
            ({"weights": {"a": -1}}, "negative"),
            ({"weights": {"a": 0}}, "weight 0"),
        ],
    )
    def test_bad_weights_fail_at_build_time(self, options: dict[str, Any], message: str) -> None:
        with pytest.raises(EvaluatorConfigError, match=message):
            build_evaluator(structured_task(["a"], **options))
