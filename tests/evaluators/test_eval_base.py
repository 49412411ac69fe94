"""Evaluation, the Evaluator protocol, build_evaluator and evaluate_sync."""

from __future__ import annotations

import math
from typing import Any

import pytest

from apprentice.config import TaskConfig
from apprentice.evaluators import (
    Evaluation,
    Evaluator,
    EvaluatorNotSync,
    PureEvaluator,
    build_evaluator,
    custom,
    evaluate_sync,
    exact,
    judge,
    semantic,
    structured,
)


class ExplodingEmbedder:
    """An embedder that fails the test if it is ever called."""

    async def embed(self, texts: list[str]) -> list[list[float]]:
        raise AssertionError(f"embed called with {texts}")


@pytest.mark.parametrize(
    ("value", "field"),
    [
        ({"score": 1.01}, "score"),
        ({"score": -0.1}, "score"),
        ({"score": math.nan}, "score"),
        ({"score": 0.5, "cost": -1.0}, "cost"),
        ({"score": 0.5, "cost": math.inf}, "cost"),
        ({"score": 0.5, "judge_confidence": 1.5}, "judge_confidence"),
    ],
)
def test_evaluation_refuses_out_of_range_values(value: dict[str, Any], field: str) -> None:
    with pytest.raises(ValueError, match=field):
        Evaluation(**value)


def test_evaluation_defaults() -> None:
    result = Evaluation(0.25)
    assert (result.details, result.cost, result.judge_confidence) == ({}, 0.0, None)


def _task(kind: str, **extra: Any) -> TaskConfig:
    return TaskConfig.model_validate({"name": "t", "evaluator": kind, **extra})


def test_build_evaluator_picks_the_configured_kind() -> None:
    assert isinstance(build_evaluator(_task("exact_match")), exact.ExactMatch)
    built = build_evaluator(_task("structured_match", match_fields=["a"]))
    assert isinstance(built, structured.StructuredMatch)
    assert isinstance(
        build_evaluator(_task("custom", evaluator_options={"function": "math:isclose"})),
        custom.CustomEvaluator,
    )
    sem = build_evaluator(_task("semantic_similarity"), embedder=ExplodingEmbedder())
    assert isinstance(sem, semantic.SemanticSimilarity)
    assert isinstance(sem, Evaluator) and not isinstance(sem, PureEvaluator)
    for kind in ("exact_match", "structured_match"):
        evaluator = build_evaluator(_task(kind, match_fields=["a"]))
        assert isinstance(evaluator, PureEvaluator)
        assert evaluator.kind.value == kind
    assert judge.LLMJudge.kind.value == "llm_judge"


async def test_invalid_student_scores_zero_everywhere() -> None:
    tasks = [
        _task("exact_match"),
        _task("structured_match", match_fields=["a"]),
        _task("custom", evaluator_options={"function": "math:isclose"}),
        _task("semantic_similarity"),
    ]
    for task in tasks:
        evaluator = build_evaluator(task, embedder=ExplodingEmbedder())
        result = await evaluator.evaluate(task, None, {"a": 1})
        assert result.score == 0.0, task.evaluator
        assert result.details["invalid_student"] is True
        assert "invalid" in result.details["reason"]
        await evaluator.aclose()


def test_evaluate_sync_refuses_model_backed_evaluators() -> None:
    with pytest.raises(EvaluatorNotSync, match="semantic_similarity"):
        evaluate_sync(_task("semantic_similarity"), {"a": 1}, {"a": 1})
    with pytest.raises(EvaluatorNotSync, match="llm_judge"):
        evaluate_sync(_task("llm_judge"), {"a": 1}, {"a": 1})
    sem = build_evaluator(_task("semantic_similarity"), embedder=ExplodingEmbedder())
    with pytest.raises(EvaluatorNotSync):
        evaluate_sync(_task("semantic_similarity"), {"a": 1}, {"a": 1}, evaluator=sem)


def test_evaluate_sync_reuses_a_prebuilt_evaluator() -> None:
    task = _task("structured_match", match_fields=["a", "b"])
    evaluator = build_evaluator(task)
    scores = [
        evaluate_sync(task, {"a": i, "b": 0}, {"a": 1, "b": 0}, evaluator=evaluator).score
        for i in range(3)
    ]
    assert scores == [0.5, 1.0, 0.5]
