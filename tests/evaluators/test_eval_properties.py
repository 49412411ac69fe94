"""Properties that hold for any JSON answers (hypothesis)."""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from apprentice.config import TaskConfig
from apprentice.evaluators import build_evaluator, evaluate_sync
from apprentice.evaluators import judge as judge_mod

SCALARS = (
    st.none()
    | st.booleans()
    | st.integers(-1000, 1000)
    | st.floats(-1e6, 1e6, allow_nan=False)
    | st.text(max_size=12)
)
JSON: st.SearchStrategy[Any] = st.recursive(
    SCALARS,
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.dictionaries(st.text("abc", min_size=1, max_size=3), inner, max_size=4)
    ),
    max_leaves=12,
)
FIELDS = ["a", "b", "c.x", "c.y", "items.0"]
OUTPUTS = st.fixed_dictionaries(
    {},
    optional={
        "a": JSON,
        "b": JSON,
        "c": st.dictionaries(st.sampled_from(["x", "y"]), JSON, max_size=2) | JSON,
        "items": st.lists(JSON, max_size=3),
    },
)
OPTIONS = st.fixed_dictionaries(
    {
        "case_insensitive": st.booleans(),
        "normalize_whitespace": st.booleans(),
        "lists_as_sets": st.booleans(),
        "numeric_tolerance": st.sampled_from([0.0, 0.01, 5.0]),
        "weights": st.dictionaries(st.sampled_from(FIELDS), st.sampled_from([0.5, 1.0, 3.0])),
    }
)


def _tasks(options: dict[str, Any]) -> list[TaskConfig]:
    return [
        TaskConfig.model_validate(
            {"name": "t", "evaluator": "exact_match", "evaluator_options": options}
        ),
        TaskConfig.model_validate(
            {
                "name": "t",
                "evaluator": "structured_match",
                "match_fields": FIELDS,
                "evaluator_options": options,
            }
        ),
    ]


@settings(max_examples=150, deadline=None)
@given(OUTPUTS, OUTPUTS, OPTIONS)
def test_scores_are_in_range_and_symmetric(
    left: dict[str, Any], right: dict[str, Any], options: dict[str, Any]
) -> None:
    for task in _tasks(options):
        evaluator = build_evaluator(task)
        forward = evaluate_sync(task, left, right, evaluator=evaluator).score
        backward = evaluate_sync(task, right, left, evaluator=evaluator).score
        assert 0.0 <= forward <= 1.0
        # Tolerance is not transitive, but it is symmetric, as are all other rules.
        assert forward == backward


@settings(max_examples=150, deadline=None)
@given(OUTPUTS, OPTIONS)
def test_identical_answers_score_one(output: dict[str, Any], options: dict[str, Any]) -> None:
    for task in _tasks(options):
        assert evaluate_sync(task, output, output).score == 1.0
        assert evaluate_sync(task, None, output).score == 0.0


@given(st.lists(st.floats(0, 1), min_size=1, max_size=7))
def test_judge_aggregate_stays_in_range(scores: list[float]) -> None:
    score, confidence, spread = judge_mod.aggregate(scores)
    assert min(scores) <= score <= max(scores)
    if len(scores) == 1:
        assert confidence is None
    else:
        assert confidence is not None and 0.0 <= confidence <= 1.0
        if max(scores) == min(scores):
            assert confidence == 1.0
        assert spread["confidence_level"] in {"high", "medium", "low"}
