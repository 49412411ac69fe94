"""Every reported spend includes a paid student's: a request's ``cost`` is the sum of its
spend lines (teacher, paid student, judge), so the report's timeline, spend per tag or
key and the status' savings (which read it or the spend rows) count the student too."""

from __future__ import annotations

import math
import secrets
from datetime import UTC, datetime
from pathlib import Path

import gw_rules
import pytest
from billing_teacher import CALL, BillingTeacher
from test_budget_student import _config, _serving

from apprentice.reporting import snapshot, timeline


@pytest.fixture(autouse=True)
def student_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GW_STUDENT_KEY", "test-" + secrets.token_hex(8))  # built at run time


async def test_a_paid_student_s_spend_is_in_every_report(tmp_path: Path, sqlite_url: str) -> None:
    async with BillingTeacher() as teacher, BillingTeacher() as student:
        cfg = _config(tmp_path, sqlite_url, teacher, student)
        async with _serving(cfg) as (app, client):  # v1 promoted: teacher and student answer
            for i in range(3):
                resp = await client.post(
                    "/v1/tasks/classify", json={"input": gw_rules.make_input(i)}
                )
                assert resp.status == 200, await resp.text()
            await app.flush()
            store = app.store
            lines = store.spend_entries("classify")
            assert {e.kind for e in lines} == {"teacher", "student"}
            billed = teacher.billed + student.billed
            assert math.fsum(e.amount for e in lines) == pytest.approx(billed)
            rows = store.requests("classify")
            for row in rows:  # each request's cost is its lines, the student's included
                mine = [e.amount for e in lines if e.request_id == row.id]
                assert row.route == "both" and row.cost == pytest.approx(math.fsum(mine))
                assert row.cost == pytest.approx(2 * CALL)

            report = timeline.collect(store, "classify")
            assert report.teacher_spend == pytest.approx(billed)
            assert report.cumulative_spend[-1] == pytest.approx(billed)
            assert sum(b.teacher_spend for b in report.spend_buckets) == pytest.approx(billed)

            # Savings: the student answered nothing alone, and its answers were billed.
            now = datetime.now(UTC)
            local = snapshot.local_compute_cost(cfg, store, "classify", now)
            state = await (await client.get("/v1/tasks/classify/state")).json()
            assert state["estimated_savings"] == pytest.approx(-local - student.billed, abs=1e-6)
            durable = snapshot.status_from_store(cfg, store, "classify", now=now)
            assert durable.estimated_savings == pytest.approx(-local - student.billed, abs=1e-6)
