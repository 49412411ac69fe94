"""Budget under concurrency, and what happens at the cap."""

from __future__ import annotations

import asyncio
import math
from pathlib import Path
from typing import Any

import gw_rules
from gw_config import make_config


async def test_200_concurrent_requests_never_spend_past_the_cap(
    harness_factory: Any, tmp_path: Path, store_url: str
) -> None:
    # One replay answer costs ~0.0002 USD at gpt-4o prices; the cap admits ~70 of 200.
    cfg = make_config(tmp_path, store_url=store_url, task={"budget": {"daily": 0.015}})
    h = await harness_factory(cfg)
    client = await h.serve()

    async def one(i: int) -> int:
        resp = await client.post("/v1/tasks/classify", json={"input": gw_rules.make_input(i)})
        body = await resp.json()
        if resp.status == 429:
            assert body["error"]["type"] == "budget_exhausted"
        else:
            assert resp.status == 200, body
        return resp.status

    statuses = await asyncio.gather(*(one(i) for i in range(200)))
    ok = statuses.count(200)
    assert statuses.count(429) == 200 - ok
    assert 10 < ok < 200

    store = h.gw.store
    spend = store.spend_entries("classify")
    total = math.fsum(e.amount for e in spend)
    assert total <= 0.015 + 1e-12, total
    assert len(spend) == ok  # every answered request paid once, nothing else
    # Every teacher answer paid for is stored as an example (inputs are distinct).
    paid_ids = {e.request_id for e in spend}
    example_ids = {e.request_id for e in store.examples("classify")}
    assert paid_ids == example_ids
    assert store.request_counts("classify").teacher_calls == ok
    state = await (await client.get("/v1/tasks/classify/state")).json()
    assert state["budget_exhausted"] is True
    assert abs(state["spend"]["today"] - total) < 1e-6


async def test_at_the_cap_a_ready_student_serves_flagged(
    harness_factory: Any, tmp_path: Path
) -> None:
    cfg = make_config(tmp_path, task={"budget": {"daily": 0.005}})
    h = await harness_factory(cfg)
    client = await h.serve()
    for i in range(20):  # phase 1: 20 examples, then v1 is trained and promoted
        resp = await client.post("/v1/tasks/classify", json={"input": gw_rules.make_input(i)})
        assert resp.status == 200
        await h.app.wait_for_training_idle("classify")
    assert h.students["classify"].active_version() == "v1"
    statuses = []
    for i in range(20, 60):
        resp = await client.post("/v1/tasks/classify", json={"input": gw_rules.make_input(i)})
        statuses.append(resp.status)
        assert (await resp.json())["output"] == gw_rules.teacher_output(gw_rules.make_input(i))
    assert set(statuses) == {200}
    await h.gw.flush()  # local-only answers return before their row commits
    total = math.fsum(e.amount for e in h.gw.store.spend_entries("classify"))
    assert total <= 0.005 + 1e-12
    state = await (await client.get("/v1/tasks/classify/state")).json()
    assert state["budget_exhausted"] is True  # flagged where a caller can see it
    assert h.gw.metrics.value("apprentice_alerts_total", {"kind": "budget_100"}) == 1.0
    routes = [r.route for r in h.gw.store.requests("classify")[-10:]]
    assert routes == ["local_only"] * 10
