"""A paid student (an ``openai`` fine-tune) spends inside the budget, at the wire.

The student is the real :class:`~apprentice.students.openai_ft.OpenAIStudent` in
front of a loopback OpenAI-compatible server that bills like a provider
(``billing_teacher``); the teacher is another one. Each student call is reserved
before it runs and booked as ``student`` spend in the request's transaction, so
caps, status and the provider's invoice agree.
"""

from __future__ import annotations

import math
import secrets
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import gw_fakes
import gw_rules
import pytest
from aiohttp.test_utils import TestClient, TestServer
from billing_teacher import CALL, PRICE, BillingTeacher, provider_block
from gw_config import make_config

from apprentice.engine import lifecycle
from apprentice.gateway.facade import Apprentice
from apprentice.gateway.http import build_app
from apprentice.store import open_store, records

FT = "ft:gpt-4o-mini-2024-07-18:acme::paid1"


@pytest.fixture(autouse=True)
def student_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GW_STUDENT_KEY", "test-" + secrets.token_hex(8))  # built at run time


def _config(tmp_path: Path, store_url: str, teacher: BillingTeacher, student: BillingTeacher,
            cap: float = 1.0, student_tokens: int = 200) -> Any:  # fmt: skip
    return make_config(
        tmp_path,
        store_url=store_url,
        remote=provider_block(teacher.base_url),
        local={
            "backend": "openai",
            "fine_tune_backend": "openai",
            "base_model": "gpt-4o-mini-2024-07-18",
            "base_url": student.base_url,
            "api_key_env": "GW_STUDENT_KEY",
            "price": PRICE,
            "max_retries": 0,
            "max_new_tokens": student_tokens,
        },
        gateway={"orchestrator": "operator", "admin_token_env": "GW_TEST_ADMIN_TOKEN"},
        task={"budget": {"daily": cap}},
    )


@asynccontextmanager
async def _serving(
    cfg: Any, spent_before: float = 0.0, steady: bool = False
) -> AsyncIterator[tuple[Any, Any]]:
    """The gateway with v1 (the fine-tune) promoted: every request goes to both, or with
    ``steady`` the task is in phase 3, where the student answers alone."""
    with open_store(cfg.store.url) as store:
        gw_fakes.promote_v1(store, Path(FT))
        if steady:
            params = lifecycle.TaskParams.from_config(cfg, "classify")
            state = lifecycle.version_promoted(lifecycle.initial(params), "v1")
            for i in range(params.detectors.window_size):
                state, _ = lifecycle.observe(state, 1.0, index=i)
            assert state.phase is lifecycle.Phase.steady_state
            store.save_task_state("classify", state.to_dict())
        if spent_before:
            store.record_spend(
                [records.SpendRecord(task="classify", at=datetime.now(UTC), amount=spent_before)]
            )
    app = Apprentice.from_config(cfg)
    await app.start()
    client: TestClient[Any, Any] = TestClient(TestServer(build_app(app.gateway)))
    await client.start_server()
    try:
        yield app, client
    finally:
        await client.close()
        await app.close()


def _spend(app: Any, kind: str) -> list[records.SpendRecord]:
    return [e for e in app.store.spend_entries("classify") if e.kind == kind]


async def test_a_paid_students_answer_is_booked_as_student_spend(
    tmp_path: Path, store_url: str
) -> None:
    async with (
        BillingTeacher() as teacher,
        BillingTeacher() as student,
        _serving(_config(tmp_path, store_url, teacher, student)) as (app, client),
    ):
        resp = await client.post("/v1/tasks/classify", json={"input": gw_rules.make_input(1)})
        body = await resp.json()
        assert resp.status == 200, body
        await app.flush()
        lines = _spend(app, "student")
        assert [e.amount for e in lines] == [pytest.approx(CALL)]
        assert lines[0].request_id == body["request_id"]
        assert math.fsum(e.amount for e in lines) == pytest.approx(student.billed)
        assert _spend(app, "teacher")[0].amount == pytest.approx(teacher.billed)
        assert app.store.reservations() == []  # both holds settled in the transaction
        state = await (await client.get("/v1/tasks/classify/state")).json()
        assert state["spend"]["today"] == pytest.approx(teacher.billed + student.billed)


async def test_a_cap_at_its_limit_stops_the_paid_student(tmp_path: Path, sqlite_url: str) -> None:
    async with BillingTeacher() as teacher, BillingTeacher() as student:
        cfg = _config(tmp_path, sqlite_url, teacher, student, cap=0.05)
        async with _serving(cfg, spent_before=0.05) as (app, client):
            resp = await client.post("/v1/tasks/classify", json={"input": gw_rules.make_input(2)})
            body = await resp.json()
            assert resp.status == 429, body
            assert body["error"]["type"] == "budget_exhausted"
            assert "student" in body["error"]["message"]
            assert student.requests == 0 and teacher.requests == 0  # nobody was called
            await app.flush()
            assert _spend(app, "student") == [] and app.store.reservations() == []


async def test_a_failed_paid_student_call_still_books_what_was_billed(
    tmp_path: Path, sqlite_url: str
) -> None:
    async with (
        BillingTeacher() as teacher,
        BillingTeacher("invalid") as student,
        _serving(_config(tmp_path, sqlite_url, teacher, student)) as (app, client),
    ):
        resp = await client.post("/v1/tasks/classify", json={"input": gw_rules.make_input(3)})
        assert resp.status == 200  # the teacher answered; the student's answer was invalid
        await app.flush()
        assert student.requests == 2  # the answer and its repair, both billed
        booked = math.fsum(e.amount for e in _spend(app, "student"))
        assert booked == pytest.approx(student.billed) and booked == pytest.approx(2 * CALL)
        [comparison] = app.store.comparisons("classify")
        assert comparison.score == 0.0  # an invalid student answer is a disagreement
        assert app.store.reservations() == []


async def test_with_no_room_for_the_paid_student_the_teacher_answers(
    tmp_path: Path, sqlite_url: str
) -> None:
    # Phase 3: the student alone would answer. Its worst case (2,000 output tokens) does
    # not fit under the cap; the teacher's (200) does: the teacher answers instead.
    async with BillingTeacher() as teacher, BillingTeacher() as student:
        cfg = _config(tmp_path, sqlite_url, teacher, student, cap=0.03, student_tokens=2000)
        async with _serving(cfg, steady=True) as (app, client):
            resp = await client.post("/v1/tasks/classify", json={"input": gw_rules.make_input(4)})
            body = await resp.json()
            assert resp.status == 200, body
            assert body["output"] == gw_rules.teacher_output(gw_rules.make_input(4))
            assert student.requests == 0 and teacher.requests == 1
            await app.flush()
            assert _spend(app, "student") == []
            assert _spend(app, "teacher")[0].amount == pytest.approx(teacher.billed)
            [row] = app.store.requests("classify")
            assert row.route == "remote_only" and row.served_by == "teacher"
