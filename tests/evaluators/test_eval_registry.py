"""The evaluator registry: one factory per kind, and no fall-through for a missing one."""

from __future__ import annotations

import pytest

from apprentice import evaluators
from apprentice.config import EvaluatorKind, TaskConfig


def test_every_evaluator_kind_has_a_factory() -> None:
    assert set(evaluators.REGISTRY) == set(EvaluatorKind)


def test_a_kind_without_a_factory_is_an_error_naming_it_and_the_known_ones(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delitem(evaluators.REGISTRY, EvaluatorKind.exact_match)
    task = TaskConfig.model_validate({"name": "t", "evaluator": "exact_match"})
    with pytest.raises(evaluators.EvaluatorConfigError) as info:
        evaluators.build_evaluator(task)
    message = str(info.value)
    assert "task t: unknown evaluator 'exact_match'" in message
    assert "known: structured_match, semantic_similarity, llm_judge, custom" in message
