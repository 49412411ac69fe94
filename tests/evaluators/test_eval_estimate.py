"""Worst-case evaluator cost: what the gateway reserves from the budget before judging."""

from __future__ import annotations

import math
from typing import Any

import pytest
from eval_loopback import PRICE_IN, PRICE_OUT, wire_factory

from apprentice.config import TaskConfig
from apprentice.evaluators import Evaluation, build_evaluator
from apprentice.evaluators import base as evaluators_base
from apprentice.evaluators import judge as judge_mod

STUDENT = {"summary": "Customer cannot log in after the password reset."}
TEACHER = {"summary": "The user is locked out following a password reset."}
INPUT = {"text": "I reset my password and now I can't log in! " * 20}
NOWHERE = "http://127.0.0.1:9/v1"  # never called: estimates are computed, not fetched


def judge(model: str, scale: float = 1.0) -> dict[str, Any]:
    return {
        "provider": "openai_compatible",
        "model": model,
        "base_url": NOWHERE,
        "price": {"input_per_mtok": PRICE_IN * scale, "output_per_mtok": PRICE_OUT * scale},
    }


def judge_task(judges: list[dict[str, Any]], mode: str = "single") -> TaskConfig:
    return TaskConfig.model_validate(
        {
            "name": "summarise",
            "description": "Summarise a support ticket in one sentence.",
            "output_schema": {"summary": "str"},
            "evaluator": "llm_judge",
            "evaluator_options": {"judges": judges, "judge_mode": mode},
        }
    )


async def estimate(task: TaskConfig, student: dict[str, Any] | None = STUDENT) -> float:
    evaluator = build_evaluator(task, judge_factory=wire_factory)
    try:
        return evaluators_base.estimate_cost(evaluator, task, student, TEACHER, task_input=INPUT)
    finally:
        await evaluator.aclose()


async def test_single_judge_is_cheaper_than_ensemble_and_hierarchical() -> None:
    panel = [judge("cheap"), judge("b"), judge("c")]
    single = await estimate(judge_task(panel, "single"))
    ensemble = await estimate(judge_task(panel, "ensemble"))
    hierarchical = await estimate(judge_task(panel, "hierarchical"))
    assert 0 < single < hierarchical
    assert single < ensemble
    # Equal prices: every judge the mode may ask costs the same worst case.
    assert ensemble == pytest.approx(3 * single)
    assert hierarchical == pytest.approx(ensemble)  # worst case: the cheap judge escalates


async def test_each_judge_is_priced_at_its_own_price() -> None:
    cheap = await estimate(judge_task([judge("a")]))
    dear = await estimate(judge_task([judge("a", scale=10.0)]))
    assert dear == pytest.approx(10 * cheap)
    mixed = await estimate(judge_task([judge("a"), judge("b", scale=10.0)], "ensemble"))
    assert mixed == pytest.approx(11 * cheap)


async def test_estimate_covers_the_prompt_and_the_full_output_cap() -> None:
    task = judge_task([judge("a")])
    messages = judge_mod.judge_messages(
        task, STUDENT, TEACHER, rubric=judge_mod.DEFAULT_RUBRIC, task_input=INPUT
    )
    chars = sum(len(m["content"]) for m in messages)
    # The teachers' usual 4 characters a token, plus the judge's whole max_tokens.
    floor = (math.ceil(chars / 4) * PRICE_IN + 512 * PRICE_OUT) / 1e6
    got = await estimate(task)
    assert got >= floor
    longer = dict(INPUT, more="x" * 4000)
    evaluator = build_evaluator(task, judge_factory=wire_factory)
    try:
        bigger = evaluator.estimate_cost(task, STUDENT, TEACHER, task_input=longer)  # type: ignore[attr-defined]
    finally:
        await evaluator.aclose()
    assert bigger > got + 1000 * PRICE_IN / 1e6  # a longer input reserves more


async def test_invalid_student_needs_no_judge_so_costs_nothing() -> None:
    assert await estimate(judge_task([judge("a")]), student=None) == 0.0


@pytest.mark.parametrize("kind", ["exact_match", "structured_match"])
def test_local_evaluators_reserve_nothing(kind: str) -> None:
    extra = {"match_fields": ["summary"]} if kind == "structured_match" else {}
    task = TaskConfig.model_validate(
        {"name": "t", "output_schema": {"summary": "str"}, "evaluator": kind, **extra}
    )
    evaluator = build_evaluator(task)
    assert evaluators_base.estimate_cost(evaluator, task, STUDENT, TEACHER) == 0.0
    assert evaluator.estimate_cost(task, STUDENT, TEACHER) == 0.0  # type: ignore[attr-defined]


def test_an_evaluator_without_an_estimate_reserves_nothing() -> None:
    class Legacy:  # written against the protocol before estimate_cost existed
        kind = "custom"

        async def evaluate(self, *args: Any, **kwargs: Any) -> Evaluation:
            return Evaluation(1.0)

        async def aclose(self) -> None:
            return None

    task = TaskConfig.model_validate({"name": "t", "output_schema": {"summary": "str"}})
    assert evaluators_base.estimate_cost(Legacy(), task, STUDENT, TEACHER) == 0.0  # type: ignore[arg-type]


def test_a_negative_estimate_is_refused() -> None:
    class Broken:
        kind = "custom"

        def estimate_cost(self, *args: Any, **kwargs: Any) -> float:
            return -1.0

    task = TaskConfig.model_validate({"name": "t", "output_schema": {"summary": "str"}})
    with pytest.raises(ValueError, match="estimate_cost"):
        evaluators_base.estimate_cost(Broken(), task, STUDENT, TEACHER)  # type: ignore[arg-type]
