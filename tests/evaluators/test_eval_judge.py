"""llm_judge against a loopback OpenAI Chat Completions server, through a real HTTP client."""

from __future__ import annotations

import json
import statistics
from collections.abc import AsyncIterator
from typing import Any

import pytest
from eval_loopback import CALL_COST, JudgeServer, judge_config, judge_server, wire_factory

from apprentice.config import ProviderConfig, TaskConfig
from apprentice.evaluators import (
    EvaluatorConfigError,
    EvaluatorNotSync,
    JudgeError,
    build_evaluator,
    evaluate_sync,
)
from apprentice.evaluators import judge as judge_mod
from apprentice.teachers.errors import ProviderError


@pytest.fixture
async def server() -> AsyncIterator[JudgeServer]:
    async with judge_server() as state:
        yield state


def make_task(server: JudgeServer, models: list[str], **options: Any) -> TaskConfig:
    return TaskConfig.model_validate(
        {
            "name": "summarise",
            "description": "Summarise a support ticket in one sentence.",
            "output_schema": {"summary": "str"},
            "evaluator": "llm_judge",
            "evaluator_options": {
                "judges": [judge_config(server, m) for m in models],
                **options,
            },
        }
    )


STUDENT = {"summary": "Customer cannot log in after the password reset."}
TEACHER = {"summary": "The user is locked out following a password reset."}
INPUT = {"text": "I reset my password and now I can't log in!"}


async def test_single_judge_sends_rubric_schema_and_both_answers(server: JudgeServer) -> None:
    server.behaviours = {"judge-a": 0.8}
    task = make_task(server, ["judge-a"], rubric="RUBRIC-7: paraphrases count as correct.")
    evaluator = build_evaluator(task, judge_factory=wire_factory)
    try:
        result = await evaluator.evaluate(task, STUDENT, TEACHER, task_input=INPUT)
    finally:
        await evaluator.aclose()

    assert result.score == pytest.approx(0.8)
    assert result.cost == pytest.approx(CALL_COST)
    assert result.judge_confidence is None  # one judge: no disagreement to measure
    assert result.details["reason"] == "judge-a says 0.8"
    [request] = server.requests
    system, user = request["messages"]
    assert (
        system["role"] == "system"
        and "RUBRIC-7: paraphrases count as correct." in system["content"]
    )
    assert json.dumps(TEACHER["summary"])[1:-1] in user["content"]
    assert STUDENT["summary"] in user["content"]
    assert "I reset my password" in user["content"]
    assert user["content"].index("Reference answer") < user["content"].index("Candidate answer")
    assert request["response_format"]["json_schema"]["schema"] == judge_mod.JUDGE_SCHEMA
    assert request["max_tokens"] == 512  # openai_compatible servers get max_tokens


async def test_default_rubric_when_none_configured(server: JudgeServer) -> None:
    server.behaviours = {"judge-a": 1.0}
    task = make_task(server, ["judge-a"])
    evaluator = build_evaluator(task, judge_factory=wire_factory)
    await evaluator.evaluate(task, STUDENT, TEACHER)
    await evaluator.aclose()
    system = server.requests[0]["messages"][0]["content"]
    assert judge_mod.DEFAULT_RUBRIC in system
    assert "(not provided)" in server.requests[0]["messages"][1]["content"]


async def test_single_mode_asks_only_the_first_judge(server: JudgeServer) -> None:
    server.behaviours = {"judge-a": 0.2, "judge-b": 0.9}
    task = make_task(server, ["judge-a", "judge-b"], judge_mode="single")
    evaluator = build_evaluator(task, judge_factory=wire_factory)
    result = await evaluator.evaluate(task, STUDENT, TEACHER)
    await evaluator.aclose()
    assert result.score == pytest.approx(0.2)
    assert [r["model"] for r in server.requests] == ["judge-a"]


async def test_ensemble_takes_the_median_and_reports_spread(server: JudgeServer) -> None:
    scores = {"gpt": 0.90, "claude": 0.88, "gemini": 0.85}
    server.behaviours = dict(scores)
    task = make_task(server, list(scores), judge_mode="ensemble")
    evaluator = build_evaluator(task, judge_factory=wire_factory)
    result = await evaluator.evaluate(task, STUDENT, TEACHER)
    await evaluator.aclose()

    stdev = statistics.pstdev(scores.values())
    assert result.score == pytest.approx(0.88)
    assert result.details["stdev"] == pytest.approx(stdev)
    assert result.judge_confidence == pytest.approx(1 - stdev / 0.5)
    assert result.details["confidence_level"] == "high"
    assert result.cost == pytest.approx(3 * CALL_COST)
    assert sorted(r["model"] for r in server.requests) == sorted(scores)
    assert {g["judge"].split(":")[1]: g["score"] for g in result.details["grades"]} == scores


async def test_ensemble_median_resists_one_outlier_and_flags_disagreement(
    server: JudgeServer,
) -> None:
    server.behaviours = {"a": 0.9, "b": 0.8, "c": 0.0}
    task = make_task(server, ["a", "b", "c"], judge_mode="ensemble")
    evaluator = build_evaluator(task, judge_factory=wire_factory)
    result = await evaluator.evaluate(task, STUDENT, TEACHER)
    await evaluator.aclose()
    assert result.score == pytest.approx(0.8)
    assert result.judge_confidence == pytest.approx(1 - statistics.pstdev([0.9, 0.8, 0.0]) / 0.5)
    assert result.details["confidence_level"] == "low"


async def test_judges_split_evenly_means_zero_confidence(server: JudgeServer) -> None:
    server.behaviours = {"a": 1.0, "b": 0.0}
    task = make_task(server, ["a", "b"], judge_mode="ensemble")
    evaluator = build_evaluator(task, judge_factory=wire_factory)
    result = await evaluator.evaluate(task, STUDENT, TEACHER)
    await evaluator.aclose()
    assert result.score == pytest.approx(0.5)
    assert result.judge_confidence == pytest.approx(0.0)


@pytest.mark.parametrize("cheap_score", [0.05, 0.95])
async def test_hierarchical_accepts_a_confident_cheap_judge(
    server: JudgeServer, cheap_score: float
) -> None:
    server.behaviours = {"cheap": cheap_score, "big1": 0.5, "big2": 0.5}
    task = make_task(
        server, ["cheap", "big1", "big2"], judge_mode="hierarchical", uncertain_range=[0.3, 0.7]
    )
    evaluator = build_evaluator(task, judge_factory=wire_factory)
    result = await evaluator.evaluate(task, STUDENT, TEACHER)
    await evaluator.aclose()
    assert result.score == pytest.approx(cheap_score)
    assert result.details["escalated"] is False
    assert result.cost == pytest.approx(CALL_COST)
    assert [r["model"] for r in server.requests] == ["cheap"]


async def test_hierarchical_escalates_an_uncertain_score_to_the_ensemble(
    server: JudgeServer,
) -> None:
    server.behaviours = {"cheap": 0.5, "big1": 0.9, "big2": 0.8}
    task = make_task(
        server, ["cheap", "big1", "big2"], judge_mode="hierarchical", uncertain_range=[0.3, 0.7]
    )
    evaluator = build_evaluator(task, judge_factory=wire_factory)
    result = await evaluator.evaluate(task, STUDENT, TEACHER)
    await evaluator.aclose()
    assert result.details["escalated"] is True
    assert result.score == pytest.approx(0.8)  # median of 0.5, 0.9, 0.8
    assert result.judge_confidence == pytest.approx(1 - statistics.pstdev([0.5, 0.9, 0.8]) / 0.5)
    assert result.cost == pytest.approx(3 * CALL_COST)
    assert len(server.asked("cheap")) == 1  # its grade is reused, not bought twice
    assert len(server.asked("big1")) == len(server.asked("big2")) == 1


async def test_range_bounds_are_inclusive(server: JudgeServer) -> None:
    server.behaviours = {"cheap": 0.7, "big": 0.9}
    task = make_task(
        server, ["cheap", "big"], judge_mode="hierarchical", uncertain_range=[0.3, 0.7]
    )
    evaluator = build_evaluator(task, judge_factory=wire_factory)
    result = await evaluator.evaluate(task, STUDENT, TEACHER)
    await evaluator.aclose()
    assert result.details["escalated"] is True
    assert result.score == pytest.approx(0.8)


async def test_a_failing_judge_is_left_out_of_the_ensemble(server: JudgeServer) -> None:
    server.behaviours = {"a": 0.6, "broken": 500, "chatty": "I think it is fine!", "c": 0.8}
    task = make_task(server, ["a", "broken", "chatty", "c"], judge_mode="ensemble")
    evaluator = build_evaluator(task, judge_factory=wire_factory)
    result = await evaluator.evaluate(task, STUDENT, TEACHER)
    await evaluator.aclose()
    assert result.score == pytest.approx(0.7)
    failed = {f["judge"].split(":")[1]: f["error"] for f in result.details["failures"]}
    assert set(failed) == {"broken", "chatty"}
    assert "JudgeError" in failed["chatty"]
    # The chatty judge was billed even though its reply was useless; each 5xx attempt of
    # the broken one may have been billed too, for an unknown amount: its worst case.
    broken = len(server.asked("broken"))
    assert broken >= 1
    per_5xx = (result.cost - 3 * CALL_COST) / broken
    assert per_5xx > CALL_COST  # a worst case, never free


@pytest.mark.parametrize(
    "reply", ['{"score": 1.5, "reason": "x"}', '{"score": "high", "reason": "x"}', "no json"]
)
async def test_no_usable_grade_raises_with_the_cost_spent(server: JudgeServer, reply: str) -> None:
    server.behaviours = {"a": reply}
    task = make_task(server, ["a"])
    evaluator = build_evaluator(task, judge_factory=wire_factory)
    with pytest.raises(JudgeError, match="no judge produced a grade") as caught:
        await evaluator.evaluate(task, STUDENT, TEACHER)
    await evaluator.aclose()
    assert caught.value.cost == pytest.approx(CALL_COST)


async def test_all_judges_down_raises_from_the_teacher_error(server: JudgeServer) -> None:
    server.behaviours = {"a": 503, "b": 500}
    task = make_task(server, ["a", "b"], judge_mode="ensemble")
    evaluator = build_evaluator(task, judge_factory=wire_factory)
    with pytest.raises(JudgeError) as caught:
        await evaluator.evaluate(task, STUDENT, TEACHER)
    await evaluator.aclose()
    assert isinstance(caught.value.__cause__, ProviderError)
    # A 5xx may come after the model ran: each attempt is booked at its worst case.
    attempts = len(server.requests)
    assert attempts >= 2 and caught.value.cost > 0


async def test_invalid_student_scores_zero_without_paying_a_judge(server: JudgeServer) -> None:
    server.behaviours = {"a": 1.0}
    task = make_task(server, ["a"])
    evaluator = build_evaluator(task, judge_factory=wire_factory)
    result = await evaluator.evaluate(task, None, TEACHER)
    await evaluator.aclose()
    assert result.score == 0.0 and result.cost == 0.0
    assert result.details["invalid_student"] is True
    assert server.requests == []


async def test_default_judge_is_used_when_no_judges_are_listed(server: JudgeServer) -> None:
    server.behaviours = {"teacher-model": 0.4}
    task = TaskConfig(name="t", evaluator="llm_judge")
    default = ProviderConfig.model_validate(judge_config(server, "teacher-model"))
    evaluator = build_evaluator(task, judge_factory=wire_factory, default_judge=default)
    result = await evaluator.evaluate(task, {"a": 1}, {"a": 2})
    await evaluator.aclose()
    assert result.score == pytest.approx(0.4)
    assert server.asked("teacher-model")


def test_config_errors_are_clear() -> None:
    task = TaskConfig(name="t", evaluator="llm_judge")
    with pytest.raises(EvaluatorConfigError, match=r"evaluator_options\.judges"):
        build_evaluator(task, judge_factory=wire_factory)
    lonely = TaskConfig.model_validate(
        {
            "name": "t",
            "evaluator": "llm_judge",
            "evaluator_options": {
                "judge_mode": "hierarchical",
                "judges": [{"provider": "openai_compatible", "model": "m", "base_url": "http://x"}],
            },
        }
    )
    with pytest.raises(EvaluatorConfigError, match="at least two judges"):
        build_evaluator(lonely, judge_factory=wire_factory)
    backwards = TaskConfig.model_validate(
        {
            "name": "t",
            "evaluator": "llm_judge",
            "evaluator_options": {
                "uncertain_range": [0.8, 0.2],
                "judges": [{"provider": "openai_compatible", "model": "m", "base_url": "http://x"}],
            },
        }
    )
    with pytest.raises(EvaluatorConfigError, match="uncertain_range"):
        build_evaluator(backwards, judge_factory=wire_factory)
    with pytest.raises(EvaluatorNotSync):
        evaluate_sync(backwards, {"a": 1}, {"a": 1})


def test_aggregate_maths() -> None:
    assert judge_mod.aggregate([0.3]) == (0.3, None, {})
    score, confidence, spread = judge_mod.aggregate([0.2, 0.4, 0.6, 1.0])
    assert score == pytest.approx(0.5)
    assert spread["stdev"] == pytest.approx(statistics.pstdev([0.2, 0.4, 0.6, 1.0]))
    assert confidence == pytest.approx(1 - spread["stdev"] / 0.5)
    assert judge_mod.aggregate([0.7, 0.7, 0.7])[1] == pytest.approx(1.0)
    with pytest.raises(ValueError):
        judge_mod.aggregate([])
    assert judge_mod.aggregate([0.55, 0.45])[2]["confidence_level"] == "medium"  # close, split
    assert judge_mod.aggregate([0.6, 1.0])[2]["confidence_level"] == "medium"  # apart, unanimous


async def test_aclose_releases_the_judges_once(server: JudgeServer) -> None:
    server.behaviours = {"a": 0.5, "b": 0.5}
    task = make_task(server, ["a", "b"], judge_mode="ensemble")
    evaluator = build_evaluator(task, judge_factory=wire_factory)
    assert isinstance(evaluator, judge_mod.LLMJudge) and len(evaluator.judges) == 2
    await evaluator.aclose()
    await evaluator.aclose()  # idempotent
    assert evaluator.judges == []
