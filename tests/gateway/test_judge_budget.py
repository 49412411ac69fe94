"""llm_judge spend is reserved before judging: teacher + judge never cross a cap.

The judge is the real ``openai_compatible`` teacher client aimed at a loopback
server speaking OpenAI Chat Completions (``fakes.teachers.FakeTeacherServer``);
the teacher is the replay teacher; the store is real SQLite.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import gw_rules
import pytest
from gw_config import make_config

from apprentice.gateway import judging, spending
from apprentice.store import open_store
from fakes.teachers import FakeTeacherServer

JUDGE_PROMPT_TOKENS, JUDGE_COMPLETION_TOKENS = 120, 30
# What one judge call bills at gpt-4o list prices (what the fake server reports as usage).
JUDGE_CALL = (JUDGE_PROMPT_TOKENS * 2.50 + JUDGE_COMPLETION_TOKENS * 10.00) / 1e6
DAILY_CAP = 0.05  # room for held-out validation judging too (booked since)


@pytest.fixture
async def judge() -> AsyncIterator[FakeTeacherServer]:
    async with FakeTeacherServer(
        "openai",
        answer=lambda _prompt: {"score": 1.0, "reason": "same label"},
        prompt_tokens=JUDGE_PROMPT_TOKENS,
        completion_tokens=JUDGE_COMPLETION_TOKENS,
    ) as server:
        yield server


def judged_config(tmp_path: Path, judge: FakeTeacherServer) -> Any:
    return make_config(
        tmp_path,
        task={
            "evaluator": "llm_judge",
            "evaluator_options": {
                "judges": [
                    {
                        "provider": "openai_compatible",
                        "model": "gpt-4o",
                        "base_url": judge.base_url,
                        "api_key_env": "GW_TEST_JUDGE_KEY",
                    }
                ]
            },
            "budget": {"daily": DAILY_CAP},
        },
    )


async def test_judge_spend_is_reserved_so_concurrent_requests_never_cross_the_cap(
    harness_factory: Any,
    tmp_path: Path,
    judge: FakeTeacherServer,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("GW_TEST_JUDGE_KEY", "test-judge-key-not-real")
    h = await harness_factory(judged_config(tmp_path, judge))
    client = await h.serve()
    for i in range(20):  # phase 1: 20 examples, then v1 is trained and promoted
        resp = await client.post("/v1/tasks/classify", json={"input": gw_rules.make_input(i)})
        assert resp.status == 200
        await h.app.wait_for_training_idle("classify")
    assert h.students["classify"].active_version() == "v1"
    validation_calls = len(judge.received)  # held-out validation grades are not request spend
    rt = h.gw.tasks["classify"]
    assert rt.engine.phase_name() == "reinforcement"  # phase 2

    # (b) A few requests one at a time: each comparison's judge call is booked as "judge" spend.
    store = h.gw.store
    for i in range(20, 30):
        resp = await client.post("/v1/tasks/classify", json={"input": gw_rules.make_input(i)})
        assert resp.status == 200
    validation = [
        e for e in store.spend_entries("classify") if e.kind == "judge" and not e.request_id
    ]
    assert len(validation) == validation_calls > 0  # validation's judge calls are booked too
    judged = [e for e in store.spend_entries("classify") if e.kind == "judge" and e.request_id]
    compared = {c.request_id for c in store.comparisons("classify")}
    assert judged, "phase 2 compared nothing: the test would prove nothing"
    assert {e.request_id for e in judged} == compared
    assert all(e.amount == pytest.approx(JUDGE_CALL) for e in judged)
    assert len(judged) == len(judge.received) - validation_calls
    judge_calls = len(judge.received)

    # (a) A concurrent burst: teacher reservations alone would fit, teacher + judge would not.
    async def one(i: int) -> int:
        resp = await client.post("/v1/tasks/classify", json={"input": gw_rules.make_input(i)})
        assert resp.status == 200, await resp.text()  # over the cap the student serves
        return resp.status

    await asyncio.gather(*(one(i) for i in range(30, 230)))
    await h.gw.flush()
    spend = store.spend_entries("classify")
    total = math.fsum(e.amount for e in spend)
    assert total <= DAILY_CAP + 1e-12, total
    judged = [e for e in spend if e.kind == "judge" and e.request_id]
    # Every judge call the server answered is in the ledger, and the burst judged some.
    assert len(judged) == len(judge.received) - validation_calls
    assert len(judge.received) > judge_calls
    # The store holds no forgotten reservation and the gateway's view agrees with it.
    assert not store.reservations()
    await h.gw.budget.refresh(datetime.now(UTC))
    daily = h.gw.budget.windows("classify", datetime.now(UTC))["daily"]
    assert daily == pytest.approx(total, abs=1e-9)


async def test_a_failed_judge_call_still_books_what_it_billed_and_skips_the_comparison(
    harness_factory: Any,
    tmp_path: Path,
    judge: FakeTeacherServer,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("GW_TEST_JUDGE_KEY", "test-judge-key-not-real")
    h = await harness_factory(judged_config(tmp_path, judge))
    client = await h.serve()
    for i in range(20):
        resp = await client.post("/v1/tasks/classify", json={"input": gw_rules.make_input(i)})
        assert resp.status == 200
        await h.app.wait_for_training_idle("classify")
    assert h.students["classify"].active_version() == "v1"
    judge.answer = lambda _prompt: "I would rather not grade this."  # billed, but no grade
    before = len(judge.received)
    for i in range(20, 30):
        resp = await client.post("/v1/tasks/classify", json={"input": gw_rules.make_input(i)})
        assert resp.status == 200  # a judge failure never fails the caller
    store = h.gw.store
    judged = [e for e in store.spend_entries("classify") if e.kind == "judge" and e.request_id]
    assert len(judged) == len(judge.received) - before > 0
    assert all(e.amount == pytest.approx(JUDGE_CALL) for e in judged)
    assert not {c.request_id for c in store.comparisons("classify")} & {
        e.request_id for e in judged
    }
    assert not store.reservations()
    await h.gw.budget.refresh(datetime.now(UTC))
    daily = h.gw.budget.windows("classify", datetime.now(UTC))["daily"]
    assert daily == pytest.approx(math.fsum(e.amount for e in store.spend_entries("classify")))


async def test_a_judge_overrun_is_booked_in_full_and_warned(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    cfg = make_config(tmp_path, task={"budget": {"daily": 1.0}})
    store = open_store(cfg.store.url)
    budget = spending.SharedBudget(cfg, store)
    now = datetime.now(UTC)
    hold = await budget.reserve("classify", 0.01, now, kind="judge")
    assert hold is not None
    await budget.settle(hold, 0.004, now)  # the usual case: under
    hold = await budget.reserve("classify", 0.01, now, kind="judge")
    assert hold is not None
    await budget.settle(hold, 0.0, now)  # nothing billed: released
    hold = await budget.reserve("classify", 0.01, now, kind="judge")
    assert hold is not None
    with caplog.at_level("WARNING", logger="apprentice.gateway.judging"):
        judging.overrun("classify", hold, 0.015)  # an estimate bug
    await budget.settle(hold, 0.015, now)  # spend is a fact: booked in full
    await budget.refresh(now)
    assert budget.windows("classify", now)["daily"] == pytest.approx(0.019)
    assert math.fsum(e.amount for e in store.spend_entries("classify")) == pytest.approx(0.019)
    assert "exceeded its reservation" in caplog.text
    assert not store.reservations()
    store.close()
